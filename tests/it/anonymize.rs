//! `kiban anonymize` from the command line, in both forms (options and TOML job file), with the
//! release checked independently: k and the suppression limit recomputed from the file alone.

use crate::support::{kiban, run_ok};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn adult_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/adult")
}

const QIS: &str =
    "sex,age,race,marital-status,education,native-country,workclass,occupation,salary-class";

/// (rows, suppressed rows, smallest class among the released rows) of a `;` release.
fn recount(release: &Path) -> (usize, usize, usize) {
    let text = std::fs::read_to_string(release).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert_eq!(header.split(';').count(), 9);
    let mut classes: HashMap<&str, usize> = HashMap::new();
    let (mut rows, mut suppressed) = (0, 0);
    for line in lines {
        rows += 1;
        if line.split(';').all(|v| v == "*") {
            suppressed += 1;
        } else {
            *classes.entry(line).or_insert(0) += 1;
        }
    }
    (
        rows,
        suppressed,
        classes.values().copied().min().unwrap_or(0),
    )
}

#[test]
fn options_form_releases_a_k_anonymous_table_and_a_report() {
    let out = tempfile::tempdir().unwrap();
    let release = out.path().join("release.csv");
    let report = out.path().join("report.json");
    run_ok(
        kiban()
            .arg("anonymize")
            .arg(adult_dir().join("adult_subset.csv"))
            .args(["--sep", ";", "--hierarchies"])
            .arg(adult_dir())
            .args(["--qi", QIS, "--k", "5", "--max-suppression", "0.04"])
            .args(["--metric", "entropy", "--out"])
            .arg(&release)
            .arg("--report")
            .arg(&report)
            .arg("--report-html")
            .arg(out.path().join("report.html")),
    );
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("情報損失"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let (rows, suppressed, smallest) = recount(&release);
    assert_eq!(json["levels"].as_array().unwrap().len(), 9);
    assert_eq!(
        json["suppressed_records"].as_u64().unwrap() as usize,
        suppressed
    );
    assert_eq!(json["k"].as_u64().unwrap() as usize, smallest);
    assert!(smallest >= 5, "a class of {smallest} rows was released");
    assert!(suppressed as f64 <= 0.04 * rows as f64);
    assert!(json["information_loss"].as_f64().unwrap() > 0.0);
}

#[test]
fn job_file_form_and_bad_input_leave_no_release() {
    let out = tempfile::tempdir().unwrap();
    let subset = adult_dir().join("adult_subset.csv");
    let job = out.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            "input = {subset:?}\noutput = \"release.csv\"\nreport = \"report.json\"\n\
             quasi_identifiers = [\"sex\", \"age\", \"race\"]\nhierarchy_dir = {dir:?}\n\
             [privacy]\nk = 10\nmax_suppression = 0.0\n",
            dir = adult_dir()
        ),
    )
    .unwrap();
    run_ok(kiban().args(["anonymize", "--config"]).arg(&job));
    let (_, suppressed, smallest) = recount_three(&out.path().join("release.csv"));
    assert_eq!(suppressed, 0);
    assert!(smallest >= 10);

    // An unknown column: a clear error and no release file.
    let bad = kiban()
        .arg("anonymize")
        .arg(&subset)
        .args(["--hierarchies"])
        .arg(adult_dir())
        .args(["--qi", "sex,shoe-size", "--out"])
        .arg(out.path().join("bad.csv"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("shoe-size"));
    assert!(!out.path().join("bad.csv").exists());
}

/// Like [`recount`], for a release whose quasi-identifiers are the first three columns.
fn recount_three(release: &Path) -> (usize, usize, usize) {
    let text = std::fs::read_to_string(release).unwrap();
    let mut classes: HashMap<String, usize> = HashMap::new();
    let (mut rows, mut suppressed) = (0, 0);
    for line in text.lines().skip(1) {
        rows += 1;
        let qi: Vec<&str> = line.split(';').take(3).collect();
        if qi.iter().all(|v| *v == "*") {
            suppressed += 1;
        } else {
            *classes.entry(qi.join(";")).or_insert(0) += 1;
        }
    }
    (
        rows,
        suppressed,
        classes.values().copied().min().unwrap_or(0),
    )
}

/// Released rows of a `;` release as (QI tuple, sensitive value), suppressed rows flagged.
fn released_rows(release: &Path, qis: &[&str], sensitive: &str) -> Vec<(Vec<String>, String)> {
    let text = std::fs::read_to_string(release).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(';').collect();
    let at = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let qi_at: Vec<usize> = qis.iter().map(|q| at(q)).collect();
    let s_at = at(sensitive);
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(';').collect();
            (
                qi_at.iter().map(|&i| f[i].to_string()).collect(),
                f[s_at].to_string(),
            )
        })
        .collect()
}

#[test]
fn typed_ordered_t_closeness_kl_metric_and_k_map_from_the_command_line() {
    let out = tempfile::tempdir().unwrap();
    let release = out.path().join("release.csv");
    let report = out.path().join("report.json");
    let qis = ["sex", "race", "marital-status", "education"];
    run_ok(
        kiban()
            .arg("anonymize")
            .arg(adult_dir().join("adult_subset.csv"))
            .arg("--hierarchies")
            .arg(adult_dir())
            .args(["--qi", &qis.join(","), "--sensitive", "age"])
            .args(["--types", "age=integer", "--t-closeness", "ordered:0.15"])
            .args(["--k", "3", "--max-suppression", "0.05"])
            .args(["--metric", "kl-divergence", "--k-map", "25", "--population"])
            .arg(adult_dir().join("adult.csv"))
            .arg("--out")
            .arg(&release)
            .arg("--report")
            .arg(&report),
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["t_distance"], "ordered");
    assert_eq!(json["metric"], "kl_divergence");
    let levels: Vec<usize> = json["levels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_u64().unwrap() as usize)
        .collect();
    // Ordered-distance t recomputed from the release alone.
    let rows = released_rows(&release, &qis, "age");
    let mut overall: HashMap<i64, f64> = HashMap::new();
    let mut classes: HashMap<Vec<String>, Vec<i64>> = HashMap::new();
    for (key, age) in &rows {
        let age: i64 = age.parse().unwrap();
        *overall.entry(age).or_insert(0.0) += 1.0 / rows.len() as f64;
        if !key.iter().all(|v| v == "*") {
            classes.entry(key.clone()).or_default().push(age);
        }
    }
    let mut order: Vec<i64> = overall.keys().copied().collect();
    order.sort_unstable();
    let t = classes
        .values()
        .map(|ages| {
            let (mut cumulative, mut sum) = (0.0, 0.0);
            for v in &order {
                let p = ages.iter().filter(|a| *a == v).count() as f64 / ages.len() as f64;
                cumulative += p - overall[v];
                sum += f64::abs(cumulative);
            }
            sum / (order.len() - 1) as f64
        })
        .fold(0.0, f64::max);
    assert!(t <= 0.15 + 1e-9, "released ordered t = {t}");
    assert!((t - json["t"].as_f64().unwrap()).abs() < 1e-9);
    // k-map recomputed: every released class in the population generalized by the files.
    let trees: Vec<HashMap<String, Vec<String>>> = qis
        .iter()
        .map(|q| {
            std::fs::read_to_string(adult_dir().join(format!("adult_hierarchy_{q}.csv")))
                .unwrap()
                .lines()
                .map(|l| {
                    let labels: Vec<String> = l.split(';').map(String::from).collect();
                    (labels[0].clone(), labels)
                })
                .collect()
        })
        .collect();
    let population = released_rows(&adult_dir().join("adult.csv"), &qis, "age");
    let mut members: HashMap<Vec<String>, usize> = HashMap::new();
    for (key, _) in &population {
        let generalized: Vec<String> = key
            .iter()
            .enumerate()
            .map(|(j, v)| trees[j][v][levels[j]].clone())
            .collect();
        *members.entry(generalized).or_insert(0) += 1;
    }
    let k_map = classes
        .keys()
        .map(|c| members.get(c).copied().unwrap_or(0))
        .min()
        .unwrap();
    assert!(
        k_map >= 25,
        "a released class has {k_map} population members"
    );
    assert_eq!(json["k_map"].as_u64().unwrap() as usize, k_map);
}

#[test]
fn a_badly_typed_value_is_named_by_line_not_by_value() {
    let out = tempfile::tempdir().unwrap();
    let data = out.path().join("data.csv");
    std::fs::write(&data, "age;sex\n31;F\n3l;M\n").unwrap();
    let bad = kiban()
        .arg("anonymize")
        .arg(&data)
        .args(["--qi", "sex", "--types", "age=integer", "--out"])
        .arg(out.path().join("release.csv"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("line 3") && stderr.contains("`age`"),
        "{stderr}"
    );
    // The temporary directory's random name may itself contain the value's
    // characters, so only the message without the path is searched.
    let message = stderr.replace(&data.display().to_string(), "<data.csv>");
    assert!(!message.contains("3l"), "{stderr}");
    assert!(!out.path().join("release.csv").exists());
}

#[test]
fn delta_presence_and_microaggregation_from_the_command_line() {
    let out = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(adult_dir().join("adult_subset.csv")).unwrap();
    let mut people = String::new();
    for (i, line) in text.lines().enumerate() {
        let flag = match i {
            0 => "study",
            _ if i % 4 == 0 => "1",
            _ => "0",
        };
        people.push_str(&format!("{line};{flag}\n"));
    }
    let input = out.path().join("people.csv");
    std::fs::write(&input, people).unwrap();
    let release = out.path().join("release.csv");
    let report = out.path().join("report.json");
    run_ok(
        kiban()
            .arg("anonymize")
            .arg(&input)
            .arg("--hierarchies")
            .arg(adult_dir())
            .args([
                "--qi",
                "sex,age,race",
                "--k",
                "2",
                "--max-suppression",
                "0.05",
            ])
            .args(["--delta-presence", "0.05:0.5", "--subset-column", "study"])
            .args(["--types", "age=integer", "--microaggregate", "age=median"])
            .arg("--out")
            .arg(&release)
            .arg("--report")
            .arg(&report),
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let range = json["delta_presence"].as_array().unwrap();
    assert!(range[0].as_f64().unwrap() >= 0.05 && range[1].as_f64().unwrap() <= 0.5);
    assert_eq!(json["microaggregation"][0]["function"], "median");
    let released = std::fs::read_to_string(&release).unwrap();
    assert!(!released.lines().next().unwrap().contains("study"));
    let subset = text
        .lines()
        .skip(1)
        .enumerate()
        .filter(|(i, _)| (i + 1) % 4 == 0)
        .count();
    assert_eq!(released.lines().count() - 1, subset);
}

#[test]
fn streaming_gives_the_same_release_and_report_as_in_memory() {
    let out = tempfile::tempdir().unwrap();
    let mut outputs = Vec::new();
    for streaming in [false, true] {
        let name = if streaming { "streamed" } else { "memory" };
        let release = out.path().join(format!("{name}.csv"));
        let report = out.path().join(format!("{name}.json"));
        let mut cmd = kiban();
        cmd.arg("anonymize")
            .arg(adult_dir().join("adult.csv"))
            .arg("--hierarchies")
            .arg(adult_dir())
            .args([
                "--qi",
                QIS,
                "--k",
                "5",
                "--max-suppression",
                "0.04",
                "--out",
            ])
            .arg(&release)
            .arg("--report")
            .arg(&report);
        if streaming {
            cmd.arg("--streaming");
        }
        let stdout = String::from_utf8(run_ok(&mut cmd).stdout).unwrap();
        assert_eq!(stdout.contains("(streamed)"), streaming, "{stdout}");
        let mut json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        json.as_object_mut().unwrap().remove("elapsed_ms");
        outputs.push((json, std::fs::read(&release).unwrap()));
    }
    assert_eq!(outputs[0].0, outputs[1].0);
    assert!(outputs[0].1 == outputs[1].1, "releases differ");
    assert_eq!(
        outputs[1].0["levels"],
        serde_json::json!([1, 0, 1, 1, 3, 2, 2, 0, 1])
    );
    let (rows, suppressed, smallest) = recount(&out.path().join("streamed.csv"));
    assert_eq!(rows, 30_162);
    assert!(smallest >= 5 && suppressed as f64 <= 0.04 * rows as f64);

    // Below the threshold the default is in memory; a threshold under the row count streams.
    let release = out.path().join("auto.csv");
    let auto = run_ok(
        kiban()
            .arg("anonymize")
            .arg(adult_dir().join("adult.csv"))
            .arg("--hierarchies")
            .arg(adult_dir())
            .args(["--qi", QIS, "--streaming-threshold", "1000", "--out"])
            .arg(&release),
    );
    assert!(String::from_utf8_lossy(&auto.stdout).contains("(streamed)"));
}

#[test]
fn differential_privacy_from_the_command_line_releases_k_anonymous_classes() {
    let out = tempfile::tempdir().unwrap();
    let release = out.path().join("dp.csv");
    let report = out.path().join("dp.json");
    let run = run_ok(
        kiban()
            .arg("anonymize")
            .arg(adult_dir().join("adult.csv"))
            .arg("--hierarchies")
            .arg(adult_dir())
            .args(["--qi", QIS, "--dp", "2:1e-5", "--dp-seed", "11", "--out"])
            .arg(&release)
            .arg("--report")
            .arg(&report),
    );
    assert!(String::from_utf8_lossy(&run.stdout).contains("derived k"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let k = json["differential_privacy"]["k"].as_u64().unwrap() as usize;
    let (rows, suppressed, smallest) = recount(&release);
    assert_eq!(suppressed, 0, "suppressed records are not released");
    assert!(rows > 0 && smallest >= k, "class of {smallest} < k = {k}");
    assert_eq!(
        rows + json["suppressed_records"].as_u64().unwrap() as usize,
        json["differential_privacy"]["sampled_records"]
            .as_u64()
            .unwrap() as usize
    );
}

/// Derived age at event, the built ICD-10 hierarchy and local recoding from the command line:
/// the birth date never reaches the release, every released age and code is a label of its
/// hierarchy, and k holds over the released rows, recounted from the file alone.
#[test]
fn age_at_event_icd10_and_local_recoding_from_the_command_line() {
    let out = tempfile::tempdir().unwrap();
    let input = out.path().join("visits.csv");
    let codes = [
        "E11.9", "E119", "E14", "I10", "I11", "I20", "I25", "J45", "J18", "C50", "C34", "K21",
    ];
    let mut text = String::from("birth_date;visit_date;diagnosis\n");
    // A deterministic spread of birth dates, visits and codes, with a few rare combinations.
    let mut state: u64 = 7;
    for _ in 0..600 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let year = 1925 + (state >> 33) % 80;
        let month = 1 + (state >> 20) % 12;
        let day = 1 + (state >> 40) % 28;
        let code = codes[((state >> 12) % codes.len() as u64) as usize];
        text.push_str(&format!(
            "{year}-{month:02}-{day:02};2026-0{}-15;{code}\n",
            1 + (state >> 50) % 9
        ));
    }
    std::fs::write(&input, text).unwrap();
    let release = out.path().join("release.csv");
    let report = out.path().join("report.json");
    run_ok(
        kiban()
            .arg("anonymize")
            .arg(&input)
            .args([
                "--qi",
                "age,diagnosis",
                "--k",
                "5",
                "--max-suppression",
                "0",
            ])
            .args(["--age-at-event", "age=birth_date:visit_date"])
            .args([
                "--icd10",
                "diagnosis",
                "--local-recoding",
                "--metric",
                "loss",
            ])
            .arg("--out")
            .arg(&release)
            .arg("--report")
            .arg(&report),
    );
    let released = std::fs::read_to_string(&release).unwrap();
    let mut lines = released.lines();
    let header: Vec<&str> = lines.next().unwrap().split(';').collect();
    assert!(!header.contains(&"birth_date"), "{header:?}");
    let age_at = header.iter().position(|h| *h == "age").unwrap();
    let code_at = header.iter().position(|h| *h == "diagnosis").unwrap();
    let mut classes: HashMap<(String, String), usize> = HashMap::new();
    let mut rows = 0;
    for line in lines {
        rows += 1;
        let fields: Vec<&str> = line.split(';').collect();
        let (age, code) = (fields[age_at], fields[code_at]);
        let age_ok = age == "*"
            || age == "90+"
            || age.parse::<u32>().is_ok_and(|a| a < 90)
            || age
                .split_once('-')
                .is_some_and(|(lo, hi)| lo.parse::<u32>().is_ok() && hi.parse::<u32>().is_ok());
        assert!(age_ok, "age label {age}");
        let code_ok = code == "*"
            || codes.contains(&code)
            || (code.len() == 3 && codes.iter().any(|c| c.starts_with(code)))
            || code.contains('-');
        assert!(code_ok, "code label {code}");
        if !(age == "*" && code == "*") {
            *classes
                .entry((age.to_owned(), code.to_owned()))
                .or_insert(0) += 1;
        }
    }
    assert_eq!(rows, 600);
    assert!(classes.values().all(|&n| n >= 5), "{classes:?}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert!(json["local_recoding"].is_object(), "{json}");
    assert_eq!(json["derived_ages"][0]["column"], "age", "{json}");
}
