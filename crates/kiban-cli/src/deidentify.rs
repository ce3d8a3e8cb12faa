//! `kiban deidentify`: a release of an extraction for one project, pseudonymized (仮名加工) or
//! anonymized (匿名加工), with its re-identification test (再識別テスト).
//!
//! The release is built in a staging folder next to `--out` and renamed into place only when
//! every step, including the re-identification test, has passed: a blocked or failed release
//! leaves nothing behind. Project keys stay in the key store (`DATA_DIR/keyring/projects`,
//! wrapped by the master key); the report is written beside the release, never inside it.

use anyhow::{Context, Result, bail};
use kiban_anonymize::{
    AttributeRoles, Dataset, Hierarchy, Metric, PrivacyModels, SearchConfig, Settings, anonymize,
};
use kiban_collection::Collection;
use kiban_deidentify::{
    AttackerErrorModel, AttackerKnowledge, DECEASED_COLUMN, DiagnosisSetOptions, FreeTextRule,
    FreeTextScrubber, PersonMap, ProjectKeyRing, ProviderHandling, QuasiIdentifierOptions,
    RareValueOptions, ReidentificationPolicy, ReleaseKind, ReleaseOptions, ReleasedPersonTable,
    derive_quasi_identifiers, hierarchy_rows_with, linkage_attack, write_json_report,
    write_release_with_scrubber,
};
use kiban_metadata::Metadata;
use kiban_model::{ClinicalTable, IdentityRow, TableRow};
use kiban_store::{KeyProvider, Store};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::keys::open_existing_store;

/// Kind of release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeidentifyKind {
    /// 仮名加工: identifiers replaced by project pseudonyms, dates shifted, free text dropped,
    /// rare values kept (for certified users).
    Pseudonymized,
    /// 匿名加工: as pseudonymized, plus rare codes recoded, extreme lab values and ages
    /// top/bottom coded, and a k-anonymous person table (age, sex, region, visits, and
    /// deceased when the extraction holds deaths).
    Anonymized,
}

/// What to do with provider ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProviderChoice {
    /// Keep them as they are.
    Keep,
    /// Replace them by project pseudonyms.
    Pseudonymize,
    /// Remove them.
    Drop,
}

/// What to do with free text (documents' text and title, display names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FreeTextChoice {
    /// Remove every free-text column (the default for both kinds of release).
    Drop,
    /// Release free text with identifying mentions replaced by tags (［氏名］, ［住所］,
    /// ［電話番号］, ［ID］, ...) and dates shifted (anonymized: cut to year and month). For
    /// an anonymized release this is an explicit opt-in, recorded in the report.
    Scrub,
}

/// A knowledge level of the re-identification attacker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KnowledgeChoice {
    /// Birth date, sex and address region.
    Demographics,
    /// Also the approximate number of visits.
    Visits,
    /// Also some of the person's diagnoses.
    Diagnoses,
    /// Visits and m items of any kinds: diagnoses, procedures, allergies, infection results.
    ClinicalItems,
}

/// Arguments of `kiban deidentify`.
#[derive(Debug, clap::Args)]
pub struct DeidentifyArgs {
    /// Store location (its master key unwraps the project keys; its identity data gives the
    /// person table and the attacker's knowledge).
    #[command(flatten)]
    pub store: crate::StoreArgs,
    /// The extraction to release (the folder `kiban extract` wrote).
    #[arg(long, value_name = "EXTRACT_DIR")]
    pub extract: PathBuf,
    /// Release folder to create (must be absent or empty).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Project (recipient) the pseudonyms are keyed for: stable across deliveries of one
    /// project, unlinkable across projects.
    #[arg(long)]
    pub project: String,
    /// Kind of release.
    #[arg(long, value_enum, default_value = "pseudonymized")]
    pub kind: DeidentifyKind,
    /// Provider ids in the release.
    #[arg(long, value_enum, default_value = "pseudonymize")]
    pub provider: ProviderChoice,
    /// Largest date shift, in days (each person gets one offset in ±this).
    #[arg(long, default_value_t = 30)]
    pub max_date_shift_days: u32,
    /// Free text: dropped (default) or scrubbed of names, addresses, phone numbers, ids and
    /// birth dates, with dates shifted like the structured dates.
    #[arg(long, value_enum, default_value = "drop")]
    pub free_text: FreeTextChoice,
    /// Anonymized: codes held by fewer persons are recoded up a level or removed.
    #[arg(long, default_value_t = 10)]
    pub min_persons: usize,
    /// Anonymized: k of the person table.
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    /// Anonymized: largest share of persons whose row may be suppressed.
    #[arg(long, default_value_t = 0.05)]
    pub max_suppression: f64,
    /// Largest share of persons the re-identification test may re-identify; above it the
    /// release is blocked (not written). Default: 0.05 for anonymized releases; none for
    /// pseudonymized ones, which certified users receive under contract with their rare
    /// values kept (the test is still run and reported).
    #[arg(long)]
    pub max_reidentification: Option<f64>,
    /// What the re-identification attacker knows: `demographics` (birth date, sex, address
    /// region, whether the person died), `visits` (also the approximate number of visits),
    /// `diagnoses` (also some diagnoses), `clinical-items` (visits and m items of any kinds:
    /// diagnoses, procedures, allergies, infection results). Each level is tested and
    /// reported; the release is judged on the worst.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "demographics,visits,diagnoses,clinical-items"
    )]
    pub attacker_knowledge: Vec<KnowledgeChoice>,
    /// The re-identification attacker's error model as JSON (`AttackerErrorModel`: seed,
    /// error shares, `known_diagnoses`, `known_items`; fields left out take their defaults).
    /// `--attacker-knowledge` still chooses the levels. Default: the built-in model, with
    /// `known_items` the m of the k^m rule in anonymized releases.
    #[arg(long, value_name = "JSON_FILE")]
    pub attacker_model: Option<PathBuf>,
    /// Anonymized: m of the diagnosis set's k^m rule (every combination of at most m released
    /// diagnosis categories is held by at least k persons, in `persons.csv` and in the
    /// conditions table alike; and of the combined set of diagnoses, procedures, allergies and
    /// infections). Default: the number of diagnoses the attacker is assumed to know (2); at
    /// most 4.
    #[arg(long, value_name = "M")]
    pub diagnosis_m: Option<usize>,
    /// Leave the encounters table out of the release, with the references to it
    /// (`conditions.encounter_id`). Anonymized: the number of visits in persons.csv may then
    /// be generalized to bands (1, 2-3, 4-7, 8-15, 16+), since the release no longer lets
    /// anyone count a person's encounters.
    #[arg(long)]
    pub without_encounters: bool,
    /// Report (JSON) to write; default `<OUT>.report.json` beside the release.
    #[arg(long, value_name = "REPORT_JSON")]
    pub report: Option<PathBuf>,
}

/// The whole report of a release: counts and rules only.
#[derive(Debug, Serialize)]
pub(crate) struct DeidentifyReport {
    pub(crate) project: String,
    pub(crate) kind: &'static str,
    pub(crate) release: kiban_deidentify::ReleaseReport,
    pub(crate) person_table: Option<PersonTableReport>,
    pub(crate) reidentification: kiban_deidentify::ReidentificationReport,
}

/// The anonymized person table's part of the report.
#[derive(Debug, Serialize)]
pub(crate) struct PersonTableReport {
    pub(crate) derivation: kiban_deidentify::QuasiIdentifierReport,
    pub(crate) anonymization: kiban_anonymize::Report,
    /// The k^m rule of the diagnosis set as it holds in the released `persons.csv` (applied
    /// again after k-anonymity suppressed rows); the conditions table follows it
    /// (`release.diagnosis_sets`).
    pub(crate) diagnosis_sets: Option<kiban_deidentify::DiagnosisSetReport>,
}

/// Runs `kiban deidentify`.
pub async fn run(args: DeidentifyArgs) -> Result<()> {
    if !args.extract.is_dir() {
        bail!(
            "{} is not an extraction folder (run `kiban extract` first)",
            args.extract.display()
        );
    }
    let opened =
        open_existing_store(&args.store.data_dir, args.store.keys.key_file.as_deref()).await?;
    let released = release(
        &opened.store,
        &opened.meta,
        &opened.collection,
        opened.keys.as_ref(),
        &args,
    )
    .await;
    opened.meta.close().await;
    let (report, report_path) = released?;
    for line in summary_lines(&report, &args, &report_path) {
        println!("{line}");
    }
    Ok(())
}

/// The summary of a release, one line per step, each in English then Japanese (as other
/// messages of kiban).
fn summary_lines(
    report: &DeidentifyReport,
    args: &DeidentifyArgs,
    report_path: &Path,
) -> Vec<String> {
    let mut lines = Vec::new();
    let kind_ja = match report.kind {
        "anonymized" => "匿名加工",
        _ => "仮名加工",
    };
    let persons = report.release.persons;
    let rows = report.release.tables.values().map(|t| t.rows).sum::<u64>();
    lines.push(format!(
        "deidentify: {} release for project {} -> {} ({persons} persons, {rows} rows) / {kind_ja}データ: プロジェクト {} → {}（{persons}人、{rows}行）",
        report.kind,
        report.project,
        args.out.display(),
        report.project,
        args.out.display(),
    ));
    if let Some(table) = &report.person_table {
        let a = &table.anonymization;
        lines.push(format!(
            "  person table: {} persons, k = {} at levels {:?} for [{}], {} suppressed / 個人表: {}人、k = {}（一般化レベル {:?}、対象 [{}]）、{}人を削除",
            a.records,
            a.k,
            a.levels,
            a.quasi_identifiers.join(", "),
            a.suppressed_records,
            a.records,
            a.k,
            a.levels,
            a.quasi_identifiers.join(", "),
            a.suppressed_records
        ));
        if args.without_encounters {
            lines.push(format!(
                "  without encounters: visits in persons.csv may be banded ({}) / 受診表なし: persons.csv の受診回数は区間に一般化される場合があります",
                table.derivation.visits_rule
            ));
        }
        if let Some(sets) = &table.diagnosis_sets {
            lines.push(format!(
                "  diagnosis sets: k^m with k = {}, m = {}: {} generalized to a block, {} to a chapter, {} items suppressed in {} persons (loss {:.4}) / 病名集合: k^m（k = {}、m = {}）: ブロックへ一般化 {}、章へ一般化 {}、{}人で{}項目を削除（損失 {:.4}）",
                sets.k,
                sets.m,
                sets.generalized_to_block.len(),
                sets.generalized_to_chapter.len(),
                sets.items_suppressed,
                sets.persons_with_suppression,
                sets.loss,
                sets.k,
                sets.m,
                sets.generalized_to_block.len(),
                sets.generalized_to_chapter.len(),
                sets.persons_with_suppression,
                sets.items_suppressed,
                sets.loss
            ));
        }
    }
    if let Some(conditions) = &report.release.diagnosis_sets {
        let removed = conditions.rows_suppressed
            + conditions.rows_outside_diagnosis_set
            + conditions.rows_of_withheld_persons;
        lines.push(format!(
            "  conditions follow the diagnosis sets: {} rows generalized, {} released as category, {removed} removed (suppressed {}, outside the set {}, persons withheld {}) / 傷病名表は病名集合に従う: 一般化 {}行、3桁分類で公開 {}行、削除 {removed}行（抑制 {}、集合外 {}、除外された人 {}）",
            conditions.rows_generalized,
            conditions.rows_as_category,
            conditions.rows_suppressed,
            conditions.rows_outside_diagnosis_set,
            conditions.rows_of_withheld_persons,
            conditions.rows_generalized,
            conditions.rows_as_category,
            conditions.rows_suppressed,
            conditions.rows_outside_diagnosis_set,
            conditions.rows_of_withheld_persons
        ));
    }
    if let Some(items) = &report.release.clinical_item_sets {
        let per_table = |ja: bool| {
            items
                .tables
                .iter()
                .map(|(table, t)| {
                    if ja {
                        format!(
                            "{table} 一般化 {}行・削除 {}行",
                            t.rows_generalized,
                            t.rows_suppressed + t.rows_code_below_min_persons
                        )
                    } else {
                        format!(
                            "{table} {} generalized, {} removed",
                            t.rows_generalized,
                            t.rows_suppressed + t.rows_code_below_min_persons
                        )
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        lines.push(format!(
            "  diagnoses with procedures, allergies and infections: k^m with k = {}, m = {}: {} generalized, {} items suppressed in {} persons, {} codes below the rare-value threshold (rows: {}) / 病名・処置・アレルギー・感染症の組合せ: k^m（k = {}、m = {}）: 一般化 {}、{}人で{}項目を削除、人数不足のコード {}（行: {}）",
            items.k,
            items.m,
            items.generalized.len(),
            items.items_suppressed,
            items.persons_with_suppression,
            items.codes_below_min_persons,
            per_table(false),
            items.k,
            items.m,
            items.generalized.len(),
            items.persons_with_suppression,
            items.items_suppressed,
            items.codes_below_min_persons,
            per_table(true)
        ));
    }
    if let Some(scrub) = &report.release.free_text_scrub {
        let t = &scrub.total;
        let replaced = t.total() - t.dates_shifted - t.dates_generalized;
        let dates = t.dates_shifted + t.dates_generalized;
        lines.push(format!(
            "  free text scrubbed: {} texts, {replaced} mentions replaced ({} names, {} addresses, {} phone numbers, {} ids, {} birth dates), {dates} dates rewritten / 自由記載の加工: {}件、{replaced}箇所を置換（氏名 {}、住所 {}、電話番号 {}、ID {}、生年月日 {}）、日付 {dates}箇所を書き換え",
            t.texts,
            t.names,
            t.addresses,
            t.phones,
            t.ids,
            t.birth_dates,
            t.texts,
            t.names,
            t.addresses,
            t.phones,
            t.ids,
            t.birth_dates
        ));
    }
    let test = &report.reidentification;
    lines.push(format!(
        "  re-identification test: {} of {} attacker records re-identified ({:.4}, limit {:.4}; worst knowledge: {:?}) / 再識別テスト: 攻撃者レコード {}件中 {}件を再識別（{:.4}、上限 {:.4}、最悪の知識水準: {:?}）",
        test.correct_reidentifications,
        test.attempts,
        test.share,
        test.max_share,
        test.worst_level,
        test.attempts,
        test.correct_reidentifications,
        test.share,
        test.max_share,
        test.worst_level
    ));
    for level in &test.levels {
        lines.push(format!(
            "    knowing {:?} [{}]: {:.4} / 知識 {:?} [{}]: {:.4}",
            level.knowledge,
            level.matched_columns.join(", "),
            level.share,
            level.knowledge,
            level.matched_columns.join(", "),
            level.share
        ));
    }
    lines.push(format!(
        "  report: {} / 報告書: {}",
        report_path.display(),
        report_path.display()
    ));
    lines
}

/// Builds, tests and writes one release from an open store; returns its report and where the
/// report was written. Nothing is left at `args.out` unless the release passed.
pub(crate) async fn release(
    store: &Store,
    meta: &Metadata,
    collection: &Collection,
    keys: &dyn KeyProvider,
    args: &DeidentifyArgs,
) -> Result<(DeidentifyReport, PathBuf)> {
    let out = &args.out;
    if out.exists() && std::fs::read_dir(out).map(|mut d| d.next().is_some())? {
        bail!("{} exists and is not empty", out.display());
    }
    let report_path = args.report.clone().unwrap_or_else(|| {
        let mut name = out.file_name().unwrap_or_default().to_os_string();
        name.push(".report.json");
        out.with_file_name(name)
    });
    if report_path.starts_with(out) {
        bail!("the report must be written outside the release folder (R-P3)");
    }

    let all_identities = read_identity_rows(store, meta).await?;
    // Linked persons (`kiban link --data`): one pseudonym per person across providers; an
    // unlinked record is a person of its own.
    let mut persons = PersonMap::new();
    for link in meta.person_links().await? {
        persons.insert(&link.provider_id, &link.patient_key, &link.person_id);
    }
    // The scrubber knows every name of the identity store, opted-out patients' included: their
    // names may appear in other persons' texts.
    let scrubber = match args.free_text {
        FreeTextChoice::Drop => None,
        FreeTextChoice::Scrub => {
            Some(FreeTextScrubber::new(&all_identities, &persons).context("free-text scrubber")?)
        }
    };
    let identities = without_refusals(all_identities, collection).await?;

    let ring = ProjectKeyRing::new(&store.data_dir().join("keyring").join("projects"), keys);
    let key = ring
        .project_key(&args.project)
        .with_context(|| format!("key of project {}", args.project))?;
    let rare = RareValueOptions {
        min_persons: args.min_persons,
        ..RareValueOptions::default()
    };
    let options = ReleaseOptions {
        kind: match args.kind {
            DeidentifyKind::Pseudonymized => ReleaseKind::Pseudonymized,
            DeidentifyKind::Anonymized => ReleaseKind::Anonymized(rare.clone()),
        },
        provider_id: match args.provider {
            ProviderChoice::Keep => ProviderHandling::Keep,
            ProviderChoice::Pseudonymize => ProviderHandling::Pseudonymize,
            ProviderChoice::Drop => ProviderHandling::Drop,
        },
        max_date_shift_days: args.max_date_shift_days,
        tables: if args.without_encounters {
            ClinicalTable::ALL
                .iter()
                .copied()
                .filter(|t| *t != ClinicalTable::Encounters)
                .collect()
        } else {
            Vec::new()
        },
        free_text: match args.free_text {
            FreeTextChoice::Drop => FreeTextRule::Drop,
            FreeTextChoice::Scrub => FreeTextRule::Scrub,
        },
        ..ReleaseOptions::default()
    };

    let staging = staging_path(out);
    let outcome = build_release(
        args,
        &staging,
        &key,
        &persons,
        &options,
        &rare,
        &identities,
        scrubber.as_ref(),
    );
    let mut report = match outcome {
        Ok(report) => report,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    report.release.release_dir = out.clone();
    write_json_report(&report, &report_path).context("release report")?;
    if report.reidentification.blocked {
        let _ = std::fs::remove_dir_all(&staging);
        bail!(
            "release blocked by the re-identification test: {:.4} of persons re-identified, above the limit {:.4} (report: {})",
            report.reidentification.share,
            report.reidentification.max_share,
            report_path.display()
        );
    }
    if out.exists() {
        std::fs::remove_dir(out).with_context(|| format!("empty folder {}", out.display()))?;
    }
    std::fs::rename(&staging, out).with_context(|| format!("release into {}", out.display()))?;

    Ok((report, report_path))
}

/// Builds the whole release in `staging`; the re-identification result decides whether it
/// is kept.
#[allow(clippy::too_many_arguments)]
fn build_release(
    args: &DeidentifyArgs,
    staging: &Path,
    key: &kiban_deidentify::ProjectKey,
    persons: &PersonMap,
    options: &ReleaseOptions,
    rare: &RareValueOptions,
    identities: &[IdentityRow],
    scrubber: Option<&FreeTextScrubber>,
) -> Result<DeidentifyReport> {
    let policy = ReidentificationPolicy {
        max_share: args.max_reidentification.unwrap_or(match args.kind {
            DeidentifyKind::Anonymized => ReidentificationPolicy::default().max_share,
            DeidentifyKind::Pseudonymized => 1.0,
        }),
    };
    let model = match &args.attacker_model {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("attacker model {}", path.display()))?;
            Some(
                serde_json::from_slice::<AttackerErrorModel>(&bytes)
                    .with_context(|| format!("attacker model {}", path.display()))?,
            )
        }
        None => None,
    };
    let mut errors = AttackerErrorModel {
        knowledge: args
            .attacker_knowledge
            .iter()
            .map(|k| match k {
                KnowledgeChoice::Demographics => AttackerKnowledge::Demographics,
                KnowledgeChoice::Visits => AttackerKnowledge::Visits,
                KnowledgeChoice::Diagnoses => AttackerKnowledge::Diagnoses,
                KnowledgeChoice::ClinicalItems => AttackerKnowledge::ClinicalItems,
            })
            .collect(),
        ..model.clone().unwrap_or_default()
    };
    let write_tables = |options: &ReleaseOptions| {
        write_release_with_scrubber(&args.extract, staging, key, persons, options, scrubber)
            .with_context(|| format!("release of {}", args.extract.display()))
    };
    match args.kind {
        DeidentifyKind::Pseudonymized => {
            let release = write_tables(options)?;
            // The attacker against a pseudonymized release: exact ages, sex and region as the
            // operator could derive them, which is what a certified user's data allows.
            // Whether the person died is seen from the released deaths table, so it is part of
            // the attacker's match too.
            let table = derive_quasi_identifiers(
                &args.extract,
                identities,
                persons,
                key,
                &QuasiIdentifierOptions {
                    deceased: true,
                    ..QuasiIdentifierOptions::default()
                },
            )
            .context("person table")?;
            let mut released = ReleasedPersonTable::from_quasi_identifiers(&table);
            released
                .read_clinical_items(staging)
                .context("released procedures, allergies and infections")?;
            let reidentification = linkage_attack(&table, &released, &errors, &policy)
                .context("re-identification test")?;
            Ok(DeidentifyReport {
                project: args.project.clone(),
                kind: "pseudonymized",
                release,
                person_table: None,
                reidentification,
            })
        }
        DeidentifyKind::Anonymized => {
            let diagnosis_rule = DiagnosisSetOptions {
                k: args.k,
                m: args.diagnosis_m.unwrap_or(errors.known_diagnoses),
            };
            // The attacker of the combined item set knows as many items as the rule assumes,
            // unless a model says otherwise.
            if model.is_none() {
                errors.known_items = diagnosis_rule.m;
            }
            let mut table_options = QuasiIdentifierOptions::anonymized(rare)
                .with_diagnosis_sets(diagnosis_rule.k, diagnosis_rule.m);
            if args.without_encounters {
                table_options = table_options.without_encounters();
            }
            let table =
                derive_quasi_identifiers(&args.extract, identities, persons, key, &table_options)
                    .context("person table")?;
            let csv = table.csv_bytes().context("person table in memory")?;
            let dataset = Dataset::from_reader(Path::new("persons.csv"), csv.as_slice(), b',')
                .context("person table")?;
            // `deceased` when the extraction holds deaths: the released deaths table shows it.
            let mut quasi_identifiers = vec!["age", "sex", "region", "visits"];
            if table.columns().contains(&DECEASED_COLUMN) {
                quasi_identifiers.push(DECEASED_COLUMN);
            }
            let mut hierarchies = BTreeMap::new();
            for &column in &quasi_identifiers {
                let values = dataset.column(dataset.column_index(column)?);
                let rows = hierarchy_rows_with(
                    column,
                    values.dictionary.iter().map(String::as_str),
                    table_options.visits,
                )
                .with_context(|| format!("no hierarchy for {column}"))?;
                hierarchies.insert(column.to_owned(), Hierarchy::from_rows(column, rows)?);
            }
            let roles = AttributeRoles {
                quasi_identifiers: quasi_identifiers.iter().map(|c| c.to_string()).collect(),
                ..AttributeRoles::default()
            };
            let settings = Settings {
                models: PrivacyModels::k_anonymity(args.k, args.max_suppression),
                metric: Metric::Loss,
                search: SearchConfig::default(),
                risk_threshold: 1.0 / args.k as f64,
                sampling_fraction: kiban_anonymize::DEFAULT_SAMPLING_FRACTION,
            };
            let anonymization = anonymize(&dataset, &roles, hierarchies, &settings)
                .context("k-anonymity of the person table")?;
            // The person table as released (rows k-anonymity suppressed are dropped), in
            // memory: the diagnosis rule must hold in it, so it is applied again to these
            // rows, and the conditions table must follow the final plan.
            let header: Vec<String> = anonymization
                .release_header()
                .into_iter()
                .map(str::to_owned)
                .collect();
            let mut rows = Vec::new();
            anonymization.for_each_released_row(true, |fields| {
                rows.push(fields.iter().map(|f| (*f).to_owned()).collect::<Vec<_>>());
                Ok::<(), std::convert::Infallible>(())
            })?;
            let mut released =
                ReleasedPersonTable::new(header, rows).context("released person table")?;
            let (diagnosis_sets, recoding) = match released
                .protect_diagnoses_with_plan(&diagnosis_rule)
                .context("diagnosis sets of the released person table")?
            {
                Some((report, later)) => (Some(report), table.diagnosis_recoding().then(&later)),
                None => bail!("the released person table has no diagnoses column"),
            };
            // The combined item set (diagnoses with procedures, allergies and infections)
            // under the same k^m rule, the diagnoses kept as `persons.csv` releases them.
            let release = write_tables(&ReleaseOptions {
                diagnosis_recoding: Some(recoding),
                clinical_item_sets: Some(diagnosis_rule.clone()),
                ..options.clone()
            })?;
            // Written inside the staging folder (itself under a temporary name, renamed):
            // the release appears only whole, after the re-identification test.
            released
                .write_csv(&staging.join("persons.csv"), b',')
                .context("anonymized person table")?;
            released
                .read_clinical_items(staging)
                .context("released procedures, allergies and infections")?;
            let reidentification = linkage_attack(&table, &released, &errors, &policy)
                .context("re-identification test")?;
            Ok(DeidentifyReport {
                project: args.project.clone(),
                kind: "anonymized",
                release,
                person_table: Some(PersonTableReport {
                    derivation: table.report().clone(),
                    anonymization: anonymization.report().clone(),
                    diagnosis_sets,
                }),
                reidentification,
            })
        }
    }
}

/// Staging folder of a release: beside it, hidden, unique to this process.
fn staging_path(out: &Path) -> PathBuf {
    let name = out.file_name().unwrap_or_default().to_string_lossy();
    out.with_file_name(format!(".{name}.staging-{}", std::process::id()))
}

/// Every identity row of the store.
async fn read_identity_rows(store: &Store, meta: &Metadata) -> Result<Vec<IdentityRow>> {
    let mut rows = Vec::new();
    for segment in meta.segments(IdentityRow::TABLE).await? {
        let batch: Vec<IdentityRow> = store
            .read_segment(&segment.path)
            .with_context(|| format!("identity segment {}", segment.path))?;
        rows.extend(batch);
    }
    Ok(rows)
}

/// The identity rows without those of patients who opted out.
async fn without_refusals(
    rows: Vec<IdentityRow>,
    collection: &Collection,
) -> Result<Vec<IdentityRow>> {
    let refused = collection.refused_patient_keys().await?;
    Ok(rows
        .into_iter()
        .filter(|row| {
            !refused.contains(&(
                kiban_model::ProviderId(row.common.provider_id.clone()),
                kiban_model::PatientKey(row.common.patient_key.clone()),
            ))
        })
        .collect())
}
