//! The command line explains itself and refuses bad arguments clearly.

use crate::support::{kiban, run_ok};

#[test]
fn help_names_every_command() {
    let out = run_ok(kiban().arg("--help"));
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["synth", "ingest", "serve", "demo", "keygen"] {
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
