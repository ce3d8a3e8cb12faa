-- Notification basis of each intake (R-C4, Art. 33): for every patient whose data an intake
-- took, the notice it was taken under (its means and day). Patients appear only as the store's
-- keyed patient key, never as a provider patient id. Recording the same patient again for the
-- same intake changes nothing, so a retried or resumed chunk is harmless. The acquisition
-- record shows the summary per means (patients, earliest and latest notice).
CREATE TABLE intake_notification_basis (
    intake_id   TEXT NOT NULL REFERENCES intakes(id),
    patient_key TEXT NOT NULL,
    means       TEXT NOT NULL,
    notified_on TEXT NOT NULL,
    PRIMARY KEY (intake_id, patient_key)
) WITHOUT ROWID;
