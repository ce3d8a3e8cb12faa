-- One row per accepted resource instead of two digest rows: the identity digest (provider,
-- type, source id) maps to the digest of the content held. See the SQLite migration.
CREATE TABLE resource_versions (
    identity_digest BYTEA PRIMARY KEY,
    content_digest  BYTEA NOT NULL,
    intake_id       TEXT NOT NULL
);

DROP TABLE resource_keys;
