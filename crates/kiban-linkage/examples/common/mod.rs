//! What the diagnostic examples share: a synth folder's identity records with their truth.

use kiban_linkage::evaluate::read_assignment;
use kiban_linkage::records::{LoadedRecords, load_identity_csv};
use rustc_hash::FxHashMap;

/// `record_id → person_id`, as [`read_assignment`] reads it.
pub type Assignment = FxHashMap<Box<str>, Box<str>>;

/// The records of `identity_records.csv` in the folder named by the first argument, and the
/// assignment `record_id → person_id` of its `identity_truth.csv` (`kiban synth --identity-csv`).
pub fn records_with_truth() -> Result<(LoadedRecords, Assignment), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).ok_or("workdir")?);
    let loaded = load_identity_csv(&dir.join("identity_records.csv"))?;
    let truth = read_assignment(&dir.join("identity_truth.csv"))?;
    Ok((loaded, truth))
}
