//! The `kiban` command line: a thin layer of clap subcommands over kiban's library crates.
//!
//! | command | what it does | crate |
//! |---|---|---|
//! | `kiban synth` | writes a synthetic Japanese population as its providers would send it | `kiban-synth` |
//! | `kiban ingest` | takes provider files into the encrypted store | `kiban-ingest`, `kiban-store` |
//! | `kiban serve` | serves the web portal, the read API and (with the master key) the FHIR intake API | `kiban-server` |
//! | `kiban provider` | registers providers and manages their intake tokens | `kiban-collection` |
//! | `kiban demo` | all of the above on embedded defaults | all |
//! | `kiban keygen` | creates a master key file | `kiban-store` |
//!
//! Each command is a few lines calling a library; this crate adds only argument parsing,
//! progress bars, key-file location and Ctrl-C handling.

#![warn(missing_docs)]

mod commands;
mod keys;
mod progress;
mod provider;

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
