-- The dedupe index is the largest table (one row per accepted resource) and is rewritten page
-- by page on every commit, as its keys are random digests. The 36-byte intake id of each row
-- was never read (clinical rows carry their intake), yet made up half of every row; without
-- it the index is half the size, so half the pages are written per commit and twice as many
-- lookups stay in the page cache on large stores.
CREATE TABLE resource_versions_slim (
    identity_digest BLOB PRIMARY KEY,
    content_digest  BLOB NOT NULL
) WITHOUT ROWID;
INSERT INTO resource_versions_slim (identity_digest, content_digest)
    SELECT identity_digest, content_digest FROM resource_versions;
DROP TABLE resource_versions;
ALTER TABLE resource_versions_slim RENAME TO resource_versions;
