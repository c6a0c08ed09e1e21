-- Composite search parameters (search.html#composite): one row per element and pairing of its
-- two components' index values, each side in the columns of the component's own table (NULL
-- where the component's type has no such column). Resources stored before this table existed
-- gain their rows with `kiln reindex`.
CREATE TABLE search_composite (
    tenant TEXT NOT NULL, type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    c1_system TEXT, c1_code TEXT, c1_text TEXT, c1_value REAL, c1_low BIGINT, c1_high BIGINT,
    c1_normalized TEXT, c1_exact TEXT, c1_target_type TEXT, c1_target_id TEXT, c1_url TEXT,
    c2_system TEXT, c2_code TEXT, c2_text TEXT, c2_value REAL, c2_low BIGINT, c2_high BIGINT,
    c2_normalized TEXT, c2_exact TEXT, c2_target_type TEXT, c2_target_id TEXT, c2_url TEXT
);
CREATE INDEX search_composite_value ON search_composite (tenant, type, param, c1_code, c1_target_id, c2_code);
CREATE INDEX search_composite_owner ON search_composite (tenant, type, id);
