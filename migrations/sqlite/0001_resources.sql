-- Tenants (clinics), and every version of every resource.
CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

-- The current version of each resource (a deletion keeps its row with deleted = 1, json NULL).
CREATE TABLE resources (
    tenant       TEXT NOT NULL,
    type         TEXT NOT NULL,
    id           TEXT NOT NULL,
    version      INTEGER NOT NULL,
    last_updated INTEGER NOT NULL, -- microseconds since the Unix epoch, UTC
    deleted      INTEGER NOT NULL DEFAULT 0,
    json         BLOB,
    PRIMARY KEY (tenant, type, id)
);

-- All versions, the current one included; seq orders the tenant's change log.
CREATE TABLE resource_versions (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant       TEXT NOT NULL,
    type         TEXT NOT NULL,
    id           TEXT NOT NULL,
    version      INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,
    deleted      INTEGER NOT NULL DEFAULT 0,
    method       TEXT NOT NULL,
    json         BLOB,
    UNIQUE (tenant, type, id, version)
);
CREATE INDEX resource_versions_by_type ON resource_versions (tenant, type, seq);
CREATE INDEX resource_versions_by_tenant ON resource_versions (tenant, seq);
