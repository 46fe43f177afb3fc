#!/usr/bin/env bash
# Rescales a running shop (one process, durable) while the console's generator runs
# checkouts: loads INSTANCES users and items first, then 1 → 2 → 1 → 2 → 1 → 2 workers every
# STEP seconds; prints each rescale's pause and the throughput second by second around it.
#   INSTANCES=1000000 STEP=8 bash scripts/bench-rescale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
INSTANCES=${INSTANCES:-1000000} STEP=${STEP:-8} CONNECTIONS=${CONNECTIONS:-32}
cargo build --release -q -p shop
dir=$(mktemp -d)
port=18$((RANDOM % 900 + 100))
./target/release/shop serve --workers 1 --listen 127.0.0.1:$port --data-dir "$dir/data" > "$dir/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
python3 - "$port" "$INSTANCES" "$STEP" "$CONNECTIONS" <<'PY'
import json, sys, time, urllib.request
port, n, step, conns = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
base = f"http://127.0.0.1:{port}"
def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers={"content-type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=600))
for _ in range(200):
    try:
        urllib.request.urlopen(base + "/healthz", timeout=1); break
    except Exception:
        time.sleep(0.1)
t = time.time()
half = n // 2
urllib.request.urlopen(urllib.request.Request(base + f"/payment/batch_init/{half}/1000000", method="POST"), timeout=3600)
urllib.request.urlopen(urllib.request.Request(base + f"/stock/batch_init/{half}/1000000/1", method="POST"), timeout=3600)
print(f"# loaded {n} instances in {time.time() - t:.1f} s")
call("POST", "/console/load", {"mix": "checkout", "connections": conns})
time.sleep(step)
rescales = []
for w in [2, 1, 2, 1, 2]:
    r = call("POST", "/admin/workers", {"workers": w})
    rescales.append(r)
    print(f"# {r['from']} -> {r['workers']}: held {r['paused_ms']:.0f} ms (stop {r['stop_ms']:.0f}, start {r['start_ms']:.0f})")
    time.sleep(step)
load = call("GET", "/console/load")
call("DELETE", "/console/load")
samples = call("GET", "/console/stats")["samples"]
pauses = sorted(r["paused_ms"] for r in rescales)
print(f"# pause p50 {pauses[len(pauses)//2]:.0f} ms, max {pauses[-1]:.0f} ms; generator: {load['ok']} ok, {load['rejected']} rejected, {load['failed']} failed")
marks = {r["at_ms"] // 1000: f"{r['from']}->{r['workers']}" for r in rescales}
print("second,workers,answers_2xx_per_s,p50_ms,p99_ms,rescale")
for s in samples:
    sec = s["t_ms"] // 1000
    print(f"{sec},{len(s['workers'])},{s['answers_per_s'][0]:.0f},{s['latency_p50_ms']},{s['latency_p99_ms']},{marks.get(sec, '')}")
PY
