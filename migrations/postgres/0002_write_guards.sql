-- Business keys that must be unique per tenant (e.g. a patient's MRN, the one active primary
-- Coverage of a patient), owned by the resource that claims them.
CREATE TABLE unique_keys (
    tenant TEXT NOT NULL,
    kind   TEXT NOT NULL,
    key    TEXT NOT NULL,
    type   TEXT NOT NULL,
    id     TEXT NOT NULL,
    PRIMARY KEY (tenant, kind, key)
);
CREATE INDEX unique_keys_owner ON unique_keys (tenant, type, id);

-- Time that must not be double-booked (e.g. a practitioner's booked appointments).
CREATE TABLE busy_intervals (
    tenant   TEXT NOT NULL,
    key      TEXT NOT NULL,
    start_at BIGINT NOT NULL,
    end_at   BIGINT NOT NULL,
    type     TEXT NOT NULL,
    id       TEXT NOT NULL
);
CREATE INDEX busy_intervals_by_key ON busy_intervals (tenant, key, start_at);
CREATE INDEX busy_intervals_owner ON busy_intervals (tenant, type, id);

-- Named counters per tenant (e.g. MRN numbers per year).
CREATE TABLE sequences (
    tenant TEXT NOT NULL,
    name   TEXT NOT NULL,
    value  BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
);
