#!/usr/bin/env bash
# A real SMART app in a real browser: start a fresh `kiln serve` (as conformance/run-against-fresh-server.sh does),
# load two patients with encounters and observations and a practitioner, create a clinician and a patient account,
# register the test app (conformance/smart/browser/app/, built on the fhirclient library) as a public client, serve
# it on its own port, and drive it in headless Chromium with playwright-core (browser/drive.mjs): an EHR launch from
# Kiln's app launcher, a standalone launch by the patient, and one by the clinician through the patient picker.
# Screenshots of the sign-in, consent, launcher and picker pages (390 px and 1280 px wide) go to SCREENSHOT_DIR.
# Builds nothing itself; exits with drive.mjs's status (non-zero on any failure).
#
# usage: conformance/smart/run-browser-app.sh [KILN_BINARY] [sqlite|postgres|DATABASE_URL] [SCREENSHOT_DIR]
#   KILN_BINARY     path to a built kiln (default: target/debug/kiln)
#   DATABASE        "sqlite" (default): a new SQLite file in a temp dir; "postgres": a throw-away PostgreSQL
#                   cluster (scripts/throwaway-postgres.sh); anything else: a database URL used as is
#   SCREENSHOT_DIR  where the PNGs go (default: a new temp dir, kept and printed)
# environment:
#   CHROMIUM=PATH                 the browser (default: `command -v chromium`; installed with apt-get if missing)
#   KILN_BROWSER_APP_ORIGIN=own   (default) the app has its own origin, as a real SMART app does: needs CORS on Kiln
#   KILN_BROWSER_APP_ORIGIN=shared  the app server also forwards /fhir and /auth to Kiln, so the app and Kiln share
#                                 one origin and CORS plays no part (to tell CORS trouble from everything else)
#   KILN_BROWSER_KNOWN_BUGS=id,…  report the checks that these known server bugs fail as KNOWN-BUG instead of FAIL
#                                 (id: refresh-needs-client-id; see browser/drive.mjs); default: none
#   KILN_BROWSER_NPM_CI=always    run `npm ci` even when node_modules matches package-lock.json
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
BROWSER_DIR="$HERE/browser"

KILN_BIN="${1:-target/debug/kiln}"
DATABASE="${2:-sqlite}"
SCREENSHOT_DIR="${3:-}"
APP_ORIGIN_MODE="${KILN_BROWSER_APP_ORIGIN:-own}"

say() { echo "run-browser-app: $*"; }
die() { echo "run-browser-app: FAIL $*" >&2; exit 1; }

case "$KILN_BIN" in /*) ;; *) KILN_BIN="$PWD/$KILN_BIN" ;; esac
[ -x "$KILN_BIN" ] || { echo "run-browser-app: no kiln binary at $KILN_BIN (build it first: cargo build)" >&2; exit 2; }
case "$APP_ORIGIN_MODE" in own|shared) ;; *) die "KILN_BROWSER_APP_ORIGIN must be own or shared, not $APP_ORIGIN_MODE" ;; esac

# --- Node packages (fhirclient, playwright-core), pinned by browser/package-lock.json -------------------------------
command -v node >/dev/null && command -v npm >/dev/null || die "node and npm are needed (Debian: apt-get install -y nodejs npm)"
LOCK_HASH="$(sha256sum "$BROWSER_DIR/package-lock.json" | cut -d' ' -f1)"
if [ "${KILN_BROWSER_NPM_CI:-}" = always ] || [ "$(cat "$BROWSER_DIR/node_modules/.kiln-lock-sha256" 2>/dev/null)" != "$LOCK_HASH" ]; then
    say "npm ci in $BROWSER_DIR"
    (cd "$BROWSER_DIR" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed"
    echo "$LOCK_HASH" >"$BROWSER_DIR/node_modules/.kiln-lock-sha256"
fi
[ -f "$BROWSER_DIR/node_modules/fhirclient/build/fhir-client.js" ] || die "fhirclient's browser bundle is missing after npm ci"

# --- Chromium: Debian's package; never skipped -------------------------------------------------------------------
CHROMIUM="${CHROMIUM:-$(command -v chromium || true)}"
if [ -z "$CHROMIUM" ] || [ ! -x "$CHROMIUM" ]; then
    say "chromium not found; trying apt-get install -y chromium"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >&2
    fi
    CHROMIUM="$(command -v chromium || true)"
    [ -n "$CHROMIUM" ] || die "Chromium is not installed and could not be installed (apt-get install -y chromium). \
This check needs a real browser and is never skipped."
fi
export CHROMIUM


TMP="$(mktemp -d -t kiln-browser-app.XXXXXX)"
if [ -z "$SCREENSHOT_DIR" ]; then SCREENSHOT_DIR="$(mktemp -d -t kiln-smart-screens.XXXXXX)"; fi
mkdir -p "$SCREENSHOT_DIR" || die "cannot create $SCREENSHOT_DIR"
SCREENSHOT_DIR="$(cd "$SCREENSHOT_DIR" && pwd)"
SERVER_PID=""
APP_PID=""
# shellcheck source=../../scripts/throwaway-postgres.sh
. "$REPO/scripts/throwaway-postgres.sh"
# shellcheck source=../../scripts/local-server.sh
. "$REPO/scripts/local-server.sh"

stop_pid() {
    local pid="$1"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
}
cleanup() {
    stop_pid "$APP_PID"
    stop_pid "$SERVER_PID"
    throwaway_pg_stop
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

case "$DATABASE" in
    ""|sqlite) DATABASE_URL="sqlite://$TMP/kiln.db" ;;
    postgres|postgresql)
        THROWAWAY_PG_OPTIONS="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        throwaway_pg_start "$TMP/pg" || exit 2
        DATABASE_URL="$THROWAWAY_PG_URL" ;;
    *) DATABASE_URL="$DATABASE" ;;
esac

KILN_PORT="$(free_port)"
APP_PORT="$(free_port)"
APP_URL="http://127.0.0.1:$APP_PORT/"
KILN_API="http://127.0.0.1:$KILN_PORT/fhir"     # how this script reaches the API
if [ "$APP_ORIGIN_MODE" = shared ]; then
    FHIR_BASE="http://127.0.0.1:$APP_PORT/fhir"   # the browser reaches Kiln through the app's server
else
    FHIR_BASE="$KILN_API"
fi
export KILN_DATABASE_URL="$DATABASE_URL"
export KILN_LISTEN="127.0.0.1:$KILN_PORT"
# The data is seeded by a script with a client secret, which client_credentials takes only when
# configured to (backend services otherwise sign an assertion; docs/smart.md).
export KILN_CLIENT_CREDENTIALS_WITH_SECRET=true
export KILN_BASE_URL="$FHIR_BASE"
LOG="$TMP/kiln.log"

server_log_tail() {
    echo "----- last lines of the kiln log -----" >&2
    tail -n 60 "$LOG" >&2
    echo "--------------------------------------" >&2
}

say "$KILN_BIN serve on $KILN_LISTEN, database ${KILN_DATABASE_URL%%://*}, FHIR base $FHIR_BASE, app $APP_URL ($APP_ORIGIN_MODE origin)"
"$KILN_BIN" serve >"$LOG" 2>&1 </dev/null &
SERVER_PID=$!

if ! wait_healthy "$KILN_PORT" "$SERVER_PID" 60
then
    server_log_tail
    exit 2
fi

# --- Data: a system token by client_credentials, then two patients, encounters, observations, a practitioner ------
eval "$("$KILN_BIN" client register --name "browser check loader" --kind confidential-symmetric \
    --scope "system/*.cruds" --shell)" || { server_log_tail; die "could not register the loader client"; }
DATA="$(python3 - "$KILN_PORT" "$KILN_API" "$KILN_CLIENT_ID" "$KILN_CLIENT_SECRET" <<'EOF'
import base64, json, sys, urllib.parse, urllib.request
port, api, client_id, secret = sys.argv[1:5]
body = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": "system/*.cruds"}).encode()
request = urllib.request.Request(f"http://127.0.0.1:{port}/auth/token", data=body, method="POST")
request.add_header("Content-Type", "application/x-www-form-urlencoded")
request.add_header("Authorization", "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode())
with urllib.request.urlopen(request, timeout=10) as response:
    token = json.load(response)["access_token"]

def create(resource):
    request = urllib.request.Request(f"{api}/{resource['resourceType']}", data=json.dumps(resource).encode(), method="POST")
    request.add_header("Content-Type", "application/fhir+json")
    request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        location = response.headers.get("Location", "")
        text = response.read()
    created = json.loads(text) if text else {}
    if created.get("id"):
        return created["id"]
    return location.split(f"/{resource['resourceType']}/", 1)[1].split("/", 1)[0]

def patient(given, family, birth, gender, mrn):
    return create({
        "resourceType": "Patient",
        "name": [{"family": family, "given": [given]}],
        "birthDate": birth, "gender": gender,
        "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
                        "system": "urn:kiln:test:mrn", "value": mrn}],
    })

def encounter(patient_id, start):
    return create({
        "resourceType": "Encounter", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "period": {"start": start, "end": start},
    })

def observation(patient_id, encounter_id, loinc, text, value, unit, when):
    return create({
        "resourceType": "Observation", "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}], "text": text},
        "subject": {"reference": f"Patient/{patient_id}"},
        "encounter": {"reference": f"Encounter/{encounter_id}"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
    })

practitioner = create({"resourceType": "Practitioner", "name": [{"family": "Who", "given": ["John"], "prefix": ["Dr"]}]})
a = patient("Amelia", "Harrow", "1984-02-29", "female", "MRN-1001")
b = patient("Bruno", "Castellan", "1951-07-14", "male", "MRN-1002")
enc_a = encounter(a, "2026-03-02T09:30:00Z")
enc_b = encounter(b, "2026-04-11T14:00:00Z")
for loinc, text, value, unit in [("8867-4", "Heart rate", 72, "/min"), ("8310-5", "Body temperature", 36.8, "Cel"),
                                 ("29463-7", "Body weight", 61.5, "kg")]:
    observation(a, enc_a, loinc, text, value, unit, "2026-03-02T09:40:00Z")
for loinc, text, value, unit in [("8867-4", "Heart rate", 64, "/min"), ("29463-7", "Body weight", 82.0, "kg")]:
    observation(b, enc_b, loinc, text, value, unit, "2026-04-11T14:10:00Z")
for name, value in [("PRACTITIONER_ID", practitioner), ("PATIENT_A_ID", a), ("ENCOUNTER_A_ID", enc_a),
                    ("PATIENT_A_OBSERVATIONS", 3), ("PATIENT_B_ID", b), ("PATIENT_B_OBSERVATIONS", 2)]:
    print(f"{name}={value}")
EOF
)" || { server_log_tail; die "could not load the test data"; }
eval "$DATA"
export PRACTITIONER_ID PATIENT_A_ID ENCOUNTER_A_ID PATIENT_A_OBSERVATIONS PATIENT_B_ID PATIENT_B_OBSERVATIONS
export PATIENT_A_NAME="Amelia Harrow" PATIENT_A_SEARCH="Harrow" PATIENT_B_NAME="Bruno Castellan" PATIENT_B_SEARCH="Castellan"
say "data: Practitioner/$PRACTITIONER_ID, Patient/$PATIENT_A_ID (Amelia Harrow, Encounter/$ENCOUNTER_A_ID), Patient/$PATIENT_B_ID (Bruno Castellan)"

# --- Accounts and the app ----------------------------------------------------------------------------------------
export CLINICIAN_USER=drwho CLINICIAN_PASSWORD="tardis blue box 1963" PATIENT_USER=bruno PATIENT_PASSWORD="castellan's own passphrase"
KILN_NEW_PASSWORD="$CLINICIAN_PASSWORD" "$KILN_BIN" user create --username "$CLINICIAN_USER" --role physician \
    --fhir-user "Practitioner/$PRACTITIONER_ID" --display-name "Dr Who" >/dev/null || die "could not create $CLINICIAN_USER"
KILN_NEW_PASSWORD="$PATIENT_PASSWORD" "$KILN_BIN" user create --username "$PATIENT_USER" --role patient \
    --fhir-user "Patient/$PATIENT_B_ID" --display-name "Bruno Castellan" >/dev/null || die "could not create $PATIENT_USER"
export APP_NAME="Test SMART app"
eval "$("$KILN_BIN" client register --name "$APP_NAME" --kind public \
    --redirect-uri "${APP_URL}index.html" --launch-url "${APP_URL}launch.html" \
    --scope "launch launch/patient openid fhirUser offline_access patient/*.rs" --shell)" || die "could not register the app"
say "app $APP_NAME registered as $KILN_CLIENT_ID"

# --- Serve the app -----------------------------------------------------------------------------------------------
SERVE_ARGS=(--port "$APP_PORT" --client-id "$KILN_CLIENT_ID")
[ "$APP_ORIGIN_MODE" = shared ] && SERVE_ARGS+=(--proxy "http://127.0.0.1:$KILN_PORT")
node "$BROWSER_DIR/serve.mjs" "${SERVE_ARGS[@]}" >"$TMP/app.log" 2>&1 </dev/null &
APP_PID=$!
for _ in $(seq 1 100); do
    python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "${APP_URL}launch.html" 2>/dev/null && break
    kill -0 "$APP_PID" 2>/dev/null || { cat "$TMP/app.log" >&2; die "the app server exited"; }
    sleep 0.1
done

# --- Drive it ----------------------------------------------------------------------------------------------------
export KILN_FHIR_BASE="$FHIR_BASE" APP_URL SCREENSHOT_DIR
node "$BROWSER_DIR/drive.mjs"
STATUS=$?
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "run-browser-app: kiln is no longer running (crashed?)" >&2
    server_log_tail
    [ "$STATUS" = 0 ] && STATUS=1
elif [ "$STATUS" != 0 ]; then
    server_log_tail
    echo "----- app server log -----" >&2; tail -n 20 "$TMP/app.log" >&2
fi
say "screenshots in $SCREENSHOT_DIR"
if [ "$STATUS" = 0 ]; then say "PASS"; else say "FAIL (status $STATUS)"; fi
exit "$STATUS"
