#!/usr/bin/env bash
# run.sh SLUICE_BIN OUTDIR "NICES" REPS EVERY BUSY: per nice level of the cold-read threads, REPS
# read_committed consumes of a 256 MiB 8-partition topic over PLAINTEXT and over TLS, each after
# evicting every EVERY-th page of its segments, with BUSY nice-0 busy loops beside.
set -euo pipefail
bin=$1; out=$2; nices=$3; reps=$4; every=$5; busy=$6
mkdir -p "$out"; work=$(mktemp -d /tmp/coldread/w.XXXX)
"$SLUICE_TLS_BIN" tls init --dir "$work/tls" >/dev/null
tls=(-X security.protocol=ssl -X ssl.ca.location=$work/tls/ca.pem -X ssl.endpoint.identification.algorithm=none)
if [ "$bin" = kafka ]; then
  cd /work/wt-coldread
  plain=$(KAFKA_SSL_KEYSTORE="$work/tls/broker.pem" KAFKA_HEAP_OPTS="-Xms1G -Xmx1G -XX:+UseG1GC" clients/reference-kafka start "$work/kafka")
  ssl=$(cat "$work/kafka/bootstrap-ssl"); spid=$(cat "$work/kafka/kafka.pid"); data=$work/kafka/data
  touch "$out/sluice.log"
  kcat -b "$plain" -L >/dev/null
  cleanup() { kill ${pids[@]:-} 2>/dev/null || true; clients/reference-kafka stop "$work/kafka" >/dev/null 2>&1 || true; wait 2>/dev/null || true; rm -rf "$work"; }
else
data=$work/data
RUST_LOG=warn,sluice_broker::network::cold::stages=debug "$bin" serve \
  --override listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0 --override "log.dirs=$work/data" \
  --override sluice.metrics.listener=127.0.0.1:0 --override ssl.keystore.type=PEM \
  --override "ssl.keystore.location=$work/tls/broker.pem" --override num.partitions=8 >"$out/sluice.log" 2>&1 &
spid=$!
cleanup() { kill $spid ${pids[@]:-} 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
for _ in $(seq 300); do grep -q '^listening on SSL://' "$out/sluice.log" && break; sleep 0.1; done
plain=$(sed -n 's|^listening on PLAINTEXT://||p' "$out/sluice.log"); ssl=$(sed -n 's|^listening on SSL://||p' "$out/sluice.log")
fi
pids=()
trap cleanup EXIT
python3 -c "
import sys; v=b'x'*999
sys.stdout.buffer.write(b''.join(v+b'\n' for _ in range(268435)))" > "$work/recs"
mb=268.435
java -cp "/work/wt-coldread/.cache/kafka/lib/*" org.apache.kafka.tools.TopicCommand --bootstrap-server "$plain" --create --topic t8 --partitions 8 >/dev/null
kcat -P -b "$plain" -t t8 -X linger.ms=20 -X batch.num.messages=10000 -X acks=all -l "$work/recs"
sleep 1
cons=(-X isolation.level=read_committed -X fetch.wait.max.ms=100 -X max.partition.fetch.bytes=1048576 -X fetch.max.bytes=52428800)
consume() { kcat -C -b "$1" "${@:2}" "${cons[@]}" -t t8 -o beginning -e -q -f '%o\n' | wc -l; }
consume "$plain" >/dev/null  # warm; starts the cold threads after an eviction
python3 /tmp/coldread/evict.py "$data" t8 1 >/dev/null; consume "$plain" >/dev/null
tck=$(getconf CLK_TCK)
for i in $(seq "$busy"); do ( while :; do :; done ) & pids+=($!); done
for nice in $nices; do
  for t in /proc/$spid/task/*; do
    if grep -q '^sluice-cold' "$t/comm"; then renice -n "$nice" -p "$(basename "$t")" >/dev/null; fi
  done
  for rep in $(seq "$reps"); do
    for l in plain ssl; do
      addr=$plain; extra=(); [ $l = ssl ] && { addr=$ssl; extra=("${tls[@]}"); }
      ev=$(python3 /tmp/coldread/evict.py "$data" t8 "$every")
      from=$(wc -l < "$out/sluice.log"); load=$(cut -d' ' -f1 /proc/loadavg)
      c0=$(awk '{print $14+$15}' /proc/$spid/stat); t0=$(date +%s.%N)
      n=$(consume "$addr" "${extra[@]}")
      t1=$(date +%s.%N); c1=$(awk '{print $14+$15}' /proc/$spid/stat)
      to=$(wc -l < "$out/sluice.log")
      st=$(python3 /tmp/coldread/stages.py "$out/sluice.log" "$from" "$to")
      python3 -c "
s=$t1-$t0; c=($c1-$c0)/$tck
print('nice %3s %-5s rep %d load %5s evicted %6d records %d: %6.1f MB/s %.3f CPU-s/GB | %s' % ('$nice','$l',$rep,'$load',$ev,$n,$mb/s,c/($mb/1000),'''$st'''))" | tee -a "$out/results.txt"
    done
  done
done
