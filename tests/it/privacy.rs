//! Identity data never sits in plaintext under the data directory (R-L4, R-A1).

use crate::support::{files_under, kiban, run_ok, synth};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// Full-width digits and letters to ASCII, the way intake normalizes identifiers.
fn to_halfwidth(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            c => c,
        })
        .collect()
}

/// The identity values of every Patient the providers sent: names, insurance numbers, phone
/// numbers, addresses, provider patient ids.
pub(crate) fn identity_needles(input: &Path) -> BTreeSet<String> {
    let mut needles = BTreeSet::new();
    let mut add = |s: &str| {
        for form in [s.to_string(), to_halfwidth(s)] {
            let digits_only = form.chars().all(|c| c.is_ascii_digit());
            // Short digit strings occur by chance in any binary file; names are long enough.
            if (digits_only && form.len() >= 8) || (!digits_only && form.chars().count() >= 4) {
                needles.insert(form);
            }
        }
    };
    for file in files_under(input) {
        if file.extension().and_then(|e| e.to_str()) != Some("ndjson") {
            continue;
        }
        for line in std::fs::read_to_string(&file).unwrap().lines() {
            let bundle: Value = serde_json::from_str(line).unwrap();
            for entry in bundle["entry"].as_array().into_iter().flatten() {
                let res = &entry["resource"];
                if res["resourceType"] != "Patient" {
                    continue;
                }
                for name in res["name"].as_array().into_iter().flatten() {
                    if let Some(t) = name["text"].as_str() {
                        add(t);
                    }
                    let family = name["family"].as_str().unwrap_or("");
                    let given: Vec<&str> = name["given"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    if !given.is_empty() {
                        add(&format!("{family} {}", given.join(" ")));
                        add(&format!("{family}{}", given.join("")));
                        add(&format!("{family}\u{3000}{}", given.join(" ")));
                    }
                }
                for id in res["identifier"].as_array().into_iter().flatten() {
                    if let Some(v) = id["value"].as_str() {
                        add(v);
                        for part in v.split([':', '：']) {
                            add(part);
                        }
                    }
                }
                for tel in res["telecom"].as_array().into_iter().flatten() {
                    if let Some(v) = tel["value"].as_str() {
                        add(v);
                        add(&v.replace('-', ""));
                    }
                }
                for addr in res["address"].as_array().into_iter().flatten() {
                    if let Some(t) = addr["text"].as_str() {
                        add(t);
                    }
                    for l in addr["line"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                    {
                        add(l);
                    }
                }
            }
        }
    }
    needles
}

#[test]
fn no_identity_value_is_in_plaintext_anywhere_under_the_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let input = tmp.path().join("providers");
    let data = tmp.path().join("data");
    synth(150, 11, &input);
    let needles = identity_needles(&input);
    assert!(
        needles.len() > 300,
        "too few identity values to test with: {}",
        needles.len()
    );
    // The search must be able to find them: every needle is in the input.
    let input_text: String = files_under(&input)
        .iter()
        .filter(|f| f.extension().and_then(|e| e.to_str()) == Some("ndjson"))
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let found_in_input = needles
        .iter()
        .filter(|n| input_text.contains(n.as_str()))
        .count();
    assert!(
        found_in_input * 2 > needles.len(),
        "the needles are not what the providers sent"
    );

    run_ok(
        kiban()
            .arg("ingest")
            .arg(&input)
            .arg("--data")
            .arg(&data)
            .arg("--key-file")
            .arg(keys.path().join("master.key")),
    );

    let files = files_under(&data);
    assert!(files.len() > 10, "the store wrote too few files: {files:?}");
    let mut leaks = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        // Lossy decoding keeps every valid UTF-8 run, so any needle present as bytes is found.
        let text = String::from_utf8_lossy(&bytes);
        for needle in &needles {
            if text.contains(needle.as_str()) {
                leaks.push(format!(
                    "{} contains an identity value of {} bytes",
                    file.display(),
                    needle.len()
                ));
            }
        }
        if bytes.starts_with(b"PAR1") {
            leaks.push(format!("{} is a plaintext Parquet file", file.display()));
        }
    }
    assert!(
        leaks.is_empty(),
        "identity data in plaintext:\n{}",
        leaks.join("\n")
    );
}
