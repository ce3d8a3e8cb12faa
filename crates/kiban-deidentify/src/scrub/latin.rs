//! Names written in Latin letters (`Taro Yamada`, `YAMADA Taro`, `T. Yamada`): the identity
//! store's kana readings romanized by Hepburn and matched word by word, case-insensitively,
//! in either order, with spelling variants of long vowels (`Satō`, `Satoh`, `Satou`, `Sato`)
//! and of `n` before labials (`Homma`, `Honma`) folded on both sides.
//!
//! A family name alone (`Yamada`, `YAMADA`) is removed from its own person's texts, and
//! anyone's family name is removed after a title (`Mr. Yamada`, `Dr Sato`) or before an
//! honorific (`Yamada-san`, `Sato sensei`). English words that are also romanized family
//! names (`date` 伊達, `nose` 能勢, `ago` 吾郷) are removed only with such a title or
//! honorific, never alone.

use std::collections::{HashMap, HashSet};

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

/// Romanized full names: (first word, second word) in both orders, and (initial, family);
/// and romanized family names with their persons.
#[derive(Default)]
pub(crate) struct LatinNames {
    pairs: HashSet<(String, String)>,
    /// Folded romanized family name → the persons (sorted) whose family name it is.
    families: HashMap<String, Vec<u32>>,
}

/// Titles written before a family name (`Mr. Yamada`), compared lowercase.
const TITLES: &[&str] = &[
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "madam",
];

/// Japanese honorifics written in Latin letters after a family name (`Yamada-san`), compared
/// lowercase.
const HONORIFICS: &[&str] = &[
    "san", "sama", "sensei", "kun", "chan", "shi", "dono", "senpai", "sempai",
];

/// English words (lowercase, as written) that are also the romanization of a family name,
/// or fold to one: alone they are read as the word, so they are removed only after a title
/// or before an honorific. Short function words, words of clinical text and the Roman
/// numeral `ii` (井伊).
const ENGLISH_WORDS: &[&str] = &[
    "a", "ago", "age", "aim", "ami", "an", "are", "arise", "ate", "bake", "ban", "bare", "base",
    "be", "bean", "bide", "bile", "bin", "bite", "bone", "bore", "chin", "dame", "dare", "date",
    "den", "dine", "do", "dome", "don", "done", "dose", "due", "dune", "fame", "fan", "fate",
    "fine", "fun", "fuse", "game", "gate", "gene", "go", "gone", "gore", "gun", "ha", "hare",
    "hate", "he", "hen", "here", "hi", "hide", "hire", "ho", "home", "hone", "hope", "hose",
    "huge", "ii", "in", "inn", "ion", "jade", "joke", "june", "kin", "kite", "made", "main",
    "make", "male", "man", "mane", "mare", "mate", "me", "mean", "men", "mere", "mine", "mite",
    "mode", "mole", "more", "mote", "mule", "muse", "mute", "name", "no", "node", "none", "nose",
    "note", "nun", "oh", "on", "one", "ore", "pain", "pan", "pane", "pen", "pin", "pine", "pose",
    "pun", "pure", "rage", "rain", "rake", "ran", "rare", "rate", "ride", "rise", "robe", "rode",
    "role", "rose", "rote", "rude", "rule", "run", "rune", "sage", "sake", "same", "sane", "sera",
    "shin", "shine", "shoe", "side", "sin", "site", "so", "some", "son", "sore", "sun", "sure",
    "take", "tame", "tan", "tape", "tare", "ten", "tin", "tire", "to", "toe", "tone", "tore",
    "tote", "tube", "tune", "use", "wade", "wake", "wan", "ware", "we", "were", "wide", "wine",
    "wire", "wise", "woke", "won", "wore", "yen", "yoke", "zen", "zone",
];

/// Shortest romanized family or given name matched (in folded letters).
const MIN_ROMAN: usize = 2;

impl LatinNames {
    /// Adds the name of person `owner` from its kana reading's family and given parts.
    pub(crate) fn add(&mut self, family_kana: &str, given_kana: &str, owner: u32) {
        let (Some(family), Some(given)) = (romanize(family_kana), romanize(given_kana)) else {
            return;
        };
        let (family, given) = (fold_latin(&family), fold_latin(&given));
        if family.len() < MIN_ROMAN || given.len() < MIN_ROMAN {
            return;
        }
        let owners = self.families.entry(family.clone()).or_default();
        if let Err(at) = owners.binary_search(&owner) {
            owners.insert(at, owner);
        }
        let initial: String = given.chars().take(1).collect();
        self.pairs.insert((given.clone(), family.clone()));
        self.pairs.insert((family.clone(), given));
        self.pairs.insert((initial, family));
    }

    /// Pairs and family names held.
    pub(crate) fn len(&self) -> usize {
        self.pairs.len() + self.families.len()
    }

    /// Spans (`start..end` in `chars`) of romanized names in a text of person `owner`: two
    /// Latin words separated only by spaces, a comma or the period of an initial, each at
    /// word boundaries; and family names alone (see the module's rules).
    pub(crate) fn find(&self, chars: &[char], owner: Option<u32>) -> Vec<(usize, usize)> {
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
        for (index, &(start, end)) in words.iter().enumerate() {
            let word: String = chars[start..end].iter().collect();
            if end - start < MIN_ROMAN {
                continue;
            }
            let Some(owners) = self.families.get(&fold_latin(&word)) else {
                continue;
            };
            let lower = word.to_lowercase();
            let own = owner.is_some_and(|o| owners.binary_search(&o).is_ok());
            let alone = own && !ENGLISH_WORDS.contains(&lower.as_str());
            let titled = index > 0 && {
                let (t_start, t_end) = words[index - 1];
                let gap = &chars[t_end..start];
                let title: String = chars[t_start..t_end].iter().collect();
                !gap.is_empty()
                    && gap.len() <= 3
                    && gap.iter().all(|&c| matches!(c, ' ' | '.'))
                    && gap.iter().filter(|&&c| c == '.').count() <= 1
                    && TITLES.contains(&title.to_lowercase().as_str())
            };
            let honored = words.get(index + 1).is_some_and(|&(h_start, h_end)| {
                let gap = &chars[end..h_start];
                let honorific: String = chars[h_start..h_end].iter().collect();
                matches!(gap, [' '] | ['-'])
                    && HONORIFICS.contains(&honorific.to_lowercase().as_str())
            });
            if alone || titled || honored {
                found.push((start, end));
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
        names.add("ヤマダ", "タロウ", 0);
        let found = |text: &str| -> Vec<String> {
            let chars: Vec<char> = text.chars().collect();
            names
                .find(&chars, Some(1))
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

    #[test]
    fn family_names_alone_are_removed_when_own_titled_or_honored() {
        let mut names = LatinNames::default();
        names.add("ヤマダ", "タロウ", 0);
        names.add("サトウ", "ハナコ", 1);
        names.add("ダテ", "マサムネ", 2);
        names.add("アゴウ", "ヒロシ", 3);
        let found = |text: &str, owner: u32| -> Vec<String> {
            let chars: Vec<char> = text.chars().collect();
            names
                .find(&chars, Some(owner))
                .into_iter()
                .map(|(s, e)| chars[s..e].iter().collect())
                .collect()
        };
        // The person's own family name, alone, in any case, with or without context.
        for (text, name) in [
            ("YAMADA 72M", "YAMADA"),
            ("seen: yamada", "yamada"),
            ("Yamada-san", "Yamada"),
            ("Mr. Yamada", "Yamada"),
        ] {
            assert_eq!(found(text, 0), [name], "{text}");
        }
        // Anyone's family name after a title or before an honorific, long vowels folded.
        assert_eq!(found("Mrs Satoh called", 0), ["Satoh"]);
        assert_eq!(found("Dr. Sato's note", 0), ["Sato"]);
        assert_eq!(found("Yamada sensei", 1), ["Yamada"]);
        assert_eq!(found("Satō-sama", 0), ["Satō"]);
        // Another person's family name alone is not taken for a name.
        assert!(found("Sato", 0).is_empty());
        assert!(found("YAMADA", 1).is_empty());
        // Own family names that are English words: only with a title or an honorific.
        assert!(found("Date of admission: see the referral", 2).is_empty());
        assert!(found("DATE: pending", 2).is_empty());
        assert_eq!(found("Mr. Date and Date-san", 2), ["Date", "Date"]);
        assert!(found("Onset three days ago.", 3).is_empty());
        assert_eq!(found("Agoh, 60F", 3), ["Agoh"]);
        // Word boundaries and titles that are not titles.
        assert!(found("Yamadas", 0).is_empty() && found("Yamada2", 0).is_empty());
        assert!(found("Mr.. Sato", 0).is_empty());
        assert!(found("Sato-kai", 0).is_empty());
    }
}
