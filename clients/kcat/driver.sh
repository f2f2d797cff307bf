#!/usr/bin/env bash
# kcat driver (Debian's kcat 1.7.1 on librdkafka 2.0.2): see clients/README.md.
# kcat cannot create or delete topics or print topic ids, so those steps use
# the Java client driver (clients/java/driver.sh --phase create|describe|delete);
# everything else (metadata, produce under each codec, consume, list offsets)
# is kcat's own.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
java_driver="$here/../java/driver.sh"
NAME=kcat
PARTITIONS=3
PER_CODEC=30
bootstrap="" topic="" phase=all codecs="none,gzip,snappy,lz4,zstd" timeout=60
usage() { echo "usage: $0 --bootstrap HOST:PORT --topic NAME [--phase all|produce|produce-consume|verify-only] [--codecs a,b]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --bootstrap) bootstrap=$2; shift 2 ;;
    --topic) topic=$2; shift 2 ;;
    --phase) phase=$2; shift 2 ;;
    --codecs) codecs=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    *) usage ;;
  esac
done
[ -n "$bootstrap" ] && [ -n "$topic" ] || usage
case "$phase" in all|produce|produce-consume|verify-only) ;; *) usage ;; esac
IFS=, read -r -a codec_list <<<"$codecs"

fail() { echo "FAIL $NAME: $*"; exit 1; }
step() { echo "[$(date +%H:%M:%S)] $*"; }
command -v kcat >/dev/null || fail "kcat not installed (apt-get install kcat)"
kc() { timeout "$timeout" kcat -b "$bootstrap" -X topic.metadata.refresh.interval.ms=1000 "$@"; }

value() { # value CODEC I
  local v="value-$1-$2:" n=$(( $2 % 7 * 5 )) j
  for ((j = 0; j < n; j++)); do v+="sluice-"; done
  printf '%s' "$v"
}

expected() { # expected PARTITION -> lines "offset|key|value|headers"
  local p=$1 off=0 c i
  for c in "${codec_list[@]}"; do
    for ((i = p; i < PER_CODEC; i += PARTITIONS)); do
      printf '%d|key-%s-%d|%s|codec=%s,partition=%d\n' "$off" "$c" "$i" "$(value "$c" "$i")" "$c" "$p"
      off=$((off + 1))
    done
  done
}

check_metadata() {
  local md n
  md=$(kc -L -t "$topic" -J) || fail "metadata request failed"
  n=$(printf '%s' "$md" | python3 -c 'import json,sys; t=json.load(sys.stdin)["topics"][0]; print(-1 if t.get("error") else len(t["partitions"]))')
  [ "$n" = "$PARTITIONS" ] || fail "metadata for $topic: $n partitions, expected $PARTITIONS: $md"
}

produce() {
  local c p i
  for c in "${codec_list[@]}"; do
    step "produce $PER_CODEC records with compression $c"
    for ((p = 0; p < PARTITIONS; p++)); do
      # One kcat run per partition: its records leave as one compressed batch.
      for ((i = p; i < PER_CODEC; i += PARTITIONS)); do
        printf 'key-%s-%d:%s\n' "$c" "$i" "$(value "$c" "$i")"
      done | kc -P -t "$topic" -p "$p" -z "$c" -K: -H "codec=$c" -H "partition=$p" \
        -X acks=all -X enable.idempotence=false -X linger.ms=20 \
        || fail "produce with $c to partition $p failed"
    done
  done
}

consume() {
  local p got want total
  step "consume every partition from the beginning"
  for ((p = 0; p < PARTITIONS; p++)); do
    want=$(expected "$p")
    total=$(printf '%s\n' "$want" | wc -l)
    got=$(kc -C -t "$topic" -p "$p" -o beginning -c "$total" -e -q -f '%o|%k|%s|%h\n') \
      || fail "consume partition $p failed: $got"
    if [ "$got" != "$want" ]; then
      diff <(printf '%s\n' "$want") <(printf '%s\n' "$got") | head -10 || true
      fail "partition $p: consumed records differ from what was produced (diff above: < expected, > got)"
    fi
  done
  step "list offsets (earliest, latest)"
  for ((p = 0; p < PARTITIONS; p++)); do
    local n earliest latest
    n=$(expected "$p" | wc -l)
    earliest=$(kc -Q -t "$topic:$p:-2" | awk '{print $NF}')
    latest=$(kc -Q -t "$topic:$p:-1" | awk '{print $NF}')
    [ "$earliest" = 0 ] || fail "earliest offset of partition $p: '$earliest', expected 0"
    [ "$latest" = "$n" ] || fail "latest offset of partition $p: '$latest', expected $n"
  done
}

java_phase() {
  local out
  out=$("$java_driver" --bootstrap "$bootstrap" --topic "$topic" --phase "$1" --timeout "$timeout" 2>&1) \
    || { printf '%s\n' "$out"; fail "java admin helper --phase $1 failed"; }
  printf '%s\n' "$out" | grep '^TOPIC_ID=' || true
}

if [ "$phase" = all ] || [ "$phase" = produce ] || [ "$phase" = produce-consume ]; then
  step "create topic $topic with $PARTITIONS partitions (via the Java admin client)"
  java_phase create
  check_metadata
  produce
fi
if [ "$phase" = all ] || [ "$phase" = produce-consume ]; then
  consume
fi
if [ "$phase" = all ] || [ "$phase" = verify-only ]; then
  java_phase describe
  check_metadata
  consume
  step "delete topic $topic (via the Java admin client)"
  java_phase delete >/dev/null
fi
echo "OK $NAME"
