-- The intake id of each dedupe row was never read (clinical rows carry their intake) and made
-- up half of the largest table. See the SQLite migration.
ALTER TABLE resource_versions DROP COLUMN intake_id;
