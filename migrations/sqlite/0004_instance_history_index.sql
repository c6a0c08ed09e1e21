-- Instance history reads one resource's versions newest first; without this index the planner
-- walked the type's whole change log (tenant, type, seq) filtering by id.
CREATE INDEX resource_versions_by_instance ON resource_versions (tenant, type, id, seq);
