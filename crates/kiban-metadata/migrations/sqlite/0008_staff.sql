-- Operator staff (R-A2): accounts with roles, a password hash (argon2id, PHC string) and a TOTP
-- secret sealed under a data key wrapped by the store's master key. Neither secret is ever
-- returned by a listing. Failed sign-ins lock an account for a while.
CREATE TABLE staff_accounts (
    id                  TEXT PRIMARY KEY,
    login               TEXT NOT NULL UNIQUE,
    display_name        TEXT NOT NULL,
    roles               TEXT NOT NULL,
    password_hash       TEXT NOT NULL,
    totp_secret_sealed  TEXT NOT NULL,
    totp_last_step      BIGINT,
    failed_attempts     BIGINT NOT NULL DEFAULT 0,
    locked_until        TEXT,
    created_at          TEXT NOT NULL,
    disabled_at         TEXT,
    mfa_reset_at        TEXT
);

-- Data keys of the staff area, wrapped by the master key (JSON of kiban_store::WrappedKey).
CREATE TABLE staff_keyring (
    name        TEXT PRIMARY KEY,
    wrapped_key TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

-- Every sign-in, sign-out and access to identity data by staff: who, when, what, outcome and
-- source address. Never a password, a code or an identity value.
CREATE TABLE staff_audit (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at             TEXT NOT NULL,
    staff_id       TEXT,
    action         TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    source_address TEXT,
    subject        TEXT
);
CREATE INDEX staff_audit_by_staff ON staff_audit (staff_id, id);

-- Clerical review of uncertain record pairs of a linkage run (名寄せ, R-L2). Records are named
-- by provider and keyed patient key only; the evidence holds per field the comparison level and
-- its weight, never a value. One row per pair of records (left < right), whichever run found it.
CREATE TABLE linkage_review_pairs (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id             TEXT NOT NULL REFERENCES linkage_runs(id),
    left_provider_id   TEXT NOT NULL,
    left_patient_key   TEXT NOT NULL,
    right_provider_id  TEXT NOT NULL,
    right_patient_key  TEXT NOT NULL,
    match_probability  DOUBLE PRECISION NOT NULL,
    evidence_json      TEXT NOT NULL,
    status             TEXT NOT NULL,
    decided_by         TEXT REFERENCES staff_accounts(id),
    decided_at         TEXT,
    note               TEXT,
    created_at         TEXT NOT NULL,
    UNIQUE (left_provider_id, left_patient_key, right_provider_id, right_patient_key)
);
CREATE INDEX linkage_review_pairs_by_status ON linkage_review_pairs (status, match_probability);
