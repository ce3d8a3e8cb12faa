//! Character-level normalization shared by every field: NFKC, variation selectors, the unknown
//! wildcard, kana folding and spaces.

use unicode_normalization::UnicodeNormalization;

/// The distinguished wildcard of normalized text: one character that was unknown or
/// unrepresentable in the provider's system (typed as 〓, ●, ○, □, ■, ？ or ?).
///
/// Comparators treat it as matching any single character, never as a mismatch.
pub const UNKNOWN: char = '〓';

/// Whether a character (after NFKC) stands for an unknown character.
pub fn is_unknown_marker(c: char) -> bool {
    // ？ becomes ? under NFKC; 〓 (geta) is the JIS placeholder for a missing glyph.
    matches!(c, '〓' | '●' | '○' | '□' | '■' | '?')
}

/// Whether a character is a variation selector (standardized or ideographic, IVS).
pub fn is_variation_selector(c: char) -> bool {
    matches!(c, '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}')
}

/// Whether a character is a space of any width (ASCII, U+3000 ideographic, tab, NBSP).
pub fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{3000}'
}

/// NFKC with variation selectors removed and unknown markers mapped to [`UNKNOWN`].
///
/// Half-width katakana become full-width (with voiced marks composed), full-width digits,
/// letters and spaces become ASCII. Spaces are kept (the caller decides what they mean).
pub fn nfkc_clean(raw: &str) -> String {
    let clean = |chars: &mut dyn Iterator<Item = char>| -> String {
        chars
            .filter(|c| !is_variation_selector(*c))
            .map(|c| if is_unknown_marker(c) { UNKNOWN } else { c })
            .collect()
    };
    // Most identity text (kanji, full-width kana, ASCII) is already in NFKC: decomposing and
    // composing it again is most of the cost of loading records.
    if raw.chars().all(is_nfkc_stable) {
        clean(&mut raw.chars())
    } else {
        clean(&mut raw.nfkc())
    }
}

/// Whether a character is in a block whose characters NFKC leaves alone, alone or in any
/// sequence of such characters: printable ASCII, hiragana and katakana without the combining
/// and spacing voiced marks, the long-vowel mark, 々, and the CJK unified ideographs (not
/// the compatibility ideographs, which NFKC maps to unified ones). None of them composes
/// with another, so a string of them is in NFKC.
fn is_nfkc_stable(c: char) -> bool {
    matches!(
        c,
        ' '..='~'
            | '\u{3005}'
            | '\u{3041}'..='\u{3096}'
            | '\u{30A1}'..='\u{30FA}'
            | '\u{30FC}'
            | '\u{4E00}'..='\u{9FFF}'
    )
}

/// Removes every space.
pub fn without_spaces(text: &str) -> String {
    text.chars().filter(|c| !is_space(*c)).collect()
}

/// Hiragana to katakana (ぁ..ゖ and the iteration marks ゝゞ); other characters unchanged.
pub fn hiragana_to_katakana(c: char) -> char {
    match c {
        '\u{3041}'..='\u{3096}' | '\u{309D}'..='\u{309E}' => {
            char::from_u32(c as u32 + 0x60).unwrap_or(c)
        }
        _ => c,
    }
}

/// Small katakana to their large forms (ァ→ア, ッ→ツ, ャ→ヤ, ヮ→ワ, ヵ→カ, ヶ→ケ).
pub fn small_to_large_katakana(c: char) -> char {
    match c {
        'ァ' => 'ア',
        'ィ' => 'イ',
        'ゥ' => 'ウ',
        'ェ' => 'エ',
        'ォ' => 'オ',
        'ッ' => 'ツ',
        'ャ' => 'ヤ',
        'ュ' => 'ユ',
        'ョ' => 'ヨ',
        'ヮ' => 'ワ',
        'ヵ' => 'カ',
        'ヶ' => 'ケ',
        // Small katakana for Ainu and the like (ㇰ..ㇿ) are vanishingly rare in names.
        _ => c,
    }
}

/// Phonetically equal kana that providers type interchangeably: ヂ→ジ, ヅ→ズ, ヲ→オ, ヰ→イ, ヱ→エ.
///
/// ヴ is kept as ヴ (not folded to ブ): providers that type it do so consistently.
pub fn fold_homophone_kana(c: char) -> char {
    match c {
        'ヂ' => 'ジ',
        'ヅ' => 'ズ',
        'ヲ' => 'オ',
        'ヰ' => 'イ',
        'ヱ' => 'エ',
        _ => c,
    }
}

/// The long-vowel mark (ー; half-width ｰ is ー after NFKC) and the wave dash typed for it.
pub fn is_long_vowel_mark(c: char) -> bool {
    matches!(c, 'ー' | '〜' | '~')
}

/// The comparison form of a kana reading, spaces kept: NFKC, unknown markers, hiragana →
/// katakana, small → large, homophones folded, long-vowel mark dropped.
pub fn kana_fold(raw: &str) -> String {
    nfkc_clean(raw)
        .chars()
        .map(hiragana_to_katakana)
        .map(small_to_large_katakana)
        .map(fold_homophone_kana)
        .filter(|c| !is_long_vowel_mark(*c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_width_full_width_and_hiragana_readings_fold_to_one_form() {
        assert_eq!(kana_fold("ﾀﾅｶ"), "タナカ");
        assert_eq!(kana_fold("たなか"), "タナカ");
        assert_eq!(kana_fold("タナカ"), "タナカ");
        // Voiced marks on half-width kana compose: ｶﾞ → ガ.
        assert_eq!(kana_fold("ﾔﾏｻﾞｷ"), "ヤマサキ".replace('サ', "ザ"));
    }

    #[test]
    fn small_kana_and_long_vowels_fold() {
        assert_eq!(kana_fold("キョウコ"), "キヨウコ");
        assert_eq!(kana_fold("ハットリ"), "ハツトリ");
        assert_eq!(kana_fold("ユーコ"), "ユコ");
        assert_eq!(kana_fold("ｺｰｼﾞ"), "コジ");
        assert_eq!(kana_fold("ヶ"), "ケ");
        assert_eq!(kana_fold("ヮ"), "ワ");
        assert_eq!(kana_fold("ヴィ"), "ヴイ");
        assert_eq!(kana_fold("ちづこ"), "チズコ");
    }

    /// The quick-check shortcut gives what full NFKC gives, on text that is already
    /// normalized and on text that is not (half-width kana with voiced marks, decomposed
    /// kana, compatibility ideographs, circled digits, variation selectors).
    #[test]
    fn the_quick_check_shortcut_equals_full_nfkc() {
        for raw in [
            "山田 太郎",
            "ヤマダ タロウ",
            "東京都千代田区1-2-3",
            "ﾔﾏﾀﾞ ﾀﾛｳ",
            "カ\u{3099}",
            "髙橋",
            "\u{FA11}崎",
            "①丁目",
            "葛\u{E0100}飾",
            "〓田●子",
            "１２３ＡＢ",
            "",
        ] {
            let full: String = raw
                .nfkc()
                .filter(|c| !is_variation_selector(*c))
                .map(|c| if is_unknown_marker(c) { UNKNOWN } else { c })
                .collect();
            assert_eq!(nfkc_clean(raw), full, "{raw}");
        }
    }

    /// Every character the shortcut trusts is its own NFKC.
    #[test]
    fn the_characters_taken_as_stable_are_their_own_nfkc() {
        let stable = (0..=0x10FFFF_u32)
            .filter_map(char::from_u32)
            .filter(|c| is_nfkc_stable(*c));
        let mut count = 0;
        for c in stable {
            let mut buf = [0u8; 4];
            let one = c.encode_utf8(&mut buf);
            assert_eq!(one.nfkc().collect::<String>(), *one, "U+{:04X}", c as u32);
            count += 1;
        }
        assert!(count > 20_000, "{count}");
    }

    #[test]
    fn full_width_digits_letters_and_spaces_become_ascii() {
        assert_eq!(nfkc_clean("１２３ＡＢ　Ｃ"), "123AB C");
    }

    #[test]
    fn variation_selectors_are_stripped() {
        // 葛 with an IVS (葛󠄀) and 辻 with IVS.
        assert_eq!(nfkc_clean("葛\u{E0100}飾"), "葛飾");
        assert_eq!(nfkc_clean("辻\u{E0101}"), "辻");
        assert_eq!(nfkc_clean("神\u{FE00}"), "神");
    }

    #[test]
    fn unknown_markers_become_the_wildcard() {
        assert_eq!(nfkc_clean("〓田"), "〓田");
        assert_eq!(nfkc_clean("●田"), "〓田");
        assert_eq!(nfkc_clean("○田"), "〓田");
        assert_eq!(nfkc_clean("？田"), "〓田");
    }
}
