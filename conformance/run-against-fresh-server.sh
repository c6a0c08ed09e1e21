#!/usr/bin/env bash
# Start a fresh `kiln serve` on a free port with an empty database, run the
# black-box conformance checks (conformance/run.py) against it, stop it, and
# exit with run.py's status. Builds nothing itself.
#
# usage: conformance/run-against-fresh-server.sh [KILN_BINARY] [DATABASE] [-- run.py options...]
#   KILN_BINARY  path to a built kiln (default: target/debug/kiln)
#   DATABASE     empty / "sqlite": a new SQLite file in a temp dir (default)
#                "postgres": a throw-away PostgreSQL cluster (initdb + pg_ctl from
#                            /usr/lib/postgresql/*/bin or $KILN_PG_BIN) in a temp dir
#                any other value: a database URL to use as is (e.g. postgres://...)
#   anything after "--" is passed on to run.py (e.g. -- --quiet --types Patient)
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"

KILN_BIN="target/debug/kiln"
DATABASE=""
if [ $# -gt 0 ] && [ "$1" != "--" ]; then KILN_BIN="$1"; shift; fi
if [ $# -gt 0 ] && [ "$1" != "--" ]; then DATABASE="$1"; shift; fi
if [ $# -gt 0 ] && [ "$1" = "--" ]; then shift; fi
RUN_ARGS=("$@")

case "$KILN_BIN" in /*) ;; *) KILN_BIN="$PWD/$KILN_BIN" ;; esac
if [ ! -x "$KILN_BIN" ]; then
    echo "run-against-fresh-server: no kiln binary at $KILN_BIN (build it first: cargo build)" >&2
    exit 2
fi


TMP="$(mktemp -d -t kiln-conformance.XXXXXX)"
SERVER_PID=""
# shellcheck source=../scripts/throwaway-postgres.sh
. "$REPO/scripts/throwaway-postgres.sh"
# shellcheck source=../scripts/local-server.sh
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

case "$DATABASE" in
    ""|sqlite) DATABASE_URL="sqlite://$TMP/kiln.db" ;;
    postgres|postgresql)
        # Test clusters trade durability for speed.
        THROWAWAY_PG_OPTIONS="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        throwaway_pg_start "$TMP/pg" || exit 2
        DATABASE_URL="$THROWAWAY_PG_URL" ;;
    *) DATABASE_URL="$DATABASE" ;;
esac

PORT="$(free_port)"
export KILN_DATABASE_URL="$DATABASE_URL"
export KILN_LISTEN="127.0.0.1:$PORT"
# The data is seeded by a script with a client secret, which client_credentials takes only when
# configured to (backend services otherwise sign an assertion; docs/smart.md).
export KILN_CLIENT_CREDENTIALS_WITH_SECRET=true
export KILN_BASE_URL="http://127.0.0.1:$PORT/fhir"
# HL7's examples refer to one another freely (Patient/example, Organization/1, ...) and are
# loaded one by one in no dependency order: reference checking would refuse most of them.
export KILN_REJECT_DANGLING_REFERENCES=false
LOG="$TMP/kiln.log"

echo "run-against-fresh-server: $KILN_BIN serve on $KILN_LISTEN, database ${KILN_DATABASE_URL%%://*}"
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

# The checks talk to the API as a backend service: an app registered with `kiln client register`
# gets a system/ token by client_credentials, as a real deployment's integrations do. Its grant
# includes seeing sensitive identifiers (the SSNs of HL7's examples) in clear, so that every
# example reads back as it was written.
SCOPE="system/*.cruds kiln/reveal-sensitive"
eval "$("$KILN_BIN" client register --name "conformance checks" --kind confidential-symmetric \
    --scope "$SCOPE" --shell)"
KILN_TOKEN="$(python3 - "$PORT" "$KILN_CLIENT_ID" "$KILN_CLIENT_SECRET" "$SCOPE" <<'EOF'
import base64, json, sys, urllib.parse, urllib.request
port, client_id, secret, scope = sys.argv[1:5]
body = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": scope}).encode()
request = urllib.request.Request(f"http://127.0.0.1:{port}/auth/token", data=body, method="POST")
request.add_header("Content-Type", "application/x-www-form-urlencoded")
request.add_header("Authorization", "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode())
with urllib.request.urlopen(request, timeout=10) as response:
    print(json.load(response)["access_token"])
EOF
)" || { echo "run-against-fresh-server: could not get an access token" >&2; server_log_tail; exit 2; }
export KILN_TOKEN

python3 "$HERE/run.py" --base "$KILN_BASE_URL" "${RUN_ARGS[@]}"
STATUS=$?
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "run-against-fresh-server: kiln is no longer running (crashed?)" >&2
    server_log_tail
    [ "$STATUS" = 0 ] && STATUS=1
elif [ "$STATUS" != 0 ]; then
    server_log_tail
fi
exit "$STATUS"
