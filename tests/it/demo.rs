//! `kiban demo` generates, ingests and serves the portal, and stops cleanly on Ctrl-C.

use crate::support::kiban;
use std::io::{Read, Write};
use std::net::TcpStream;
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
    let mut child = kiban()
        .args(["demo", "--persons", "120", "--dir"])
        .arg(tmp.path())
        .args(["--listen", &format!("127.0.0.1:{port}"), "--key-file"])
        .arg(keys.path().join("demo.key"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let page = loop {
        if let Some(resp) = http_get(port, "/").filter(|r| r.starts_with("HTTP/1.1 200")) {
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
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        exit.success(),
        "demo exit {exit:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("stopped"),
        "demo did not report a clean stop:\n{stdout}"
    );
}
