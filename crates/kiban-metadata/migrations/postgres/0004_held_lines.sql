-- Input held back until its patients may be taken (R-C1: notification less than the waiting
-- period old, or none yet). One row per held line; the line itself is an encrypted blob.
-- patient_keys are the store's keyed digests, never provider patient ids.
ALTER TABLE intakes ADD COLUMN resources_held BIGINT NOT NULL DEFAULT 0;
ALTER TABLE intakes ADD COLUMN resources_refused BIGINT NOT NULL DEFAULT 0;

CREATE TABLE held_lines (
    blob_path        TEXT PRIMARY KEY,
    provider_id      TEXT NOT NULL REFERENCES providers(id),
    intake_id        TEXT NOT NULL REFERENCES intakes(id),
    line             BIGINT NOT NULL,
    resource_count   BIGINT NOT NULL,
    patient_keys     TEXT NOT NULL,
    eligible_on      TEXT,
    created_at       TEXT NOT NULL,
    -- 'held' until taken ('released', by release_intake_id) or dropped ('refused').
    status           TEXT NOT NULL DEFAULT 'held',
    settled_at       TEXT,
    release_intake_id TEXT
);
CREATE INDEX held_lines_status ON held_lines (status, provider_id);
