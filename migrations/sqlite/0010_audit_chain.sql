-- The audit trail's hash chain: one link per AuditEvent, numbered per tenant. Each link holds
-- the SHA-256 of the event's canonical JSON, the hash of the link before it, and its own hash
-- over both, so an edited, removed or inserted event breaks the chain (`kiln audit verify`).
-- Links are never changed or removed.
CREATE TABLE audit_chain (
    tenant       TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    id           TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL,
    PRIMARY KEY (tenant, seq)
);
CREATE TRIGGER audit_chain_no_update BEFORE UPDATE ON audit_chain
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
CREATE TRIGGER audit_chain_no_delete BEFORE DELETE ON audit_chain
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
