-- kiban metadata: providers, intakes (acquisition records), segments, quarantine, dedupe keys.
-- Holds no identity data: patient ids are only ever stored as keyed digests.
CREATE TABLE providers (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    name_en     TEXT,
    kind        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE intakes (
    id                  TEXT PRIMARY KEY,
    provider_id         TEXT NOT NULL REFERENCES providers(id),
    source              TEXT NOT NULL,
    source_sha256       TEXT NOT NULL,
    status              TEXT NOT NULL,
    started_at          TEXT NOT NULL,
    finished_at         TEXT,
    chunks_committed    BIGINT NOT NULL DEFAULT 0,
    lines_read          BIGINT NOT NULL DEFAULT 0,
    bytes_read          BIGINT NOT NULL DEFAULT 0,
    resources_accepted  BIGINT NOT NULL DEFAULT 0,
    resources_duplicate BIGINT NOT NULL DEFAULT 0,
    resources_rejected  BIGINT NOT NULL DEFAULT 0,
    UNIQUE (provider_id, source_sha256)
);

CREATE TABLE intake_item_counts (
    intake_id  TEXT NOT NULL REFERENCES intakes(id),
    category   TEXT NOT NULL,
    item_count BIGINT NOT NULL,
    PRIMARY KEY (intake_id, category)
);

CREATE TABLE segments (
    path        TEXT PRIMARY KEY,
    table_name  TEXT NOT NULL,
    intake_id   TEXT NOT NULL REFERENCES intakes(id),
    chunk_index BIGINT NOT NULL,
    row_count   BIGINT NOT NULL,
    byte_count  BIGINT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX segments_by_table ON segments (table_name);

CREATE TABLE quarantine_entries (
    intake_id     TEXT NOT NULL REFERENCES intakes(id),
    line          BIGINT NOT NULL,
    entry_index   BIGINT NOT NULL,
    resource_type TEXT,
    reason        TEXT NOT NULL,
    blob_path     TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (intake_id, line, entry_index)
);

CREATE TABLE resource_keys (
    digest    BYTEA PRIMARY KEY,
    intake_id TEXT NOT NULL
);
