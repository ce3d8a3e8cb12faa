//! An ingest killed at any point leaves a consistent store, and the resumed run ends with exactly
//! the records of one clean run (R-A5).

use crate::support::{files_under, kiban, run_ok, store_contents, synth};
use std::path::Path;
use std::time::{Duration, Instant};

fn parquet_files(data: &Path) -> usize {
    if !data.join("clinical").exists() {
        return 0;
    }
    files_under(data)
        .iter()
        .filter(|f| f.extension().and_then(|e| e.to_str()) == Some("parquet"))
        .count()
}

#[test]
fn killed_ingests_resume_to_exactly_one_clean_run() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let input = tmp.path().join("providers");
    synth(1500, 5, &input);

    let clean = tmp.path().join("clean");
    let clean_key = keys.path().join("clean.key");
    let out = run_ok(
        kiban()
            .arg("ingest")
            .arg(&input)
            .arg("--data")
            .arg(&clean)
            .args(["--chunk-lines", "25", "--key-file"])
            .arg(&clean_key),
    );
    // Synthetic providers send valid FHIR: nothing of it may land in the quarantine.
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains(" 0 quarantined"),
        "valid synthetic input was quarantined:\n{report}"
    );
    let expected = store_contents(&clean, &clean_key);
    assert!(expected.values().map(Vec::len).sum::<usize>() > 5000);

    let killed = tmp.path().join("killed");
    let killed_key = keys.path().join("killed.key");
    let mut kills = 0;
    for round in 1..=4 {
        let before = parquet_files(&killed);
        let mut child = kiban()
            .arg("ingest")
            .arg(&input)
            .arg("--data")
            .arg(&killed)
            .args(["--chunk-lines", "25", "--key-file"])
            .arg(&killed_key)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill once this run has written a few more segment files: mid-chunk or between chunks.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if parquet_files(&killed) >= before + 3 * round {
                child.kill().unwrap(); // SIGKILL: no cleanup runs
                kills += 1;
                break;
            }
            assert!(Instant::now() < deadline, "ingest made no progress");
            std::thread::sleep(Duration::from_millis(5));
        }
        child.wait().unwrap();
    }
    assert!(
        kills >= 2,
        "the ingest finished before it could be killed ({kills} kills)"
    );
    run_ok(
        kiban()
            .arg("ingest")
            .arg(&input)
            .arg("--data")
            .arg(&killed)
            .args(["--chunk-lines", "25", "--key-file"])
            .arg(&killed_key),
    );
    let got = store_contents(&killed, &killed_key);
    for (table, rows) in &expected {
        let other = &got[table];
        assert_eq!(
            rows.len(),
            other.len(),
            "table {table}: row count differs after kills and resume"
        );
        assert!(
            rows == other,
            "table {table}: rows differ after kills and resume"
        );
    }
    // A further run adds nothing.
    run_ok(
        kiban()
            .arg("ingest")
            .arg(&input)
            .arg("--data")
            .arg(&killed)
            .args(["--chunk-lines", "25", "--key-file"])
            .arg(&killed_key),
    );
    assert!(
        store_contents(&killed, &killed_key) == expected,
        "a repeated ingest changed the store"
    );
}
