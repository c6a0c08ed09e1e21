# Sourced by the benchmark scripts: a system/*.cruds access token for a running Kiln, the way a
# deployment's integrations get theirs (an app registered with `kiln client register`, then
# client_credentials at the token endpoint).
#
# usage: TOKEN="$(system_token KILN_BINARY DATABASE_URL ROOT_URL)"   e.g. ROOT_URL=http://127.0.0.1:8080
system_token() {
    local kiln="$1" database_url="$2" root="$3" KILN_CLIENT_ID="" KILN_CLIENT_SECRET=""
    eval "$(KILN_DATABASE_URL="$database_url" KILN_LOG=warn "$kiln" client register --name "benchmark driver" \
        --kind confidential-symmetric --scope "system/*.cruds" --shell)"
    curl -sf -u "$KILN_CLIENT_ID:$KILN_CLIENT_SECRET" -d grant_type=client_credentials -d 'scope=system/*.cruds' \
        "$root/auth/token" | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}
