#!/usr/bin/env bash
# What the audit trail costs a read, sustained: alternating rounds of a release `kiln serve` with
# the audit off and one with it on, each on a fresh SQLite database (seeded with kiln-bench),
# each measured with `kiln-bench run --scenario read --kiln-pid`. After each audited run it reads
# how far the searchable copy of the log lags the log itself (`audit_copy_backlog` bounds it;
# docs/audit.md). Prints one line per run, then the medians and their ratio.
#
# usage: bench/audit-cost.sh
# build: cargo build --release --bins             (kiln and kiln-bench)
# env:   AUDIT_COST_ROUNDS=2 AUDIT_COST_SECONDS=30 AUDIT_COST_CONCURRENCY=16 AUDIT_COST_PATIENTS=200
#        KILN_BIN=$REPO/target/release/kiln  KILN_BENCH_BIN=$REPO/target/release/kiln-bench
#        KILN_AUDIT_COPY_BACKLOG (passed to the audited server; default 10000)
# needs: curl, python3.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
KILN="${KILN_BIN:-$REPO/target/release/kiln}"
DRIVER="${KILN_BENCH_BIN:-$REPO/target/release/kiln-bench}"
ROUNDS="${AUDIT_COST_ROUNDS:-2}"
SECS="${AUDIT_COST_SECONDS:-30}"
CONCURRENCY="${AUDIT_COST_CONCURRENCY:-16}"
PATIENTS="${AUDIT_COST_PATIENTS:-200}"
for bin in "$DRIVER" "$KILN"; do
    [ -x "$bin" ] || { echo "audit-cost.sh: $bin is missing: cargo build --release --bins" >&2; exit 2; }
done

. "$REPO/scripts/system-token.sh"
. "$REPO/scripts/local-server.sh"
TMP="$(mktemp -d -t kiln-audit-cost.XXXXXX)"
SERVER=""
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The rows the log holds and the rows the copy has reached: "logged copied".
lag() {
    python3 - "$1" <<'PY'
import sqlite3, sys
d = sys.argv[1]
logged = sqlite3.connect(f"file:{d}/kiln.audit.db?mode=ro", uri=True).execute("SELECT COALESCE(MAX(seq), 0) FROM audit_log").fetchone()[0]
copied = sqlite3.connect(f"file:{d}/kiln.db?mode=ro", uri=True).execute("SELECT COALESCE(MAX(seq), 0) FROM audit_indexed").fetchone()[0]
print(logged, copied)
PY
}

echo "audit cost: $ROUNDS rounds of $SECS s, read scenario, concurrency $CONCURRENCY, $PATIENTS patients, SQLite," \
    "$(nproc) cores; load:$(uptime | sed 's/.*load average://')"
printf '%-6s %-4s %10s %8s %8s %12s\n' round mode req/s "CPU µs" "p99 ms" "rows behind"
results="$TMP/results"
for round in $(seq "$ROUNDS"); do
    for mode in off on; do
        dir="$TMP/$round-$mode"
        mkdir -p "$dir"
        port=$(free_port)
        audit=$([ "$mode" = on ] && echo true || echo false)
        KILN_DATABASE_URL="sqlite://$dir/kiln.db" KILN_LISTEN="127.0.0.1:$port" KILN_CLIENT_CREDENTIALS_WITH_SECRET=true \
            KILN_AUDIT=$audit KILN_RATE_LIMIT_IP_PER_SEC=0 KILN_RATE_LIMIT_CLIENT_PER_SEC=0 KILN_RATE_LIMIT_USER_PER_SEC=0 \
            KILN_LOG=warn "$KILN" serve >"$dir/kiln.log" 2>&1 &
        SERVER=$!
        wait_healthy "$port" "$SERVER" 60
        root="http://127.0.0.1:$port"
        token="$(system_token "$KILN" "sqlite://$dir/kiln.db" "$root")"
        KILN_TOKEN="$token" "$DRIVER" seed --base "$root/fhir" --patients "$PATIENTS" --concurrency 8 \
            --targets-out "$dir/targets.json" >/dev/null 2>&1
        # The table row: scenario requests errors rate unit p50 p95 p99 max limit ratio rss cpu.
        row=$(KILN_TOKEN="$token" "$DRIVER" run --base "$root/fhir" --targets "$dir/targets.json" --scenario read \
            --concurrency "$CONCURRENCY" --duration "$SECS" --warmup 1 --kiln-pid "$SERVER" 2>&1 | grep -E '^read +[0-9]')
        behind="-"
        if [ "$mode" = on ]; then
            read -r logged copied < <(lag "$dir")
            behind=$((logged - copied))
        fi
        kill "$SERVER" && wait "$SERVER" 2>/dev/null || true
        SERVER=""
        set -- $row
        printf '%-6s %-4s %10s %8s %8s %12s\n' "$round" "$mode" "$4" "${13}" "$8" "$behind"
        echo "$mode $4" >>"$results"
    done
done
python3 - "$results" <<'PY'
import statistics, sys
rates = {"on": [], "off": []}
for line in open(sys.argv[1]):
    mode, rate = line.split()
    rates[mode].append(float(rate))
on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
print(f"median req/s: audit on {on:,.0f}, audit off {off:,.0f}; ratio on/off {on / off:.2f}")
PY
