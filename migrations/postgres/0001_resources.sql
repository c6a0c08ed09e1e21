-- Tenants (clinics), and every version of every resource.
CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- The current version of each resource (a deletion keeps its row with deleted = true, json NULL).
CREATE TABLE resources (
    tenant       TEXT NOT NULL,
    type         TEXT NOT NULL,
    id           TEXT NOT NULL,
    version      BIGINT NOT NULL,
    last_updated BIGINT NOT NULL, -- microseconds since the Unix epoch, UTC
    deleted      BOOLEAN NOT NULL DEFAULT FALSE,
    json         BYTEA,
    PRIMARY KEY (tenant, type, id)
);

-- All versions, the current one included; seq orders the tenant's change log.
CREATE TABLE resource_versions (
    seq          BIGSERIAL PRIMARY KEY,
    tenant       TEXT NOT NULL,
    type         TEXT NOT NULL,
    id           TEXT NOT NULL,
    version      BIGINT NOT NULL,
    last_updated BIGINT NOT NULL,
    deleted      BOOLEAN NOT NULL DEFAULT FALSE,
    method       TEXT NOT NULL,
    json         BYTEA,
    UNIQUE (tenant, type, id, version)
);
CREATE INDEX resource_versions_by_type ON resource_versions (tenant, type, seq);
CREATE INDEX resource_versions_by_tenant ON resource_versions (tenant, seq);
