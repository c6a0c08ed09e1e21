-- The primary key (tenant, type, id) already is this index; a second copy only cost every
-- insert another B-tree update.
DROP INDEX resources_by_type;
