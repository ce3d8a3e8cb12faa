-- kiban collection registers (R-C1..R-C4): provider filing status and contact, intake API
-- credentials, the opt-out notification register, refusals (opt-out), the collection audit log,
-- and idempotency keys of the intake API.
-- Holds no identity data: patients appear only as the store's keyed patient key (hex), tokens
-- only as their SHA-256, birth dates only inside a keyed digest.

-- Filing status of the provider's opt-out notification to the minister: pending, filed,
-- withdrawn. `contact` is the operator-facing contact of the organisation, never a patient's.
ALTER TABLE providers ADD COLUMN filing_status TEXT NOT NULL DEFAULT 'filed';
ALTER TABLE providers ADD COLUMN contact TEXT;

-- Bearer tokens of the intake API. The token itself is shown once and never stored.
CREATE TABLE provider_tokens (
    token_id     TEXT PRIMARY KEY,
    provider_id  TEXT NOT NULL REFERENCES providers(id),
    token_sha256 BYTEA NOT NULL UNIQUE,
    label        TEXT,
    created_at   TEXT NOT NULL,
    revoked_at   TEXT
);
CREATE INDEX provider_tokens_by_provider ON provider_tokens (provider_id);

-- One row per notified patient of a provider. Re-recording keeps the earliest notified_on
-- (and its means): the waiting period counts from the first notice.
CREATE TABLE notifications (
    provider_id TEXT NOT NULL REFERENCES providers(id),
    patient_key TEXT NOT NULL,
    notified_on TEXT NOT NULL,
    means       TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    PRIMARY KEY (provider_id, patient_key)
);

-- One refusal (opt-out) per patient of a provider; a repeated refusal returns the first receipt.
-- birth_date_digest: keyed digest of (provider, patient id, birth date) given on the web form.
CREATE TABLE refusals (
    receipt_number    TEXT PRIMARY KEY,
    provider_id       TEXT NOT NULL REFERENCES providers(id),
    patient_key       TEXT NOT NULL,
    refused_on        TEXT NOT NULL,
    requester         TEXT NOT NULL,
    channel           TEXT NOT NULL,
    birth_date_digest BYTEA,
    recorded_at       TEXT NOT NULL,
    recorded_by       TEXT NOT NULL,
    UNIQUE (provider_id, patient_key)
);

-- Audit log of every step of collection. detail never holds identity data.
CREATE TABLE collection_events (
    id             BIGSERIAL PRIMARY KEY,
    at             TEXT NOT NULL,
    actor          TEXT NOT NULL,
    action         TEXT NOT NULL,
    provider_id    TEXT,
    subject_digest TEXT,
    detail         TEXT NOT NULL
);
CREATE INDEX collection_events_by_provider ON collection_events (provider_id, id);

-- Responses of the intake API by Idempotency-Key, so a retried request gets the same answer.
CREATE TABLE idempotency_keys (
    provider_id    TEXT NOT NULL REFERENCES providers(id),
    idem_key       TEXT NOT NULL,
    request_sha256 TEXT NOT NULL,
    status_code    BIGINT NOT NULL,
    response_body  TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    PRIMARY KEY (provider_id, idem_key)
);
