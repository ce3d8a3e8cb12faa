//! The command line explains itself and refuses bad arguments clearly.

use crate::support::{kiban, run_ok};

#[test]
fn help_names_every_command() {
    let out = run_ok(kiban().arg("--help"));
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "synth",
        "ingest",
        "serve",
        "demo",
        "keygen",
        "provider",
        "extract",
        "anonymize",
        "link",
        "deidentify",
    ] {
        assert!(text.contains(cmd), "--help does not mention {cmd}:\n{text}");
    }
}

#[test]
fn a_key_file_inside_the_data_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let input = tmp.path().join("in");
    crate::support::synth(5, 1, &input);
    let out = kiban()
        .args(["ingest"])
        .arg(&input)
        .arg("--data")
        .arg(&data)
        .arg("--key-file")
        .arg(data.join("master.key"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("data dir") || err.contains("inside"),
        "unclear error: {err}"
    );
    assert!(!data.join("master.key").exists());
}

#[test]
fn serving_a_folder_that_is_not_a_store_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = kiban()
        .args(["serve", "--data"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a kiban data directory"));
}

/// Two processes taking data into one directory would remove each other's files in flight
/// (each clears the orphans of interrupted intakes when it starts): the second is refused.
#[test]
fn a_second_intake_process_on_one_data_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let key = keys.path().join("k.key");
    run_ok(
        kiban()
            .args([
                "provider",
                "add",
                "東都クリニック",
                "--kind",
                "clinic",
                "--data",
            ])
            .arg(&data)
            .arg("--key-file")
            .arg(&key),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = kiban()
        .args(["serve", "--data"])
        .arg(&data)
        .arg("--key-file")
        .arg(&key)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "serve did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let input = tmp.path().join("in");
    crate::support::synth(5, 1, &input);
    let out = kiban()
        .arg("ingest")
        .arg(&input)
        .arg("--data")
        .arg(&data)
        .arg("--key-file")
        .arg(&key)
        .output()
        .unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(!out.status.success(), "a second intake process was let in");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another kiban process"), "{err}");

    // Once the server is gone (even killed), the directory is free again.
    run_ok(
        kiban()
            .arg("ingest")
            .arg(&input)
            .arg("--data")
            .arg(&data)
            .arg("--key-file")
            .arg(&key),
    );
}
