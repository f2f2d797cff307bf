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
  mkdir -p "$out"
  javac -nowarn -d "$out" -cp "$lib/*" "$here/Driver.java"
fi
exec java -Xmx256m -XX:TieredStopAtLevel=1 -Xshare:auto -Dlog4j.configuration="file:$here/log4j.properties" \
  -cp "$out:$lib/*" Driver "$@"
