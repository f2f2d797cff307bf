#!/usr/bin/env bash
# Java client driver: compiles Driver.java against the pinned kafka-clients
# 4.1.2 (.cache/kafka/lib, from tools/kafka/fetch) into .cache/java-driver when
# it changed, then runs it with the given arguments (see Driver.java).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
lib="$root/.cache/kafka/lib"
out="$root/.cache/java-driver"
[ -f "$lib/.complete" ] || { echo "FAIL java-client: jars missing, run tools/kafka/fetch" >&2; exit 1; }
if [ ! -f "$out/Driver.class" ] || [ "$here/Driver.java" -nt "$out/Driver.class" ]; then
  # Tests run drivers in parallel: one compiler at a time, output swapped in whole.
  mkdir -p "$root/.cache"
  exec 9>"$root/.cache/java-driver.lock"
  flock 9
  if [ ! -f "$out/Driver.class" ] || [ "$here/Driver.java" -nt "$out/Driver.class" ]; then
    rm -rf "$out.tmp"; mkdir -p "$out.tmp"
    javac -nowarn -d "$out.tmp" -cp "$lib/*" "$here/Driver.java"
    rm -rf "$out"; mv "$out.tmp" "$out"
  fi
  flock -u 9
fi
exec java -Xmx256m -XX:TieredStopAtLevel=1 -Xshare:auto -Dlog4j.configuration="file:$here/log4j.properties" \
  -cp "$out:$lib/*" Driver "$@"
