#!/usr/bin/env bash
# Runs TxnDriver.java (transactions through the Java client,
# see its doc comment) against the pinned kafka-clients 4.1.2 jars. It is
# compiled into this checkout's target/ (not the shared .cache) when it changed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
lib="$root/.cache/kafka/lib"
out="${SLUICE_JAVA_TXN_OUT:-$root/target/java-txn-driver}"
[ -f "$lib/.complete" ] || { echo "FAIL java-client: jars missing, run tools/kafka/fetch" >&2; exit 1; }
if [ ! -f "$out/TxnDriver.class" ] || [ "$here/TxnDriver.java" -nt "$out/TxnDriver.class" ]; then
  mkdir -p "$(dirname "$out")"
  exec 9>"$out.lock"
  flock 9
  if [ ! -f "$out/TxnDriver.class" ] || [ "$here/TxnDriver.java" -nt "$out/TxnDriver.class" ]; then
    rm -rf "$out.tmp"; mkdir -p "$out.tmp"
    javac -nowarn -d "$out.tmp" -cp "$lib/*" "$here/TxnDriver.java"
    rm -rf "$out"; mv "$out.tmp" "$out"
  fi
  flock -u 9
fi
exec java -Xmx256m -XX:TieredStopAtLevel=1 -Xshare:auto -Dlog4j.configuration="file:$here/log4j.properties" \
  -cp "$out:$lib/*" TxnDriver "$@"
