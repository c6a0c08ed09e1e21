#!/usr/bin/env bash
# The time to pull a patient record of PULL_RESOURCES resources (default 500: the Patient, an
# Encounter and vital-sign Observations) from one Kiln process into another, as `$ehr-pull`
# does it (issue: EHR linking): the remote is a `kiln serve` on its own SQLite database with a
# backend client registered; for each run a fresh local `kiln serve` registers the remote
# (`kiln ehr add`), links a matching patient (`$ehr-link`), then pulls the record twice: the
# first pull writes everything, the second finds it all unchanged. Prints each run and the
# medians.
#
# usage: bench/ehr-pull.sh          build first: cargo build --release --bins
# env:   PULL_RESOURCES=500 BENCH_RUNS=3 KILN_BIN=target/release/kiln
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
KILN="${KILN_BIN:-$REPO/target/release/kiln}"
RESOURCES="${PULL_RESOURCES:-500}"
RUNS="${BENCH_RUNS:-3}"
[ -x "$KILN" ] || { echo "ehr-pull.sh: $KILN is missing: cargo build --release --bins" >&2; exit 2; }
TMP="$(mktemp -d -t kiln-ehr-pull.XXXXXX)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

# shellcheck source=../scripts/local-server.sh
. "$REPO/scripts/local-server.sh"

# The remote, with the record.
REMOTE_PORT="$(free_port)"
REMOTE_DB="sqlite://$TMP/remote.db"
KILN_DATABASE_URL="$REMOTE_DB" KILN_LISTEN="127.0.0.1:$REMOTE_PORT" KILN_LOG=warn KILN_CLIENT_CREDENTIALS_WITH_SECRET=true \
    KILN_RATE_LIMIT_IP_PER_SEC=0 KILN_RATE_LIMIT_USER_PER_SEC=0 "$KILN" serve >"$TMP/remote.log" 2>&1 &
PIDS+=($!)
wait_healthy "$REMOTE_PORT" "${PIDS[-1]}" || exit 1
python3 - "$RESOURCES" >"$TMP/record.json" <<'PY'
import json, sys
count = int(sys.argv[1])
entries = [
    {"resourceType": "Patient", "id": "rp1", "name": [{"family": "Pulled", "given": ["Pat"]}], "birthDate": "1970-05-05"},
    {"resourceType": "Encounter", "id": "re1", "status": "finished",
     "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
     "subject": {"reference": "Patient/rp1"}},
]
for i in range(count - 2):
    entries.append({"resourceType": "Observation", "id": f"ro{i}", "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
        "subject": {"reference": "Patient/rp1"}, "encounter": {"reference": "Encounter/re1"},
        "effectiveDateTime": f"2025-01-01T{(i // 60) % 24:02d}:{i % 60:02d}:00Z",
        "valueQuantity": {"value": 60 + i % 40, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}})
bundle = {"resourceType": "Bundle", "type": "transaction",
          "entry": [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in entries]}
print(json.dumps(bundle))
PY
KILN_DATABASE_URL="$REMOTE_DB" KILN_LOG=warn "$KILN" import --quiet --journal "$TMP/journal" "$TMP/record.json" >/dev/null
eval "$(KILN_DATABASE_URL="$REMOTE_DB" KILN_LOG=warn "$KILN" client register --name "bench local clinic" \
    --kind confidential-symmetric --scope "system/*.rs" --shell)"
echo "ehr-pull.sh: the remote holds a record of $RESOURCES resources; $RUNS runs"

for run in $(seq 1 "$RUNS"); do
    LOCAL_PORT="$(free_port)"
    LOCAL_DB="sqlite://$TMP/local-$run.db"
    KILN_DATABASE_URL="$LOCAL_DB" KILN_LISTEN="127.0.0.1:$LOCAL_PORT" KILN_LOG=warn \
        KILN_OPEN_ACCESS_FOR_DEVELOPMENT=true KILN_RATE_LIMIT_IP_PER_SEC=0 KILN_RATE_LIMIT_USER_PER_SEC=0 \
        "$KILN" serve >"$TMP/local-$run.log" 2>&1 &
    LOCAL_PID=$!
    PIDS+=("$LOCAL_PID")
    wait_healthy "$LOCAL_PORT" "${PIDS[-1]}" || exit 1
    ENDPOINT="$(KILN_DATABASE_URL="$LOCAL_DB" KILN_LOG=warn REMOTE_SECRET="$KILN_CLIENT_SECRET" "$KILN" ehr add \
        --name Remote --address "http://127.0.0.1:$REMOTE_PORT/fhir" --auth client-secret \
        --client-id "$KILN_CLIENT_ID" --client-secret-env REMOTE_SECRET --scope "system/*.rs")"
    python3 - "$LOCAL_PORT" "$ENDPOINT" "$run" <<'PY'
import json, sys, time, urllib.request
port, endpoint, run = sys.argv[1], sys.argv[2], sys.argv[3]
base = f"http://127.0.0.1:{port}/fhir"
def call(method, path, body):
    request = urllib.request.Request(f"{base}/{path}", data=json.dumps(body).encode(), method=method,
                                     headers={"Content-Type": "application/fhir+json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.load(response)
patient = call("POST", "Patient", {"resourceType": "Patient", "name": [{"family": "Pulled", "given": ["Pat"]}], "birthDate": "1970-05-05"})
parameters = {"resourceType": "Parameters", "parameter": [{"name": "endpoint", "valueReference": {"reference": f"Endpoint/{endpoint}"}}]}
linked = call("POST", f"Patient/{patient['id']}/$ehr-link", parameters)
assert linked["parameter"][0]["valueCode"] == "linked", linked
times, summaries = [], []
for _ in range(2):
    start = time.perf_counter()
    outcome = call("POST", f"Patient/{patient['id']}/$ehr-pull", parameters)
    times.append(time.perf_counter() - start)
    summaries.append(outcome["issue"][0]["diagnostics"].split(": ", 1)[1])
print(f"run {run}: first pull {times[0]*1000:.0f} ms [{summaries[0]}], second (unchanged) {times[1]*1000:.0f} ms [{summaries[1]}]")
PY
    kill "$LOCAL_PID"; wait "$LOCAL_PID" 2>/dev/null || true
done | tee "$TMP/runs.txt"
python3 - "$TMP/runs.txt" <<'PY'
import re, statistics, sys
runs = open(sys.argv[1]).read().splitlines()
first = [int(re.search(r"first pull (\d+) ms", r).group(1)) for r in runs]
second = [int(re.search(r"second \(unchanged\) (\d+) ms", r).group(1)) for r in runs]
print(f"median: first pull {statistics.median(first)} ms, unchanged re-pull {statistics.median(second)} ms")
PY
