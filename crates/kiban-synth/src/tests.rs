//! End-to-end tests of the generator: validity, determinism, ground truth.

use super::*;
use kiban_fhir::{Resource, validate};
use std::collections::{BTreeMap, HashMap, HashSet};

fn run(persons: u64, seed: u64) -> (tempfile::TempDir, SynthSummary) {
    let dir = tempfile::tempdir().unwrap();
    let config = SynthConfig {
        persons,
        seed,
        ..SynthConfig::default()
    };
    let summary = generate(&config, dir.path(), &|_| {}).unwrap();
    (dir, summary)
}

fn provider_ids(dir: &Path) -> Vec<String> {
    let listing: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(dir.join("providers.json")).unwrap()).unwrap();
    listing
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

fn bundles(dir: &Path, provider: &str) -> Vec<Resource<'static>> {
    let text = std::fs::read_to_string(dir.join(provider).join("bundles.ndjson")).unwrap();
    // Read through a JSON value: the resources own their strings and outlive the text.
    text.lines()
        .map(|line| Resource::from_json_value(serde_json::from_str(line).unwrap()).unwrap())
        .collect()
}

fn references(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if k == "reference" {
                    if let Some(s) = v.as_str() {
                        out.push(s.to_owned());
                    }
                } else {
                    references(v, out);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

#[test]
fn every_resource_of_every_bundle_validates_and_references_resolve() {
    let (dir, summary) = run(600, 7);
    let mut issues = Vec::new();
    let mut seen_types: BTreeMap<String, u64> = BTreeMap::new();
    for provider in provider_ids(dir.path()) {
        for bundle in bundles(dir.path(), &provider) {
            for issue in validate(&bundle) {
                issues.push(format!("{provider}: {issue}"));
            }
            let Resource::Bundle(b) = &bundle else {
                panic!("every line is a Bundle");
            };
            let full_urls: HashSet<&str> = b
                .entry
                .iter()
                .filter_map(|e| e.full_url.as_deref())
                .collect();
            let mut refs = Vec::new();
            references(&bundle.to_json_value(), &mut refs);
            for r in refs {
                assert!(full_urls.contains(r.as_str()), "{provider}: dangling {r}");
            }
            match b.type_.as_deref() {
                Some("transaction") => {
                    assert!(matches!(b.entry[0].resource, Some(Resource::Patient(_))));
                }
                Some("document") => {
                    assert!(matches!(
                        b.entry[0].resource,
                        Some(Resource::Composition(_))
                    ));
                }
                other => panic!("unexpected bundle type {other:?}"),
            }
            for r in b.resources() {
                *seen_types.entry(r.resource_type().to_owned()).or_default() += 1;
            }
        }
    }
    assert!(
        issues.is_empty(),
        "{} issues, first: {:#?}",
        issues.len(),
        &issues[..issues.len().min(20)]
    );
    for t in [
        "Patient",
        "Encounter",
        "Condition",
        "MedicationRequest",
        "Observation",
        "Composition",
    ] {
        assert!(
            seen_types.contains_key(t),
            "no {t} generated: {seen_types:?}"
        );
    }
    assert_eq!(
        summary.resources, seen_types,
        "summary counts what was written"
    );
}

fn read_all(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                files.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn the_same_config_gives_byte_identical_output() {
    let (a, sa) = run(300, 11);
    let (b, sb) = run(300, 11);
    assert_eq!(sa, sb);
    let fa = read_all(a.path());
    let fb = read_all(b.path());
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (name, bytes) in &fa {
        assert!(bytes == &fb[name], "{name} differs");
    }
    let (c, _) = run(300, 12);
    assert_ne!(read_all(c.path())["truth/truth.csv"], fa["truth/truth.csv"]);
}

#[test]
fn truth_covers_every_patient_and_csvs_are_consistent() {
    let (dir, summary) = run(500, 3);
    let reference = SynthConfig::default().reference_date;
    let truth = std::fs::read_to_string(dir.path().join("truth/truth.csv")).unwrap();
    let mut lines = truth.lines();
    assert_eq!(
        lines.next(),
        Some("provider_id,provider_patient_id,person_id")
    );
    let mut truth_map: HashMap<(String, String), String> = HashMap::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 3);
        assert!(
            truth_map
                .insert((f[0].to_owned(), f[1].to_owned()), f[2].to_owned())
                .is_none()
        );
    }
    assert_eq!(truth_map.len() as u64, summary.patient_records);
    let persons: HashSet<&String> = truth_map.values().collect();
    assert!(persons.len() as u64 <= summary.persons);
    assert!(
        persons.len() as u64 * 10 >= summary.persons * 9,
        "almost everyone has a record"
    );

    let mut patients = 0;
    let mut refusals = 0;
    for provider in provider_ids(dir.path()) {
        let system_prefix = "urn:oid:1.2.392.100495.20.3.51.1";
        let mut ids = HashSet::new();
        for bundle in bundles(dir.path(), &provider) {
            let Resource::Bundle(b) = bundle else {
                unreachable!()
            };
            if b.type_.as_deref() != Some("transaction") {
                continue;
            }
            let Some(Resource::Patient(p)) = &b.entry[0].resource else {
                panic!("Patient first")
            };
            let id = p
                .identifier
                .iter()
                .find(|i| {
                    i.system
                        .as_deref()
                        .is_some_and(|s| s.starts_with(system_prefix))
                })
                .and_then(|i| i.value.as_deref().map(str::to_owned))
                .unwrap();
            assert!(
                truth_map.contains_key(&(provider.clone(), id.clone())),
                "{provider} patient missing from truth"
            );
            assert!(ids.insert(id), "one transaction bundle per patient record");
            patients += 1;
        }
        let notifications =
            std::fs::read_to_string(dir.path().join(&provider).join("notifications.csv")).unwrap();
        let mut notified = HashSet::new();
        for line in notifications.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            assert!(ids.contains(f[0]));
            let date: NaiveDate = f[1].parse().unwrap();
            assert!(date < reference);
            assert!(["letter", "email", "poster", "web"].contains(&f[2]));
            notified.insert(f[0].to_owned());
        }
        assert_eq!(notified, ids, "one notification per patient record");
        let refused =
            std::fs::read_to_string(dir.path().join(&provider).join("refusals.csv")).unwrap();
        for line in refused.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            assert!(ids.contains(f[0]));
            assert!(f[1].parse::<NaiveDate>().unwrap() < reference);
            assert!(["patient", "bereaved_family", "guardian"].contains(&f[2]));
            refusals += 1;
        }
    }
    assert_eq!(patients, summary.patient_records);
    assert!(
        refusals as u64 * 20 < summary.patient_records.max(20),
        "refusals are rare"
    );
}

#[test]
fn identities_vary_like_real_registrations() {
    let (dir, summary) = run(3000, 5);
    let mut half_width = 0;
    let mut hiragana = 0;
    let mut full_width_member = 0;
    let mut late_stage = 0;
    let mut deceased = 0;
    let mut suspected = 0;
    let mut kinds = HashSet::new();
    for provider in provider_ids(dir.path()) {
        for bundle in bundles(dir.path(), &provider) {
            let Resource::Bundle(b) = bundle else {
                unreachable!()
            };
            for r in b.resources() {
                match r {
                    Resource::Patient(p) if b.type_.as_deref() == Some("transaction") => {
                        if let Some(kana) = p.name_in(kiban_fhir::NameRepresentation::Syllabic) {
                            let text = kana.text.clone().unwrap_or_default();
                            half_width += text.chars().any(|c| ('ｦ'..='ﾟ').contains(&c)) as u32;
                            hiragana += text.chars().any(|c| ('ぁ'..='ゖ').contains(&c)) as u32;
                        }
                        if let Some(m) = p.insurance_member_id() {
                            full_width_member += m.contains('：') as u32;
                            late_stage += (m.starts_with("39") || m.starts_with("３９")) as u32;
                        }
                        deceased += p.deceased_date_time.is_some() as u32;
                    }
                    Resource::Condition(c) => suspected += c.is_suspected() as u32,
                    Resource::Composition(c) => {
                        kinds.insert(c.type_.as_ref().unwrap().coding[0].code.clone().unwrap());
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(half_width > 0 && hiragana > 0 && full_width_member > 0);
    assert!(
        late_stage > 0 && deceased > 0 && suspected > 0,
        "{late_stage} {deceased} {suspected}"
    );
    assert!(
        kinds.contains("57133-1") && kinds.contains("18842-5") && kinds.contains("53576-5"),
        "{kinds:?}"
    );
    assert!(
        summary.patient_records > summary.persons,
        "people visit several providers"
    );
}
