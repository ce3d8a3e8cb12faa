-- Clerical review pairs a later full linkage run no longer proposes (their probability left the
-- review band, or they fell beyond the review list's cap) are closed as superseded, never
-- deleted: status 'superseded', with the run that superseded them and when. A later run that
-- proposes such a pair again opens it again. Decided pairs are never superseded.
ALTER TABLE linkage_review_pairs ADD COLUMN superseded_by_run TEXT REFERENCES linkage_runs(id);
ALTER TABLE linkage_review_pairs ADD COLUMN superseded_at TEXT;
