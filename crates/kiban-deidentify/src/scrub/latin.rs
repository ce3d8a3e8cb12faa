//! Names written in Latin letters (`Taro Yamada`, `YAMADA Taro`, `T. Yamada`): the identity
//! store's kana readings romanized by Hepburn and matched word by word, case-insensitively,
//! in either order, with spelling variants of long vowels (`Satō`, `Satoh`, `Satou`, `Sato`)
//! and of `n` before labials (`Homma`, `Honma`) folded on both sides.

use std::collections::HashSet;

use unicode_normalization::UnicodeNormalization;

/// Hepburn of one katakana mora, with the digraphs (small ャュョァィゥェォ after it) first.
fn mora(chars: &[char], at: usize) -> Option<(String, usize)> {
    let c = chars[at];
    if let Some(&next) = chars.get(at + 1)
        && let Some(digraph) = digraph(c, next)
    {
        return Some((digraph.to_owned(), 2));
    }
    single(c).map(|s| (s.to_owned(), 1))
}

fn digraph(c: char, small: char) -> Option<String> {
    let vowel = match small {
        'ャ' => "a",
        'ュ' => "u",
        'ョ' => "o",
        'ァ' => "a",
        'ィ' => "i",
        'ゥ' => "u",
        'ェ' => "e",
        'ォ' => "o",
        _ => return None,
    };
    let yoon = matches!(small, 'ャ' | 'ュ' | 'ョ');
    let head = match (c, yoon) {
        ('シ', true) => "sh",
        ('ジ' | 'ヂ', true) => "j",
        ('チ', true) => "ch",
        ('キ', true) => "ky",
        ('ギ', true) => "gy",
        ('ニ', true) => "ny",
        ('ヒ', true) => "hy",
        ('ビ', true) => "by",
        ('ピ', true) => "py",
        ('ミ', true) => "my",
        ('リ', true) => "ry",
        ('フ', false) => "f",
        ('ウ', false) => "w",
        ('ヴ', false) => "v",
        ('テ', false) => "t",
        ('デ', false) => "d",
        ('シ', false) if small == 'ェ' => "sh",
        ('ジ', false) if small == 'ェ' => "j",
        ('チ', false) if small == 'ェ' => "ch",
        _ => return None,
    };
    Some(format!("{head}{vowel}"))
}

fn single(c: char) -> Option<&'static str> {
    const TABLE: &[(&str, &str)] = &[
        ("アイウエオ", "a i u e o"),
        ("カキクケコ", "ka ki ku ke ko"),
        ("ガギグゲゴ", "ga gi gu ge go"),
        ("サシスセソ", "sa shi su se so"),
        ("ザジズゼゾ", "za ji zu ze zo"),
        ("タチツテト", "ta chi tsu te to"),
        ("ダヂヅデド", "da ji zu de do"),
        ("ナニヌネノ", "na ni nu ne no"),
        ("ハヒフヘホ", "ha hi fu he ho"),
        ("バビブベボ", "ba bi bu be bo"),
        ("パピプペポ", "pa pi pu pe po"),
        ("マミムメモ", "ma mi mu me mo"),
        ("ヤユヨ", "ya yu yo"),
        ("ラリルレロ", "ra ri ru re ro"),
        ("ワヰヱヲ", "wa i e o"),
        ("ン", "n"),
        ("ァィゥェォ", "a i u e o"),
        ("ャュョ", "ya yu yo"),
        ("ヴ", "vu"),
    ];
    TABLE.iter().find_map(|(kana, roman)| {
        let at = kana.chars().position(|k| k == c)?;
        roman.split(' ').nth(at)
    })
}

/// Hepburn romanization of a kana word (hiragana, katakana, half-width), lowercase; `None`
/// when it holds anything else.
pub(crate) fn romanize(kana: &str) -> Option<String> {
    let chars: Vec<char> = kana
        .nfkc()
        .map(|c| match c {
            // Hiragana to katakana.
            '\u{3041}'..='\u{3096}' => char::from_u32(c as u32 + 0x60).unwrap_or(c),
            _ => c,
        })
        .collect();
    let mut out = String::new();
    let mut geminate = false;
    let mut at = 0;
    while at < chars.len() {
        match chars[at] {
            'ッ' => {
                geminate = true;
                at += 1;
                continue;
            }
            // A long-vowel mark: the variants are folded anyway.
            'ー' => {
                at += 1;
                continue;
            }
            _ => {}
        }
        let (roman, used) = mora(&chars, at)?;
        if geminate {
            // っち → tch, otherwise the consonant doubles.
            if roman.starts_with("ch") {
                out.push('t');
            } else if let Some(first) = roman.chars().next().filter(|c| !"aiueo".contains(*c)) {
                out.push(first);
            }
            geminate = false;
        }
        out.push_str(&roman);
        at += used;
    }
    (!out.is_empty()).then_some(out)
}

/// The comparison form of a Latin word: lowercase, macrons and circumflexes dropped, long
/// vowels (`oh` before a consonant or the end, `ou`, `oo`, `uu`) folded, `m` before a labial
/// read as `n`.
pub(crate) fn fold_latin(word: &str) -> String {
    let lower: Vec<char> = word
        .chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'ā' | 'â' => 'a',
            'ī' | 'î' => 'i',
            'ū' | 'û' => 'u',
            'ē' | 'ê' => 'e',
            'ō' | 'ô' => 'o',
            other => other,
        })
        .collect();
    let mut out: Vec<char> = Vec::with_capacity(lower.len());
    let mut i = 0;
    while i < lower.len() {
        let c = lower[i];
        let next = lower.get(i + 1).copied();
        match (c, next) {
            ('o', Some('h')) if lower.get(i + 2).is_none_or(|n| !"aiueoy".contains(*n)) => {
                out.push('o');
                i += 2;
            }
            ('o', Some('u' | 'o')) | ('u', Some('u')) => {
                out.push(c);
                i += 2;
            }
            ('m', Some('b' | 'p' | 'm')) => {
                out.push('n');
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out.into_iter().collect()
}

/// Whether a character belongs to a Latin word.
fn is_latin_letter(c: char) -> bool {
    c.is_ascii_alphabetic() || "āīūēōâîûêôĀĪŪĒŌÂÎÛÊÔ".contains(c)
}

/// Romanized full names: (first word, second word) in both orders, and (initial, family).
#[derive(Default)]
pub(crate) struct LatinNames {
    pairs: HashSet<(String, String)>,
}

/// Shortest romanized family or given name matched (in folded letters).
const MIN_ROMAN: usize = 2;

impl LatinNames {
    /// Adds a person's name from its kana reading's family and given parts.
    pub(crate) fn add(&mut self, family_kana: &str, given_kana: &str) {
        let (Some(family), Some(given)) = (romanize(family_kana), romanize(given_kana)) else {
            return;
        };
        let (family, given) = (fold_latin(&family), fold_latin(&given));
        if family.len() < MIN_ROMAN || given.len() < MIN_ROMAN {
            return;
        }
        let initial: String = given.chars().take(1).collect();
        self.pairs.insert((given.clone(), family.clone()));
        self.pairs.insert((family.clone(), given));
        self.pairs.insert((initial, family));
    }

    /// Pairs held.
    pub(crate) fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Spans (`start..end` in `chars`) of romanized names: two Latin words separated only by
    /// spaces, a comma or the period of an initial, each at word boundaries.
    pub(crate) fn find(&self, chars: &[char]) -> Vec<(usize, usize)> {
        if self.pairs.is_empty() {
            return Vec::new();
        }
        let mut words: Vec<(usize, usize)> = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            if is_latin_letter(chars[i]) {
                let start = i;
                while i < chars.len() && is_latin_letter(chars[i]) {
                    i += 1;
                }
                // Word boundaries: not inside a run of digits or other word characters.
                let before_ok = start == 0 || !chars[start - 1].is_ascii_alphanumeric();
                let after_ok = i == chars.len() || !chars[i].is_ascii_alphanumeric();
                if before_ok && after_ok {
                    words.push((start, i));
                }
            } else {
                i += 1;
            }
        }
        let mut found = Vec::new();
        for pair in words.windows(2) {
            let ((a_start, a_end), (b_start, b_end)) = (pair[0], pair[1]);
            let gap = &chars[a_end..b_start];
            if gap.is_empty() || gap.len() > 3 || !gap.iter().all(|&c| matches!(c, ' ' | '.' | ','))
            {
                continue;
            }
            let first: String = chars[a_start..a_end].iter().collect();
            let second: String = chars[b_start..b_end].iter().collect();
            if self
                .pairs
                .contains(&(fold_latin(&first), fold_latin(&second)))
            {
                found.push((a_start, b_end));
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hepburn_of_kana_readings() {
        assert_eq!(romanize("ヤマダ").as_deref(), Some("yamada"));
        assert_eq!(romanize("たろう").as_deref(), Some("tarou"));
        assert_eq!(romanize("シンイチ").as_deref(), Some("shinichi"));
        assert_eq!(romanize("キョウコ").as_deref(), Some("kyouko"));
        assert_eq!(romanize("ハットリ").as_deref(), Some("hattori"));
        assert_eq!(romanize("イッチ").as_deref(), Some("itchi"));
        assert_eq!(romanize("ﾀｶﾊｼ").as_deref(), Some("takahashi"));
        assert_eq!(romanize("山田"), None);
        assert_eq!(fold_latin("Satō"), fold_latin("SATOH"));
        assert_eq!(fold_latin("Satou"), fold_latin("sato"));
        assert_eq!(fold_latin("Homma"), fold_latin("honma"));
        assert_eq!(fold_latin("Ohno"), fold_latin("Ono"));
        assert_eq!(fold_latin("Yuuko"), fold_latin("Yuko"));
    }

    #[test]
    fn romanized_names_match_in_both_orders_and_with_an_initial() {
        let mut names = LatinNames::default();
        names.add("ヤマダ", "タロウ");
        let found = |text: &str| -> Vec<String> {
            let chars: Vec<char> = text.chars().collect();
            names
                .find(&chars)
                .into_iter()
                .map(|(s, e)| chars[s..e].iter().collect())
                .collect()
        };
        assert_eq!(found("Dr. saw Taro Yamada today"), ["Taro Yamada"]);
        assert_eq!(found("YAMADA Taro, 45y"), ["YAMADA Taro"]);
        assert_eq!(found("cc: T. Yamada"), ["T. Yamada"]);
        assert_eq!(found("Yamada, Tarō"), ["Yamada, Tarō"]);
        assert_eq!(found("Taroh YAMADA"), ["Taroh YAMADA"]);
        // Word boundaries and other names.
        assert!(found("Taro Yamadas").is_empty());
        assert!(found("Yamada Hanako").is_empty());
        assert!(found("Taro2 Yamada").is_empty());
    }
}
