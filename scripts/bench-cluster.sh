#!/usr/bin/env bash
# Checkout throughput and latency of the shop alone and as a cluster of 1, 2 and 3 processes
# on this machine (one worker each), side by side in one run. Load from `loadgen`, spread over
# every process's gateway (requests for keys of other processes cross in the dataflow).
#
#   bash scripts/bench-cluster.sh            # SECS=10 CONN=64 ORDERS=60000 by default
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-10}
CONN=${CONN:-64}
ORDERS=${ORDERS:-60000}
cargo build --release -q -p shop
BIN=target/release
WORK=$(mktemp -d)
trap 'pkill -f "$WORK" 2>/dev/null || true; rm -rf "$WORK"' EXIT

wait_up() { # url
  for _ in $(seq 1 600); do
    curl -sf "$1/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "no answer from $1" >&2
  return 1
}

measure() { # label processes
  $BIN/loadgen prepare --users 1000 --items 1000 --orders "$ORDERS" --url http://127.0.0.1:8400 >/dev/null
  local urls=() out
  for i in $(seq 0 $(($2 - 1))); do urls+=("http://127.0.0.1:$((8400 + i))"); done
  out=$($BIN/loadgen run --mix checkout --connections "$CONN" --duration "$SECS" --warmup 1 \
        --url "${urls[@]}" --json "$WORK/$1.json")
  python3 - "$1" "$WORK/$1.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[2]))
l = d["latency_us"]
print(f"{sys.argv[1]:<28} {d['throughput_rps']:>8.0f} req/s  p50 {l['p50']/1000:6.2f} ms  "
      f"p99 {l['p99']/1000:7.2f} ms  2xx {d['status']['2xx']}  5xx {d['status']['5xx']}")
PY
}

echo "# checkout, $CONN connections, ${SECS}s, $(nproc) cores"
# Alone (no cluster), 1 and 2 workers.
for w in 1 2; do
  $BIN/shop serve --workers $w --data-dir "$WORK/alone$w" --listen 127.0.0.1:8400 >/dev/null 2>&1 &
  pid=$!
  wait_up http://127.0.0.1:8400
  measure "alone, $w worker(s)" 1
  kill -TERM $pid; wait $pid || true
done
# Clusters of 1, 2, 3 processes x 1 worker.
for n in 1 2 3; do
  $BIN/shop cluster up --processes $n --workers 1 --data-dir "$WORK/c$n" \
    --listen 127.0.0.1:8400 --timely-port 7400 >/dev/null 2>&1 &
  pid=$!
  for i in $(seq 0 $((n - 1))); do wait_up "http://127.0.0.1:$((8400 + i))"; done
  measure "cluster, $n process(es) x 1" $n
  kill -TERM $pid; wait $pid || true
done
