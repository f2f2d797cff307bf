#!/usr/bin/env bash
# Runs StreamsEosApp.java (a Kafka Streams 4.1.2 exactly-once word count, see
# its class comment) with the jars tools/kafka-streams/fetch puts in
# .cache/kafka-streams/lib. It is compiled into this checkout's target/ (not
# the shared .cache) when it changed. `exec`s the JVM, so the caller's child
# pid is the application's (kill -9 hits the JVM itself).
# SLUICE_STREAMS_LOG4J=FILE: another log4j 1 configuration (e.g. INFO to debug).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
lib="$root/.cache/kafka-streams/lib"
out="${SLUICE_JAVA_STREAMS_OUT:-$root/target/java-streams-app}"
[ -f "$lib/.complete" ] || { echo "FAIL streams: jars missing, run tools/kafka-streams/fetch" >&2; exit 1; }
if [ ! -f "$out/StreamsEosApp.class" ] || [ "$here/StreamsEosApp.java" -nt "$out/StreamsEosApp.class" ]; then
  mkdir -p "$(dirname "$out")"
  exec 9>"$out.lock"
  flock 9
  if [ ! -f "$out/StreamsEosApp.class" ] || [ "$here/StreamsEosApp.java" -nt "$out/StreamsEosApp.class" ]; then
    rm -rf "$out.tmp"; mkdir -p "$out.tmp"
    javac -nowarn -d "$out.tmp" -cp "$lib/*" "$here/StreamsEosApp.java"
    rm -rf "$out"; mv "$out.tmp" "$out"
  fi
  flock -u 9
  exec 9>&-
fi
exec java -Xmx256m -XX:TieredStopAtLevel=1 -Xshare:auto -Dlog4j.configuration="file:${SLUICE_STREAMS_LOG4J:-$here/log4j.properties}" \
  -cp "$out:$lib/*" StreamsEosApp "$@"
