//! Comparison of normalized fields: string similarities measured on characters (not bytes), the
//! unknown wildcard [`UNKNOWN`] matching any single character, and a comparison level per field
//! type. The levels are the inputs of the Fellegi–Sunter model (agreement patterns).

use crate::normalize::date::{BirthDate, EraDate};
use crate::normalize::text::UNKNOWN;
use chrono::Datelike;

fn same(a: char, b: char) -> bool {
    a == b || a == UNKNOWN || b == UNKNOWN
}

/// Whether two strings are equal position by position, the wildcard matching any character.
pub fn equal_with_unknown(a: &str, b: &str) -> bool {
    a.chars().count() == b.chars().count() && a.chars().zip(b.chars()).all(|(x, y)| same(x, y))
}

/// Levenshtein edit distance in characters; the wildcard matches any character.
pub fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, &ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(!same(ca, cb));
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// Jaro similarity in characters (0 to 1); the wildcard matches any character.
pub fn jaro(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let window = (a.len().max(b.len()) / 2).saturating_sub(1);
    let mut a_matched = vec![false; a.len()];
    let mut b_matched = vec![false; b.len()];
    let mut matches = 0usize;
    for (i, &ca) in a.iter().enumerate() {
        let lo = i.saturating_sub(window);
        let hi = (i + window + 1).min(b.len());
        for j in lo..hi {
            if !b_matched[j] && same(ca, b[j]) {
                a_matched[i] = true;
                b_matched[j] = true;
                matches += 1;
                break;
            }
        }
    }
    if matches == 0 {
        return 0.0;
    }
    let a_seq = a
        .iter()
        .zip(&a_matched)
        .filter(|(_, m)| **m)
        .map(|(c, _)| *c);
    let b_seq = b
        .iter()
        .zip(&b_matched)
        .filter(|(_, m)| **m)
        .map(|(c, _)| *c);
    let transpositions = a_seq.zip(b_seq).filter(|(x, y)| !same(*x, *y)).count() / 2;
    let m = matches as f64;
    (m / a.len() as f64 + m / b.len() as f64 + (m - transpositions as f64) / m) / 3.0
}

/// Jaro-Winkler similarity in characters (prefix scale 0.1 over at most 4 characters).
pub fn jaro_winkler(a: &str, b: &str) -> f64 {
    let j = jaro(a, b);
    let prefix = a
        .chars()
        .zip(b.chars())
        .take(4)
        .take_while(|(x, y)| same(*x, *y))
        .count();
    j + prefix as f64 * 0.1 * (1.0 - j)
}

/// Comparison level of two names (kanji or kana keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NameLevel {
    /// One side is empty.
    Missing,
    /// Equal (the wildcard matching any character).
    Exact,
    /// Jaro-Winkler ≥ 0.92.
    JaroWinklerHigh,
    /// Jaro-Winkler ≥ 0.80.
    JaroWinklerMedium,
    /// Anything else.
    Different,
}

/// Compares two normalized name keys.
pub fn compare_names(a: &str, b: &str) -> NameLevel {
    if a.is_empty() || b.is_empty() {
        return NameLevel::Missing;
    }
    if equal_with_unknown(a, b) {
        return NameLevel::Exact;
    }
    let similarity = jaro_winkler(a, b);
    if similarity >= 0.92 {
        NameLevel::JaroWinklerHigh
    } else if similarity >= 0.80 {
        NameLevel::JaroWinklerMedium
    } else {
        NameLevel::Different
    }
}

/// Comparison level of two birth dates, the first that applies in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DateLevel {
    /// The same date.
    Exact,
    /// Same year, day and month swapped (1980-03-04 / 1980-04-03).
    DayMonthSwapped,
    /// Same era year, month and day in different eras (昭和5年 typed as 平成5年).
    WrongEra,
    /// Exactly one of year, month and day differs.
    OneFieldDiffers,
    /// Years at most one apart.
    YearWithinOne,
    /// Anything else.
    Different,
}

/// Compares two birth dates.
pub fn compare_birth_dates(a: &BirthDate, b: &BirthDate) -> DateLevel {
    let (x, y) = (a.date, b.date);
    if x == y {
        return DateLevel::Exact;
    }
    if x.year() == y.year() && x.month() == y.day() && x.day() == y.month() {
        return DateLevel::DayMonthSwapped;
    }
    if let (Some(ex), Some(ey)) = (EraDate::of(x), EraDate::of(y))
        && ex.era != ey.era
        && (ex.year, ex.month, ex.day) == (ey.year, ey.month, ey.day)
    {
        return DateLevel::WrongEra;
    }
    let differing = usize::from(x.year() != y.year())
        + usize::from(x.month() != y.month())
        + usize::from(x.day() != y.day());
    if differing == 1 {
        DateLevel::OneFieldDiffers
    } else if (x.year() - y.year()).abs() <= 1 {
        DateLevel::YearWithinOne
    } else {
        DateLevel::Different
    }
}

/// Comparison level of two postal codes (7 digits each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PostalLevel {
    /// One side is empty.
    Missing,
    /// The same 7 digits.
    Exact,
    /// The same first 3 digits (the same delivery area).
    SameArea,
    /// Anything else.
    Different,
}

/// Compares two normalized postal codes.
pub fn compare_postal_codes(a: &str, b: &str) -> PostalLevel {
    if a.is_empty() || b.is_empty() {
        PostalLevel::Missing
    } else if a == b {
        PostalLevel::Exact
    } else if a.get(..3).is_some() && a.get(..3) == b.get(..3) {
        PostalLevel::SameArea
    } else {
        PostalLevel::Different
    }
}

/// Comparison level of two normalized addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressLevel {
    /// One side is empty.
    Missing,
    /// The same normalized address.
    Exact,
    /// The same municipality, the rest with Levenshtein distance ≤ 2.
    NearlyExact,
    /// The same municipality.
    SameMunicipality,
    /// The same prefecture.
    SamePrefecture,
    /// Anything else.
    Different,
}

/// Compares two normalized addresses.
pub fn compare_addresses(
    a: &crate::normalize::address::NormalizedAddress,
    b: &crate::normalize::address::NormalizedAddress,
) -> AddressLevel {
    if a.key.is_empty() || b.key.is_empty() {
        return AddressLevel::Missing;
    }
    if equal_with_unknown(&a.key, &b.key) {
        return AddressLevel::Exact;
    }
    let same_municipality = a.municipality.is_some() && a.municipality == b.municipality;
    let compatible_prefecture =
        a.prefecture.is_none() || b.prefecture.is_none() || a.prefecture == b.prefecture;
    if same_municipality && compatible_prefecture {
        if levenshtein(&a.rest, &b.rest) <= 2 {
            return AddressLevel::NearlyExact;
        }
        return AddressLevel::SameMunicipality;
    }
    if a.prefecture.is_some() && a.prefecture == b.prefecture {
        AddressLevel::SamePrefecture
    } else {
        AddressLevel::Different
    }
}

/// An insurance card as recorded: normalized insurer number, symbol, number and branch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct InsuranceCard {
    /// 保険者番号 (digits).
    pub insurer: String,
    /// 記号, normalized.
    pub symbol: String,
    /// 番号, normalized.
    pub number: String,
    /// 枝番, two digits, when present.
    pub branch: Option<String>,
}

/// Comparison level of two insurance cards. A card is shared by a household; the branch number
/// (枝番) tells its members apart, so the same card with a different branch is evidence of a
/// different person (see issue 5, household rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CardLevel {
    /// One side has no card (insurer or number empty).
    Missing,
    /// The same insurer, symbol and number, and the same branch (or a branch missing on a side).
    SameCardSameBranch,
    /// The same insurer, symbol and number, different branch numbers.
    SameCardOtherBranch,
    /// The same insurer only.
    SameInsurer,
    /// Anything else.
    Different,
}

/// Compares two insurance cards.
pub fn compare_cards(a: &InsuranceCard, b: &InsuranceCard) -> CardLevel {
    if a.insurer.is_empty() || b.insurer.is_empty() || a.number.is_empty() || b.number.is_empty() {
        return CardLevel::Missing;
    }
    if a.insurer != b.insurer {
        return CardLevel::Different;
    }
    if a.symbol != b.symbol || a.number != b.number {
        return CardLevel::SameInsurer;
    }
    match (&a.branch, &b.branch) {
        (Some(x), Some(y)) if x != y => CardLevel::SameCardOtherBranch,
        _ => CardLevel::SameCardSameBranch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::address::normalize_address;
    use crate::normalize::date::parse_birth_date;
    use crate::normalize::name::{normalize_kana_name, normalize_kanji_name};

    #[test]
    fn levenshtein_counts_characters_not_bytes() {
        assert_eq!(levenshtein("高橋", "髙橋"), 1);
        assert_eq!(levenshtein("タナカ", "タナカ"), 0);
        assert_eq!(levenshtein("サトウ", "サイトウ"), 1);
        assert_eq!(levenshtein("", "山田"), 2);
        assert_eq!(levenshtein("〓田", "吉田"), 0);
    }

    #[test]
    fn jaro_winkler_on_multibyte_strings() {
        assert!((jaro_winkler("ワタナベ", "ワタナベ") - 1.0).abs() < 1e-12);
        // Classic reference values hold on ASCII.
        assert!((jaro("MARTHA", "MARHTA") - 0.944_444).abs() < 1e-5);
        assert!((jaro_winkler("MARTHA", "MARHTA") - 0.961_111).abs() < 1e-5);
        // The same shape on katakana (3 bytes a character) gives the same values.
        assert!((jaro("アイウエオカ", "アイウオエカ") - 0.944_444).abs() < 1e-5);
        assert!((jaro_winkler("アイウエオカ", "アイウオエカ") - 0.961_111).abs() < 1e-5);
        let jw = jaro_winkler("サトウハナコ", "サイトウハナコ");
        assert!(jw > 0.9 && jw < 1.0, "{jw}");
        assert_eq!(jaro_winkler("山田", "鈴木"), 0.0);
    }

    #[test]
    fn the_unknown_wildcard_is_not_a_mismatch() {
        let a = normalize_kanji_name("〓田太郎").key;
        let b = normalize_kanji_name("吉田太郎").key;
        assert_eq!(compare_names(&a, &b), NameLevel::Exact);
        assert!((jaro_winkler(&a, &b) - 1.0).abs() < 1e-12);
        assert_eq!(
            compare_names(&normalize_kanji_name("●田").key, "山田"),
            NameLevel::Exact
        );
    }

    #[test]
    fn name_levels() {
        let k = |s: &str| normalize_kana_name(s).key;
        assert_eq!(
            compare_names(&k("ﾀﾅｶ ﾀﾛｳ"), &k("たなか たろう")),
            NameLevel::Exact
        );
        assert_eq!(
            compare_names(&k("サトウハナコ"), &k("サイトウハナコ")),
            NameLevel::JaroWinklerHigh
        );
        assert_eq!(
            compare_names(&k("ヤマダ"), &k("スズキ")),
            NameLevel::Different
        );
        assert_eq!(compare_names("", "ヤマダ"), NameLevel::Missing);
    }

    fn date(text: &str) -> BirthDate {
        parse_birth_date(text).unwrap()
    }

    #[test]
    fn date_levels() {
        assert_eq!(
            compare_birth_dates(&date("S55.1.2"), &date("1980-01-02")),
            DateLevel::Exact
        );
        assert_eq!(
            compare_birth_dates(&date("1980-03-04"), &date("1980/4/3")),
            DateLevel::DayMonthSwapped
        );
        // 昭和5年6月7日 typed as 平成5年6月7日.
        assert_eq!(
            compare_birth_dates(&date("昭和5年6月7日"), &date("平成5年6月7日")),
            DateLevel::WrongEra
        );
        assert_eq!(
            compare_birth_dates(&date("1980-01-02"), &date("1980-01-12")),
            DateLevel::OneFieldDiffers
        );
        assert_eq!(
            compare_birth_dates(&date("1980-01-02"), &date("1981-05-12")),
            DateLevel::YearWithinOne
        );
        assert_eq!(
            compare_birth_dates(&date("1980-01-02"), &date("1990-05-12")),
            DateLevel::Different
        );
    }

    #[test]
    fn address_and_postal_levels() {
        let a = normalize_address("東京都千代田区丸の内一丁目1番1号");
        let b = normalize_address("東京都千代田区丸の内1-1-1");
        assert_eq!(compare_addresses(&a, &b), AddressLevel::Exact);
        let c = normalize_address("東京都千代田区丸の内1-1-2");
        assert_eq!(compare_addresses(&a, &c), AddressLevel::NearlyExact);
        let d = normalize_address("東京都千代田区永田町2-3-1");
        assert_eq!(compare_addresses(&a, &d), AddressLevel::SameMunicipality);
        let e = normalize_address("東京都港区芝3-4-5");
        assert_eq!(compare_addresses(&a, &e), AddressLevel::SamePrefecture);
        assert_eq!(
            compare_postal_codes("1000005", "1000005"),
            PostalLevel::Exact
        );
        assert_eq!(
            compare_postal_codes("1000005", "1000014"),
            PostalLevel::SameArea
        );
        assert_eq!(compare_postal_codes("1000005", ""), PostalLevel::Missing);
    }

    #[test]
    fn a_shared_card_with_another_branch_is_another_person() {
        let card = |branch: &str| InsuranceCard {
            insurer: "01130012".into(),
            symbol: "1234".into(),
            number: "56".into(),
            branch: Some(branch.into()),
        };
        assert_eq!(
            compare_cards(&card("01"), &card("01")),
            CardLevel::SameCardSameBranch
        );
        assert_eq!(
            compare_cards(&card("01"), &card("02")),
            CardLevel::SameCardOtherBranch
        );
        let other = InsuranceCard {
            number: "57".into(),
            ..card("01")
        };
        assert_eq!(compare_cards(&card("01"), &other), CardLevel::SameInsurer);
        assert_eq!(
            compare_cards(&card("01"), &InsuranceCard::default()),
            CardLevel::Missing
        );
    }
}
