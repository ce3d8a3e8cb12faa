//! Linkage of persons across providers (名寄せ): normalization of Japanese identity data and the
//! comparison functions of probabilistic record linkage.
//!
//! - [`normalize`]: names ([`normalize::name::normalize_kanji_name`],
//!   [`normalize::name::normalize_kana_name`]: NFKC, variation selectors, kanji variants
//!   [`normalize::variants::KANJI_VARIANTS`], kana folding, the unknown wildcard
//!   [`normalize::text::UNKNOWN`], the surname / given-name split); birth dates in Western and
//!   Japanese-era forms ([`normalize::date::parse_birth_date`]); addresses and postal codes
//!   ([`normalize::address`]); insurer numbers with their check digit, card fields and branch
//!   numbers ([`normalize::insurance`]); sex ([`normalize::sex::parse_sex`]).
//! - [`compare`]: Jaro-Winkler and Levenshtein on characters with the wildcard, and comparison
//!   levels per field ([`compare::NameLevel`], [`compare::DateLevel`], [`compare::AddressLevel`],
//!   [`compare::PostalLevel`], [`compare::CardLevel`]).
//!
//! - [`records`]: streaming load of the identity CSV of issue 5
//!   ([`records::load_identity_csv`]) into compact normalized [`records::LinkRecord`]s, with typed
//!   errors ([`records::LoadError`]) and the list of rows that cannot be linked.
//! - [`blocking`]: the blocking rules whose union is the candidate set, streamed block by block
//!   with each pair once ([`blocking::BlockIndex`]).
//! - [`model`]: the Fellegi–Sunter model: comparison vectors (one name comparison of kanji and
//!   kana together, birth date, sex, and one household comparison of card, branch, address and
//!   postal code), u from random pairs, m from EM sessions over training blocks (the
//!   birth-date session against random pairs of one birth cohort, with sex taken given the
//!   name level, [`model::SexGivenName`]: namesakes share their sex), the shared-card
//!   levels conditioned on the household, term-frequency adjustment of exact name matches
//!   (within the birth cohort and sex when the birth dates agree too,
//!   [`model::CohortNameFrequencies`]), of a given name shared under another family name (a
//!   marriage) within the cohort, and the regional correction of residence levels for pairs
//!   sharing a family name ([`model::FamilyNameResidence`]) and of name and birth-date levels
//!   for pairs of one household ([`model::WithinHousehold`]: twins).
//! - [`household`]: household co-movement, the evidence that tells a person who moved (with
//!   their household) from a namesake, learned as one more comparison
//!   ([`household::CoMoveEvidence`]).
//! - [`identity_group`]: namesake density, how many records share a pair's exact name, birth
//!   date and sex, learned as one more comparison ([`identity_group::GroupSizeEvidence`]).
//! - [`provider_pair`]: patient flows, which two providers a pair's records come from, learned as
//!   one more comparison ([`provider_pair::ProviderPairEvidence`]).
//! - [`cluster`]: persons from the linked pairs, strongest first, each merge decided on the two
//!   clusters' evidence (the pair's and the provider flows of their other records), one record
//!   per provider and person except a person registered twice at one provider (a same-provider
//!   pair of one identity, weighed under its own prior), bound by a reviewer's decisions
//!   ([`cluster::Constraints`]: must-link pairs joined first, cannot-link pairs never joined).
//! - [`link`]: the whole run, [`link::link_csv`] (CSV in, `record_id,person_id,match_probability`
//!   out) and [`link::link_records`], in memory that grows with the records, not with the
//!   candidate pairs: the model learns from sums over the streamed pairs and keeps only the
//!   pairs that can matter one by one ([`link::score_candidates`]). Clerical review: the pairs
//!   whose match probability lies in [`link::LinkOptions::review_band`] come back as
//!   [`link::ReviewCandidate`]s with each field's level and weight, and
//!   [`link::link_records_with`] honours the decisions made on them.
//! - [`incremental`]: a new intake linked onto the existing persons without relinking
//!   everything: what a full run learned is kept ([`incremental::LearnedModel`], parameters only,
//!   JSON), and [`incremental::link_new_records`] weighs only the candidate pairs with a new
//!   record and joins new records onto existing persons, which it never splits
//!   ([`cluster::cluster_onto_persons`]).
//! - [`evaluate`]: pairwise and cluster precision and recall against a truth file.
//! - [`keys`]: NDB-style linkage keys (ID1, ID2, ID5) as HMAC-SHA256 under a recipient
//!   project's key ([`keys::ProjectKey`], [`keys::linkage_keys`], [`keys::write_keys_csv`]).
//!
//! Errors name the file, line, field and rule, never the value (identity data stays out of logs).
//!
//! ```
//! use kiban_linkage::compare::{DateLevel, NameLevel, compare_birth_dates, compare_names};
//! use kiban_linkage::normalize::date::parse_birth_date;
//! use kiban_linkage::normalize::name::{normalize_kana_name, normalize_kanji_name};
//!
//! let a = normalize_kanji_name("髙橋　一郎");
//! let b = normalize_kanji_name("高橋一郎");
//! assert_eq!(compare_names(&a.key, &b.key), NameLevel::Exact);
//! assert_eq!((b.family.as_str(), b.given.as_str()), ("高橋", "一郎"));
//! assert_eq!(normalize_kana_name("ﾀｶﾊｼ ｲﾁﾛｳ").key, normalize_kana_name("たかはし いちろう").key);
//!
//! let typed = parse_birth_date("S55.1.2")?;
//! let western = parse_birth_date("1980-01-02")?;
//! assert_eq!(compare_birth_dates(&typed, &western), DateLevel::Exact);
//! # Ok::<(), kiban_linkage::normalize::date::DateError>(())
//! ```
//!
//! Linking a CSV:
//!
//! ```no_run
//! use kiban_linkage::link::{LinkOptions, link_csv};
//! use std::path::Path;
//!
//! let report = link_csv(Path::new("records.csv"), Path::new("links.csv"), &LinkOptions::default())?;
//! println!("{} records, {} persons", report.records, report.persons);
//! # Ok::<(), kiban_linkage::link::LinkError>(())
//! ```

#![warn(missing_docs)]

pub mod blocking;
pub mod cluster;
pub mod compare;
pub mod evaluate;
pub mod history;
pub mod household;
pub mod identity_group;
pub mod incremental;
pub mod keys;
pub mod link;
pub mod model;
pub mod normalize;
pub mod provider_pair;
pub mod records;
