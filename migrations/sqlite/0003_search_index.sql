-- Search index: one table per search-parameter type, holding the rows of each resource's
-- current version (replaced on every write, removed on delete).
CREATE TABLE search_string (
    tenant TEXT NOT NULL, type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    normalized TEXT NOT NULL, exact TEXT NOT NULL
);
CREATE INDEX search_string_value ON search_string (tenant, type, param, normalized);
CREATE INDEX search_string_owner ON search_string (tenant, type, id);

CREATE TABLE search_token (
    tenant TEXT NOT NULL, type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    system TEXT, code TEXT, text TEXT
);
CREATE INDEX search_token_value ON search_token (tenant, type, param, code, system);
CREATE INDEX search_token_owner ON search_token (tenant, type, id);

CREATE TABLE search_date (
    tenant TEXT NOT NULL, type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    low INTEGER NOT NULL, high INTEGER NOT NULL
);
CREATE INDEX search_date_value ON search_date (tenant, type, param, low, high);
CREATE INDEX search_date_owner ON search_date (tenant, type, id);

CREATE TABLE search_number (
    tenant TEXT NOT NULL, type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    value REAL NOT NULL
);
CREATE INDEX search_number_value ON search_number (tenant, type, param, value);
CREATE INDEX search_number_owner ON search_number (tenant, type, id);

CREATE TABLE search_quantity (
    tenant TEXT NOT NULL, type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    value REAL NOT NULL, system TEXT, code TEXT
);
CREATE INDEX search_quantity_value ON search_quantity (tenant, type, param, code, value);
CREATE INDEX search_quantity_owner ON search_quantity (tenant, type, id);

CREATE TABLE search_reference (
    tenant TEXT NOT NULL, type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    target_type TEXT, target_id TEXT, url TEXT
);
CREATE INDEX search_reference_value ON search_reference (tenant, type, param, target_id, target_type);
CREATE INDEX search_reference_target ON search_reference (tenant, target_type, target_id);
CREATE INDEX search_reference_owner ON search_reference (tenant, type, id);

CREATE TABLE search_uri (
    tenant TEXT NOT NULL, type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE INDEX search_uri_value ON search_uri (tenant, type, param, value);
CREATE INDEX search_uri_owner ON search_uri (tenant, type, id);

CREATE INDEX resources_by_type ON resources (tenant, type, id);
CREATE INDEX resources_by_type_updated ON resources (tenant, type, last_updated);
