#!/usr/bin/env bash
# The standard Kiln benchmark suite, one command: for each backend (SQLite, then a throw-away
# PostgreSQL), start a release `kiln serve` on a free port, seed it, measure the ingest baseline
# (bulk-insert), start the baseline server, run the standard scenarios with kiln-bench, write
# bench/results/<timestamp>-<backend>.json and print one combined table.
#
# usage: bench/run.sh [path/to/kiln-bench]        (default: $REPO/target/release/kiln-bench)
# build: cargo build --release --bins             (kiln and kiln-bench)
# env:   BENCH_SECONDS=10 BENCH_CONCURRENCY=16 BENCH_PATIENTS=1000 BENCH_WARMUP=1
#        BENCH_BASELINE_SECONDS=5 BENCH_BULK_PATIENTS=10000 BENCH_BACKENDS="sqlite postgres"
#        BENCH_SCENARIOS=read,vread,history,type-history,search,everything,create,ingest,mixed
#        BENCH_RESULTS=$REPO/bench/results  REPO (the Kiln checkout)  KILN_BIN=$REPO/target/release/kiln
#        BENCH_AUTH=on (default: every request carries a system/ access token the server verifies, as
#        in a deployment) or off (no token; the server runs with open_access_for_development)
#        BENCH_AUDIT=on (default: every request is written to the audit trail before it is answered,
#        as in a deployment) or off (the server runs with audit = false, to measure what it costs)
# needs: curl, python3 (free ports); PostgreSQL binaries for the postgres backend (else it is skipped).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
if [ -z "${REPO:-}" ]; then
    REPO="$(cd "$HERE/.." && pwd)"
fi
DRIVER="${1:-$REPO/target/release/kiln-bench}"
KILN="${KILN_BIN:-$REPO/target/release/kiln}"
SECS="${BENCH_SECONDS:-10}"
CONCURRENCY="${BENCH_CONCURRENCY:-16}"
PATIENTS="${BENCH_PATIENTS:-1000}"
WARMUP="${BENCH_WARMUP:-1}"
BASELINE_SECS="${BENCH_BASELINE_SECONDS:-5}"
BULK_PATIENTS="${BENCH_BULK_PATIENTS:-10000}"
BACKENDS="${BENCH_BACKENDS:-sqlite postgres}"
SCENARIOS="${BENCH_SCENARIOS:-read,vread,history,type-history,search,everything,create,ingest,mixed}"
RESULTS="${BENCH_RESULTS:-$REPO/bench/results}"
AUTH="${BENCH_AUTH:-on}"
case "$AUTH" in on) OPEN=false ;; off) OPEN=true ;; *) echo "run.sh: BENCH_AUTH is on or off" >&2; exit 2 ;; esac
case "${BENCH_AUDIT:-on}" in on) AUDIT=true ;; off) AUDIT=false ;; *) echo "run.sh: BENCH_AUDIT is on or off" >&2; exit 2 ;; esac

for bin in "$DRIVER" "$KILN"; do
    [ -x "$bin" ] || { echo "run.sh: $bin is missing: cargo build --release --bins" >&2; exit 2; }
done
command -v curl >/dev/null || { echo "run.sh: curl is missing" >&2; exit 2; }
command -v python3 >/dev/null || { echo "run.sh: python3 is missing" >&2; exit 2; }

. "$REPO/scripts/throwaway-postgres.sh"
. "$REPO/scripts/system-token.sh"
. "$REPO/scripts/local-server.sh"
TMP="$(mktemp -d -t kiln-bench.XXXXXX)"
SERVER="" BASELINE=""
stop() { # pid: SIGTERM, then wait for it
    [ -n "$1" ] && kill "$1" 2>/dev/null && wait "$1" 2>/dev/null
    return 0
}
cleanup() {
    stop "$BASELINE"; BASELINE=""
    stop "$SERVER"; SERVER=""
    throwaway_pg_stop
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$RESULTS"
STARTED=$SECONDS
echo "kiln-bench suite $STAMP: $(nproc) cores, $SECS s (+$WARMUP s warmup) per scenario, concurrency $CONCURRENCY," \
    "$PATIENTS patients; load:$(uptime | sed 's/.*load average://')" >&2
"$DRIVER" generate --patients "$BULK_PATIENTS" --out "$TMP/bulk.ndjson"

files=()
for backend in $BACKENDS; do
    dir="$TMP/$backend"
    mkdir -p "$dir"
    case "$backend" in
        sqlite)
            DATABASE_URL="sqlite://$dir/kiln.db"
            BULK_URL="sqlite://$dir/bulk.db"
            ;;
        postgres)
            if [ -z "${KILN_PG_BIN:-}" ] && ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
                echo "run.sh: skipping postgres: no PostgreSQL binaries (apt-get install postgresql, or set KILN_PG_BIN)" >&2
                continue
            fi
            throwaway_pg_start "$TMP/pg" # directly under $TMP: the script opens its parent to the postgres user
            DATABASE_URL="$THROWAWAY_PG_URL"
            BULK_URL="$THROWAWAY_PG_URL"
            ;;
        *) echo "run.sh: unknown backend $backend (sqlite or postgres)" >&2; exit 2 ;;
    esac
    echo "== $backend" >&2

    PORT="$(free_port)"
    BASE="http://127.0.0.1:$PORT/fhir"
    KILN_DATABASE_URL="$DATABASE_URL" KILN_LISTEN="127.0.0.1:$PORT" KILN_CLIENT_CREDENTIALS_WITH_SECRET=true KILN_OPEN_ACCESS_FOR_DEVELOPMENT=$OPEN KILN_AUDIT=$AUDIT KILN_RATE_LIMIT_IP_PER_SEC=0 KILN_RATE_LIMIT_CLIENT_PER_SEC=0 KILN_RATE_LIMIT_USER_PER_SEC=0 KILN_LOG="${BENCH_KILN_LOG:-warn}" "$KILN" serve >"$dir/kiln.log" 2>&1 &
    SERVER=$!
    wait_healthy "$PORT" "$SERVER" 30 || { echo "run.sh: kiln did not start:" >&2; cat "$dir/kiln.log" >&2; exit 1; }
    # kiln-bench sends KILN_TOKEN with every request (to the baseline server too, which ignores it).
    KILN_TOKEN=""
    if [ "$AUTH" = on ]; then
        KILN_TOKEN="$(system_token "$KILN" "$DATABASE_URL" "http://127.0.0.1:$PORT")"
    fi
    export KILN_TOKEN

    "$DRIVER" seed --base "$BASE" --patients "$PATIENTS" --concurrency "$CONCURRENCY" --targets-out "$dir/targets.txt"
    "$DRIVER" bulk-insert --database-url "$BULK_URL" --ndjson "$TMP/bulk.ndjson" --out "$dir/bulk.json" >&2

    "$DRIVER" baseline-server --from "$BASE" --targets "$dir/targets.txt" --listen 127.0.0.1:0 \
        >"$dir/baseline.out" 2>"$dir/baseline.log" &
    BASELINE=$!
    for _ in $(seq 1 1200); do
        grep -q '^listening on ' "$dir/baseline.out" && break
        kill -0 "$BASELINE" 2>/dev/null || { echo "run.sh: baseline server exited:" >&2; cat "$dir/baseline.log" >&2; exit 1; }
        sleep 0.1
    done
    ADDR="$(sed -n 's/^listening on //p' "$dir/baseline.out")"
    [ -n "$ADDR" ] || { echo "run.sh: baseline server did not start" >&2; cat "$dir/baseline.log" >&2; exit 1; }
    cat "$dir/baseline.log" >&2

    out="$RESULTS/$STAMP-$backend.json"
    "$DRIVER" run --base "$BASE" --targets "$dir/targets.txt" --scenario "$SCENARIOS" \
        --concurrency "$CONCURRENCY" --duration "$SECS" --warmup "$WARMUP" \
        --baseline "http://$ADDR/fhir" --baseline-duration "$BASELINE_SECS" \
        --ingest-baseline "$dir/bulk.json" --kiln-pid "$SERVER" --label "$backend$( [ "$AUTH" = off ] && echo ' (no auth)')$( [ "$AUDIT" = false ] && echo ' (no audit)')" --out "$out" >"$dir/table.txt"
    files+=("$out")

    stop "$BASELINE"; BASELINE=""
    stop "$SERVER"; SERVER=""
    throwaway_pg_stop
done

[ "${#files[@]}" -gt 0 ] || { echo "run.sh: no backend ran" >&2; exit 1; }
echo
"$DRIVER" report "${files[@]}"
echo
echo "suite took $((SECONDS - STARTED)) s; load now:$(uptime | sed 's/.*load average://'); results: ${files[*]}"
