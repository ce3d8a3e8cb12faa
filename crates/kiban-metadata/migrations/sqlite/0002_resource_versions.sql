-- One row per accepted resource instead of two digest rows: the identity digest (provider,
-- type, source id) maps to the digest of the content held. A re-sent copy matches both; a
-- changed resource under the same id matches only the identity. Halves the rows of the
-- largest table and lets one indexed lookup per resource answer both questions.
-- Stores made before this migration held no release data yet, so their dedupe keys are not
-- carried over.
CREATE TABLE resource_versions (
    identity_digest BLOB PRIMARY KEY,
    content_digest  BLOB NOT NULL,
    intake_id       TEXT NOT NULL
) WITHOUT ROWID;

DROP TABLE resource_keys;
