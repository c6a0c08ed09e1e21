-- The audit trail, as written before each response: one row per AuditEvent, numbered per
-- tenant, hash-chained. Each row holds the event's JSON, the SHA-256 of its canonical form,
-- the hash of the row before it and its own hash over both, so an edited, removed or inserted
-- event breaks the chain (`kiln audit verify`). Rows are never changed or removed. A
-- background task copies them into `resources` (and the search index) as AuditEvent
-- resources; `audit_indexed` is how far it got.
CREATE TABLE audit_log (
    tenant       TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    id           TEXT NOT NULL,
    json         BLOB NOT NULL,
    content_hash TEXT NOT NULL,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL,
    PRIMARY KEY (tenant, seq)
);
CREATE UNIQUE INDEX audit_log_by_id ON audit_log (tenant, id);
CREATE TABLE audit_indexed (
    tenant TEXT PRIMARY KEY,
    seq    INTEGER NOT NULL
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
