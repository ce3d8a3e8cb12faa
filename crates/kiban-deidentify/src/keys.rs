//! Per-project pseudonymization keys and the keyed functions derived from them.
//!
//! Each project (one data use, possibly delivered many times) has its own random 256-bit key.
//! Pseudonyms are HMAC-SHA256 of the person under that key, so they are stable across the
//! deliveries of one project and unlinkable across projects (R-P2). The key is stored only
//! wrapped by the master [`KeyProvider`] (R-P3, R-A1), one JSON file per project in a key
//! store directory kept apart from any release.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use kiban_store::{DataKey, KEY_LEN, KeyProvider, WrappedKey};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::DeidentifyError;

type HmacSha256 = Hmac<Sha256>;

/// Prefix of the dataset name under which a project key is wrapped: a wrapped key copied to
/// another project's file does not unwrap.
pub const PROJECT_KEY_DATASET_PREFIX: &str = "project-pseudonym:";

/// Format marker of a project key file.
const KEY_FILE_FORMAT: &str = "kiban-project-key v1";

/// A project key as stored on disk: wrapped, never in clear.
#[derive(Debug, Serialize, Deserialize)]
struct ProjectKeyFile {
    format: String,
    project: String,
    dataset: String,
    wrapped: WrappedKey,
}

/// The key store of project pseudonymization keys: a directory with one
/// `<project>.json` file per project, each holding the project's key wrapped by the master key.
pub struct ProjectKeyRing<'a> {
    dir: PathBuf,
    master: &'a dyn KeyProvider,
}

impl fmt::Debug for ProjectKeyRing<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProjectKeyRing")
            .field("dir", &self.dir)
            .field("master_key_id", &self.master.key_id())
            .finish()
    }
}

impl<'a> ProjectKeyRing<'a> {
    /// A key ring in `dir` (created on first use) whose keys are wrapped by `master`.
    pub fn new(dir: &Path, master: &'a dyn KeyProvider) -> Self {
        Self {
            dir: dir.to_path_buf(),
            master,
        }
    }

    /// The file holding `project`'s wrapped key.
    pub fn key_file(&self, project: &str) -> Result<PathBuf, DeidentifyError> {
        validate_project_name(project)?;
        Ok(self.dir.join(format!("{project}.json")))
    }

    /// The key of `project`: unwrapped from its file, or generated, wrapped and stored when
    /// the project has none yet. Two processes creating the same project's key at once end up
    /// with the same key (the first file written wins).
    pub fn project_key(&self, project: &str) -> Result<ProjectKey, DeidentifyError> {
        let path = self.key_file(project)?;
        if path.exists() {
            return self.load(project, &path);
        }
        let key = DataKey::generate()?;
        let dataset = format!("{PROJECT_KEY_DATASET_PREFIX}{project}");
        let wrapped = self.master.wrap(&dataset, &key)?;
        let file = ProjectKeyFile {
            format: KEY_FILE_FORMAT.to_owned(),
            project: project.to_owned(),
            dataset,
            wrapped,
        };
        let mut text = serde_json::to_vec_pretty(&file).map_err(|e| key_store_error(&path, e))?;
        text.push(b'\n');
        if write_new_file(&self.dir, &path, &text)? {
            Ok(ProjectKey::new(project, key))
        } else {
            // Another process stored a key first: use theirs so pseudonyms agree.
            self.load(project, &path)
        }
    }

    fn load(&self, project: &str, path: &Path) -> Result<ProjectKey, DeidentifyError> {
        let bytes = fs::read(path).map_err(|e| key_store_error(path, e))?;
        // serde_json's message may quote file content; only its category is reported.
        let file: ProjectKeyFile = serde_json::from_slice(&bytes).map_err(|e| {
            key_store_error(path, format!("not a project key file ({:?})", e.classify()))
        })?;
        let dataset = format!("{PROJECT_KEY_DATASET_PREFIX}{project}");
        if file.format != KEY_FILE_FORMAT || file.project != project || file.dataset != dataset {
            return Err(key_store_error(
                path,
                "the file does not hold this project's key",
            ));
        }
        let key = self.master.unwrap(&dataset, &file.wrapped)?;
        Ok(ProjectKey::new(project, key))
    }
}

fn key_store_error(path: &Path, reason: impl fmt::Display) -> DeidentifyError {
    DeidentifyError::KeyStore {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Project names become file names: letters, digits, `-`, `_` and `.` (not leading).
fn validate_project_name(project: &str) -> Result<(), DeidentifyError> {
    let valid = !project.is_empty()
        && project.len() <= 128
        && !project.starts_with('.')
        && project
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(DeidentifyError::InvalidOption {
            option: "project",
            reason: "a project name is 1-128 ASCII letters, digits, `-`, `_` or `.`, not starting with `.`".to_owned(),
        })
    }
}

/// Writes `bytes` to `path` only if it does not exist yet; `false` when it already existed.
/// The content appears complete or not at all (temporary file, then a hard link).
fn write_new_file(dir: &Path, path: &Path, bytes: &[u8]) -> Result<bool, DeidentifyError> {
    create_private_dir(dir)?;
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|_| key_store_error(dir, "random number generator"))?;
    let temp = dir.join(format!(".{}.tmp", hex::encode(suffix)));
    let result = (|| {
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&temp).map_err(|e| key_store_error(&temp, e))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| key_store_error(&temp, e))?;
        match fs::hard_link(&temp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(key_store_error(path, e)),
        }
    })();
    let _ = fs::remove_file(&temp);
    result
}

fn create_private_dir(dir: &Path) -> Result<(), DeidentifyError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| key_store_error(dir, e))
}

/// One project's pseudonymization key. The bytes are zeroed on drop and never printed.
pub struct ProjectKey {
    project: String,
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl fmt::Debug for ProjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProjectKey")
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

impl ProjectKey {
    fn new(project: &str, key: DataKey) -> Self {
        Self {
            project: project.to_owned(),
            key: Zeroizing::new(*key.expose_bytes()),
        }
    }

    /// A project key from raw bytes (e.g. held by an external KMS); mainly for tests.
    pub fn from_bytes(project: &str, bytes: [u8; KEY_LEN]) -> Self {
        Self {
            project: project.to_owned(),
            key: Zeroizing::new(bytes),
        }
    }

    #[cfg(test)]
    pub(crate) fn key_bytes(&self) -> &[u8; KEY_LEN] {
        &self.key
    }

    /// The project this key belongs to.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The keyed functions of this project.
    pub(crate) fn pseudonymizer(&self) -> Result<Pseudonymizer, DeidentifyError> {
        // The HMAC state holds only key-derived pads, not the key itself.
        let mac =
            HmacSha256::new_from_slice(&self.key[..]).map_err(|_| DeidentifyError::Crypto {
                context: "initialize the project's keyed digest",
            })?;
        Ok(Pseudonymizer {
            mac,
            persons: HashMap::new(),
        })
    }
}

/// Who a clinical row belongs to: the linked person, or the provider's patient record when the
/// record was not linked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum PersonId {
    Linked(String),
    Record(String, String),
}

/// Linkage result: which person each provider patient record belongs to.
///
/// Without an entry, a record is its own person: (provider_id, patient_key).
#[derive(Debug, Clone, Default)]
pub struct PersonMap {
    persons: HashMap<(String, String), String>,
}

impl PersonMap {
    /// An empty map: every provider record is its own person.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that (`provider_id`, `patient_key`) belongs to `person_id`.
    pub fn insert(&mut self, provider_id: &str, patient_key: &str, person_id: &str) {
        self.persons.insert(
            (provider_id.to_owned(), patient_key.to_owned()),
            person_id.to_owned(),
        );
    }

    /// Number of linked records.
    pub fn len(&self) -> usize {
        self.persons.len()
    }

    /// Whether no record is linked.
    pub fn is_empty(&self) -> bool {
        self.persons.is_empty()
    }

    pub(crate) fn person(&self, provider_id: &str, patient_key: &str) -> PersonId {
        match self
            .persons
            .get(&(provider_id.to_owned(), patient_key.to_owned()))
        {
            Some(person) => PersonId::Linked(person.clone()),
            None => PersonId::Record(provider_id.to_owned(), patient_key.to_owned()),
        }
    }
}

/// Pseudonym and date offset of one person, computed once per person.
#[derive(Clone)]
pub(crate) struct PersonSecrets {
    pub pseudonym: String,
    /// Keyed random number the offset is drawn from, for any configured maximum.
    offset_seed: u64,
}

impl PersonSecrets {
    /// The person's date offset in days, uniform in `-max_days..=max_days`.
    pub fn offset_days(&self, max_days: u32) -> i64 {
        let span = 2 * u64::from(max_days) + 1;
        (self.offset_seed % span) as i64 - i64::from(max_days)
    }
}

/// The keyed functions of one project (HMAC-SHA256 with domain separation).
pub(crate) struct Pseudonymizer {
    mac: HmacSha256,
    persons: HashMap<PersonId, PersonSecrets>,
}

impl Pseudonymizer {
    fn digest(&self, domain: &str, parts: &[&str]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        // Length prefixes keep concatenations unambiguous.
        for part in std::iter::once(domain).chain(parts.iter().copied()) {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac.finalize().into_bytes().into()
    }

    fn pseudonym(&self, prefix: &str, domain: &str, parts: &[&str]) -> String {
        let digest = self.digest(domain, parts);
        format!("{prefix}{}", hex::encode(&digest[..16]))
    }

    /// Pseudonym and date offset of a person.
    pub fn person(&mut self, person: &PersonId) -> &PersonSecrets {
        if !self.persons.contains_key(person) {
            let parts: Vec<&str> = match person {
                PersonId::Linked(id) => vec!["linked", id],
                PersonId::Record(provider, key) => vec!["record", provider, key],
            };
            let pseudonym = self.pseudonym("P", "person", &parts);
            let digest = self.digest("date-offset", &parts);
            let mut seed = [0u8; 8];
            seed.copy_from_slice(&digest[..8]);
            let secrets = PersonSecrets {
                pseudonym,
                offset_seed: u64::from_be_bytes(seed),
            };
            self.persons.insert(person.clone(), secrets);
        }
        &self.persons[person]
    }

    /// Distinct persons pseudonymized so far.
    pub fn persons_seen(&self) -> usize {
        self.persons.len()
    }

    /// Pseudonym of a clinical record (a FHIR resource of one provider, by table).
    pub fn record(&self, provider_id: &str, table: &str, source_id: &str) -> String {
        self.pseudonym("R", "record", &[provider_id, table, source_id])
    }

    /// Pseudonym of a provider.
    pub fn provider(&self, provider_id: &str) -> String {
        self.pseudonym("H", "provider", &[provider_id])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiban_store::KeyFile;

    #[test]
    fn key_is_created_once_stored_wrapped_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let master = KeyFile::generate(&dir.path().join("master.key")).unwrap();
        let ring = ProjectKeyRing::new(&dir.path().join("project-keys"), &master);
        let first = ring.project_key("study-a").unwrap();
        let again = ring.project_key("study-a").unwrap();
        assert_eq!(*first.key, *again.key);
        let other = ring.project_key("study-b").unwrap();
        assert_ne!(*first.key, *other.key);
        let text = fs::read_to_string(ring.key_file("study-a").unwrap()).unwrap();
        assert!(!text.contains(&hex::encode(*first.key)));
        assert!(!format!("{first:?}").contains(&hex::encode(*first.key)));
        // A key file copied to another project does not unwrap there.
        fs::copy(
            ring.key_file("study-a").unwrap(),
            ring.key_file("study-c").unwrap(),
        )
        .unwrap();
        assert!(ring.project_key("study-c").is_err());
        assert!(ring.project_key("../escape").is_err());
        // Only the two key files (and the copy) remain: no temporary files.
        assert_eq!(
            fs::read_dir(dir.path().join("project-keys"))
                .unwrap()
                .count(),
            3
        );
    }

    #[test]
    fn offsets_are_bounded_and_pseudonyms_domain_separated() {
        let key = ProjectKey::from_bytes("p", [7; KEY_LEN]);
        let mut p = key.pseudonymizer().unwrap();
        let mut seen_negative = false;
        let mut seen_positive = false;
        for i in 0..200 {
            let person = PersonId::Linked(format!("person-{i}"));
            let offset = p.person(&person).offset_days(30);
            assert!((-30..=30).contains(&offset));
            seen_negative |= offset < 0;
            seen_positive |= offset > 0;
        }
        assert!(seen_negative && seen_positive);
        assert_eq!(p.person(&PersonId::Linked("x".into())).offset_days(0), 0);
        let linked = p.person(&PersonId::Linked("a".into())).pseudonym.clone();
        let record = p
            .person(&PersonId::Record("a".into(), String::new()))
            .pseudonym
            .clone();
        assert_ne!(linked, record);
        assert_ne!(
            p.record("h", "encounters", "e1"),
            p.record("h", "conditions", "e1")
        );
    }
}
