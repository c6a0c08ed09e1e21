-- The SMART authorization server's own state (docs/smart.md). Times are Unix seconds; lists and
-- grants are JSON text. Codes, refresh tokens, launches and sessions are stored as SHA-256
-- hashes: the database never holds a value that would let its reader act as a user or app.
CREATE TABLE auth_signing_keys (
    kid         TEXT PRIMARY KEY,
    algorithm   TEXT NOT NULL,
    private_pem TEXT NOT NULL,
    public_jwk  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT
);

CREATE TABLE auth_clients (
    client_id     TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    secret_hash   TEXT,
    jwks          TEXT,
    jwks_uri      TEXT,
    redirect_uris TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    launch_url    TEXT,
    status        TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE auth_users (
    user_id       TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    fhir_user     TEXT,
    display_name  TEXT NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL
);

CREATE TABLE auth_sessions (
    session_hash TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    csrf         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen    BIGINT NOT NULL
);

-- Authorization codes, refresh tokens and EHR launch ids: one-time secrets with a grant.
CREATE TABLE auth_secrets (
    secret_hash TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    family      TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    user_id     TEXT,
    grant_json  TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX auth_secrets_by_family ON auth_secrets (family);

-- Token families (everything issued from one authorization) that were revoked.
CREATE TABLE auth_revoked_families (
    family     TEXT PRIMARY KEY,
    revoked_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Client assertion ids already used (RFC 7523 §3: a jti may be used once).
CREATE TABLE auth_assertion_ids (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);

-- What each user allowed each app (the "connected apps" page).
CREATE TABLE auth_grants (
    user_id    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
