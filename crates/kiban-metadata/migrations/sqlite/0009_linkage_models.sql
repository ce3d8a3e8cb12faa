-- What a full linkage run learned (the Fellegi–Sunter m and u per field and level, the prior,
-- household co-movement, namesake density, patient flows between providers), kept as JSON so
-- that incremental runs link new records with it. Parameters only, never identity data: the
-- tables derived from identity values (name frequencies, households) are recomputed from the
-- records at every run. A reverted run's model is not used.
CREATE TABLE linkage_models (
    run_id     TEXT PRIMARY KEY REFERENCES linkage_runs(id),
    format     BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    parameters TEXT NOT NULL
);
