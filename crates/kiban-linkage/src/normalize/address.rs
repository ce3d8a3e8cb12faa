//! Addresses (住所) and postal codes (郵便番号).
//!
//! The street part is rewritten so that `3丁目4番5号`, `三丁目4番地5`, `3-4-5` and `3ー4ー5` agree;
//! the prefecture (都道府県) and municipality (市区町村, with the ward of a 政令指定都市 and the 郡
//! of a town or village) are extracted for blocking and comparison.

use super::date::parse_kanji_number;
use super::text::{is_space, nfkc_clean};
use super::variants::canonical_kanji;

/// The 47 prefectures, in JIS X 0401 order (index + 1 is the prefecture code).
pub use kiban_model::PREFECTURES;

/// The 20 designated cities (政令指定都市), whose addresses name a ward (区) after the city.
pub const DESIGNATED_CITIES: [&str; 20] = [
    "札幌市",
    "仙台市",
    "さいたま市",
    "千葉市",
    "横浜市",
    "川崎市",
    "相模原市",
    "新潟市",
    "静岡市",
    "浜松市",
    "名古屋市",
    "京都市",
    "大阪市",
    "堺市",
    "神戸市",
    "岡山市",
    "広島市",
    "北九州市",
    "福岡市",
    "熊本市",
];

/// Cities whose name contains 市 before the final 市 (the generic rule would cut them short).
const CITIES_WITH_INNER_SHI: [&str; 3] = ["四日市市", "廿日市市", "野々市市"];

/// A normalized address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NormalizedAddress {
    /// The prefecture, when the address names one.
    pub prefecture: Option<String>,
    /// The municipality (`千代田区`, `横浜市港北区`, `比企郡嵐山町`), when recognized.
    pub municipality: Option<String>,
    /// The rest: town, 丁目-番-号 as hyphenated numbers, building.
    pub rest: String,
    /// The whole address normalized, without spaces: the comparison key.
    pub key: String,
}

/// Normalizes an address: NFKC, kanji variants, spaces removed, 丁目・番地・番・号 and dash-like
/// characters between numbers as `-`, and prefecture / municipality extracted.
pub fn normalize_address(raw: &str) -> NormalizedAddress {
    let text: String = nfkc_clean(raw)
        .chars()
        .filter(|c| !is_space(*c))
        .map(canonical_kanji)
        .collect();
    let key = street_numbers(&text);
    let (prefecture, after_prefecture) = match PREFECTURES.iter().find(|p| key.starts_with(**p)) {
        Some(p) => (Some((*p).to_owned()), &key[p.len()..]),
        None => (None, key.as_str()),
    };
    let (municipality, rest) = match municipality_prefix(after_prefecture) {
        Some(len) => (
            Some(after_prefecture[..len].to_owned()),
            after_prefecture[len..].to_owned(),
        ),
        None => (None, after_prefecture.to_owned()),
    };
    NormalizedAddress {
        prefecture,
        municipality,
        rest,
        key,
    }
}

/// Byte length of the municipality at the start of `text` (after the prefecture).
fn municipality_prefix(text: &str) -> Option<usize> {
    if let Some(city) = CITIES_WITH_INNER_SHI.iter().find(|c| text.starts_with(**c)) {
        return Some(city.len());
    }
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let end_of = |i: usize| chars.get(i).map_or(text.len(), |(b, c)| b + c.len_utf8());
    let find = |from: usize, targets: &[char]| {
        (from..chars.len()).find(|&i| targets.contains(&chars[i].1))
    };
    // A marker at position 0 is part of a name (市川市, 町田市, 村上市), never the end of one.
    let shi = find(1, &['市']);
    let ku_or_gun = find(1, &['区', '郡']);
    let first_any = find(1, &['市', '区', '郡', '町', '村']);
    let marker = match (shi, ku_or_gun) {
        // A 市 close to the start wins over an earlier 町/村 inside the name (東村山市, 大町市),
        // unless a 区 or 郡 comes first (新宿区市谷…).
        (Some(s), k) if s <= 4 && k.is_none_or(|k| k > s) => Some(s),
        _ => first_any,
    }?;
    match chars[marker].1 {
        '市' => {
            let city = &text[..end_of(marker)];
            if DESIGNATED_CITIES.contains(&city) {
                // The ward follows within a few characters (港北区, 北区, 中央区).
                if let Some(ward) = find(marker + 1, &['区']).filter(|w| w - marker <= 5) {
                    return Some(end_of(ward));
                }
            }
            Some(end_of(marker))
        }
        '郡' => find(marker + 1, &['町', '村'])
            .filter(|t| t - marker <= 6)
            .map(end_of)
            .or(Some(end_of(marker))),
        _ => Some(end_of(marker)),
    }
}

/// Rewrites 丁目・番地・番・号 after numbers, kanji numerals before them, `の` and dash-like
/// characters between numbers, as hyphenated numbers; `号室` (a room) is kept.
fn street_numbers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        // A run of kanji numerals followed by a street marker becomes digits.
        if is_kanji_numeral(chars[i]) {
            let start = i;
            let mut end = i;
            while end < chars.len() && is_kanji_numeral(chars[end]) {
                end += 1;
            }
            let run: String = chars[start..end].iter().collect();
            if street_marker_at(&chars, end).is_some()
                && let Some(n) = parse_kanji_number(&run)
            {
                out.push_str(&n.to_string());
            } else {
                out.push_str(&run);
            }
            i = end;
            continue;
        }
        let after_digit = out.chars().last().is_some_and(|c| c.is_ascii_digit());
        if after_digit && let Some(len) = street_marker_at(&chars, i) {
            out.push('-');
            i += len;
            continue;
        }
        let c = chars[i];
        let next_is_digit = chars.get(i + 1).is_some_and(|c| c.is_ascii_digit());
        if after_digit
            && next_is_digit
            && matches!(
                c,
                'ー' | '‐' | '‑' | '‒' | '–' | '—' | '―' | '−' | '-' | 'の' | '之'
            )
        {
            out.push('-');
        } else {
            out.push(c);
        }
        i += 1;
    }
    // `3-4-5-` (from 号 at the end or before a building) loses its trailing hyphen.
    let mut cleaned = String::with_capacity(out.len());
    let mut previous = None;
    let chars: Vec<char> = out.chars().collect();
    for (k, &c) in chars.iter().enumerate() {
        if c == '-' {
            let next_is_digit = chars.get(k + 1).is_some_and(|n| n.is_ascii_digit());
            if previous == Some('-')
                || !next_is_digit && previous.is_some_and(|p: char| p.is_ascii_digit())
            {
                continue;
            }
        }
        cleaned.push(c);
        previous = Some(c);
    }
    cleaned
}

fn is_kanji_numeral(c: char) -> bool {
    "〇一二三四五六七八九十百".contains(c)
}

/// Length in chars of a street marker (丁目, 番地, 番, 号) at `i` that is used as a separator:
/// followed by a number, a dash, the end, or something that is not a kanji (番町 and 号室 are
/// names, not separators).
fn street_marker_at(chars: &[char], i: usize) -> Option<usize> {
    let starts = |s: &str| {
        s.chars()
            .enumerate()
            .all(|(k, c)| chars.get(i + k) == Some(&c))
    };
    let len = ["丁目", "番地", "番", "号"]
        .iter()
        .find(|m| starts(m))
        .map(|m| m.chars().count())?;
    match chars.get(i + len) {
        None => Some(len),
        Some(&'室') => None,
        Some(&next) if is_cjk_ideograph(next) && !is_kanji_numeral(next) => None,
        Some(_) => Some(len),
    }
}

fn is_cjk_ideograph(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}' | '\u{20000}'..='\u{2FFFF}' | '々')
}

/// Why a postal code could not be read. Messages name the rule, never the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PostalCodeError {
    /// Not seven digits once 〒, spaces and hyphens are removed.
    #[error("postal code: not 7 digits")]
    NotSevenDigits,
}

/// Normalizes a postal code to its 7 digits (`〒100-0005`, `１００－０００５` → `1000005`).
pub fn normalize_postal_code(raw: &str) -> Result<String, PostalCodeError> {
    let digits: String = nfkc_clean(raw)
        .chars()
        .filter(|c| !is_space(*c) && !matches!(c, '〒' | '-' | 'ー' | '‐' | '−' | '―'))
        .collect();
    if digits.len() == 7 && digits.chars().all(|c| c.is_ascii_digit()) {
        Ok(digits)
    } else {
        Err(PostalCodeError::NotSevenDigits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chome_ban_go_become_hyphens() {
        let a = normalize_address("東京都千代田区丸の内一丁目1番1号");
        assert_eq!(a.prefecture.as_deref(), Some("東京都"));
        assert_eq!(a.municipality.as_deref(), Some("千代田区"));
        assert_eq!(a.rest, "丸の内1-1-1");
        assert_eq!(a.key, "東京都千代田区丸の内1-1-1");
        assert_eq!(normalize_address("港区芝3丁目4番5号").rest, "芝3-4-5");
        assert_eq!(normalize_address("港区芝三丁目4番地5").rest, "芝3-4-5");
        assert_eq!(normalize_address("港区芝3-4-5").rest, "芝3-4-5");
    }

    #[test]
    fn dashes_between_numbers_are_hyphens() {
        for text in [
            "芝3ー4ー5",
            "芝３－４－５",
            "芝3‐4‐5",
            "芝3―4―5",
            "芝3の4の5",
        ] {
            assert_eq!(normalize_address(text).key, "芝3-4-5", "{text}");
        }
        // A long-vowel mark inside a katakana building name stays.
        assert_eq!(
            normalize_address("日吉2丁目8-15 コーポ日吉101号室").key,
            "日吉2-8-15コーポ日吉101号室"
        );
    }

    #[test]
    fn ban_and_go_inside_names_are_kept() {
        assert_eq!(normalize_address("千代田区二番町5-3").rest, "二番町5-3");
        assert_eq!(normalize_address("千代田区一番町").rest, "一番町");
    }

    #[test]
    fn municipalities_are_extracted() {
        let cases = [
            (
                "神奈川県横浜市港北区日吉2丁目8-15",
                "神奈川県",
                "横浜市港北区",
                "日吉2-8-15",
            ),
            ("大阪府大阪市北区梅田1-1", "大阪府", "大阪市北区", "梅田1-1"),
            ("埼玉県比企郡嵐山町菅谷1", "埼玉県", "比企郡嵐山町", "菅谷1"),
            ("東京都東村山市本町1丁目2", "東京都", "東村山市", "本町1-2"),
            (
                "東京都新宿区市谷本村町5-1",
                "東京都",
                "新宿区",
                "市谷本村町5-1",
            ),
            ("千葉県市川市八幡1", "千葉県", "市川市", "八幡1"),
            ("東京都町田市森野2", "東京都", "町田市", "森野2"),
            ("三重県四日市市諏訪町1", "三重県", "四日市市", "諏訪町1"),
            ("長野県大町市大町1", "長野県", "大町市", "大町1"),
            (
                "北海道札幌市中央区北1条西2丁目",
                "北海道",
                "札幌市中央区",
                "北1条西2",
            ),
        ];
        for (text, prefecture, municipality, rest) in cases {
            let a = normalize_address(text);
            assert_eq!(a.prefecture.as_deref(), Some(prefecture), "{text}");
            assert_eq!(a.municipality.as_deref(), Some(municipality), "{text}");
            assert_eq!(a.rest, rest, "{text}");
        }
        let no_prefecture = normalize_address("横浜市港北区日吉2-8-15");
        assert_eq!(no_prefecture.prefecture, None);
        assert_eq!(no_prefecture.municipality.as_deref(), Some("横浜市港北区"));
    }

    #[test]
    fn postal_codes_are_seven_digits() {
        for text in [
            "100-0005",
            "〒100-0005",
            "１００－０００５",
            "1000005",
            "100 0005",
        ] {
            assert_eq!(normalize_postal_code(text).unwrap(), "1000005", "{text}");
        }
        assert_eq!(
            normalize_postal_code("100-005"),
            Err(PostalCodeError::NotSevenDigits)
        );
        assert_eq!(
            normalize_postal_code("abc-defg"),
            Err(PostalCodeError::NotSevenDigits)
        );
    }
}
