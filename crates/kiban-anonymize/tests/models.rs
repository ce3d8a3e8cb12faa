//! Typed columns, Parquet input, ordered and hierarchical t-closeness, the KL-divergence metric
//! and k-map with a population table. Every privacy claim of a report is recomputed here from
//! the released file alone (plus the hierarchy files and the population table), by code written
//! in this file and independent of the engine.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiban_anonymize::{
    AnonymizeError, AttributeType, HierarchySource, HierarchySpec, IntervalSpec, JobConfig, Metric,
    PrivacyModels, TDistance, run,
};

fn adult_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/adult")
}

fn adult_job(out: &Path, qis: &[&str], k: usize, suppression: f64) -> JobConfig {
    let mut job = JobConfig::new(
        adult_dir().join("adult_subset.csv"),
        out,
        qis.iter().map(|s| s.to_string()).collect(),
        PrivacyModels::k_anonymity(k, suppression),
    );
    job.hierarchy_dir = Some(adult_dir());
    job
}

/// A `;` file as header + rows of fields.
fn read_table(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(';').map(String::from).collect();
    let rows = lines
        .map(|l| l.split(';').map(String::from).collect())
        .collect();
    (header, rows)
}

/// Released classes: QI tuple → sensitive values of its rows (suppressed `*` rows left out),
/// and the sensitive values of all rows (the overall distribution).
type Classes = HashMap<Vec<String>, Vec<String>>;

fn released_classes(release: &Path, qis: &[&str], sensitive: &str) -> (Classes, Vec<String>) {
    let (header, rows) = read_table(release);
    let at = |name: &str| header.iter().position(|h| h == name).unwrap();
    let qi_at: Vec<usize> = qis.iter().map(|q| at(q)).collect();
    let s_at = at(sensitive);
    let mut classes: Classes = HashMap::new();
    let mut all = Vec::new();
    for row in rows {
        all.push(row[s_at].clone());
        let key: Vec<String> = qi_at.iter().map(|&i| row[i].clone()).collect();
        if !key.iter().all(|v| v == "*") {
            classes.entry(key).or_default().push(row[s_at].clone());
        }
    }
    (classes, all)
}

fn frequencies(values: &[String]) -> BTreeMap<String, f64> {
    let mut f = BTreeMap::new();
    for v in values {
        *f.entry(v.clone()).or_insert(0.0) += 1.0;
    }
    for x in f.values_mut() {
        *x /= values.len() as f64;
    }
    f
}

/// Ordered-distance EMD of Li et al.: values sorted numerically, the cumulative differences
/// summed and divided by m − 1.
fn ordered_emd(class: &[String], all: &[String]) -> f64 {
    let q = frequencies(all);
    let p = frequencies(class);
    let mut order: Vec<&String> = q.keys().collect();
    order.sort_by(|a, b| {
        a.parse::<f64>()
            .unwrap()
            .total_cmp(&b.parse::<f64>().unwrap())
    });
    let m = order.len();
    let mut cumulative = 0.0;
    let mut total = 0.0;
    for v in &order {
        cumulative += p.get(*v).copied().unwrap_or(0.0) - q[*v];
        total += f64::abs(cumulative);
    }
    total / (m - 1) as f64
}

/// An ARX hierarchy file as value → labels per level.
fn read_hierarchy(path: &Path) -> HashMap<String, Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let labels: Vec<String> = l.split(';').map(String::from).collect();
            (labels[0].clone(), labels)
        })
        .collect()
}

/// Hierarchical-distance EMD (Li et al. 2007), by nodes named (level, label): the extra of a
/// node is the sum of `p − q` over its leaves; its cost is `level / height` times the smaller of
/// the positive and negative extras of its children.
fn hierarchical_emd(class: &[String], all: &[String], tree: &HashMap<String, Vec<String>>) -> f64 {
    let q = frequencies(all);
    let p = frequencies(class);
    let height = tree.values().next().unwrap().len() - 1;
    let leaf_extra =
        |leaf: &String| p.get(leaf).copied().unwrap_or(0.0) - q.get(leaf).copied().unwrap_or(0.0);
    let mut cost = 0.0;
    for level in 1..=height {
        // Extras of the children (level − 1) of every node at `level`.
        let mut children: HashMap<&str, HashMap<&str, f64>> = HashMap::new();
        for (leaf, labels) in tree {
            *children
                .entry(labels[level].as_str())
                .or_default()
                .entry(labels[level - 1].as_str())
                .or_insert(0.0) += leaf_extra(leaf);
        }
        for kids in children.values() {
            let positive: f64 = kids.values().filter(|e| **e > 0.0).sum();
            let negative: f64 = -kids.values().filter(|e| **e < 0.0).sum::<f64>();
            cost += level as f64 / height as f64 * positive.min(negative);
        }
    }
    cost
}

#[test]
fn ordered_t_closeness_claim_holds_on_the_release() {
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("release.csv");
    let qis = ["sex", "race", "marital-status", "education", "salary-class"];
    let mut job = adult_job(&release, &qis, 5, 0.05);
    job.sensitive = vec!["age".into()];
    job.types.insert("age".into(), AttributeType::Integer);
    job.privacy.t_closeness = Some(0.12);
    job.privacy.t_distance = TDistance::Ordered;
    let report = run(&job).unwrap();
    assert_eq!(report.t_distance, Some(TDistance::Ordered));
    let (classes, all) = released_classes(&release, &qis, "age");
    assert!(!classes.is_empty());
    let measured = classes
        .values()
        .map(|c| ordered_emd(c, &all))
        .fold(0.0, f64::max);
    let claimed = report.t.unwrap();
    assert!(measured <= 0.12 + 1e-9, "released t = {measured}");
    assert!((measured - claimed).abs() < 1e-9, "{measured} vs {claimed}");
    assert_eq!(report.sensitive[0].t_ordered, Some(claimed));
    // The equal-distance t of the report is still the equal-distance one.
    assert!(report.sensitive[0].t >= 0.0);
}

#[test]
fn hierarchical_t_closeness_claim_holds_on_the_release() {
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("release.csv");
    let qis = ["sex", "age", "race", "marital-status", "salary-class"];
    let mut job = adult_job(&release, &qis, 3, 0.05);
    job.sensitive = vec!["occupation".into()];
    job.privacy.t_closeness = Some(0.3);
    job.privacy.t_distance = TDistance::Hierarchical;
    let report = run(&job).unwrap();
    let tree = read_hierarchy(&adult_dir().join("adult_hierarchy_occupation.csv"));
    let (classes, all) = released_classes(&release, &qis, "occupation");
    let measured = classes
        .values()
        .map(|c| hierarchical_emd(c, &all, &tree))
        .fold(0.0, f64::max);
    let claimed = report.t.unwrap();
    assert!(measured <= 0.3 + 1e-9, "released t = {measured}");
    assert!((measured - claimed).abs() < 1e-9, "{measured} vs {claimed}");
    assert_eq!(report.sensitive[0].t_hierarchical, Some(claimed));
    // Stricter than the unconstrained optimum: the constraint changed the solution or held.
    let mut loose = adult_job(&dir.path().join("loose.csv"), &qis, 3, 0.05);
    loose.sensitive = vec!["occupation".into()];
    let unconstrained = run(&loose).unwrap();
    assert!(report.information_loss >= unconstrained.information_loss - 1e-9);
}

#[test]
fn ordered_t_closeness_needs_an_ordered_column_and_hierarchical_a_hierarchy() {
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("release.csv");
    let mut job = adult_job(&release, &["sex", "age"], 2, 0.0);
    job.sensitive = vec!["occupation".into()];
    job.privacy.t_closeness = Some(0.2);
    job.privacy.t_distance = TDistance::Ordered;
    let e = run(&job).unwrap_err();
    assert!(
        matches!(&e, AnonymizeError::TypeMismatch { column, .. } if column == "occupation"),
        "{e}"
    );
    job.privacy.t_distance = TDistance::Hierarchical;
    job.sensitive = vec!["age".into()];
    job.quasi_identifiers = vec!["sex".into(), "race".into()];
    job.hierarchy_dir = Some(dir.path().to_path_buf());
    job.hierarchies.insert(
        "sex".into(),
        HierarchySource::File {
            file: adult_dir().join("adult_hierarchy_sex.csv"),
        },
    );
    job.hierarchies.insert(
        "race".into(),
        HierarchySource::File {
            file: adult_dir().join("adult_hierarchy_race.csv"),
        },
    );
    let e = run(&job).unwrap_err();
    assert!(
        matches!(&e, AnonymizeError::MissingHierarchy { column } if column == "age"),
        "{e}"
    );
    assert!(!release.exists());
}

/// KL divergence recomputed from the input, the release (rows in input order) and the
/// hierarchy files: P over original tuples, Q spreading each released class over the leaves
/// its labels cover.
#[test]
fn kl_divergence_metric_value_is_recomputed_from_the_release() {
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("release.csv");
    let qis = ["sex", "age", "race", "marital-status"];
    let mut job = adult_job(&release, &qis, 5, 0.02);
    job.metric = Metric::KlDivergence;
    let report = run(&job).unwrap();
    assert_eq!(report.metric_name, "KL-Divergence");
    let (in_header, input) = read_table(&adult_dir().join("adult_subset.csv"));
    let (out_header, output) = read_table(&release);
    assert_eq!(input.len(), output.len());
    let trees: Vec<HashMap<String, Vec<String>>> = qis
        .iter()
        .map(|q| read_hierarchy(&adult_dir().join(format!("adult_hierarchy_{q}.csv"))))
        .collect();
    let in_at: Vec<usize> = qis
        .iter()
        .map(|q| in_header.iter().position(|h| h == q).unwrap())
        .collect();
    let out_at: Vec<usize> = qis
        .iter()
        .map(|q| out_header.iter().position(|h| h == q).unwrap())
        .collect();
    let mut released_sizes: HashMap<Vec<String>, f64> = HashMap::new();
    let mut original_counts: HashMap<Vec<String>, (f64, Vec<String>)> = HashMap::new();
    for (i, o) in input.iter().zip(&output) {
        let original: Vec<String> = in_at.iter().map(|&a| i[a].clone()).collect();
        let released: Vec<String> = out_at.iter().map(|&a| o[a].clone()).collect();
        *released_sizes.entry(released.clone()).or_insert(0.0) += 1.0;
        original_counts.entry(original).or_insert((0.0, released)).0 += 1.0;
    }
    let n = input.len() as f64;
    let mut divergence = 0.0;
    for (count, released) in original_counts.values() {
        let suppressed = released.iter().all(|v| v == "*");
        let area: f64 = trees
            .iter()
            .enumerate()
            .map(|(j, tree)| {
                if suppressed {
                    tree.len() as f64
                } else {
                    let level = report.levels[j];
                    tree.values().filter(|l| l[level] == released[j]).count() as f64
                }
            })
            .product();
        let p = count / n;
        let q = released_sizes[released] / n / area;
        divergence += p * (p / q).ln();
    }
    assert!(
        (divergence - report.information_loss).abs() < 1e-6 * divergence.max(1.0),
        "{divergence} vs {}",
        report.information_loss
    );
}

#[test]
fn k_map_and_journalist_risk_hold_against_the_population() {
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("release.csv");
    let qis = ["sex", "age", "race", "marital-status", "education"];
    let mut job = adult_job(&release, &qis, 2, 0.02);
    job.population = Some(adult_dir().join("adult.csv"));
    job.privacy.k_map = Some(20);
    let report = run(&job).unwrap();
    // Independent recount: generalize every population row with the hierarchy files.
    let trees: Vec<HashMap<String, Vec<String>>> = qis
        .iter()
        .map(|q| read_hierarchy(&adult_dir().join(format!("adult_hierarchy_{q}.csv"))))
        .collect();
    let (pop_header, population) = read_table(&adult_dir().join("adult.csv"));
    let pop_at: Vec<usize> = qis
        .iter()
        .map(|q| pop_header.iter().position(|h| h == q).unwrap())
        .collect();
    let mut generalized: HashMap<Vec<String>, usize> = HashMap::new();
    for row in &population {
        let key: Vec<String> = pop_at
            .iter()
            .enumerate()
            .map(|(j, &a)| trees[j][&row[a]][report.levels[j]].clone())
            .collect();
        *generalized.entry(key).or_insert(0) += 1;
    }
    let (header, rows) = read_table(&release);
    let at: Vec<usize> = qis
        .iter()
        .map(|q| header.iter().position(|h| h == q).unwrap())
        .collect();
    let mut sizes: HashMap<Vec<String>, usize> = HashMap::new();
    for row in &rows {
        let key: Vec<String> = at.iter().map(|&a| row[a].clone()).collect();
        if !key.iter().all(|v| v == "*") {
            *sizes.entry(key).or_insert(0) += 1;
        }
    }
    let members: Vec<(usize, usize)> = sizes
        .iter()
        .map(|(key, &size)| (size, generalized.get(key).copied().unwrap_or(0)))
        .collect();
    let k_map = members.iter().map(|m| m.1).min().unwrap();
    assert!(
        k_map >= 20,
        "a released class occurs {k_map} times in the population"
    );
    assert_eq!(report.k_map, Some(k_map as u64));
    assert_eq!(report.population_records, Some(population.len() as u64));
    let risks: Vec<(usize, f64)> = members
        .iter()
        .map(|&(size, pop)| (size, 1.0 / pop.max(size) as f64))
        .collect();
    let max = risks.iter().map(|r| r.1).fold(0.0, f64::max);
    let released: usize = risks.iter().map(|r| r.0).sum();
    let mean = risks.iter().map(|&(s, r)| s as f64 * r).sum::<f64>() / released as f64;
    assert!((report.risk.journalist_max - max).abs() < 1e-12);
    assert!((report.risk.journalist_mean - mean).abs() < 1e-12);
    assert!(report.risk.journalist_max <= 1.0 / 20.0 + 1e-12);
    assert_eq!(
        report.risk.journalist_basis,
        kiban_anonymize::JOURNALIST_WITH_POPULATION
    );
}

fn tiny(dir: &Path, data: &str, population: &str) -> JobConfig {
    std::fs::write(dir.join("tiny.csv"), data).unwrap();
    std::fs::write(dir.join("population.csv"), population).unwrap();
    let mut job = JobConfig::new(
        dir.join("tiny.csv"),
        dir.join("release.csv"),
        vec!["age".into(), "sex".into()],
        PrivacyModels::k_anonymity(1, 0.0),
    );
    job.hierarchies.insert(
        "age".into(),
        HierarchySource::Built(HierarchySpec::Intervals(IntervalSpec {
            bottom: 0,
            top: 100,
            widths: vec![10, 50],
        })),
    );
    job.hierarchies.insert(
        "sex".into(),
        HierarchySource::Built(HierarchySpec::Grouping(kiban_anonymize::GroupingSpec {
            levels: vec![],
        })),
    );
    job.population = Some(dir.join("population.csv"));
    job.privacy.k_map = Some(10);
    job
}

#[test]
fn population_count_column_and_bad_population_tables() {
    let dir = tempfile::tempdir().unwrap();
    let data = "age;sex\n31;F\n35;F\n52;M\n";
    // 31 and 35 share 30-39 with 4 + 7 = 11 members; 52 alone has 9, 50-59 has 10.
    let population = "age;sex;count\n31;F;4\n35;F;7\n52;M;9\n53;M;1\n";
    let job = tiny(dir.path(), data, population);
    let report = run(&job).unwrap();
    assert_eq!(report.population_records, Some(21));
    assert!(report.k_map.unwrap() >= 10);
    assert_eq!(report.suppressed_records, 0);
    assert_eq!(
        report.levels,
        vec![1, 0],
        "52 and 53 pooled in 50-59 reach 10"
    );
    std::fs::remove_file(dir.path().join("release.csv")).unwrap();

    let bad = [
        ("age;count\n31;4\n", "no column `sex`"),
        ("age;sex;count\n31;F;-4\n", "count"),
        ("age;sex;count\n31;F;many\n", "count"),
    ];
    for (table, expected) in bad {
        let job = tiny(dir.path(), data, table);
        let e = run(&job).unwrap_err();
        assert!(e.to_string().contains(expected), "{e}");
        assert!(!e.to_string().contains("many"), "{e}");
        assert!(!dir.path().join("release.csv").exists());
    }
    let mut job = tiny(dir.path(), data, population);
    job.population = None;
    assert!(matches!(
        run(&job),
        Err(AnonymizeError::InvalidParameter(_))
    ));
}

#[test]
fn typed_columns_are_validated_at_load_without_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let data = "age;sex\n31;F\n35;F\n4O;M\n52;M\n";
    let job_with = |types: &[(&str, &str)]| {
        let mut job = tiny(dir.path(), data, "age;sex\n31;F\n");
        job.population = None;
        job.privacy.k_map = None;
        job.types = types
            .iter()
            .map(|(c, t)| (c.to_string(), t.parse().unwrap()))
            .collect();
        job
    };
    let e = run(&job_with(&[("age", "integer")])).unwrap_err();
    let message = e.to_string();
    assert!(
        matches!(&e, AnonymizeError::InvalidValue { line: 4, column, .. } if column == "age"),
        "{message}"
    );
    assert!(message.contains("tiny.csv") && message.contains("integer"));
    assert!(!message.contains("4O"), "{message}");
    // Undeclared, the intervals builder validates the column as numbers, naming the line.
    let e = run(&job_with(&[])).unwrap_err();
    assert!(
        matches!(e, AnonymizeError::InvalidValue { line: 4, .. }),
        "{e}"
    );
    // A column declared as a date cannot take an intervals hierarchy.
    let mut job = job_with(&[]);
    std::fs::write(dir.path().join("tiny.csv"), "age;sex\n2001-01-01;F\n").unwrap();
    job.types.insert("age".into(), AttributeType::Date);
    let e = run(&job).unwrap_err();
    assert!(matches!(e, AnonymizeError::TypeMismatch { .. }), "{e}");
    assert!(!dir.path().join("release.csv").exists());
}

#[test]
fn missing_values_stay_their_own_value_in_typed_columns() {
    let dir = tempfile::tempdir().unwrap();
    let data = "age;sex\n31;F\n?;F\n35;F\n?;F\n";
    let mut job = tiny(dir.path(), data, "age;sex\n31;F\n");
    job.population = None;
    job.privacy.k_map = None;
    job.privacy.k = 2;
    job.types.insert("age".into(), AttributeType::Integer);
    let report = run(&job).unwrap();
    assert_eq!(report.levels[0], 1);
    let text = std::fs::read_to_string(dir.path().join("release.csv")).unwrap();
    let released: BTreeSet<&str> = text.lines().skip(1).collect();
    assert_eq!(released, BTreeSet::from(["30-39;F", "?;F"]));
}

#[test]
fn parquet_input_is_anonymized_like_its_csv() {
    use arrow_array::{Int64Array, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    let dir = tempfile::tempdir().unwrap();
    let (header, rows) = read_table(&adult_dir().join("adult_subset.csv"));
    let fields: Vec<Field> = header
        .iter()
        .map(|h| {
            let kind = if h == "age" {
                DataType::Int64
            } else {
                DataType::Utf8
            };
            Field::new(h, kind, false)
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let path = dir.path().join("adult_subset.parquet");
    let file = std::fs::File::create(&path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, Arc::clone(&schema), None).unwrap();
    for chunk in rows.chunks(700) {
        let columns: Vec<arrow_array::ArrayRef> = header
            .iter()
            .enumerate()
            .map(|(c, h)| -> arrow_array::ArrayRef {
                if h == "age" {
                    Arc::new(Int64Array::from_iter_values(
                        chunk.iter().map(|r| r[c].parse::<i64>().unwrap()),
                    ))
                } else {
                    Arc::new(StringArray::from_iter_values(chunk.iter().map(|r| &r[c])))
                }
            })
            .collect();
        writer
            .write(&RecordBatch::try_new(Arc::clone(&schema), columns).unwrap())
            .unwrap();
    }
    writer.close().unwrap();
    let qis = ["sex", "age", "race", "marital-status"];
    let from_csv = run(&adult_job(&dir.path().join("csv.csv"), &qis, 5, 0.02)).unwrap();
    let mut job = adult_job(&dir.path().join("parquet.csv"), &qis, 5, 0.02);
    job.input = path;
    job.hierarchies.insert(
        "age".into(),
        HierarchySource::File {
            file: adult_dir().join("adult_hierarchy_age.csv"),
        },
    );
    let from_parquet = run(&job).unwrap();
    assert_eq!(from_parquet.levels, from_csv.levels);
    assert_eq!(from_parquet.information_loss, from_csv.information_loss);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("parquet.csv")).unwrap(),
        std::fs::read_to_string(dir.path().join("csv.csv")).unwrap()
    );
    // An ordered t-closeness on the Parquet integer column needs no type declaration.
    let mut ordered = job.clone();
    ordered.output = dir.path().join("ordered.csv");
    ordered.quasi_identifiers = vec!["sex".into(), "race".into()];
    ordered.sensitive = vec!["age".into()];
    ordered.privacy.t_closeness = Some(0.3);
    ordered.privacy.t_distance = TDistance::Ordered;
    let report = run(&ordered).unwrap();
    assert!(report.t.unwrap() <= 0.3 + 1e-12);
}

/// Adult subset as a public population with every third record in the research subset.
fn population_with_subset(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(adult_dir().join("adult_subset.csv")).unwrap();
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        let flag = match i {
            0 => "in_study",
            _ if i % 3 == 0 => "true",
            _ => "false",
        };
        out.push_str(&format!("{line};{flag}\n"));
    }
    let path = dir.join("people.csv");
    std::fs::write(&path, out).unwrap();
    path
}

#[test]
fn delta_presence_holds_and_only_the_subset_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let input = population_with_subset(dir.path());
    let release = dir.path().join("release.csv");
    let qis = ["sex", "age", "race", "marital-status"];
    let mut job = adult_job(&release, &qis, 2, 0.05);
    job.input = input.clone();
    job.privacy.delta_presence = Some(kiban_anonymize::DeltaPresence {
        delta_min: 0.1,
        delta_max: 0.5,
        subset_column: "in_study".into(),
    });
    let report = run(&job).unwrap();
    let (in_header, population) = read_table(&input);
    let flag_at = in_header.iter().position(|h| h == "in_study").unwrap();
    let subset = population.iter().filter(|r| r[flag_at] == "true").count();
    let (header, rows) = read_table(&release);
    assert!(!header.iter().any(|h| h == "in_study"));
    assert_eq!(rows.len(), subset);
    assert_eq!(report.records, subset);
    assert_eq!(report.presence_records, Some(population.len()));
    assert!(report.suppressed_records as f64 <= 0.05 * subset as f64);
    // Generalize the whole population with the hierarchy files at the reported levels.
    let trees: Vec<HashMap<String, Vec<String>>> = qis
        .iter()
        .map(|q| read_hierarchy(&adult_dir().join(format!("adult_hierarchy_{q}.csv"))))
        .collect();
    let in_at: Vec<usize> = qis
        .iter()
        .map(|q| in_header.iter().position(|h| h == q).unwrap())
        .collect();
    let mut members: HashMap<Vec<String>, usize> = HashMap::new();
    for row in &population {
        let key: Vec<String> = in_at
            .iter()
            .enumerate()
            .map(|(j, &a)| trees[j][&row[a]][report.levels[j]].clone())
            .collect();
        *members.entry(key).or_insert(0) += 1;
    }
    let at: Vec<usize> = qis
        .iter()
        .map(|q| header.iter().position(|h| h == q).unwrap())
        .collect();
    let mut released: HashMap<Vec<String>, usize> = HashMap::new();
    for row in &rows {
        let key: Vec<String> = at.iter().map(|&a| row[a].clone()).collect();
        if !key.iter().all(|v| v == "*") {
            *released.entry(key).or_insert(0) += 1;
        }
    }
    let deltas: Vec<f64> = released
        .iter()
        .map(|(key, &n)| n as f64 / members[key] as f64)
        .collect();
    let low = deltas.iter().copied().fold(f64::INFINITY, f64::min);
    let high = deltas.iter().copied().fold(0.0, f64::max);
    assert!(
        low >= 0.1 - 1e-12 && high <= 0.5 + 1e-12,
        "δ in [{low}, {high}]"
    );
    let [claimed_low, claimed_high] = report.delta_presence.unwrap();
    assert!((claimed_low - low).abs() < 1e-12 && (claimed_high - high).abs() < 1e-12);
    assert!(released.values().all(|&n| n >= 2));
}

#[test]
fn a_bad_subset_flag_is_named_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut job = tiny(
        dir.path(),
        "age;sex;s\n31;F;true\n35;F;maybe\n",
        "age;sex\n31;F\n",
    );
    job.population = None;
    job.privacy.k_map = None;
    job.privacy.delta_presence = Some(kiban_anonymize::DeltaPresence {
        delta_min: 0.0,
        delta_max: 1.0,
        subset_column: "s".into(),
    });
    let e = run(&job).unwrap_err();
    assert!(
        matches!(&e, AnonymizeError::InvalidValue { line: 3, column, .. } if column == "s"),
        "{e}"
    );
    assert!(!e.to_string().contains("maybe"));
    std::fs::write(
        dir.path().join("tiny.csv"),
        "age;sex;s\n31;F;TRUE\n35;F;0\n",
    )
    .unwrap();
    job.privacy.delta_presence.as_mut().unwrap().delta_min = 0.9;
    job.privacy.delta_presence.as_mut().unwrap().delta_max = 0.5;
    assert!(matches!(
        run(&job),
        Err(AnonymizeError::InvalidParameter(_))
    ));
    assert!(!dir.path().join("release.csv").exists());
}

#[test]
fn microaggregated_ages_are_the_class_means_and_k_still_holds() {
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("release.csv");
    let qis = ["sex", "age", "race", "marital-status"];
    let mut job = adult_job(&release, &qis, 5, 0.02);
    job.types.insert("age".into(), AttributeType::Integer);
    job.microaggregation
        .insert("age".into(), kiban_anonymize::Aggregation::Mean);
    let report = run(&job).unwrap();
    assert_eq!(report.microaggregation.len(), 1);
    let (in_header, input) = read_table(&adult_dir().join("adult_subset.csv"));
    let (header, output) = read_table(&release);
    let age_in = in_header.iter().position(|h| h == "age").unwrap();
    let at: Vec<usize> = qis
        .iter()
        .map(|q| header.iter().position(|h| h == q).unwrap())
        .collect();
    let age_out = header.iter().position(|h| h == "age").unwrap();
    // Released class (by the released QI values) → original ages of its rows.
    let mut classes: HashMap<Vec<String>, Vec<f64>> = HashMap::new();
    for (i, o) in input.iter().zip(&output) {
        let key: Vec<String> = at.iter().map(|&a| o[a].clone()).collect();
        if !key.iter().all(|v| v == "*") {
            classes
                .entry(key)
                .or_default()
                .push(i[age_in].parse().unwrap());
        }
    }
    let mut squared = 0.0;
    let mut n = 0.0;
    for (key, ages) in &classes {
        assert!(ages.len() >= 5, "a class of {} released", ages.len());
        let mean = ages.iter().sum::<f64>() / ages.len() as f64;
        let released: f64 = key[at.iter().position(|&a| a == age_out).unwrap()]
            .parse()
            .unwrap();
        assert!((released - mean).abs() < 1e-6, "{released} vs {mean}");
        squared += ages.iter().map(|a| (a - mean).powi(2)).sum::<f64>();
        n += ages.len() as f64;
    }
    let mse = report.microaggregation[0].mean_squared_error;
    assert!((mse - squared / n).abs() < 1e-3 * mse.max(1.0), "{mse}");
    // A string column cannot be microaggregated.
    let mut bad = adult_job(&dir.path().join("bad.csv"), &qis, 5, 0.02);
    bad.microaggregation
        .insert("race".into(), kiban_anonymize::Aggregation::Median);
    assert!(matches!(
        run(&bad),
        Err(AnonymizeError::TypeMismatch { .. })
    ));
    assert!(!dir.path().join("bad.csv").exists());
}
