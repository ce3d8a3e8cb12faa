//! An intake process killed during API uploads (a real SIGKILL of `kiban demo`, whose providers
//! upload through `/fhir/$import`) leaves a consistent store, and sending the same uploads again
//! with the same idempotency keys ends with exactly the records of one clean run (issue 3).

use crate::support::{files_under, kiban, run_ok, store_contents};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn segment_files(data: &Path) -> usize {
    if !data.exists() {
        return 0;
    }
    files_under(data)
        .iter()
        .filter(|f| f.extension().and_then(|e| e.to_str()) == Some("parquet"))
        .count()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn demo(dir: &Path, key: &Path) -> std::process::Command {
    let mut cmd = kiban();
    cmd.args([
        "demo",
        "--persons",
        "1200",
        "--seed",
        "5",
        "--no-serve",
        "--dir",
    ])
    .arg(dir)
    .args([
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
        "--key-file",
    ])
    .arg(key);
    cmd
}

#[test]
fn uploads_killed_midway_resume_to_exactly_one_clean_run() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let clean = tmp.path().join("clean");
    let clean_key = keys.path().join("clean.key");
    run_ok(&mut demo(&clean, &clean_key));
    let expected = store_contents(&clean.join("data"), &clean_key);
    assert!(expected.values().map(Vec::len).sum::<usize>() > 3000);

    let killed = tmp.path().join("killed");
    let killed_key = keys.path().join("killed.key");
    let data = killed.join("data");
    let mut kills = 0;
    for round in 1..=3 {
        let before = segment_files(&data);
        let mut child = demo(&killed, &killed_key)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            // Kill once uploads are under way: between or inside intakes.
            if segment_files(&data) >= before + 4 * round {
                child.kill().unwrap(); // SIGKILL: no cleanup runs
                kills += 1;
                break;
            }
            assert!(Instant::now() < deadline, "the uploads made no progress");
            std::thread::sleep(Duration::from_millis(5));
        }
        child.wait().unwrap();
    }
    assert!(
        kills >= 2,
        "the demo finished before it could be killed ({kills} kills)"
    );

    // The same uploads again, with the same idempotency keys: the store completes.
    run_ok(&mut demo(&killed, &killed_key));
    let got = store_contents(&data, &killed_key);
    for (table, rows) in &expected {
        let other = &got[table];
        assert_eq!(
            rows.len(),
            other.len(),
            "table {table}: row count differs after killed uploads were resent"
        );
        assert!(
            rows == other,
            "table {table}: rows differ after killed uploads were resent"
        );
    }
}
