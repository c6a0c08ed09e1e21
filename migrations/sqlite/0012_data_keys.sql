-- The fingerprint of the data key file this database's sealed values and blind index were made
-- with (never a key): a node started with another key file is refused.
CREATE TABLE data_key_fingerprint (
    name         TEXT PRIMARY KEY,
    fingerprint  TEXT NOT NULL
);
