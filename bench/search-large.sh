#!/usr/bin/env bash
# The searches of the search issue on a large, realistic data set: `kiln demo-data` writes
# SEARCH_PATIENTS patients (~104 resources each: 10,000 patients is about a million resources),
# `kiln import` loads them into a fresh database per backend (validation, rules and indexing on),
# a release `kiln serve` answers with auth and auditing on, and `kiln-bench queries` runs each
# search on its own from SEARCH_CONCURRENCY clients for SEARCH_SECONDS: median, 95th and 99th
# percentile latency and throughput per search. On PostgreSQL each search is then run once more
# with auto_explain on, and its plans (the statements that read the search tables) are written to
# RESULTS/plans-postgres/<search>.txt, with a line per search saying whether any of them scans a
# table sequentially.
#
# usage: bench/search-large.sh      build first: cargo build --release --bins
# env:   SEARCH_PATIENTS=10000 SEARCH_SECONDS=10 SEARCH_CONCURRENCY=2 BENCH_BACKENDS="sqlite postgres"
#        SEARCH_DATA=DIR (keep the generated files there and reuse them on the next run)
#        SEARCH_KEEP=DIR (keep the loaded databases there: DIR/kiln.db and DIR/pg; a second run
#        with the same DIR measures without loading again)
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
KILN="${KILN_BIN:-$REPO/target/release/kiln}"
BENCH="${KILN_BENCH_BIN:-$REPO/target/release/kiln-bench}"
PATIENTS="${SEARCH_PATIENTS:-10000}"
SECONDS_EACH="${SEARCH_SECONDS:-10}"
CONCURRENCY="${SEARCH_CONCURRENCY:-2}"
BACKENDS="${BENCH_BACKENDS:-sqlite postgres}"
RESULTS="${BENCH_RESULTS:-$REPO/bench/results}"
for binary in "$KILN" "$BENCH"; do
    [ -x "$binary" ] || { echo "search-large.sh: $binary is missing: cargo build --release --bins" >&2; exit 2; }
done

. "$REPO/scripts/throwaway-postgres.sh"
. "$REPO/scripts/system-token.sh"
TMP="$(mktemp -d -t kiln-search.XXXXXX)"
chmod 755 "$TMP"
KEEP="${SEARCH_KEEP:-$TMP/keep}"
mkdir -p "$KEEP" "$RESULTS"
chmod 755 "$KEEP"
SERVER=""
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    throwaway_pg_stop
    rm -rf "$TMP"
}
trap cleanup EXIT

DATA="${SEARCH_DATA:-$TMP/data}"
if [ ! -f "$DATA/ndjson/Patient.ndjson" ]; then
    echo "search-large.sh: generating $PATIENTS patients into $DATA"
    "$KILN" demo-data --patients "$PATIENTS" --seed 7 --today 2026-11-30 --out "$DATA" >/dev/null
fi
RESOURCES="$(cat "$DATA"/ndjson/*.ndjson | wc -l)"
echo "search-large.sh: $PATIENTS patients, $RESOURCES resources"

# The searches, each with values drawn from the data (a fixed sample of 200 patients).
QUERIES="$TMP/queries.tsv"
python3 - "$DATA/ndjson" >"$QUERIES" <<'PY'
import json, random, sys, urllib.parse
from collections import defaultdict
folder = sys.argv[1]
def each(kind):
    with open(f"{folder}/{kind}.ndjson") as lines:
        for line in lines:
            yield json.loads(line)
q = lambda v: urllib.parse.quote(v, safe="")
rng = random.Random(7)
patients = list(each("Patient"))
sample = rng.sample(patients, min(200, len(patients)))
chosen = {p["id"] for p in sample}
encounters, active_orders = set(), set()
for e in each("Encounter"):
    if e["subject"]["reference"][8:] in chosen:
        encounters.add(e["subject"]["reference"][8:])
for m in each("MedicationRequest"):
    if m["status"] == "active" and m["subject"]["reference"][8:] in chosen:
        active_orders.add(m["subject"]["reference"][8:])
condition_codes = sorted({(c["code"]["coding"][0]["system"], c["code"]["coding"][0]["code"]) for c in each("Condition")})
out = []
for p in sample:
    name = p["name"][0]
    out.append(("Patient?family=&given=", f"Patient?family={q(name['family'])}&given={q(name['given'][0])}"))
    mrn = next(i for i in p["identifier"] if i["system"] == "urn:kiln:demo:mrn")
    out.append(("Patient?identifier=system|value", f"Patient?identifier={q(mrn['system'] + '|' + mrn['value'])}"))
    out.append(("Patient?birthdate=&gender=", f"Patient?birthdate={p['birthDate']}&gender={p['gender']}"))
    pid = p["id"]
    out.append(("Observation?patient=&category=vital-signs&_sort=-date&_count=50",
                f"Observation?patient={pid}&category=vital-signs&_sort=-date&_count=50"))
    out.append(("Observation?patient=&code=loinc|8867-4&date=ge2024-01-01",
                f"Observation?patient={pid}&code={q('http://loinc.org|8867-4')}&date=ge2024-01-01"))
    if pid in encounters:
        out.append(("Encounter?patient=&_revinclude=Observation:encounter",
                    f"Encounter?patient={pid}&_revinclude=Observation:encounter"))
    if pid in active_orders:
        out.append(("MedicationRequest?patient=&status=active&_include=MedicationRequest:requester",
                    f"MedicationRequest?patient={pid}&status=active&_include=MedicationRequest:requester"))
# Over all patients: vital signs above a threshold, and patients with a diagnosis.
for code, threshold in [("8867-4", 100), ("8480-6", 140), ("8462-4", 90), ("29463-7", 100), ("39156-5", 30)]:
    out.append(("Observation?code=&value-quantity=gt…", f"Observation?code={q('http://loinc.org|' + code)}&value-quantity=gt{threshold}"))
for system, code in condition_codes[:40]:
    out.append(("Patient?_has:Condition:patient:code=", f"Patient?_has:Condition:patient:code={q(system + '|' + code)}"))
order = ["Patient?family=&given=", "Patient?identifier=system|value", "Patient?birthdate=&gender=",
         "Observation?patient=&category=vital-signs&_sort=-date&_count=50",
         "Observation?patient=&code=loinc|8867-4&date=ge2024-01-01", "Observation?code=&value-quantity=gt…",
         "Encounter?patient=&_revinclude=Observation:encounter", "Patient?_has:Condition:patient:code=",
         "MedicationRequest?patient=&status=active&_include=MedicationRequest:requester"]
for name in order:
    for label, path in out:
        if label == name:
            print(f"{label}\t{path}")
PY

# shellcheck source=../scripts/local-server.sh
. "$REPO/scripts/local-server.sh"

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
for backend in $BACKENDS; do
    case "$backend" in
        sqlite)
            DATABASE_URL="sqlite://$KEEP/kiln.db"
            ;;
        postgres)
            if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 && [ -z "${KILN_PG_BIN:-}" ]; then
                echo "search-large.sh: PostgreSQL is not installed; skipping postgres" >&2
                continue
            fi
            # auto_explain is loaded into every session, silent (its default) until the plan pass
            # below turns it on with ALTER SYSTEM (a -c setting here would override that).
            THROWAWAY_PG_OPTIONS="-c session_preload_libraries=auto_explain -c shared_buffers=1GB" \
                throwaway_pg_start "$KEEP/pg"
            DATABASE_URL="$THROWAWAY_PG_URL"
            ;;
        *) echo "search-large.sh: unknown backend $backend" >&2; exit 2 ;;
    esac
    if [ ! -f "$KEEP/$backend.loaded" ]; then
        echo "search-large.sh: $backend: loading $RESOURCES resources with kiln import"
        started=$(date +%s)
        KILN_DATABASE_URL="$DATABASE_URL" KILN_LOG=warn "$KILN" import --quiet --journal "$KEEP/$backend.journal" \
            "$DATA/ndjson"
        echo "search-large.sh: $backend: loaded in $(( $(date +%s) - started )) s"
        touch "$KEEP/$backend.loaded"
    fi
    PORT="$(free_port)"
    KILN_DATABASE_URL="$DATABASE_URL" KILN_LISTEN="127.0.0.1:$PORT" KILN_CLIENT_CREDENTIALS_WITH_SECRET=true \
        KILN_RATE_LIMIT_IP_PER_SEC=0 KILN_RATE_LIMIT_CLIENT_PER_SEC=0 KILN_RATE_LIMIT_USER_PER_SEC=0 KILN_LOG=warn \
        "$KILN" serve >"$TMP/kiln-$backend.log" 2>&1 &
    SERVER=$!
    wait_healthy "$PORT" "$SERVER" 120
    KILN_TOKEN="$(system_token "$KILN" "$DATABASE_URL" "http://127.0.0.1:$PORT")"
    export KILN_TOKEN
    echo "search-large.sh: $backend: $CONCURRENCY clients, $SECONDS_EACH s per search"
    "$BENCH" queries --base "http://127.0.0.1:$PORT/fhir" --queries "$QUERIES" --concurrency "$CONCURRENCY" \
        --duration "$SECONDS_EACH" --out "$RESULTS/$STAMP-search-large-$backend.json" | tee "$RESULTS/$STAMP-search-large-$backend.md"
    if [ "$backend" = postgres ]; then
        PLANS="$RESULTS/$STAMP-plans-postgres"
        mkdir -p "$PLANS"
        PSQL="${KILN_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)}/psql"
        psql_run() { "$PSQL" "$DATABASE_URL" -qAtc "$1" >/dev/null; }
        psql_run "ALTER SYSTEM SET auto_explain.log_min_duration = 0"
        psql_run "ALTER SYSTEM SET auto_explain.log_analyze = on"
        psql_run "SELECT pg_reload_conf()"
        sleep 1
        LOG_FILE="$KEEP/pg/log"
        cut -f1 "$QUERIES" | uniq | while IFS= read -r name; do
            path="$(awk -F'\t' -v n="$name" '$1 == n { print $2; exit }' "$QUERIES")"
            before="$(wc -c <"$LOG_FILE")"
            curl -sf -H "Authorization: Bearer $KILN_TOKEN" "http://127.0.0.1:$PORT/fhir/$path" >/dev/null
            sleep 0.5
            file="$PLANS/$(echo "$name" | tr -c 'A-Za-z0-9=_-' '_').txt"
            tail -c +"$((before + 1))" "$LOG_FILE" | python3 -c '
import re, sys
text = sys.stdin.read()
entries = re.split(r"(?m)^.*LOG:  duration: ", text)[1:]
kept = [e for e in entries if "search_" in e.split("\n", 2)[1] or " FROM resources" in e]
print("\n".join("duration: " + e for e in kept))' >"$file"
            scans="$(grep -o 'Seq Scan on [a-z_]*' "$file" | sort | uniq -c | tr '\n' ';' || true)"
            printf '%s\t%s\n' "$name" "${scans:-no sequential scan}"
        done | tee "$PLANS/summary.tsv"
        psql_run "ALTER SYSTEM RESET ALL"
        psql_run "SELECT pg_reload_conf()"
    fi
    kill "$SERVER" && wait "$SERVER" 2>/dev/null || true
    SERVER=""
    [ "$backend" = postgres ] && throwaway_pg_stop
done
echo "search-large.sh: results in $RESULTS/$STAMP-*"
