//! NDB-style linkage keys for joint analysis (R-L3): keyed digests of identity fields that let a
//! recipient project join its datasets without seeing names or card numbers.
//!
//! - **ID1**: insurer number, insurance card symbol and number, birth date, sex.
//! - **ID2**: kana name, birth date, sex.
//! - **ID5**: the individual-unit insured number (insurer number, symbol, number and the
//!   two-digit branch number), present only when the branch number is.
//!
//! Each key is HMAC-SHA256 under a [`ProjectKey`] of the recipient project (never a bare hash:
//! identity fields have too few values to resist a dictionary) over the canonical form of its
//! inputs, normalized the way linkage normalizes them ([`crate::records`]). A key whose inputs
//! are missing is `None`, never a digest of empty strings. docs/linkage-keys.md describes each
//! canonical form and the known failure modes.

use crate::normalize::text::UNKNOWN;
use crate::records::{LinkRecord, LoadedRecords, StringPool};
use hmac::{Hmac, KeyInit, Mac};
use kiban_model::Sex;
use sha2::Sha256;
use std::io::Write;
use std::path::{Path, PathBuf};

type HmacSha256 = Hmac<Sha256>;

/// Bytes of a project key (at least; a longer key is used whole).
pub const PROJECT_KEY_BYTES: usize = 32;

/// Separates the fields of a canonical form (a control character no normalized field holds).
const FIELD_SEPARATOR: char = '\u{1f}';

/// Why a project key or a key output failed. Messages name the file and the rule, never the key
/// or an identity value.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read.
    #[error("{path}: cannot read the project key file: {source}")]
    Read {
        /// The key file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The key file does not hold hexadecimal digits only.
    #[error("{path}: the project key must be hexadecimal digits (64 for 32 bytes)")]
    NotHex {
        /// The key file.
        path: PathBuf,
    },
    /// The key is shorter than [`PROJECT_KEY_BYTES`].
    #[error(
        "{path}: the project key has {bytes} bytes; at least {PROJECT_KEY_BYTES} random bytes are required"
    )]
    TooShort {
        /// The key file.
        path: PathBuf,
        /// Bytes found.
        bytes: usize,
    },
    /// The keys file could not be written.
    #[error("{path}: cannot write: {source}")]
    Write {
        /// The output file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The secret key of one recipient project: keys made under different project keys are
/// unrelated, so two projects cannot join their data.
#[derive(Clone)]
pub struct ProjectKey(Vec<u8>);

impl std::fmt::Debug for ProjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProjectKey({} bytes, redacted)", self.0.len())
    }
}

impl Drop for ProjectKey {
    fn drop(&mut self) {
        // Best effort: do not leave the key in freed memory.
        self.0.iter_mut().for_each(|b| *b = 0);
    }
}

impl ProjectKey {
    /// A key from its bytes; `None` when shorter than [`PROJECT_KEY_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Option<ProjectKey> {
        (bytes.len() >= PROJECT_KEY_BYTES).then(|| ProjectKey(bytes.to_vec()))
    }

    /// Reads a key file: hexadecimal digits (at least 64, i.e. 32 bytes), surrounding white
    /// space ignored.
    pub fn read(path: &Path) -> Result<ProjectKey, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        let bytes = hex::decode(text.trim()).map_err(|_| KeyError::NotHex {
            path: path.to_owned(),
        })?;
        let found = bytes.len();
        ProjectKey::from_bytes(&bytes).ok_or(KeyError::TooShort {
            path: path.to_owned(),
            bytes: found,
        })
    }

    /// HMAC-SHA256 of a canonical form, as 64 lowercase hexadecimal digits.
    fn digest(&self, canonical: &str) -> String {
        // HMAC takes a key of any length: this cannot fail.
        let mut mac = match HmacSha256::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of every length"),
        };
        mac.update(canonical.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// The normalized identity fields a linkage key is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyFields<'a> {
    /// Normalized kana name (the key of [`crate::normalize::name::normalize_kana_name`]).
    pub name_kana: &'a str,
    /// Birth date.
    pub birth_date: Option<chrono::NaiveDate>,
    /// Sex.
    pub sex: Sex,
    /// Insurer number (保険者番号), validated digits.
    pub insurer: &'a str,
    /// Insurance card symbol (記号), normalized; empty when the card has none.
    pub symbol: &'a str,
    /// Insurance card number (番号), normalized.
    pub number: &'a str,
    /// Branch number (枝番).
    pub branch: Option<u8>,
}

impl<'a> KeyFields<'a> {
    /// The fields of a loaded record.
    pub fn of(pool: &'a StringPool, record: &LinkRecord) -> KeyFields<'a> {
        KeyFields {
            name_kana: pool.get(record.kana.key),
            birth_date: record.birth_date,
            sex: record.sex,
            insurer: pool.get(record.card.insurer),
            symbol: pool.get(record.card.symbol),
            number: pool.get(record.card.number),
            branch: record.card.branch,
        }
    }

    fn birth_and_sex(&self) -> Option<(String, char)> {
        let date = self.birth_date?.format("%Y%m%d").to_string();
        let sex = match self.sex {
            Sex::Male => '1',
            Sex::Female => '2',
            _ => return None,
        };
        Some((date, sex))
    }

    fn card(&self) -> Option<(&'a str, &'a str, &'a str)> {
        (!self.insurer.is_empty() && !self.number.is_empty()).then_some((
            self.insurer,
            self.symbol,
            self.number,
        ))
    }

    /// The canonical form of ID1, `None` when the card, the birth date or the sex is missing.
    pub fn canonical_id1(&self) -> Option<String> {
        let (insurer, symbol, number) = self.card()?;
        let (date, sex) = self.birth_and_sex()?;
        Some(join(&[
            "kiban-id1-v1",
            insurer,
            symbol,
            number,
            &date,
            &sex.to_string(),
        ]))
    }

    /// The canonical form of ID2, `None` when the kana name (or part of it: an unknown
    /// character), the birth date or the sex is missing.
    pub fn canonical_id2(&self) -> Option<String> {
        if self.name_kana.is_empty() || self.name_kana.contains(UNKNOWN) {
            return None;
        }
        let (date, sex) = self.birth_and_sex()?;
        Some(join(&[
            "kiban-id2-v1",
            self.name_kana,
            &date,
            &sex.to_string(),
        ]))
    }

    /// The canonical form of ID5, `None` unless the card and its branch number are present.
    pub fn canonical_id5(&self) -> Option<String> {
        let (insurer, symbol, number) = self.card()?;
        let branch = format!("{:02}", self.branch?);
        Some(join(&["kiban-id5-v1", insurer, symbol, number, &branch]))
    }
}

fn join(fields: &[&str]) -> String {
    let mut out = String::new();
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(FIELD_SEPARATOR);
        }
        out.push_str(field);
    }
    out
}

/// The linkage keys of one record (64 hexadecimal digits each), `None` where inputs are missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkageKeys {
    /// ID1: card, birth date, sex.
    pub id1: Option<String>,
    /// ID2: kana name, birth date, sex.
    pub id2: Option<String>,
    /// ID5: the individual-unit insured number.
    pub id5: Option<String>,
}

/// The linkage keys of `fields` under the project key.
pub fn linkage_keys(key: &ProjectKey, fields: &KeyFields<'_>) -> LinkageKeys {
    LinkageKeys {
        id1: fields.canonical_id1().map(|c| key.digest(&c)),
        id2: fields.canonical_id2().map(|c| key.digest(&c)),
        id5: fields.canonical_id5().map(|c| key.digest(&c)),
    }
}

/// Writes `record_id,id1,id2,id5` for every loaded record (empty where a key is missing) to
/// `output`, through a temporary file beside it renamed at the end; returns the rows written.
pub fn write_keys_csv(
    loaded: &LoadedRecords,
    key: &ProjectKey,
    output: &Path,
) -> Result<u64, KeyError> {
    let write_error = |source: std::io::Error| KeyError::Write {
        path: output.to_owned(),
        source,
    };
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let temp = tempfile::NamedTempFile::new_in(dir).map_err(write_error)?;
    let mut rows = 0u64;
    {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, temp.as_file());
        let mut writer = csv::WriterBuilder::new().from_writer(&mut out);
        let csv_error = |e: csv::Error| write_error(std::io::Error::other(e));
        writer
            .write_record(["record_id", "id1", "id2", "id5"])
            .map_err(csv_error)?;
        for (record, id) in loaded.records.iter().zip(&loaded.record_ids) {
            let keys = linkage_keys(key, &KeyFields::of(&loaded.pool, record));
            let text = |k: &Option<String>| k.clone().unwrap_or_default();
            writer
                .write_record([
                    id.as_ref(),
                    &text(&keys.id1),
                    &text(&keys.id2),
                    &text(&keys.id5),
                ])
                .map_err(csv_error)?;
            rows += 1;
        }
        writer.flush().map_err(write_error)?;
        drop(writer);
        out.flush().map_err(write_error)?;
    }
    temp.as_file().sync_all().map_err(write_error)?;
    temp.persist(output).map_err(|e| write_error(e.error))?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::insurance::normalize_card_field;
    use crate::normalize::name::normalize_kana_name;

    fn key(byte: u8) -> ProjectKey {
        ProjectKey::from_bytes(&[byte; 32]).unwrap()
    }

    fn fields<'a>(kana: &'a str, symbol: &'a str, number: &'a str) -> KeyFields<'a> {
        KeyFields {
            name_kana: kana,
            birth_date: chrono::NaiveDate::from_ymd_opt(1980, 1, 2),
            sex: Sex::Female,
            insurer: "06130012",
            symbol,
            number,
            branch: Some(1),
        }
    }

    #[test]
    fn normalization_variants_give_equal_keys() {
        let (a, b) = (
            normalize_kana_name("ﾔﾏﾀﾞ ﾊﾅｺ"),
            normalize_kana_name("やまだ　はなこ"),
        );
        let (s1, s2) = (
            normalize_card_field("ＡＢ１２"),
            normalize_card_field("AB12"),
        );
        let (n1, n2) = (normalize_card_field("３４５"), normalize_card_field("345"));
        let x = linkage_keys(&key(7), &fields(&a.key, &s1, &n1));
        let y = linkage_keys(&key(7), &fields(&b.key, &s2, &n2));
        assert_eq!(x, y);
        assert!(x.id1.is_some() && x.id2.is_some() && x.id5.is_some());
        assert_eq!(x.id1.as_ref().map(String::len), Some(64));
    }

    #[test]
    fn different_project_keys_give_unrelated_keys() {
        let f = fields("ヤマダハナコ", "AB12", "345");
        let (x, y) = (linkage_keys(&key(1), &f), linkage_keys(&key(2), &f));
        assert_ne!(x.id1, y.id1);
        assert_ne!(x.id2, y.id2);
        assert_ne!(x.id5, y.id5);
        // Nor is a key a bare hash of its canonical form.
        let bare = hex::encode(<Sha256 as sha2::Digest>::digest(
            f.canonical_id2().unwrap().as_bytes(),
        ));
        assert_ne!(x.id2.as_deref(), Some(bare.as_str()));
    }

    #[test]
    fn missing_fields_give_no_key() {
        let mut f = fields("", "AB12", "345");
        f.branch = None;
        let keys = linkage_keys(&key(3), &f);
        assert!(keys.id1.is_some());
        assert_eq!((keys.id2, keys.id5), (None, None));
        let mut f = fields("ヤマダハナコ", "", "");
        f.sex = Sex::Unknown;
        assert_eq!(
            linkage_keys(&key(3), &f),
            LinkageKeys {
                id1: None,
                id2: None,
                id5: None
            }
        );
        let mut f = fields("ヤマダ〓ナコ", "AB12", "345");
        f.birth_date = None;
        let keys = linkage_keys(&key(3), &f);
        assert_eq!((keys.id1, keys.id2), (None, None));
        assert!(keys.id5.is_some());
    }

    #[test]
    fn the_fields_are_separated_unambiguously() {
        // Symbol "1" + number "23" is not symbol "12" + number "3".
        assert_ne!(
            fields("ア", "1", "23").canonical_id1(),
            fields("ア", "12", "3").canonical_id1()
        );
    }

    #[test]
    fn short_or_malformed_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("project.key");
        std::fs::write(&path, "ab".repeat(31)).unwrap();
        assert!(matches!(
            ProjectKey::read(&path),
            Err(KeyError::TooShort { bytes: 31, .. })
        ));
        std::fs::write(&path, "zz".repeat(32)).unwrap();
        assert!(matches!(
            ProjectKey::read(&path),
            Err(KeyError::NotHex { .. })
        ));
        std::fs::write(&path, format!("{}\n", "ab".repeat(32))).unwrap();
        let key = ProjectKey::read(&path).unwrap();
        assert_eq!(format!("{key:?}"), "ProjectKey(32 bytes, redacted)");
    }
}
