//! Folding of free text into the two forms the scrubber searches, each character keeping the
//! byte range of the original text it came from, so a match is cut out of the original.
//!
//! - The *main* form: NFKC (full-width digits and letters to ASCII, half-width katakana to
//!   full-width with their voiced marks composed, U+3000 to a space), kanji variants folded
//!   (髙 → 高), dash-like characters as `-`. Pattern detectors read it.
//! - The *name* form: the main form without spaces, hiragana as katakana, small kana enlarged,
//!   homophone kana folded and long-vowel marks dropped: the form of the name dictionary.

use std::collections::HashMap;
use std::sync::OnceLock;

use kiban_linkage::normalize::text::{
    fold_homophone_kana, hiragana_to_katakana, is_long_vowel_mark, is_space,
    small_to_large_katakana,
};
use kiban_linkage::normalize::variants::KANJI_VARIANTS;
use unicode_normalization::UnicodeNormalization;

/// Text in the main form: characters and, per character, the byte range of the original.
pub(crate) struct Folded {
    pub chars: Vec<char>,
    pub spans: Vec<(usize, usize)>,
}

fn kanji_variants() -> &'static HashMap<char, char> {
    static MAP: OnceLock<HashMap<char, char>> = OnceLock::new();
    MAP.get_or_init(|| KANJI_VARIANTS.iter().copied().collect())
}

/// Whether a character is a CJK ideograph (or the iteration mark 々, which names use).
pub(crate) fn is_kanji(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}' | '\u{F900}'..='\u{FAFF}' | '\u{20000}'..='\u{2FFFF}' | '々' | '〆')
}

/// Whether a character is hiragana.
pub(crate) fn is_hiragana(c: char) -> bool {
    matches!(c, '\u{3041}'..='\u{3096}' | 'ゝ' | 'ゞ')
}

/// Whether a character is katakana (with the long-vowel mark and the middle dot of names).
pub(crate) fn is_katakana(c: char) -> bool {
    matches!(c, '\u{30A1}'..='\u{30FA}' | 'ー' | 'ヽ' | 'ヾ' | '・')
}

/// Whether a character separates digit groups (after NFKC): `-` and the marks typed for it.
pub(crate) fn is_dash(c: char) -> bool {
    matches!(
        c,
        '-' | '‐' | '‑' | '‒' | '–' | '—' | '―' | '−' | 'ー' | 'ｰ' | '─' | '━'
    )
}

/// Pushes the main form of one original character.
fn push_main(c: char, span: (usize, usize), out: &mut Folded) {
    // Fast paths: ASCII, kanji, kana and common punctuation are their own NFKC form.
    if c.is_ascii() {
        out.chars.push(c);
        out.spans.push(span);
        return;
    }
    if is_kanji(c) {
        out.chars
            .push(kanji_variants().get(&c).copied().unwrap_or(c));
        out.spans.push(span);
        return;
    }
    if is_hiragana(c) || matches!(c, '\u{30A1}'..='\u{30FA}' | 'ー') {
        out.chars.push(c);
        out.spans.push(span);
        return;
    }
    // Half-width voiced marks compose with the kana before them (ｶﾞ → ガ).
    if matches!(c, '\u{FF9E}' | '\u{FF9F}') {
        let mark = if c == '\u{FF9E}' {
            '\u{3099}'
        } else {
            '\u{309A}'
        };
        if let (Some(last), Some(last_span)) = (out.chars.last_mut(), out.spans.last_mut())
            && let Some(composed) = unicode_normalization::char::compose(*last, mark)
        {
            *last = composed;
            last_span.1 = span.1;
            return;
        }
    }
    for folded in std::iter::once(c).nfkc() {
        let folded = if is_space(folded) {
            ' '
        } else if is_dash(folded) && folded != 'ー' {
            '-'
        } else if is_kanji(folded) {
            kanji_variants().get(&folded).copied().unwrap_or(folded)
        } else {
            folded
        };
        out.chars.push(folded);
        out.spans.push(span);
    }
}

/// The main form of `text`.
pub(crate) fn fold_main(text: &str) -> Folded {
    let mut out = Folded {
        chars: Vec::with_capacity(text.len() / 2),
        spans: Vec::with_capacity(text.len() / 2),
    };
    for (at, c) in text.char_indices() {
        push_main(c, (at, at + c.len_utf8()), &mut out);
    }
    out
}

/// The name form of one main-form character (`None`: dropped from the name form).
pub(crate) fn name_char(c: char) -> Option<char> {
    if is_space(c) || is_long_vowel_mark(c) || c == '・' {
        return None;
    }
    Some(fold_homophone_kana(small_to_large_katakana(
        hiragana_to_katakana(c),
    )))
}

/// The name form of main-form characters: the string searched, and for each of its characters
/// the index of the main-form character it came from.
pub(crate) fn fold_name(main: &[char]) -> (String, Vec<usize>, Vec<usize>) {
    let mut text = String::with_capacity(main.len() * 3);
    // Byte offset of each name-form character, then its main-form index.
    let mut byte_starts = Vec::with_capacity(main.len());
    let mut origins = Vec::with_capacity(main.len());
    for (index, &c) in main.iter().enumerate() {
        if let Some(n) = name_char(c) {
            byte_starts.push(text.len());
            origins.push(index);
            text.push(n);
        }
    }
    (text, byte_starts, origins)
}

/// The name form of a dictionary entry (as text is folded: main form, then name form).
pub(crate) fn name_key(raw: &str) -> String {
    fold_main(raw)
        .chars
        .into_iter()
        .filter_map(name_char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_form_keeps_original_byte_ranges() {
        let text = "ﾔﾏﾀﾞ　１２３髙";
        let folded = fold_main(text);
        let s: String = folded.chars.iter().collect();
        assert_eq!(s, "ヤマダ 123高");
        // ダ came from two half-width characters.
        assert_eq!(&text[folded.spans[2].0..folded.spans[2].1], "ﾀﾞ");
        assert_eq!(&text[folded.spans[7].0..folded.spans[7].1], "髙");
    }

    #[test]
    fn name_form_folds_kana_spaces_and_variants() {
        assert_eq!(name_key("やまだ　たろう"), name_key("ヤマダ タロウ"));
        assert_eq!(name_key("ﾔﾏﾀﾞ ﾀﾛｳ"), "ヤマダタロウ");
        assert_eq!(name_key("髙橋 一郎"), "高橋一郎");
        assert_eq!(name_key("キョウコ"), "キヨウコ");
        assert_eq!(name_key("ユーコ"), "ユコ");
    }
}
