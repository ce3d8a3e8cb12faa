//! Release of held lines on a timer (R-C1): data that arrived before its patients' notices
//! were old enough is taken automatically once they are, without the provider sending it again.
//!
//! [`spawn_held_release`] runs [`kiban_ingest::release_held`] at once and then every interval;
//! [`crate::serve`] starts it when the server takes data in. Logs carry counts only, never a
//! patient, a line's content or a provider patient id.

use std::time::Duration;

use kiban_ingest::{IngestError, ReleaseReport};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::CollectionState;

/// How often [`crate::serve`] releases held lines unless told otherwise: every 10 minutes (the
/// waiting period is counted in days, so this only bounds how late in the day data is taken).
pub const DEFAULT_HELD_RELEASE_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// Runs one release of held lines and logs what it did (counts only).
pub async fn release_held_once(collection: &CollectionState) -> Result<ReleaseReport, IngestError> {
    let report = kiban_ingest::release_held(
        collection.store.clone(),
        &collection.collection,
        &collection.ingest_options,
    )
    .await?;
    if report.lines_released > 0 || report.lines_refused > 0 {
        tracing::info!(
            lines_released = report.lines_released,
            lines_refused = report.lines_refused,
            lines_still_held = report.lines_still_held,
            intakes = report.intakes.len(),
            "held lines released"
        );
    } else {
        tracing::debug!(
            lines_still_held = report.lines_still_held,
            "no held line became eligible"
        );
    }
    Ok(report)
}

/// Releases held lines at once and then every `interval` (a zero interval is taken as one
/// second), until the returned task is aborted. A failed round is logged and the next round
/// tries again: a release is safe to repeat after any failure.
pub fn spawn_held_release(collection: CollectionState, interval: Duration) -> JoinHandle<()> {
    let period = interval.max(Duration::from_secs(1));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        // A round slower than the interval delays the next one instead of bunching them.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(err) = release_held_once(&collection).await {
                // Intake errors name sources, lines and rules, never identity values.
                tracing::error!(error = %err, "release of held lines failed; retrying later");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CollectionState;
    use kiban_collection::{
        Collection, CollectionPolicy, FixedClock, NewProviderRegistration, NotificationMeans,
    };
    use kiban_ingest::{IngestOptions, UploadBody};
    use kiban_metadata::Metadata;
    use kiban_model::ProviderKind;
    use kiban_store::{KeyFile, Store};
    use std::sync::Arc;

    #[tokio::test]
    async fn held_lines_are_released_on_the_timer_once_eligible() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyFile::generate(&dir.path().join("keys/master.key")).unwrap();
        let data = dir.path().join("data");
        let store = Arc::new(Store::open(&data, Arc::new(keys)).unwrap());
        let meta = Metadata::open_in_dir(&data).await.unwrap();
        let clock = Arc::new(FixedClock::on_date("2026-03-20".parse().unwrap()));
        let collection = Arc::new(Collection::new(
            meta.clone(),
            store.clone(),
            clock.clone(),
            CollectionPolicy::default(),
        ));
        let (provider, _token) = collection
            .add_provider(
                &NewProviderRegistration::new("東都クリニック", ProviderKind::Clinic),
                "test",
            )
            .await
            .unwrap();
        // Notified 10 days ago: held for now.
        collection
            .record_notification(
                &provider,
                "00000123",
                "2026-03-10".parse().unwrap(),
                NotificationMeans::Letter,
                "test",
            )
            .await
            .unwrap();
        let patient = serde_json::json!({
            "resourceType": "Patient", "id": "p1",
            "identifier": [{"system": "urn:oid:1.2.392.100495.20.3.51.11312345678", "value": "00000123"}],
            "gender": "female", "birthDate": "1950-01-01"
        });
        let state = CollectionState {
            store: store.clone(),
            collection: collection.clone(),
            ingest_options: IngestOptions::default(),
        };
        let report = kiban_ingest::ingest_upload(
            store.clone(),
            &collection,
            provider.as_str(),
            "prov-001/api/fhir/Patient",
            UploadBody::Document(patient.to_string().into_bytes()),
            &state.ingest_options,
        )
        .await
        .unwrap();
        assert_eq!(report.resources_held, 1, "{report:?}");
        assert_eq!(meta.held_totals().await.unwrap(), (1, 1));

        let task = spawn_held_release(state.clone(), Duration::from_millis(50));
        // Still within the waiting period: rounds run and keep the line.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(meta.held_totals().await.unwrap(), (1, 1));
        // A month later the next round takes it.
        clock.advance_days(31);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while meta.held_totals().await.unwrap() != (0, 0) {
            assert!(
                std::time::Instant::now() < deadline,
                "the held line was not released"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        task.abort();
        let released = meta
            .intake_log(10)
            .await
            .unwrap()
            .into_iter()
            .find(|i| i.source.ends_with("released-held-lines"))
            .expect("an acquisition record of the release");
        assert_eq!(released.resources_accepted, 1);
        // Nothing left: a further round is a no-op.
        let again = release_held_once(&state).await.unwrap();
        assert_eq!((again.lines_released, again.lines_still_held), (0, 0));
    }
}
