//! The intake load test (`examples/intake_load.rs`) with small numbers: 200 providers upload
//! at once over loopback, and nothing is lost, stored twice or refused.

#[path = "../../examples/intake_load.rs"]
#[allow(dead_code)]
mod load;

use std::time::Duration;

#[test]
fn two_hundred_providers_upload_at_once_without_errors_or_lost_resources() {
    let config = load::LoadConfig {
        providers: 200,
        bundles_per_provider: 2,
        request_timeout: Duration::from_secs(60),
        total_timeout: Duration::from_secs(120),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let report = rt.block_on(load::run(&config)).expect("the load test runs");
    report.print(&config);
    assert_eq!(report.errors, 0, "errors: {:?}", report.error_samples);
    assert_eq!(report.bundles, 400);
    assert_eq!(report.latencies.len(), 400, "every upload answered 200");
    assert_eq!(
        report.recorded_not_accepted, 0,
        "nothing duplicate, rejected or held"
    );
    assert_eq!(
        report.lost_resources(),
        0,
        "every resource stored exactly once"
    );
    assert!(report.replay_ok, "the repeated upload is replayed");
}
