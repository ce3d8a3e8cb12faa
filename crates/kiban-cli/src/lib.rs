//! The `kiban` command line: a thin layer of clap subcommands over kiban's library crates.
//!
//! | command | what it does | crate |
//! |---|---|---|
//! | `kiban synth` | writes a synthetic Japanese population as its providers would send it | `kiban-synth` |
//! | `kiban ingest` | takes provider files into the encrypted store | `kiban-ingest`, `kiban-store` |
//! | `kiban serve` | serves the web portal, the read API and (with the master key) the FHIR intake API | `kiban-server` |
//! | `kiban provider` | registers providers and manages their intake tokens | `kiban-collection` |
//! | `kiban extract` | clinical tables as Parquet, without patients who opted out | `kiban-extract` |
//! | `kiban anonymize` | k-anonymous release with measured loss and risk | `kiban-anonymize` |
//! | `kiban link` | links identity records into persons | `kiban-linkage` |
//! | `kiban demo` | all of the above on embedded defaults | all |
//! | `kiban keygen` | creates a master key file | `kiban-store` |
//! | `kiban staff` | staff accounts with roles and a TOTP second factor | `kiban-server` |
//!
//! Each command is a few lines calling a library; this crate adds only argument parsing,
//! progress bars, key-file location and Ctrl-C handling.

#![warn(missing_docs)]

mod anonymize;
mod commands;
mod deidentify;
mod demo_release;
mod demo_staff;
mod demo_upload;
mod extract;
mod keys;
mod link;
mod link_store;
mod lock;
mod progress;
mod provider;
mod staff;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// kiban — the data platform of a certified creator of anonymized and pseudonymized medical
/// information (次世代医療基盤法 認定作成事業者).
///
/// Hospitals and municipalities send patients' records (HL7 FHIR R4, JP Core); kiban keeps
/// identity apart from clinical data, encrypted at rest under keys held outside the data
/// directory, and serves a portal in Japanese and English.
///
/// Start with `kiban demo`: it generates synthetic hospitals, ingests what they send, and serves
/// the portal at http://127.0.0.1:8080.
#[derive(Debug, Parser)]
#[command(name = "kiban", version, about, long_about, propagate_version = true)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// kiban's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a synthetic population and the FHIR files its providers would send.
    ///
    /// Writes one folder per provider under OUT (FHIR R4 Bundles as ndjson, notification and
    /// refusal CSVs), `providers.json`, and the ground truth in `truth/` for tests. The same
    /// seed always gives the same bytes.
    Synth(SynthArgs),
    /// Take provider files (the layout `kiban synth` writes) into the encrypted store.
    ///
    /// Malformed lines and resources are quarantined with file, line and reason; re-running the
    /// same input adds nothing; an interrupted run resumes where it stopped.
    Ingest(IngestArgs),
    /// Serve the web portal and API over a data directory.
    Serve(ServeArgs),
    /// Generate synthetic hospitals, ingest them, and serve the portal: kiban in one command.
    Demo(DemoArgs),
    /// Create a new master key file (refuses to overwrite an existing one).
    Keygen(KeygenArgs),
    /// Register data providers and manage their intake API tokens.
    #[command(subcommand)]
    Provider(ProviderCommand),
    /// Extract clinical tables as Parquet, leaving out every patient who opted out.
    ///
    /// The identity table is never extracted. The output is pseudonymous clinical data (keyed
    /// patient digests, no names or ids): the input of anonymization and analysis, to be kept
    /// inside the operator's secure environment.
    Extract(ExtractArgs),
    /// Anonymize a table: k-anonymity (with ℓ-diversity, t-closeness) by optimal full-domain
    /// generalization over ARX-style hierarchies, with the information loss and risk reported.
    ///
    /// Either a TOML job file (`--config job.toml`) or the options, e.g.
    /// `kiban anonymize adult.csv --sep ';' --hierarchies DIR --qi sex,age,race --k 5
    /// --max-suppression 0.04 --metric entropy --out release.csv --report report.json`.
    /// The release is written only when everything succeeded.
    Anonymize(AnonymizeArgs),
    /// Link identity records of many providers into persons (名寄せ), from a CSV with the
    /// header `record_id,hospital_id,hospital_patient_id,name_kanji,name_kana,sex,birth_date,
    /// postal_code,address,insurer_number,insured_symbol,insured_number,insured_branch`.
    ///
    /// Writes `record_id,person_id,match_probability`. Japanese-aware normalization (kanji
    /// variants, kana, era dates, addresses, insurer check digits), blocking, a Fellegi–Sunter
    /// model learned from the data by EM, and clustering with at most one record per provider
    /// and person. `kiban synth --identity-csv` writes records and truth in this form.
    Link(LinkArgs),
    /// Release an extraction for one project: pseudonymized (仮名加工: project-keyed
    /// pseudonyms, per-person date shifts, free text dropped, rare values kept) or anonymized
    /// (匿名加工: also rare codes recoded, extremes top-coded, a k-anonymous person table),
    /// each with its re-identification test (再識別テスト); a release above the limit is
    /// blocked and nothing is written.
    Deidentify(crate::deidentify::DeidentifyArgs),
    /// Manage operator staff accounts (R-A2): roles, password, TOTP second factor.
    ///
    /// Staff sign in at /staff/sign-in with login, password and the 6-digit code of their
    /// authenticator app; the registers and the linkage review need a signed-in member with a
    /// permitted role.
    #[command(subcommand)]
    Staff(crate::staff::StaffCommand),
}

/// Arguments of `kiban link`.
#[derive(Debug, clap::Args)]
pub struct LinkArgs {
    /// Identity records (CSV with the header above).
    #[arg(
        long,
        value_name = "RECORDS_CSV",
        required_unless_present = "data",
        requires = "out"
    )]
    pub csv: Option<PathBuf>,
    /// Links to write (`record_id,person_id,match_probability`).
    #[arg(long, value_name = "LINKS_CSV", requires = "csv")]
    pub out: Option<PathBuf>,
    /// Link the identity records of this store in place instead of a CSV: every record's
    /// person goes to the metadata store (stable person ids, history of every change), and
    /// `kiban extract` adds it to every clinical row.
    #[arg(long = "data", value_name = "DATA_DIR", conflicts_with = "csv")]
    pub data: Option<PathBuf>,
    /// With --data: the master key file (default: KIBAN_KEY_FILE, then the default location).
    #[arg(long, value_name = "KEY_FILE", requires = "data")]
    pub key_file: Option<PathBuf>,
    /// With --data: undo the latest linkage run (every record it changed gets its previous
    /// person back).
    #[arg(long, requires = "data")]
    pub revert: bool,
    /// With --data: relink every record and learn the model again. Without it, a store whose
    /// full run kept its model links only the records without a person yet (incremental),
    /// onto the existing persons, which it never splits.
    #[arg(long, requires = "data", conflicts_with = "revert")]
    pub full: bool,
    /// Posterior match probability above which two records are linked (0.5: linked when a
    /// match is more likely than not, on calibrated scores).
    #[arg(long, default_value_t = kiban_linkage::link::DEFAULT_MATCH_THRESHOLD)]
    pub threshold: f64,
    /// With --data or --review-out: pairs whose match probability lies in this band
    /// (`LOW:HIGH`, both in [0, 1]) go to the clerical review queue or file (default
    /// 0.2:0.98, about 3,000 pairs per 250k records).
    #[arg(
        long,
        value_name = "LOW:HIGH",
        value_parser = crate::link::parse_review_band
    )]
    pub review_band: Option<(f64, f64)>,
    /// With --data: queue no pairs for clerical review (the decisions made so far are still
    /// honoured).
    #[arg(long, requires = "data", conflicts_with = "review_band")]
    pub no_review: bool,
    /// With --csv: also write the pairs for clerical review (match probability in the review
    /// band, most uncertain first): `record_id_a,record_id_b,match_probability,weight_bits`,
    /// then per compared field its comparison level and weight in bits; levels and weights
    /// only, never an identity value.
    #[arg(long, value_name = "REVIEW_CSV", requires = "csv")]
    pub review_out: Option<PathBuf>,
    /// Memory budget: candidate pairs kept near the clustering cut while they stream past
    /// (about 32 bytes each); beyond it the weaker are let go and found again by a second pass.
    #[arg(long, value_name = "PAIRS", default_value_t = kiban_linkage::link::DEFAULT_MAX_KEPT_PAIRS)]
    pub max_kept_pairs: usize,
    /// Memory budget: pairs under the match threshold that go to clustering (about 32 bytes
    /// each); beyond it the weakest are left out of clustering (only at millions of records).
    #[arg(long, value_name = "PAIRS", default_value_t = kiban_linkage::link::DEFAULT_MAX_WEAK_PAIRS)]
    pub max_weak_pairs: usize,
    /// A truth file (`record_id,person_id`) to score the links against.
    #[arg(long, value_name = "TRUTH_CSV", requires = "csv")]
    pub truth: Option<PathBuf>,
    /// Also write NDB-style linkage keys `record_id,id1,id2,id5` (docs/linkage-keys.md).
    #[arg(long, value_name = "KEYS_CSV", requires = "project_key")]
    pub keys_out: Option<PathBuf>,
    /// The recipient project's key for --keys-out: at least 32 random bytes as hex digits.
    #[arg(long, value_name = "PROJECT_KEY", requires = "keys_out")]
    pub project_key: Option<PathBuf>,
}

/// Arguments of `kiban anonymize`.
#[derive(Debug, clap::Args)]
pub struct AnonymizeArgs {
    /// Input table: delimited text with a header row, or Parquet (`.parquet`).
    #[arg(value_name = "INPUT", required_unless_present = "config")]
    pub input: Option<PathBuf>,
    /// A TOML job file instead of the options (paths in it are relative to it).
    #[arg(long, value_name = "JOB_TOML", conflicts_with = "input")]
    pub config: Option<PathBuf>,
    /// Field separator of the input and the release.
    #[arg(long, default_value_t = ';')]
    pub sep: char,
    /// Folder of ARX-style hierarchy files `<name>_hierarchy_<column>.csv`.
    #[arg(long, value_name = "DIR")]
    pub hierarchies: Option<PathBuf>,
    /// Quasi-identifiers, comma-separated; the report's `levels` follow this order.
    #[arg(long, value_delimiter = ',')]
    pub qi: Vec<String>,
    /// Sensitive attributes (for ℓ-diversity and t-closeness), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub sensitive: Vec<String>,
    /// Identifying attributes, removed from the release, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub identifying: Vec<String>,
    /// k of k-anonymity.
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    /// Largest share of records that may be suppressed (0.04 = 4 %).
    #[arg(long, default_value_t = 0.0)]
    pub max_suppression: f64,
    /// ℓ-diversity of every sensitive attribute: `distinct:L`, `entropy:L` or `recursive:C:L`.
    #[arg(long, value_name = "MODEL")]
    pub l_diversity: Option<String>,
    /// Column types, t-closeness distance and k-map (boxed: they keep `Command` small).
    #[command(flatten)]
    pub models: Box<AnonymizeModelArgs>,
    /// Utility metric minimised: entropy (ARX's non-uniform entropy), loss, discernibility,
    /// aecs, height, precision or kl-divergence.
    #[arg(long, default_value = "entropy")]
    pub metric: String,
    /// Release file to write.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// JSON report to write (levels, information loss, suppressed records, k, risk).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// HTML report to write (Japanese and English, with the class-size and risk plots).
    #[arg(long, value_name = "FILE")]
    pub report_html: Option<PathBuf>,
    /// Share of the population the input is a sample of, for the population-uniqueness
    /// estimates (Pitman, Zayatz, SNB; Dankar's rule picks one).
    #[arg(long, default_value_t = kiban_anonymize::DEFAULT_SAMPLING_FRACTION)]
    pub sampling_fraction: f64,
    /// Leave suppressed records out of the release instead of writing them as `*` rows.
    #[arg(long)]
    pub drop_suppressed: bool,
    /// Stream the input (two passes, rows never held in memory) whatever its size; by default
    /// inputs of more rows than --streaming-threshold are streamed.
    #[arg(long)]
    pub streaming: bool,
}

/// Typed columns and the privacy models of `kiban anonymize` beyond k and ℓ.
#[derive(Debug, clap::Args)]
pub struct AnonymizeModelArgs {
    /// t-closeness of every sensitive attribute: `T` or `equal:T` (equal distance),
    /// `ordered:T` (integer/decimal/date/ordinal column) or `hierarchical:T` (the sensitive
    /// column's hierarchy, from --hierarchies).
    #[arg(long, value_name = "[DISTANCE:]T")]
    pub t_closeness: Option<String>,
    /// Column types, comma-separated `column=type` with type string, integer, decimal, date,
    /// code or `ordinal:a|b|c`; undeclared columns are strings (or typed from Parquet).
    #[arg(long, value_delimiter = ',', value_name = "COLUMN=TYPE")]
    pub types: Vec<String>,
    /// Population table (the quasi-identifier columns, optionally a `count` column) for k-map
    /// and the journalist risk.
    #[arg(long, value_name = "FILE")]
    pub population: Option<PathBuf>,
    /// k of k-map: every released class occurs at least K times in the population table.
    #[arg(long, value_name = "K", requires = "population")]
    pub k_map: Option<usize>,
    /// δ-presence `MIN:MAX` of the research subset flagged by --subset-column: every class
    /// has a share of subset records within [MIN, MAX]; only the subset is released.
    #[arg(long, value_name = "MIN:MAX", requires = "subset_column")]
    pub delta_presence: Option<String>,
    /// Column flagging the research subset (true/1/yes) for --delta-presence.
    #[arg(long, value_name = "COLUMN", requires = "delta_presence")]
    pub subset_column: Option<String>,
    /// Microaggregation of numeric quasi-identifiers, comma-separated `column=mean` or
    /// `column=median`: released values are the class's mean or median instead of a label.
    #[arg(long, value_delimiter = ',', value_name = "COLUMN=FUNCTION")]
    pub microaggregate: Vec<String>,
    /// Rows above which the input is streamed (estimated from the file for delimited text).
    #[arg(long, value_name = "ROWS", default_value_t = kiban_anonymize::DEFAULT_STREAMING_ROW_THRESHOLD)]
    pub streaming_threshold: u64,
    /// SafePub-style (ε, δ)-differential privacy `EPSILON:DELTA` instead of --k: a random
    /// sample, k derived from (ε, δ), the generalization chosen by the exponential mechanism;
    /// every column must be a quasi-identifier or identifying.
    #[arg(long, value_name = "EPSILON:DELTA")]
    pub dp: Option<String>,
    /// Seed of --dp's sampling and selection (reproducible runs); random when absent.
    #[arg(long, value_name = "SEED", requires = "dp")]
    pub dp_seed: Option<u64>,
    /// Local recoding: the records the optimum would suppress are searched again on their
    /// own and released at a coarser generalization where the privacy models allow it.
    #[arg(long)]
    pub local_recoding: bool,
    /// Most rounds of --local-recoding.
    #[arg(long, value_name = "N", requires = "local_recoding",
          default_value_t = kiban_anonymize::DEFAULT_MAX_LOCAL_RECODING_ITERATIONS)]
    pub local_recoding_iterations: usize,
    /// ICD-10 columns, comma-separated, generalized code → 3-character category → block
    /// (E10-E14) → chapter (IV E00-E90) → `*` without a hierarchy file.
    #[arg(long, value_delimiter = ',', value_name = "COLUMN")]
    pub icd10: Vec<String>,
    /// Levels of the --icd10 hierarchies, comma-separated among category, block, chapter
    /// (default all three).
    #[arg(long, value_delimiter = ',', value_name = "LEVEL", requires = "icd10")]
    pub icd10_levels: Vec<String>,
    /// A quasi-identifier derived as age at an event, `NAME=BIRTH:EVENT` where BIRTH is the
    /// birth-date column and EVENT an event-date column or one date `YYYY-MM-DD`; NAME must be
    /// among --qi. Released in bands: exact age, --age-bands, `*`, top-coded at --age-top.
    #[arg(long, value_name = "NAME=BIRTH:EVENT")]
    pub age_at_event: Vec<String>,
    /// Ages from this on are released as `<TOP>+` (with --age-at-event).
    #[arg(long, value_name = "TOP", default_value_t = kiban_anonymize::DEFAULT_AGE_TOP)]
    pub age_top: i64,
    /// Band widths of --age-at-event, comma-separated, each a multiple of the previous.
    #[arg(long, value_delimiter = ',', value_name = "YEARS", default_values_t = [5_i64, 10])]
    pub age_bands: Vec<i64>,
}

/// Arguments of `kiban extract`.
#[derive(Debug, clap::Args)]
pub struct ExtractArgs {
    /// Store location.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Output folder (created; must be absent or empty): one `<table>.parquet` per table.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Clinical tables to extract (comma-separated; default all).
    #[arg(long, value_delimiter = ',')]
    pub tables: Vec<String>,
    /// Only these providers (comma-separated ids; default all).
    #[arg(long, value_delimiter = ',')]
    pub providers: Vec<String>,
}

/// `kiban provider` subcommands.
#[derive(Debug, Subcommand)]
pub enum ProviderCommand {
    /// Register a provider and print its id and first intake token (shown only once).
    Add(ProviderAddArgs),
    /// List the registered providers and their tokens (ids only, never secrets).
    List(StoreArgs),
    /// Issue a new token for a provider and revoke all its other tokens at once.
    RotateToken(RotateTokenArgs),
    /// Revoke one token by its public id (as `kiban provider list` shows it).
    RevokeToken(RevokeTokenArgs),
}

/// The data directory and its master key.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Data directory of the store (created if absent).
    #[arg(long = "data", value_name = "DATA_DIR")]
    pub data_dir: PathBuf,
    /// Key location.
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// Arguments of `kiban provider add`.
#[derive(Debug, clap::Args)]
pub struct ProviderAddArgs {
    /// Name of the provider in Japanese (e.g. 東都大学病院).
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Kind: university_hospital, general_hospital (or hospital), clinic, dental_clinic,
    /// care_facility, municipality, insurer, school.
    #[arg(long, value_parser = parse_provider_kind)]
    pub kind: kiban_model::ProviderKind,
    /// Name in English.
    #[arg(long)]
    pub name_en: Option<String>,
    /// Contact of the organisation for operator staff (never a patient's).
    #[arg(long)]
    pub contact: Option<String>,
    /// Store location.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Arguments of `kiban provider rotate-token`.
#[derive(Debug, clap::Args)]
pub struct RotateTokenArgs {
    /// Provider id (e.g. prov-001).
    #[arg(value_name = "ID")]
    pub provider_id: String,
    /// Store location.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Arguments of `kiban provider revoke-token`.
#[derive(Debug, clap::Args)]
pub struct RevokeTokenArgs {
    /// Public id of the token.
    #[arg(value_name = "TOKEN_ID")]
    pub token_id: String,
    /// Store location.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// A provider kind from its code; `hospital` means a general hospital.
pub fn parse_provider_kind(text: &str) -> Result<kiban_model::ProviderKind, String> {
    use kiban_model::ProviderKind;
    let code = text.trim().to_ascii_lowercase().replace('-', "_");
    if code == "hospital" {
        return Ok(ProviderKind::GeneralHospital);
    }
    ProviderKind::from_code(&code).ok_or_else(|| {
        let codes: Vec<&str> = ProviderKind::ALL.iter().map(|k| k.code()).collect();
        format!(
            "unknown provider kind; use one of: hospital, {}",
            codes.join(", ")
        )
    })
}

/// Where the master key is.
#[derive(Debug, Clone, clap::Args)]
pub struct KeyArgs {
    /// Master key file. It must lie outside the data directory. Default: a file named after the
    /// data directory under `$XDG_CONFIG_HOME/kiban/keys/` (or `~/.config/kiban/keys/`),
    /// created on first use.
    #[arg(long, env = "KIBAN_KEY_FILE", value_name = "PATH")]
    pub key_file: Option<PathBuf>,
}

/// Arguments of `kiban synth`.
#[derive(Debug, clap::Args)]
pub struct SynthArgs {
    /// Number of persons in the population.
    #[arg(long, default_value_t = 20_000)]
    pub persons: u64,
    /// Random seed; the same seed gives the same output.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of providers (default: chosen from the population size).
    #[arg(long)]
    pub providers: Option<usize>,
    /// Output folder (created; must be empty or absent).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Write the identity records as linkage CSV instead (`identity_records.csv`, with the
    /// true person of each record in `identity_truth.csv`), for `kiban link` and other tools.
    #[arg(long)]
    pub identity_csv: bool,
}

/// Arguments of `kiban ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Folder of provider files, as written by `kiban synth`.
    #[arg(value_name = "DIR")]
    pub input: PathBuf,
    /// Data directory of the store (created if absent).
    #[arg(long = "data", value_name = "DATA_DIR")]
    pub data_dir: PathBuf,
    /// Key location.
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Bundles (ndjson lines) per committed chunk.
    #[arg(long, default_value_t = 1000)]
    pub chunk_lines: usize,
}

/// Arguments of `kiban serve`.
///
/// With the store's master key (found as for `kiban ingest`), the FHIR intake API (`/fhir`)
/// is served too; without it, only the read-only portal.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Data directory of the store.
    #[arg(long = "data", value_name = "DATA_DIR")]
    pub data_dir: PathBuf,
    /// Key location.
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Limits of the FHIR intake API.
    #[command(flatten)]
    pub intake: IntakeApiArgs,
}

/// Limits of the FHIR intake API and the held-data release timer.
#[derive(Debug, Clone, clap::Args)]
pub struct IntakeApiArgs {
    /// Largest upload accepted, in MiB (larger bodies get 413 and an OperationOutcome).
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    pub max_upload_mib: usize,
    /// Sustained uploads per second per provider (more get 429).
    #[arg(long, default_value_t = 20.0, value_name = "PER_SECOND")]
    pub rate_limit: f64,
    /// Uploads a provider may send at once after being idle.
    #[arg(long, default_value_t = 40)]
    pub rate_burst: u32,
    /// Minutes between releases of held data whose patients' notices have become a month
    /// old (0: never while serving; `kiban ingest` still releases at its end).
    #[arg(long, default_value_t = 10, value_name = "MINUTES")]
    pub held_release_minutes: u64,
}

impl Default for IntakeApiArgs {
    fn default() -> Self {
        IntakeApiArgs {
            max_upload_mib: 64,
            rate_limit: 20.0,
            rate_burst: 40,
            held_release_minutes: 10,
        }
    }
}

/// Arguments of `kiban demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Persons in the synthetic population.
    #[arg(long, default_value_t = 20_000)]
    pub persons: u64,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Working folder: `providers/` (synthetic input) and `data/` (the store) go under it.
    #[arg(long, default_value = "kiban-demo", value_name = "DIR")]
    pub dir: PathBuf,
    /// Address of the portal.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Key location.
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Stop after ingesting instead of serving the portal.
    #[arg(long)]
    pub no_serve: bool,
    /// Limits of the FHIR intake API.
    #[command(flatten)]
    pub intake: IntakeApiArgs,
}

/// Arguments of `kiban keygen`.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Path of the new key file.
    #[arg(long, value_name = "PATH")]
    pub key_file: PathBuf,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli.command)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KIBAN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
