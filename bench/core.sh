#!/usr/bin/env bash
# Core throughput: read by id and create, against a release `kiln serve` on SQLite or on a
# throw-away PostgreSQL (durable settings: fsync on), with wrk on the same machine.
# Prints the median of several runs (this machine is shared and noisy).
#
# usage: bench/core.sh [sqlite|postgres] [seconds=10] [connections=16] [runs=3] [patients=1000]
# needs: target/release/kiln (cargo build --release), wrk (apt-get install wrk), python3
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
BACKEND="${1:-sqlite}" SECONDS_PER_RUN="${2:-10}" CONNECTIONS="${3:-16}" RUNS="${4:-3}" PATIENTS="${5:-1000}"
KILN="$REPO/target/release/kiln"
[ -x "$KILN" ] || { echo "bench/core.sh: build first: cargo build --release" >&2; exit 2; }
command -v wrk >/dev/null || { echo "bench/core.sh: wrk is missing: apt-get install wrk" >&2; exit 2; }

TMP="$(mktemp -d -t kiln-bench.XXXXXX)"
. "$REPO/scripts/throwaway-postgres.sh"
SERVER=""
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    throwaway_pg_stop
    rm -rf "$TMP"
}
trap cleanup EXIT

case "$BACKEND" in
    sqlite) DATABASE_URL="sqlite://$TMP/kiln.db" ;;
    postgres) throwaway_pg_start "$TMP/pg"; DATABASE_URL="$THROWAWAY_PG_URL" ;;
    *) echo "backend must be sqlite or postgres" >&2; exit 2 ;;
esac
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
KILN_DATABASE_URL="$DATABASE_URL" KILN_LISTEN="127.0.0.1:$PORT" KILN_OPEN_ACCESS_FOR_DEVELOPMENT=true KILN_LOG=warn "$KILN" serve >"$TMP/kiln.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do curl -sf "$BASE/health" >/dev/null && break; sleep 0.1; done

# Seed patients bench-1..N with update-as-create, 8 at a time.
python3 - "$BASE" "$PATIENTS" <<'PY'
import json, sys, urllib.request
from concurrent.futures import ThreadPoolExecutor
base, n = sys.argv[1], int(sys.argv[2])
def put(i):
    body = {"resourceType": "Patient", "id": f"bench-{i}", "active": True,
            "name": [{"family": f"Family{i}", "given": ["Given"]}], "gender": "female", "birthDate": "1980-01-01"}
    req = urllib.request.Request(f"{base}/fhir/Patient/bench-{i}", data=json.dumps(body).encode(), method="PUT",
                                 headers={"Content-Type": "application/fhir+json"})
    with urllib.request.urlopen(req) as r:
        assert r.status in (200, 201), r.status
with ThreadPoolExecutor(8) as pool:
    list(pool.map(put, range(1, n + 1)))
PY

run_wrk() { # scenario -> "requests/s p50 p99"
    BENCH_PATIENTS="$PATIENTS" wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -s "$REPO/bench/wrk/$1.lua" "$BASE" |
        python3 -c '
import re, sys
text = sys.stdin.read()
def ms(label):
    m = re.search(r"^\s*" + label + r"\s+([\d.]+)(us|ms|s)", text, re.M)
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
if errors: sys.exit("wrk saw %s error responses" % errors.group(1))
p50, p99 = ms("50%"), ms("99%")
print("%.0f %.2f %.2f" % (rps, p50, p99))'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "backend=$BACKEND connections=$CONNECTIONS duration=${SECONDS_PER_RUN}s runs=$RUNS seeded=$PATIENTS cores=$(nproc)"
printf '%-8s %12s %10s %10s\n' scenario "req/s" "p50 ms" "p99 ms"
for scenario in read create; do
    results=()
    for _ in $(seq 1 "$RUNS"); do results+=("$(run_wrk "$scenario")"); done
    rps=$(printf '%s\n' "${results[@]}" | awk '{print $1}' | median)
    p50=$(printf '%s\n' "${results[@]}" | awk '{print $2}' | median)
    p99=$(printf '%s\n' "${results[@]}" | awk '{print $3}' | median)
    printf '%-8s %12s %10s %10s\n' "$scenario" "$rps" "$p50" "$p99"
done
