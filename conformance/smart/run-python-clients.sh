#!/usr/bin/env bash
# Kiln's SMART flows driven by third-party Python clients (fhirclient, requests-oauthlib, PyJWT):
# creates a venv with conformance/smart/python/requirements.txt, starts a fresh `kiln serve` on a
# free port, loads two Patients with an Observation each, creates a patient user for the first,
# registers a public app and two backend services (RS384, ES384), runs
# conformance/smart/python/smart_clients.py against it, stops the server, and exits with the
# program's status. Builds nothing itself. A pip failure is a failure, never a skip.
#
# usage: conformance/smart/run-python-clients.sh [KILN_BINARY] [sqlite|postgres]
#   KILN_BINARY  path to a built kiln (default: target/debug/kiln)
#   DATABASE     "sqlite" (default): a new SQLite file in a temp dir
#                "postgres": a throw-away PostgreSQL cluster (scripts/throwaway-postgres.sh)
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PY_DIR="$HERE/python"

KILN_BIN="${1:-target/debug/kiln}"
DATABASE="${2:-sqlite}"
case "$KILN_BIN" in /*) ;; *) KILN_BIN="$PWD/$KILN_BIN" ;; esac
if [ ! -x "$KILN_BIN" ]; then
    echo "run-python-clients: no kiln binary at $KILN_BIN (build it first: cargo build)" >&2
    exit 2
fi

say() { echo "run-python-clients: $*"; }
die() { echo "FAIL run-python-clients: $*" >&2; exit 2; }


TMP="$(mktemp -d -t kiln-smart-python.XXXXXX)"
SERVER_PID=""
# shellcheck source=../../scripts/throwaway-postgres.sh
. "$REPO/scripts/throwaway-postgres.sh"
# shellcheck source=../../scripts/local-server.sh
. "$REPO/scripts/local-server.sh"

cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null
        for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    throwaway_pg_stop
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the clients, from PyPI -------------------------------------------------------------------
say "creating a venv and installing $PY_DIR/requirements.txt"
python3 -m venv "$TMP/venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
PY="$TMP/venv/bin/python"
if ! "$PY" -m pip install --quiet --disable-pip-version-check -r "$PY_DIR/requirements.txt" >"$TMP/pip.log" 2>&1; then
    cat "$TMP/pip.log" >&2
    die "pip could not install $PY_DIR/requirements.txt"
fi
say "$("$PY" -m pip freeze 2>/dev/null | grep -i -E '^(fhirclient|requests-oauthlib|oauthlib|requests|pyjwt|cryptography)==' | tr '\n' ' ')"

# --- a fresh server -----------------------------------------------------------------------------
case "$DATABASE" in
    sqlite) DATABASE_URL="sqlite://$TMP/kiln.db" ;;
    postgres|postgresql)
        THROWAWAY_PG_OPTIONS="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        throwaway_pg_start "$TMP/pg" || exit 2
        DATABASE_URL="$THROWAWAY_PG_URL" ;;
    *) die "unknown database '$DATABASE' (sqlite or postgres)" ;;
esac

PORT="$(free_port)"
export KILN_DATABASE_URL="$DATABASE_URL"
export KILN_LISTEN="127.0.0.1:$PORT"
# The data is seeded by a script with a client secret, which client_credentials takes only when
# configured to (backend services otherwise sign an assertion; docs/smart.md).
export KILN_CLIENT_CREDENTIALS_WITH_SECRET=true
export KILN_BASE_URL="http://127.0.0.1:$PORT/fhir"
LOG="$TMP/kiln.log"

say "$KILN_BIN serve on $KILN_LISTEN, database ${KILN_DATABASE_URL%%://*}"
"$KILN_BIN" serve >"$LOG" 2>&1 </dev/null &
SERVER_PID=$!

server_log_tail() {
    echo "----- last lines of the kiln log -----" >&2
    tail -n 40 "$LOG" >&2
    echo "--------------------------------------" >&2
}

if ! wait_healthy "$PORT" "$SERVER_PID" 60
then
    server_log_tail
    exit 2
fi

# The CLI's own log lines (e.g. PostgreSQL notices) go to a file, shown when setup fails.
CLI_LOG="$TMP/cli.log"
fail_setup() {
    echo "FAIL run-python-clients: $*" >&2
    echo "----- kiln CLI output -----" >&2; cat "$CLI_LOG" >&2 2>/dev/null
    server_log_tail
    exit 2
}

# --- data: two Patients with an Observation each, written with a system/ token -----------------
# `kiln client register --shell` prints KILN_CLIENT_ID=… (and KILN_CLIENT_SECRET=…).
register() {
    local out
    unset KILN_CLIENT_ID KILN_CLIENT_SECRET
    out="$("$KILN_BIN" client register "$@" --shell 2>>"$CLI_LOG")" || return 1
    eval "$out"
    [ -n "${KILN_CLIENT_ID:-}" ]
}

register --name "python clients: data loader" --kind confidential-symmetric --scope "system/*.cruds" \
    || fail_setup "could not register the data loader"
LOADER_ID="$KILN_CLIENT_ID"; LOADER_SECRET="$KILN_CLIENT_SECRET"
unset KILN_CLIENT_ID KILN_CLIENT_SECRET
DATA="$("$PY" - "$PORT" "$LOADER_ID" "$LOADER_SECRET" <<'EOF'
import sys, requests
port, client_id, secret = sys.argv[1:4]
base = f"http://127.0.0.1:{port}/fhir"
r = requests.post(f"http://127.0.0.1:{port}/auth/token", auth=(client_id, secret), timeout=15,
                  data={"grant_type": "client_credentials", "scope": "system/*.cruds"})
r.raise_for_status()
headers = {"Authorization": "Bearer " + r.json()["access_token"], "Content-Type": "application/fhir+json",
           "Accept": "application/fhir+json"}
def create(resource):
    r = requests.post(f"{base}/{resource['resourceType']}", json=resource, headers=headers, timeout=15)
    if r.status_code != 201:
        sys.exit(f"POST {resource['resourceType']} answered {r.status_code}: {r.text[:300]}")
    return r.json()["id"]
ids = []
for family, given, birth, value in (("Rivera", "Ana", "1980-04-02", 71.5), ("Okafor", "Ben", "1975-11-30", 88.0)):
    pid = create({"resourceType": "Patient", "name": [{"family": family, "given": [given]}],
                  "gender": "female" if given == "Ana" else "male", "birthDate": birth})
    create({"resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}]},
            "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": "2024-05-01T09:30:00Z",
            "valueQuantity": {"value": value, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}})
    ids.append(pid)
print(f"PATIENT_ID={ids[0]} OTHER_PATIENT_ID={ids[1]}")
EOF
)" || fail_setup "could not load the test data"
eval "$DATA"
say "Patient/$PATIENT_ID (the patient user's), Patient/$OTHER_PATIENT_ID (another patient)"

# --- a patient user, the public app and two backend services ---------------------------------
PATIENT_USERNAME="ana.rivera"
PATIENT_PASSWORD="python-clients-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
KILN_NEW_PASSWORD="$PATIENT_PASSWORD" "$KILN_BIN" user create --username "$PATIENT_USERNAME" --role patient \
    --fhir-user "Patient/$PATIENT_ID" --display-name "Ana Rivera" >>"$CLI_LOG" 2>&1 || fail_setup "kiln user create failed"

REDIRECT_URI="http://127.0.0.1:9/callback"
register --name "python clients: standalone app" --kind public --redirect-uri "$REDIRECT_URI" \
    --scope "launch/patient openid fhirUser offline_access patient/*.rs" || fail_setup "could not register the public app"
PUBLIC_ID="$KILN_CLIENT_ID"
unset KILN_CLIENT_ID

BACKENDS=()
for alg in RS384 ES384; do
    "$PY" "$PY_DIR/smart_clients.py" --keygen "$alg" --key-out "$TMP/$alg.pem" --jwks-out "$TMP/$alg-jwks.json" \
        >>"$CLI_LOG" 2>&1 || fail_setup "could not make the $alg key"
    register --name "python clients: backend $alg" --kind confidential-asymmetric \
        --jwks-file "$TMP/$alg-jwks.json" --scope "system/*.rs" || fail_setup "could not register the $alg backend service"
    BACKENDS+=(--backend "$KILN_CLIENT_ID:$TMP/$alg.pem")
    unset KILN_CLIENT_ID
done

# --- the clients --------------------------------------------------------------------------------
KILN_PATIENT_PASSWORD="$PATIENT_PASSWORD" "$PY" "$PY_DIR/smart_clients.py" --base "$KILN_BASE_URL" \
    --public-client-id "$PUBLIC_ID" --redirect-uri "$REDIRECT_URI" --username "$PATIENT_USERNAME" \
    --patient-id "$PATIENT_ID" --other-patient-id "$OTHER_PATIENT_ID" "${BACKENDS[@]}"
STATUS=$?
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "run-python-clients: kiln is no longer running (crashed?)" >&2
    server_log_tail
    [ "$STATUS" = 0 ] && STATUS=1
elif [ "$STATUS" != 0 ]; then
    server_log_tail
fi
exit "$STATUS"
