#!/usr/bin/env bash
# Cross-check with Apache Kafka's Java record code (not part of scripts/test:
# it needs the Kafka jars). Usage:
#   crates/record/tests/java/run.sh write   # regenerate tests/data/java-*.bin
#   crates/record/tests/java/run.sh read    # Kafka reads Sluice-built batches
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)
"$root/tools/kafka/fetch"
cp="$root/.cache/kafka/lib/*"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
javac -d "$out" -cp "$cp" "$here/KafkaBatches.java"
case "${1:-}" in
  write) java -cp "$out:$cp" KafkaBatches write "$here/../data" ;;
  read)
    (cd "$root" && SLUICE_RECORD_DUMP="$out" cargo test -q -p sluice-record --test java_fixtures dump_sluice_batches_for_java -- --exact >/dev/null)
    java -cp "$out:$cp" KafkaBatches read "$out"/sluice-*.bin ;;
  *) echo "usage: $0 write|read" >&2; exit 2 ;;
esac
