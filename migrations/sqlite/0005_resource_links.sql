-- Every local reference of every current resource (not only those a search parameter covers):
-- what referential integrity checks on write (the target must exist) and on delete (nothing may
-- still point at it).
CREATE TABLE resource_links (
    tenant      TEXT NOT NULL,
    source_type TEXT NOT NULL,
    source_id   TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    PRIMARY KEY (tenant, source_type, source_id, target_type, target_id)
);
CREATE INDEX resource_links_by_target ON resource_links (tenant, target_type, target_id);
