-- Since 013 no outbox row is marked published: a row is deleted once it is
-- published. outbox_unpublished_idx (id, WHERE published_at IS NULL) then
-- indexes the same rows in the same order as the primary key, and every
-- row written (two per payment at intake, one per event after) paid for a
-- second index entry, and every delete left a second dead one. The relay's
-- claim reads the primary key instead.
-- outbox_published_idx stays: no row written now matches it, so it costs
-- nothing, and PurgePublished uses it for rows an earlier version marked.
DROP INDEX outbox_unpublished_idx;
