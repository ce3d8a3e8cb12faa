//! Deterministic generator of a synthetic Japanese population and of what its providers send.
//!
//! [`generate`] writes, under an output directory:
//! - `providers.json`: the providers (`id`, `name`, `name_en`, `kind`);
//! - `<provider_id>/bundles.ndjson`: one FHIR R4 Bundle per line: per patient record a
//!   `transaction` Bundle (JP Core Patient, Encounters, Conditions, MedicationRequests,
//!   MedicationDispenses, Observations, AllergyIntolerances, Procedures) followed by its
//!   `document` Bundles (診療情報提供書, 退院時サマリー, 健康診断結果報告書);
//! - `<provider_id>/notifications.csv` (`provider_patient_id,notified_on,means`) and
//!   `<provider_id>/refusals.csv` (`provider_patient_id,refused_on,by`);
//! - `truth/truth.csv` (`provider_id,provider_patient_id,person_id`): the ground truth.
//!
//! [`write_identity_csv`] writes the identity records of the same population as one CSV (the
//! interchange form of linkage tools) with its own truth file; see [`identity_csv`].
//!
//! Persons are generated in blocks of [`population::BLOCK_SIZE`] (households), each from its
//! own ChaCha stream derived from the seed and the block index, in parallel chunks written in
//! order: the same [`SynthConfig`] gives byte-identical output and memory stays bounded.
//!
//! Every identity is recorded the way a provider would: kanji variants (髙/高, 﨑/崎, 齋/斎/斉,
//! 邊/辺), half-width or hiragana readings, typos, missing readings, moves, insurer changes
//! (the late-stage elderly scheme at 75), marriage name changes, households and twins sharing
//! an insurance card with different branch numbers.
//!
//! ```
//! use kiban_synth::{SynthConfig, generate};
//! let dir = std::env::temp_dir().join(format!("kiban-synth-doc-{}", std::process::id()));
//! let config = SynthConfig { persons: 40, ..SynthConfig::default() };
//! let summary = generate(&config, &dir, &|_done| {})?;
//! assert_eq!(summary.persons, 40);
//! assert!(dir.join("truth/truth.csv").exists());
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), kiban_synth::SynthError>(())
//! ```

#![warn(missing_docs)]

pub mod codes;
pub mod identity_csv;
pub mod names;
pub mod places;
pub mod population;
pub mod providers;
pub mod records;

use chrono::NaiveDate;
use population::{BLOCK_SIZE, World};
use providers::Provider;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use records::{Context, RESOURCE_TYPES, RecordOutput, ResourceCounts};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub use identity_csv::{IdentityCsvSummary, write_identity_csv};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthConfig {
    /// Number of persons in the true population.
    pub persons: u64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Number of providers; `None` chooses from `persons` (12 for 20,000, growing slowly).
    pub providers: Option<usize>,
    /// The date the data is "extracted": all data lies before it.
    pub reference_date: NaiveDate,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            persons: 20_000,
            seed: 42,
            providers: None,
            reference_date: NaiveDate::from_ymd_opt(2026, 10, 1).unwrap_or_default(),
        }
    }
}

/// What was generated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SynthSummary {
    /// Persons in the true population.
    pub persons: u64,
    /// Providers.
    pub providers: usize,
    /// Patient records (provider patient ids) over all providers.
    pub patient_records: u64,
    /// Resources written, by resource type (document copies included).
    pub resources: BTreeMap<String, u64>,
    /// Bundles written.
    pub bundles: u64,
    /// Bytes written over all files.
    pub bytes_written: u64,
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// The configuration cannot be generated.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// Writing an output file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The records of each person of one block: (person id, records).
type BlockOutput = Vec<(String, Vec<RecordOutput>)>;

/// Blocks generated in parallel per chunk; bounds memory to about two chunks of output.
const CHUNK_BLOCKS: u64 = 512;

struct ProviderFiles {
    bundles: BufWriter<File>,
    notifications: BufWriter<File>,
    refusals: BufWriter<File>,
    paths: [PathBuf; 3],
}

struct Outputs {
    providers: Vec<ProviderFiles>,
    truth: BufWriter<File>,
    truth_path: PathBuf,
    summary: SynthSummary,
    counts: ResourceCounts,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SynthError + '_ {
    move |source| SynthError::Io {
        path: path.to_owned(),
        source,
    }
}

fn create(path: &Path, header: &str) -> Result<BufWriter<File>, SynthError> {
    let file = File::create(path).map_err(io_error(path))?;
    let mut writer = BufWriter::with_capacity(256 * 1024, file);
    writer
        .write_all(header.as_bytes())
        .map_err(io_error(path))?;
    Ok(writer)
}

impl Outputs {
    fn open(out_dir: &Path, providers: &[Provider]) -> Result<Self, SynthError> {
        let mut files = Vec::with_capacity(providers.len());
        for provider in providers {
            let dir = out_dir.join(&provider.id);
            std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
            let paths = [
                dir.join("bundles.ndjson"),
                dir.join("notifications.csv"),
                dir.join("refusals.csv"),
            ];
            files.push(ProviderFiles {
                bundles: create(&paths[0], "")?,
                notifications: create(&paths[1], "provider_patient_id,notified_on,means\n")?,
                refusals: create(&paths[2], "provider_patient_id,refused_on,by\n")?,
                paths,
            });
        }
        let truth_dir = out_dir.join("truth");
        std::fs::create_dir_all(&truth_dir).map_err(io_error(&truth_dir))?;
        let truth_path = truth_dir.join("truth.csv");
        let truth = create(&truth_path, "provider_id,provider_patient_id,person_id\n")?;
        Ok(Outputs {
            providers: files,
            truth,
            truth_path,
            summary: SynthSummary::default(),
            counts: ResourceCounts::default(),
        })
    }

    fn write_chunk(
        &mut self,
        providers: &[Provider],
        chunk: Vec<BlockOutput>,
    ) -> Result<(), SynthError> {
        for (person_id, records) in chunk.into_iter().flatten() {
            self.summary.persons += 1;
            for record in records {
                let provider = &providers[record.provider];
                let files = &mut self.providers[record.provider];
                files
                    .bundles
                    .write_all(&record.bundles)
                    .map_err(io_error(&files.paths[0]))?;
                let (notified_on, means) = record.notification;
                let line = format!("{},{notified_on},{means}\n", record.patient_id);
                files
                    .notifications
                    .write_all(line.as_bytes())
                    .map_err(io_error(&files.paths[1]))?;
                let mut bytes = record.bundles.len() + line.len();
                if let Some((refused_on, by)) = record.refusal {
                    let line = format!("{},{refused_on},{by}\n", record.patient_id);
                    files
                        .refusals
                        .write_all(line.as_bytes())
                        .map_err(io_error(&files.paths[2]))?;
                    bytes += line.len();
                }
                let truth = format!("{},{},{person_id}\n", provider.id, record.patient_id);
                self.truth
                    .write_all(truth.as_bytes())
                    .map_err(io_error(&self.truth_path))?;
                bytes += truth.len();
                self.summary.bytes_written += bytes as u64;
                self.summary.patient_records += 1;
                self.summary.bundles += record.bundle_count;
                self.counts.merge(&record.counts);
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<SynthSummary, SynthError> {
        for files in &mut self.providers {
            for (writer, path) in [
                (&mut files.bundles, &files.paths[0]),
                (&mut files.notifications, &files.paths[1]),
                (&mut files.refusals, &files.paths[2]),
            ] {
                writer.flush().map_err(io_error(path))?;
            }
        }
        self.truth.flush().map_err(io_error(&self.truth_path))?;
        for (name, count) in RESOURCE_TYPES.iter().zip(self.counts.0.iter()) {
            if *count > 0 {
                self.summary.resources.insert((*name).to_owned(), *count);
            }
        }
        Ok(self.summary)
    }
}

/// The key of the ChaCha streams: the seed spread over 32 bytes.
fn stream_key(seed: u64) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(b"kiban-sy");
    key[16..24].copy_from_slice(&seed.rotate_left(29).to_le_bytes());
    key[24..].copy_from_slice(b"nth-v001");
    key
}

fn generate_block(ctx: &Context<'_>, key: [u8; 32], persons: u64, block: u64) -> BlockOutput {
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(block);
    let first = block * BLOCK_SIZE;
    let count = BLOCK_SIZE.min(persons - first);
    population::generate_block(ctx.world, first, count, &mut rng)
        .into_iter()
        .map(|person| {
            let records = records::person_records(ctx, &person, &mut rng);
            (person.id, records)
        })
        .collect()
}

/// Generates the population and writes every provider's files under `out_dir`.
///
/// `progress` is called with the number of persons written so far after each chunk.
pub fn generate(
    config: &SynthConfig,
    out_dir: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<SynthSummary, SynthError> {
    if config.persons == 0 {
        return Err(SynthError::InvalidConfig(
            "persons must be at least 1".to_owned(),
        ));
    }
    if config.persons > 500_000_000 {
        return Err(SynthError::InvalidConfig(
            "persons must be at most 500,000,000 (patient ids have 9 digits)".to_owned(),
        ));
    }
    let provider_count = config
        .providers
        .unwrap_or_else(|| providers::default_provider_count(config.persons));
    if provider_count == 0 {
        return Err(SynthError::InvalidConfig(
            "providers must be at least 1".to_owned(),
        ));
    }
    std::fs::create_dir_all(out_dir).map_err(io_error(out_dir))?;
    let providers = providers::build_providers(provider_count, config.seed);
    let listing: Vec<_> = providers.iter().map(Provider::listing).collect();
    let providers_path = out_dir.join("providers.json");
    let json = serde_json::to_vec_pretty(&listing).map_err(|e| SynthError::Io {
        path: providers_path.clone(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(&providers_path, &json).map_err(io_error(&providers_path))?;

    let mut outputs = Outputs::open(out_dir, &providers)?;
    outputs.summary.bytes_written += json.len() as u64;
    let world = World::new(config.reference_date);
    let ctx = Context {
        world: &world,
        providers: &providers,
    };
    let key = stream_key(config.seed);
    let blocks = config.persons.div_ceil(BLOCK_SIZE);
    let mut pending: Option<Vec<BlockOutput>> = None;
    let mut start = 0;
    while start < blocks || pending.is_some() {
        let end = (start + CHUNK_BLOCKS).min(blocks);
        let to_write = pending.take();
        // Write the previous chunk while generating the next one.
        let (written, generated) = rayon::join(
            || match to_write {
                Some(chunk) => outputs.write_chunk(&providers, chunk).map(|()| true),
                None => Ok(false),
            },
            || {
                (start < end).then(|| {
                    (start..end)
                        .into_par_iter()
                        .map(|block| generate_block(&ctx, key, config.persons, block))
                        .collect::<Vec<_>>()
                })
            },
        );
        if written? {
            progress(outputs.summary.persons);
        }
        pending = generated;
        start = end;
    }
    let mut summary = outputs.finish()?;
    summary.providers = providers.len();
    Ok(summary)
}

#[cfg(test)]
mod tests;
