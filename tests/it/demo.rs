//! `kiban demo` generates, ingests and serves the portal, and stops cleanly on Ctrl-C.

use crate::support::kiban;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn demo_serves_the_portal_in_japanese_and_english_and_stops_on_ctrl_c() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Enough persons for k = 5 with exact visit counts (the released encounters table lets
    // anyone count a person's visits, so the person table cannot generalize them): at 120
    // the long tail of visit counts exceeds the 5 % suppression limit whatever is generalized.
    let mut child = kiban()
        .args(["demo", "--persons", "300", "--dir"])
        .arg(tmp.path())
        .args(["--listen", &format!("127.0.0.1:{port}"), "--key-file"])
        .arg(keys.path().join("demo.key"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The portal is up while the providers upload; wait until the demo says it is serving.
    let printed = Arc::new(Mutex::new(String::new()));
    let stdout = child.stdout.take().unwrap();
    let reader = {
        let printed = printed.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut printed = printed.lock().unwrap();
                printed.push_str(&line);
                printed.push('\n');
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    let page = loop {
        let serving = printed.lock().unwrap().contains("4/4 serve");
        if let Some(resp) = http_get(port, "/").filter(|r| serving && r.starts_with("HTTP/1.1 200"))
        {
            break resp;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "demo exited early ({status}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(Instant::now() < deadline, "portal did not come up");
        std::thread::sleep(Duration::from_millis(200));
    };
    let providers: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("providers/providers.json")).unwrap(),
    )
    .unwrap();
    let first = providers[0]["name"].as_str().unwrap();
    assert!(
        page.contains(first),
        "dashboard does not list provider {first}"
    );
    assert!(
        page.contains("lang=\"ja\""),
        "dashboard is not in Japanese by default"
    );
    let english = http_get(port, "/?lang=en").unwrap();
    assert!(english.contains("lang=\"en\""), "no English page");

    // Ctrl-C: SIGINT to the process, which must shut down gracefully with success.
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "demo did not stop on Ctrl-C");
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    reader.join().unwrap();
    let stdout = printed.lock().unwrap().clone();
    assert!(
        exit.success(),
        "demo exit {exit:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("stopped"),
        "demo did not report a clean stop:\n{stdout}"
    );
    // The providers uploaded through the intake API, and the opt-out rules showed.
    assert!(
        stdout.contains("/fhir/$import") && stdout.contains("held (patients notified today"),
        "demo did not upload through the API:\n{stdout}"
    );

    // The demo linked the persons and released anonymized data that passed its
    // re-identification test, with the report beside (not in) the release.
    assert!(
        stdout.contains("3/4 release") && stdout.contains("persons linked"),
        "demo made no release:\n{stdout}"
    );
    let release = tmp.path().join("release-anonymized");
    assert!(release.join("persons.csv").is_file());
    assert!(release.join("conditions.parquet").is_file());
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(tmp.path().join("release-anonymized.report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["reidentification"]["blocked"], false);
    assert!(
        report["person_table"]["anonymization"]["k"]
            .as_u64()
            .unwrap()
            >= 5
    );

    // What the demo took can be extracted again by hand, without the identity table.
    let extract_dir = tmp.path().join("extract-by-hand");
    let out = kiban()
        .args(["extract", "--data"])
        .arg(tmp.path().join("data"))
        .arg("--key-file")
        .arg(keys.path().join("demo.key"))
        .arg("--out")
        .arg(&extract_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "extract failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files: Vec<String> = std::fs::read_dir(&extract_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files.contains(&"conditions.parquet".to_owned()),
        "{files:?}"
    );
    assert!(!files.iter().any(|f| f.contains("identity")), "{files:?}");
}
