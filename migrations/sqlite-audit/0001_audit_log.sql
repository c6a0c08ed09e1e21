-- The audit trail of a SQLite deployment, in a database file of its own (`kiln.audit.db` next to
-- `kiln.db`): each file has its own writer, so a request's audit append never waits behind a
-- write to the main file (the copy of the log into AuditEvent resources above all). The table
-- is the one `migrations/sqlite/0010_audit_log.sql` made in the main file, which the server
-- moves here when it opens a database made before.
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
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
