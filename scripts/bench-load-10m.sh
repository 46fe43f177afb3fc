#!/usr/bin/env bash
# Issue 13's load benchmark: 5M users and 5M items through the shop's batch routes (bulk
# loads), durable, 2 workers, --cache-mb 256; prints the times, the peak and final RSS and the
# data dir's size. Needs a release build (cargo build --release -p shop) and ~4 GB of disk.
set -euo pipefail
shop=${SHOP:-target/release/shop}
dir=$(mktemp -d)
port=${PORT:-8190}
"$shop" serve --data-dir "$dir/data" --listen "127.0.0.1:$port" --workers 2 --cache-mb 256 >"$dir/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
until curl -s "localhost:$port/healthz" >/dev/null; do sleep 0.1; done
(while kill -0 $pid 2>/dev/null; do ps -o rss= -p $pid >>"$dir/rss"; sleep 1; done) &
t0=$(date +%s.%N)
curl -sf -X POST "localhost:$port/payment/batch_init/5000000/100" >/dev/null
t1=$(date +%s.%N)
curl -sf -X POST "localhost:$port/stock/batch_init/5000000/1000/10" >/dev/null
t2=$(date +%s.%N)
sleep 10
echo "5M users: $(echo "$t1 - $t0" | bc) s; 5M items: $(echo "$t2 - $t1" | bc) s; total $(echo "$t2 - $t0" | bc) s"
echo "RSS: peak $(($(sort -n "$dir/rss" | tail -1) / 1024)) MiB, 10 s after $(($(ps -o rss= -p $pid) / 1024)) MiB"
echo "data dir: $(du -sh "$dir/data" | cut -f1) (state $(du -sh "$dir/data/state" | cut -f1), log $(du -sh "$dir/data/log" | cut -f1))"
