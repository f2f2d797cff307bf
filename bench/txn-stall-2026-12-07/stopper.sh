#!/usr/bin/env bash
# SIGSTOP/SIGCONT the broker whose log.dirs is under $1, emulating a starved process:
# a pause of 1.0-2.5 s every 2-5 s (the failed run's heartbeats were 0.9-2.2 s late).
dir=$1
while true; do
  pid=$(pgrep -f "log.dirs=$dir" | head -1)
  [ -n "$pid" ] && break
  sleep 0.2
done
echo "stopper: broker pid $pid" >&2
n=0
while kill -0 "$pid" 2>/dev/null; do
  sleep $((RANDOM % 4 + 2))
  kill -STOP "$pid" 2>/dev/null || break
  sleep $((RANDOM % 2 + 1)).$((RANDOM % 5))
  kill -CONT "$pid" 2>/dev/null
  n=$((n+1))
done
echo "stopper: $n pauses" >&2
