#!/usr/bin/env bash
# Ingest of realistic patient records, the way an EHR migration runs it: `kiln demo-data --out`
# writes one transaction Bundle per patient (~108 resources: Patient, Encounters, vital-sign and
# laboratory Observations, Conditions, MedicationRequests, AllergyIntolerances, Appointments…)
# and NDJSON per type; then, on a fresh database each time, for each backend:
#   transactions  POST /fhir of every patient Bundle from 2 concurrent clients (curl)
#   import-bundles  kiln import DIR/bundles
#   import-ndjson   kiln import DIR/ndjson
# with validation, rules, indexing and reference checks on, as configured by default. Prints
# resources/s for each (medians of BENCH_RUNS runs) and the run-to-run spread.
#
# usage: bench/ingest.sh            build first: cargo build --release --bins
# env:   INGEST_PATIENTS=300 BENCH_RUNS=3 BENCH_BACKENDS="sqlite postgres" KILN_BIN=target/release/kiln
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
KILN="${KILN_BIN:-$REPO/target/release/kiln}"
PATIENTS="${INGEST_PATIENTS:-300}"
RUNS="${BENCH_RUNS:-3}"
BACKENDS="${BENCH_BACKENDS:-sqlite postgres}"
[ -x "$KILN" ] || { echo "ingest.sh: $KILN is missing: cargo build --release --bins" >&2; exit 2; }

. "$REPO/scripts/throwaway-postgres.sh"
. "$REPO/scripts/system-token.sh"
TMP="$(mktemp -d -t kiln-ingest.XXXXXX)"
chmod 755 "$TMP"
SERVER=""
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    throwaway_pg_stop
    rm -rf "$TMP"
}
trap cleanup EXIT

"$KILN" demo-data --patients "$PATIENTS" --seed 1 --out "$TMP/demo" >/dev/null
RESOURCES="$(cat "$TMP"/demo/ndjson/*.ndjson | wc -l)"
echo "ingest.sh: $PATIENTS patients, $RESOURCES resources; $RUNS runs per measurement"

# shellcheck source=../scripts/local-server.sh
. "$REPO/scripts/local-server.sh"

# A fresh, empty database URL for the backend (called in a subshell: the name must not
# depend on a counter).
fresh_database() {
    local N
    N="$(date +%s%N)"
    case "$1" in
        sqlite) echo "sqlite://$TMP/db-$N/kiln.db" ;;
        postgres)
            local port="${THROWAWAY_PG_URL##*:}"
            port="${port%%/*}"
            "$(dirname "$_throwaway_pg_ctl")/createdb" -h 127.0.0.1 -p "$port" -U kiln "run$N"
            echo "postgres://kiln@127.0.0.1:$port/run$N"
            ;;
    esac
}

seconds_of() { # command...: wall-clock seconds
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null
    end=$(date +%s.%N)
    python3 -c "print($end - $start)"
}

post_bundles() { # base url, access token
    ls "$TMP"/demo/bundles/*.json | head -n 1 | xargs -I{} curl -sf -o /dev/null -X POST \
        -H "authorization: Bearer $2" -H 'content-type: application/fhir+json' --data-binary @{} "$1"
    ls "$TMP"/demo/bundles/*.json | tail -n +2 | xargs -P 2 -I{} curl -sf -o /dev/null -X POST \
        -H "authorization: Bearer $2" -H 'content-type: application/fhir+json' --data-binary @{} "$1"
}

transactions() { # database url → seconds
    local port url token
    port="$(free_port)"
    KILN_DATABASE_URL="$1" KILN_LISTEN="127.0.0.1:$port" KILN_LOG=warn "$KILN" serve >"$TMP/serve.log" 2>&1 &
    SERVER=$!
    wait_healthy "$port" "$SERVER" || exit 1
    url="http://127.0.0.1:$port/fhir"
    token="$(system_token "$KILN" "$1" "http://127.0.0.1:$port")"
    seconds_of post_bundles "$url" "$token"
    kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""
}

import() { # database url, directory → seconds
    rm -f "$TMP/journal"
    (export KILN_DATABASE_URL="$1" KILN_LOG=warn; seconds_of "$KILN" import --quiet --journal "$TMP/journal" "$2")
}

median_rate() { # seconds...
    python3 - "$RESOURCES" "$@" <<'EOF'
import statistics, sys
n = int(sys.argv[1]); rates = sorted(n / float(s) for s in sys.argv[2:])
print(f"{statistics.median(rates):8.0f} resources/s  (runs: {', '.join(f'{r:.0f}' for r in rates)})")
EOF
}

for backend in $BACKENDS; do
    if [ "$backend" = postgres ]; then
        throwaway_pg_start "$TMP/pg" || { echo "ingest.sh: no PostgreSQL, skipped" >&2; continue; }
    fi
    for measurement in transactions import-bundles import-ndjson; do
        times=()
        for _ in $(seq "$RUNS"); do
            db="$(fresh_database "$backend")"
            case "$measurement" in
                transactions) times+=("$(transactions "$db")") ;;
                import-bundles) times+=("$(import "$db" "$TMP/demo/bundles")") ;;
                import-ndjson) times+=("$(import "$db" "$TMP/demo/ndjson")") ;;
            esac
        done
        printf '%-9s %-15s %s\n' "$backend" "$measurement" "$(median_rate "${times[@]}")"
    done
done
