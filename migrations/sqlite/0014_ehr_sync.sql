-- Background sync of linked records (issue: EHR linking, "Background sync"): a remote's
-- schedule, and the re-pull of each linked patient as a job any node may claim.
ALTER TABLE ehr_connections ADD COLUMN sync_every_secs BIGINT;
ALTER TABLE ehr_connections ADD COLUMN last_synced_at BIGINT;
CREATE TABLE ehr_sync_jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant       TEXT NOT NULL,
    endpoint_id  TEXT NOT NULL,
    patient_id   TEXT NOT NULL,
    state        TEXT NOT NULL,   -- pending | running | done | failed
    claimed_by   TEXT,
    created_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    outcome      TEXT
);
CREATE INDEX ehr_sync_jobs_pending ON ehr_sync_jobs (state, id);
