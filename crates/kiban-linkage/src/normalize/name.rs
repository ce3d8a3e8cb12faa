//! Names in kanji (漢字氏名) and in kana (カナ氏名): comparison keys and the surname / given-name
//! split.

use super::surnames::COMMON_SURNAMES;
use super::text::{is_space, kana_fold, nfkc_clean};
use super::variants::canonical_kanji;

/// How the family and given names were told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameSplit {
    /// The provider typed a space (ASCII or U+3000) between them.
    Separator,
    /// No separator; the longest common surname that starts the name was taken as the family name.
    SurnameTable,
    /// No separator and no common surname starts the name: the whole name is in `family` and
    /// `given` is empty. Compare such names on their `key` only.
    Uncertain,
}

/// A normalized name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NormalizedName {
    /// Family name (氏), normalized.
    pub family: String,
    /// Given name (名), normalized; empty when the split is [`NameSplit::Uncertain`].
    pub given: String,
    /// The whole name normalized, without spaces: the comparison key.
    pub key: String,
    /// How family and given names were told apart.
    pub split: NameSplit,
}

/// The canonical form of kanji text: NFKC, variation selectors stripped, unknown markers as
/// [`super::text::UNKNOWN`], kanji variants folded ([`super::variants::KANJI_VARIANTS`]); spaces kept.
pub fn canonical_kanji_text(raw: &str) -> String {
    nfkc_clean(raw).chars().map(canonical_kanji).collect()
}

/// Normalizes a kanji name: `髙橋　一郎` → family `高橋`, given `一郎`, key `高橋一郎`.
pub fn normalize_kanji_name(raw: &str) -> NormalizedName {
    split_name(&canonical_kanji_text(raw), |entry| entry.0.to_owned())
}

/// Normalizes a kana name: `ﾀﾅｶ ﾀﾛｳ`, `たなか たろう` and `タナカ　タロウ` all give family `タナカ`,
/// given `タロウ`, key `タナカタロウ` (small kana enlarged, long-vowel marks dropped).
pub fn normalize_kana_name(raw: &str) -> NormalizedName {
    split_name(&kana_fold(raw), |entry| kana_fold(entry.1))
}

fn split_name(text: &str, surname_of: impl Fn(&(&str, &str)) -> String) -> NormalizedName {
    let parts: Vec<&str> = text.split(is_space).filter(|p| !p.is_empty()).collect();
    let key: String = parts.concat();
    if parts.len() >= 2 {
        return NormalizedName {
            family: parts[0].to_owned(),
            given: parts[1..].concat(),
            key,
            split: NameSplit::Separator,
        };
    }
    // Longest common surname that leaves a non-empty given name.
    let best = COMMON_SURNAMES
        .iter()
        .map(&surname_of)
        .filter(|surname| key.len() > surname.len() && key.starts_with(surname.as_str()))
        .max_by_key(|surname| surname.chars().count());
    match best {
        Some(surname) => NormalizedName {
            given: key[surname.len()..].to_owned(),
            family: surname,
            key,
            split: NameSplit::SurnameTable,
        },
        None => NormalizedName {
            family: key.clone(),
            given: String::new(),
            key,
            split: NameSplit::Uncertain,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::text::UNKNOWN;

    #[test]
    fn kanji_variants_give_the_same_key() {
        assert_eq!(
            normalize_kanji_name("髙橋 一郎").key,
            normalize_kanji_name("高橋一郎").key
        );
        let saito = ["齋藤", "齊藤", "斉藤", "斎藤"].map(|n| normalize_kanji_name(n).key);
        assert!(saito.iter().all(|k| k == "斎藤"), "{saito:?}");
        assert_eq!(normalize_kanji_name("渡邊").key, "渡辺");
        assert_eq!(normalize_kanji_name("渡邉").key, "渡辺");
        assert_eq!(normalize_kanji_name("山﨑").key, "山崎");
        assert_eq!(normalize_kanji_name("𠮷田").key, "吉田");
        assert_eq!(normalize_kanji_name("櫻井").key, "桜井");
        // 塚 U+FA10 is a compatibility ideograph: NFKC unifies it with 塚.
        assert_eq!(normalize_kanji_name("大\u{FA10}").key, "大塚");
        // An IVS on 辻 is dropped.
        assert_eq!(normalize_kanji_name("辻\u{E0100}").key, "辻");
    }

    #[test]
    fn a_separator_splits_family_and_given_names() {
        let name = normalize_kanji_name("髙橋　一郎");
        assert_eq!(
            (name.family.as_str(), name.given.as_str()),
            ("高橋", "一郎")
        );
        assert_eq!(name.split, NameSplit::Separator);
        let name = normalize_kanji_name("佐藤 花子");
        assert_eq!(name.key, "佐藤花子");
    }

    #[test]
    fn the_surname_table_splits_names_without_separator_longest_first() {
        let name = normalize_kanji_name("佐々木健太");
        assert_eq!(
            (name.family.as_str(), name.given.as_str()),
            ("佐々木", "健太")
        );
        assert_eq!(name.split, NameSplit::SurnameTable);
        // 長谷川 wins over a shorter prefix.
        assert_eq!(normalize_kanji_name("長谷川優子").family, "長谷川");
        // Variants are folded before the lookup.
        assert_eq!(normalize_kanji_name("齋藤実").family, "斎藤");
        let kana = normalize_kana_name("ﾊｾｶﾞﾜﾕｳｺ");
        assert_eq!(
            (kana.family.as_str(), kana.given.as_str()),
            ("ハセガワ", "ユウコ")
        );
    }

    #[test]
    fn an_unknown_surname_without_separator_is_an_uncertain_split() {
        let name = normalize_kanji_name("勘解由小路太郎");
        assert_eq!(name.split, NameSplit::Uncertain);
        assert_eq!(name.family, "勘解由小路太郎");
        assert!(name.given.is_empty());
    }

    #[test]
    fn kana_styles_give_the_same_key() {
        let keys = ["ﾀﾅｶ ﾀﾛｳ", "たなか　たろう", "タナカ タロウ", "タナカタロー"]
            .map(|n| normalize_kana_name(n).key);
        assert!(
            keys.iter()
                .all(|k| k == "タナカタロウ" || k == "タナカタロ"),
            "{keys:?}"
        );
        assert_eq!(keys[0], keys[1]);
        assert_eq!(keys[1], keys[2]);
        assert_eq!(
            normalize_kana_name("キョウコ").key,
            normalize_kana_name("きようこ").key
        );
    }

    #[test]
    fn unknown_characters_are_kept_as_the_wildcard() {
        let name = normalize_kanji_name("〓田 太郎");
        assert_eq!(name.family, format!("{UNKNOWN}田"));
        assert_eq!(
            normalize_kanji_name("●田").key,
            normalize_kanji_name("？田").key
        );
    }
}
