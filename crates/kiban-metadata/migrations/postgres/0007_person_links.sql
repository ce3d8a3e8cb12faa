-- Persons (名寄せ): which person each patient record belongs to, as linkage runs assigned it.
-- Records appear only as (provider, keyed patient key); person ids are opaque. Every change a
-- run makes is kept with the person the record had before, so merges and splits are auditable
-- and the latest run can be reverted.
CREATE TABLE linkage_runs (
    id              TEXT PRIMARY KEY,
    started_at      TEXT NOT NULL,
    finished_at     TEXT NOT NULL,
    records         BIGINT NOT NULL,
    persons         BIGINT NOT NULL,
    new_persons     BIGINT NOT NULL,
    merged_persons  BIGINT NOT NULL,
    split_persons   BIGINT NOT NULL,
    changed_records BIGINT NOT NULL,
    reverted_at     TEXT
);

CREATE TABLE person_links (
    provider_id       TEXT NOT NULL,
    patient_key       TEXT NOT NULL,
    person_id         TEXT NOT NULL,
    match_probability DOUBLE PRECISION NOT NULL,
    run_id            TEXT NOT NULL REFERENCES linkage_runs(id),
    PRIMARY KEY (provider_id, patient_key)
);
CREATE INDEX person_links_by_person ON person_links (person_id);

CREATE TABLE person_link_history (
    run_id             TEXT NOT NULL REFERENCES linkage_runs(id),
    provider_id        TEXT NOT NULL,
    patient_key        TEXT NOT NULL,
    previous_person_id TEXT,
    previous_probability DOUBLE PRECISION,
    previous_run_id    TEXT,
    person_id          TEXT NOT NULL,
    PRIMARY KEY (run_id, provider_id, patient_key)
);
CREATE INDEX person_link_history_by_record ON person_link_history (provider_id, patient_key);
