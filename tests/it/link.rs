//! `kiban synth --identity-csv` then `kiban link`: the CSV interface shared with other linkage
//! tools, scored against the generator's truth; bad input named by row and column.

use crate::support::{kiban, run_ok};

/// A folder with `kiban synth --identity-csv` of 1,500 persons (records and truth).
fn synthetic_identity_csv() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    run_ok(
        kiban()
            .args([
                "synth",
                "--persons",
                "1500",
                "--seed",
                "11",
                "--identity-csv",
                "--out",
            ])
            .arg(dir.path()),
    );
    dir
}

#[test]
fn synthetic_identity_records_link_into_their_persons() {
    let dir = synthetic_identity_csv();
    let records = dir.path().join("identity_records.csv");
    let links = dir.path().join("links.csv");
    let out = run_ok(
        kiban()
            .args(["link", "--csv"])
            .arg(&records)
            .arg("--out")
            .arg(&links)
            .arg("--truth")
            .arg(dir.path().join("identity_truth.csv")),
    );
    let text = std::fs::read_to_string(&links).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("record_id,person_id,match_probability"));
    let input_rows = std::fs::read_to_string(&records).unwrap().lines().count() - 1;
    assert_eq!(lines.count(), input_rows, "every record gets a person");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let precision: f64 = stdout
        .split("pairwise precision ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no score printed:\n{stdout}"));
    assert!(precision >= 0.99, "pairwise precision {precision}");
}

/// `--review-out` writes the uncertain pairs beside the links: levels and weights, never a value.
#[test]
fn the_uncertain_pairs_of_a_csv_linkage_are_written_for_review() {
    let dir = synthetic_identity_csv();
    let records = dir.path().join("identity_records.csv");
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let links = out_dir.join("links.csv");
    let review = out_dir.join("review.csv");
    // A band wider than the default: this small population has few uncertain pairs.
    let (low, high) = (0.01, 0.999);
    let out = run_ok(
        kiban()
            .args(["link", "--csv"])
            .arg(&records)
            .arg("--out")
            .arg(&links)
            .args(["--review-band", "0.01:0.999", "--review-out"])
            .arg(&review),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("clerical review: "), "{stdout}");
    // Only the two files: no temporary file left beside them.
    let mut written: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written, ["links.csv", "review.csv"]);
    let input = std::fs::read_to_string(&records).unwrap();
    let mut input_rows = input.lines().map(csv_cells);
    let input_header = input_rows.next().unwrap();
    let column = |name: &str| input_header.iter().position(|h| h == name).unwrap();
    let (id_at, name_at, address_at) =
        (column("record_id"), column("name_kanji"), column("address"));
    let mut ids = std::collections::HashSet::new();
    let mut values = Vec::new();
    for row in input_rows {
        ids.insert(row[id_at].to_owned());
        for at in [name_at, address_at] {
            if !row[at].is_empty() {
                values.push(row[at].to_owned());
            }
        }
    }
    assert_eq!(
        std::fs::read_to_string(&links).unwrap().lines().count(),
        ids.len() + 1
    );

    let text = std::fs::read_to_string(&review).unwrap();
    let mut lines = text.lines().map(csv_cells);
    let header = lines.next().unwrap();
    assert_eq!(
        header,
        [
            "record_id_a",
            "record_id_b",
            "match_probability",
            "weight_bits",
            "name_level",
            "name_weight_bits",
            "birth_date_level",
            "birth_date_weight_bits",
            "sex_level",
            "sex_weight_bits",
            "household_level",
            "household_weight_bits",
            "adjustments_weight_bits",
        ]
    );
    let rows: Vec<Vec<String>> = lines.collect();
    assert!(
        rows.len() >= 2,
        "too few review pairs: {}\n{stdout}",
        rows.len()
    );
    let mut uncertainty = Vec::new();
    for row in &rows {
        assert_eq!(row.len(), header.len(), "{row:?}");
        assert!(ids.contains(&row[0]) && ids.contains(&row[1]), "{row:?}");
        assert_ne!(&row[0], &row[1]);
        let p: f64 = row[2].parse().unwrap();
        // Written to six decimals.
        assert!((low - 1e-6..=high + 1e-6).contains(&p), "{row:?}");
        // The evidence adds up to the pair's weight, and the weight is the probability's.
        let weight: f64 = row[3].parse().unwrap();
        let parts: f64 = [5, 7, 9, 11, 12]
            .iter()
            .map(|&i| row[i].parse::<f64>().unwrap())
            .sum();
        assert!((weight - parts).abs() < 1e-3, "{row:?}");
        assert!((p - 1.0 / (1.0 + (-weight).exp2())).abs() < 1e-4, "{row:?}");
        for i in [4, 6, 8, 10] {
            assert!(!row[i].is_empty(), "{row:?}");
        }
        uncertainty.push(weight.abs());
    }
    // Most uncertain first.
    assert!(uncertainty.windows(2).all(|w| w[0] <= w[1] + 1e-3));
    for value in &values {
        assert!(
            !text.contains(value.as_str()),
            "an identity value in the review file"
        );
    }

    // The band alone, without a file or store to send the pairs to, is refused.
    let refused = kiban()
        .args(["link", "--csv"])
        .arg(&records)
        .arg("--out")
        .arg(dir.path().join("links2.csv"))
        .args(["--review-band", "0.01:0.999"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(!dir.path().join("links2.csv").exists());
}

/// The cells of one CSV line (quoted cells may hold commas and doubled quotes; no line breaks).
fn csv_cells(line: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let (mut quoted, mut chars) = (false, line.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cells.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(String::new()),
            (c, _) => cells.last_mut().unwrap().push(c),
        }
    }
    cells
}

#[test]
fn a_csv_without_the_required_columns_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("bad.csv");
    std::fs::write(
        &records,
        "record_id,hospital_id,name_kanji\nr1,h1,山田太郎\n",
    )
    .unwrap();
    let out = kiban()
        .args(["link", "--csv"])
        .arg(&records)
        .arg("--out")
        .arg(dir.path().join("links.csv"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("hospital_patient_id"), "{stderr}");
    assert!(
        !stderr.contains("山田"),
        "values never appear in errors: {stderr}"
    );
    assert!(!dir.path().join("links.csv").exists());
}

#[test]
fn linkage_keys_are_written_under_the_project_key_and_refused_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("records.csv");
    std::fs::write(
        &records,
        "record_id,hospital_id,hospital_patient_id,name_kanji,name_kana,sex,birth_date,postal_code,address,insurer_number,insured_symbol,insured_number,insured_branch\n\
         r1,h1,p1,山田 花子,ﾔﾏﾀﾞ ﾊﾅｺ,2,1980-01-02,,,,,,\n\
         r2,h2,p2,山田花子,やまだ　はなこ,女,S55.1.2,,,,,,\n",
    )
    .unwrap();
    let key_file = dir.path().join("project.key");
    std::fs::write(&key_file, "0f".repeat(32)).unwrap();
    let keys = dir.path().join("keys.csv");
    run_ok(
        kiban()
            .args(["link", "--csv"])
            .arg(&records)
            .arg("--out")
            .arg(dir.path().join("links.csv"))
            .arg("--keys-out")
            .arg(&keys)
            .arg("--project-key")
            .arg(&key_file),
    );
    let text = std::fs::read_to_string(&keys).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows[0], ["record_id", "id1", "id2", "id5"]);
    // No card: no ID1 or ID5; the same person written two ways: one ID2.
    assert_eq!((rows[1][1], rows[1][3]), ("", ""));
    assert_eq!(rows[1][2].len(), 64);
    assert_eq!(rows[1][2], rows[2][2]);
    assert!(!text.contains("ヤマダ") && !text.contains("1980"));

    // A key shorter than 32 bytes is refused, and no keys file is written.
    std::fs::write(&key_file, "0f".repeat(16)).unwrap();
    let refused = dir.path().join("refused.csv");
    let out = kiban()
        .args(["link", "--csv"])
        .arg(&records)
        .arg("--out")
        .arg(dir.path().join("links2.csv"))
        .arg("--keys-out")
        .arg(&refused)
        .arg("--project-key")
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at least 32"), "{stderr}");
    assert!(!refused.exists());
    assert!(!dir.path().join("links2.csv").exists());
}

/// Pairwise precision and recall of an assignment against the truth, both keyed by record.
fn pairwise(
    predicted: &std::collections::BTreeMap<(String, String), String>,
    truth: &std::collections::BTreeMap<(String, String), String>,
) -> (f64, f64) {
    use std::collections::HashMap;
    let pairs = |assignment: &std::collections::BTreeMap<(String, String), String>| {
        let mut groups: HashMap<&str, Vec<&(String, String)>> = HashMap::new();
        for (record, person) in assignment {
            groups.entry(person.as_str()).or_default().push(record);
        }
        let mut pairs = std::collections::HashSet::new();
        for members in groups.values() {
            for (i, a) in members.iter().enumerate() {
                for b in &members[i + 1..] {
                    pairs.insert(((*a).clone(), (*b).clone()));
                }
            }
        }
        pairs
    };
    let predicted = pairs(predicted);
    let truth = pairs(truth);
    let both = predicted.intersection(&truth).count() as f64;
    (both / predicted.len() as f64, both / truth.len() as f64)
}

#[test]
fn the_store_links_in_place_with_stable_ids_and_reversible_runs() {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use std::collections::BTreeMap;

    let tmp = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let input = tmp.path().join("providers");
    let data = tmp.path().join("data");
    let key_file = keys.path().join("master.key");
    crate::support::synth(400, 23, &input);
    run_ok(
        kiban()
            .arg("ingest")
            .arg(&input)
            .arg("--data")
            .arg(&data)
            .arg("--key-file")
            .arg(&key_file),
    );
    let link = || {
        let out = run_ok(
            kiban()
                .args(["link", "--data"])
                .arg(&data)
                .arg("--key-file")
                .arg(&key_file),
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let first = link();
    assert!(first.contains("identity records ->"), "{first}");
    // A second run over the same records keeps every person id.
    let second = link();
    assert!(second.contains(" 0 records changed person"), "{second}");

    // The extraction carries the person of every row; scored against the generator's truth
    // through the store's own patient keys.
    let extract = |name: &str| {
        let dir = tmp.path().join(name);
        run_ok(
            kiban()
                .args(["extract", "--data"])
                .arg(&data)
                .arg("--key-file")
                .arg(&key_file)
                .arg("--tables")
                .arg("encounters")
                .arg("--out")
                .arg(&dir),
        );
        let file = std::fs::File::open(dir.join("encounters.parquet")).unwrap();
        let mut persons: BTreeMap<(String, String), Option<String>> = BTreeMap::new();
        for batch in ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
        {
            let batch = batch.unwrap();
            let provider = batch
                .column_by_name("provider_id")
                .unwrap()
                .as_string::<i32>();
            let patient = batch
                .column_by_name("patient_key")
                .unwrap()
                .as_string::<i32>();
            let person = batch
                .column_by_name("person_id")
                .unwrap()
                .as_string::<i32>();
            for i in 0..batch.num_rows() {
                persons.insert(
                    (provider.value(i).to_owned(), patient.value(i).to_owned()),
                    (!person.is_null(i)).then(|| person.value(i).to_owned()),
                );
            }
        }
        persons
    };
    let linked = extract("extract-linked");
    assert!(linked.values().all(Option::is_some), "an unlinked row");
    let truth_text = std::fs::read_to_string(input.join("truth").join("truth.csv")).unwrap();
    let truth_of: BTreeMap<String, String> = truth_text
        .lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            (format!("{}/{}", cells[0], cells[1]), cells[2].to_owned())
        })
        .collect();
    // Patient keys back to provider patient ids, through a store opened with the key.
    let keys_loaded = kiban_store::KeyFile::load(&key_file).unwrap();
    let store = kiban_store::Store::open(&data, std::sync::Arc::new(keys_loaded)).unwrap();
    let mut predicted = BTreeMap::new();
    let mut truth = BTreeMap::new();
    for (provider, patient_id) in truth_of.keys().filter_map(|k| k.split_once('/')) {
        let key = store.patient_key(provider, patient_id).0;
        let record = (provider.to_owned(), key);
        if let Some(Some(person)) = linked.get(&record) {
            predicted.insert(record.clone(), person.clone());
            truth.insert(
                record,
                truth_of[&format!("{provider}/{patient_id}")].clone(),
            );
        }
    }
    assert!(
        predicted.len() > 300,
        "too few records scored: {}",
        predicted.len()
    );
    let (precision, recall) = pairwise(&predicted, &truth);
    assert!(precision >= 0.97, "pairwise precision {precision}");
    assert!(recall >= 0.9, "pairwise recall {recall}");

    // Both runs are undone, the first one last; then no record has a person.
    for _ in 0..2 {
        let out = run_ok(
            kiban()
                .args(["link", "--revert", "--data"])
                .arg(&data)
                .arg("--key-file")
                .arg(&key_file),
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("reverted"));
    }
    let unlinked = extract("extract-unlinked");
    assert!(
        unlinked.values().all(Option::is_none),
        "links left after reverting"
    );
}

/// The pairs a linkage run could not decide wait for review; the decisions bind the next run.
#[test]
fn uncertain_pairs_are_queued_for_review_and_decisions_bind_the_next_run() {
    use kiban_metadata::{Metadata, NewStaffAccount, ReviewDecision, StaffRole};
    use std::collections::HashMap;

    let tmp = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let input = tmp.path().join("providers");
    let data = tmp.path().join("data");
    let key_file = keys.path().join("master.key");
    crate::support::synth(400, 23, &input);
    run_ok(
        kiban()
            .arg("ingest")
            .arg(&input)
            .arg("--data")
            .arg(&data)
            .arg("--key-file")
            .arg(&key_file),
    );
    // A band wider than the default: this small population has few uncertain pairs.
    let out = run_ok(
        kiban()
            .args(["link", "--review-band", "0.001:0.9999", "--data"])
            .arg(&data)
            .arg("--key-file")
            .arg(&key_file),
    );
    let first = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(first.contains("clerical review:"), "{first}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let persons = |meta: &Metadata| -> HashMap<(String, String), String> {
        rt.block_on(meta.person_links())
            .unwrap()
            .into_iter()
            .map(|l| ((l.provider_id, l.patient_key), l.person_id))
            .collect()
    };
    let key = |r: &kiban_metadata::ReviewRecord| (r.provider_id.clone(), r.patient_key.clone());
    let meta = rt.block_on(Metadata::open_in_dir(&data)).unwrap();
    let open = rt.block_on(meta.open_review_pairs(10_000, 0)).unwrap();
    assert!(
        open.len() >= 2,
        "too few pairs queued: {}\n{first}",
        open.len()
    );
    for pair in &open {
        let fields: Vec<&str> = pair.evidence.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["name", "birth_date", "sex", "household", "adjustments"]
        );
        // The evidence adds up to the pair's weight.
        let weight: f64 = pair.evidence.iter().map(|e| e.weight_bits).sum();
        let p = pair.match_probability;
        assert!((weight - (p / (1.0 - p)).log2()).abs() < 1e-6, "{pair:?}");
        assert!((0.001..=0.9999).contains(&p));
    }
    let before = persons(&meta);
    let joined = open
        .iter()
        .find(|p| before[&key(&p.left)] == before[&key(&p.right)])
        .expect("an uncertain pair the run joined");
    let apart = open
        .iter()
        .find(|p| before[&key(&p.left)] != before[&key(&p.right)])
        .expect("an uncertain pair the run left apart");
    rt.block_on(meta.add_staff_account(&NewStaffAccount {
        id: "staff-review".into(),
        login: "reviewer".into(),
        display_name: "確認 花子".into(),
        roles: vec![StaffRole::LinkageReviewer],
        password_hash: "x".into(),
        totp_secret_sealed: "y".into(),
    }))
    .unwrap();
    rt.block_on(meta.decide_review_pair(
        joined.id,
        ReviewDecision::DifferentPersons,
        "staff-review",
        None,
    ))
    .unwrap();
    rt.block_on(meta.decide_review_pair(
        apart.id,
        ReviewDecision::SamePerson,
        "staff-review",
        None,
    ))
    .unwrap();
    rt.block_on(meta.close());

    let out = run_ok(
        kiban()
            .args(["link", "--data"])
            .arg(&data)
            .arg("--key-file")
            .arg(&key_file),
    );
    let second = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        second.contains("review decisions honoured: 1 same person (1 joined persons"),
        "{second}"
    );
    assert!(second.contains("1 different persons"), "{second}");

    assert!(second.contains("closed as superseded"), "{second}");

    let meta = rt.block_on(Metadata::open_in_dir(&data)).unwrap();
    let after = persons(&meta);
    // The second run was full, with the default band: the open queue is its list. Pairs open
    // from the first run it proposed again carry its probability; the others are superseded,
    // kept with the run that superseded them.
    let latest_run = rt.block_on(meta.latest_linkage_run()).unwrap().unwrap().id;
    let reopened = rt.block_on(meta.open_review_pairs(10_000, 0)).unwrap();
    for pair in &reopened {
        assert_eq!(pair.run_id, latest_run, "{pair:?}");
        assert!((0.2..=0.98).contains(&pair.match_probability), "{pair:?}");
    }
    let superseded = rt
        .block_on(meta.superseded_review_pairs(10_000, 0))
        .unwrap();
    let undecided = open.len() - 2;
    let still_open = open
        .iter()
        .filter(|p| reopened.iter().any(|q| q.id == p.id))
        .count();
    assert_eq!(superseded.len(), undecided - still_open);
    assert!(!superseded.is_empty(), "no pair left the wider band");
    for pair in &superseded {
        assert_eq!(pair.superseded_by_run, latest_run);
        assert!(open.iter().any(|p| p.id == pair.id));
        assert!(rt.block_on(meta.review_pair(pair.id)).unwrap().is_none());
    }
    assert!(
        second.contains(&format!(
            "{} open pairs no longer proposed",
            superseded.len()
        )),
        "{second}"
    );
    assert_ne!(after[&key(&joined.left)], after[&key(&joined.right)]);
    assert_eq!(after[&key(&apart.left)], after[&key(&apart.right)]);
    // Decided pairs stay decided and out of the queue.
    let open_ids: Vec<i64> = rt
        .block_on(meta.open_review_pairs(10_000, 0))
        .unwrap()
        .iter()
        .map(|p| p.id)
        .collect();
    assert!(!open_ids.contains(&joined.id) && !open_ids.contains(&apart.id));
    assert_eq!(rt.block_on(meta.review_decisions()).unwrap().len(), 2);
    rt.block_on(meta.close());

    // --no-review queues nothing; a band upside down is refused before any work.
    let out = run_ok(
        kiban()
            .args(["link", "--no-review", "--data"])
            .arg(&data)
            .arg("--key-file")
            .arg(&key_file),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("no pairs queued"));
    // ... and closes nothing: the queue is as the latest run with a band left it.
    let meta = rt.block_on(Metadata::open_in_dir(&data)).unwrap();
    assert_eq!(
        rt.block_on(meta.open_review_pair_count()).unwrap(),
        reopened.len() as i64
    );
    rt.block_on(meta.close());
    let refused = kiban()
        .args(["link", "--review-band", "0.9:0.1", "--data"])
        .arg(&data)
        .arg("--key-file")
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("lower end"));
}

/// Splits a `kiban synth` population into two intakes: of each provider's patients, three in
/// four come in the first, the rest in the second (notifications and refusals go with both).
fn split_into_two_intakes(
    population: &std::path::Path,
    first: &std::path::Path,
    second: &std::path::Path,
) {
    for dir in [first, second] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::copy(
            population.join("providers.json"),
            dir.join("providers.json"),
        )
        .unwrap();
    }
    for entry in std::fs::read_dir(population).unwrap() {
        let provider = entry.unwrap().path();
        if !provider.join("bundles.ndjson").exists() {
            continue;
        }
        let name = provider.file_name().unwrap();
        let bundles = std::fs::read_to_string(provider.join("bundles.ndjson")).unwrap();
        let mut parts = [String::new(), String::new()];
        for (i, line) in bundles.lines().enumerate() {
            let part = &mut parts[usize::from(i % 4 == 3)];
            part.push_str(line);
            part.push('\n');
        }
        for (dir, part) in [first, second].into_iter().zip(parts) {
            let out = dir.join(name);
            std::fs::create_dir_all(&out).unwrap();
            std::fs::write(out.join("bundles.ndjson"), part).unwrap();
            for file in ["notifications.csv", "refusals.csv"] {
                if provider.join(file).exists() {
                    std::fs::copy(provider.join(file), out.join(file)).unwrap();
                }
            }
        }
    }
}

/// The number printed after `label` in a run's output.
fn count_after(stdout: &str, label: &str) -> u64 {
    stdout
        .split(label)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.trim_matches(|c: char| !c.is_ascii_digit()).parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} in:\n{stdout}"))
}

/// A second intake links onto the persons of the first without relinking everything: the
/// first persons keep their ids, the result is nearly that of a full relink, far fewer pairs
/// are weighed, and the run can be reverted like any other.
#[test]
fn a_second_intake_links_incrementally_onto_the_persons_of_the_first() {
    use kiban_metadata::Metadata;
    use std::collections::BTreeMap;

    let tmp = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let population = tmp.path().join("population");
    let (first, second) = (tmp.path().join("intake-1"), tmp.path().join("intake-2"));
    let data = tmp.path().join("data");
    let key_file = keys.path().join("master.key");
    crate::support::synth(600, 29, &population);
    split_into_two_intakes(&population, &first, &second);
    let ingest = |intake: &std::path::Path| {
        run_ok(
            kiban()
                .arg("ingest")
                .arg(intake)
                .arg("--data")
                .arg(&data)
                .arg("--key-file")
                .arg(&key_file),
        );
    };
    let link = |extra: &[&str]| {
        let out = run_ok(
            kiban()
                .arg("link")
                .args(extra)
                .arg("--data")
                .arg(&data)
                .arg("--key-file")
                .arg(&key_file),
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let persons = || -> BTreeMap<(String, String), String> {
        let meta = rt.block_on(Metadata::open_in_dir(&data)).unwrap();
        let links = rt.block_on(meta.person_links()).unwrap();
        rt.block_on(meta.close());
        links
            .into_iter()
            .map(|l| ((l.provider_id, l.patient_key), l.person_id))
            .collect()
    };

    ingest(&first);
    let out = link(&[]);
    assert!(out.contains("full relink (no learned model yet)"), "{out}");
    let after_first = persons();
    assert!(after_first.len() > 300, "{}", after_first.len());

    ingest(&second);
    let out = link(&[]);
    assert!(out.contains("incremental:"), "{out}");
    let new_records = count_after(&out, "incremental: ");
    let pairs_scored = count_after(&out, "pairs scored ");
    let after_incremental = persons();
    assert_eq!(
        after_incremental.len() as u64,
        after_first.len() as u64 + new_records,
        "{out}"
    );
    // The persons of the first run keep their ids, and only new records changed.
    for (record, person) in &after_first {
        assert_eq!(
            &after_incremental[record], person,
            "a first-run person changed"
        );
    }
    assert!(
        out.contains(&format!(" {new_records} records changed person")),
        "{out}"
    );

    // A full relink of the same records, to compare with.
    let out_full = link(&["--full"]);
    assert!(out_full.contains("full relink (--full)"), "{out_full}");
    let full_pairs = count_after(&out_full, "full relink (--full): ");
    let after_full = persons();
    assert!(
        (pairs_scored as f64) < 0.6 * full_pairs as f64,
        "incremental scored {pairs_scored} pairs, the full relink compared {full_pairs}"
    );

    // Both against the generator's truth, through the store's own patient keys.
    let truth_text = std::fs::read_to_string(population.join("truth").join("truth.csv")).unwrap();
    let keys_loaded = kiban_store::KeyFile::load(&key_file).unwrap();
    let store = kiban_store::Store::open(&data, std::sync::Arc::new(keys_loaded)).unwrap();
    let mut truth = BTreeMap::new();
    for line in truth_text.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let record = (cells[0].to_owned(), store.patient_key(cells[0], cells[1]).0);
        if after_full.contains_key(&record) {
            truth.insert(record, cells[2].to_owned());
        }
    }
    assert_eq!(
        truth.len(),
        after_full.len(),
        "every linked record has a truth"
    );
    let (full_precision, full_recall) = pairwise(&after_full, &truth);
    let (precision, recall) = pairwise(&after_incremental, &truth);
    println!(
        "incremental: precision {precision:.4} recall {recall:.4}, {pairs_scored} pairs scored; \
         full: precision {full_precision:.4} recall {full_recall:.4}, {full_pairs} pairs compared"
    );
    assert!(
        precision >= (full_precision - 0.01).min(0.99),
        "incremental precision {precision}, full {full_precision}"
    );
    assert!(
        recall >= (full_recall - 0.02).min(0.97),
        "incremental recall {recall}, full {full_recall}"
    );

    // Reverting the full relink gives back the incremental result; reverting the incremental
    // run gives back the first run's persons (the new records lose their person).
    let out = link(&["--revert"]);
    assert!(out.contains("reverted"), "{out}");
    assert_eq!(persons(), after_incremental);
    let out = link(&["--revert"]);
    assert!(out.contains("run link-incremental-"), "{out}");
    assert_eq!(persons(), after_first);
    // The first run's model is still there: the new records are linked incrementally again.
    // New persons get fresh ids: the same records, grouped the same way.
    let out = link(&[]);
    assert!(out.contains("incremental:"), "{out}");
    let again = persons();
    assert_eq!(
        again.keys().collect::<Vec<_>>(),
        after_incremental.keys().collect::<Vec<_>>()
    );
    let mut id_of: BTreeMap<&str, &str> = BTreeMap::new();
    for (record, person) in &again {
        let before = after_incremental[record].as_str();
        assert_eq!(*id_of.entry(person.as_str()).or_insert(before), before);
    }
    assert_eq!(
        id_of.len(),
        after_incremental
            .values()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    );
}
