//! Text helpers: XHTML narrative to plain text, NFKC normalization, canonical JSON.

use unicode_normalization::UnicodeNormalization;

/// NFKC-normalizes and trims (full-width digits and letters become ASCII).
pub(crate) fn nfkc_trim(text: &str) -> String {
    text.nfkc().collect::<String>().trim().to_owned()
}

/// Elements after which a line break is inserted, so paragraphs stay apart.
const BLOCK_ELEMENTS: &[&str] = &[
    "p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "pre",
];

/// Plain text of an XHTML narrative: tags removed, entities decoded, blank lines dropped.
pub(crate) fn xhtml_to_text(xhtml: &str) -> String {
    let mut out = String::with_capacity(xhtml.len());
    let mut rest = xhtml;
    while let Some(open) = rest.find('<') {
        out.push_str(&decode_entities(&rest[..open]));
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else {
            // An unterminated tag: keep the text as it is rather than dropping it.
            out.push_str(&decode_entities(&rest[open..]));
            rest = "";
            break;
        };
        let tag = after[..close].trim_start_matches('/').trim();
        let name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if BLOCK_ELEMENTS.contains(&name.as_str()) {
            out.push('\n');
        }
        rest = &after[close + 1..];
    }
    out.push_str(&decode_entities(rest));
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Decodes XML character and the predefined entity references; unknown ones are kept.
fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let decoded = after.find(';').filter(|&end| end <= 10).and_then(|end| {
            let entity = &after[..end];
            let ch = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ => {
                    let number = if let Some(hex) = entity
                        .strip_prefix("#x")
                        .or_else(|| entity.strip_prefix("#X"))
                    {
                        u32::from_str_radix(hex, 16).ok()
                    } else {
                        entity.strip_prefix('#').and_then(|d| d.parse().ok())
                    };
                    number.and_then(char::from_u32)
                }
            };
            ch.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether a character is a kanji (CJK unified ideograph, extension A, compatibility, 々).
fn is_kanji(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x3134F)
        || c == '々'
}

/// Whether a character is kana (hiragana, katakana, half-width katakana, prolonged sound mark).
fn is_kana(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x309F | 0x30A0..=0x30FF | 0x31F0..=0x31FF | 0xFF66..=0xFF9F)
}

/// The script of a name written without the JP Core representation extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameScript {
    /// Contains kanji.
    Kanji,
    /// Kana only (spaces allowed).
    Kana,
    /// Anything else (romaji, ...).
    Other,
}

pub(crate) fn name_script(name: &str) -> NameScript {
    if name.chars().any(is_kanji) {
        NameScript::Kanji
    } else if name.chars().any(is_kana)
        && name
            .chars()
            .all(|c| is_kana(c) || c.is_whitespace() || c == '\u{3000}' || c == '・')
    {
        NameScript::Kana
    } else {
        NameScript::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narratives_become_plain_text() {
        let text = xhtml_to_text(
            "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>主訴: 胸痛 &amp; 息切れ</p><p>&lt;既往&gt; &#x9AD8;血圧</p></div>",
        );
        assert_eq!(text, "主訴: 胸痛 & 息切れ\n<既往> 高血圧");
        assert_eq!(xhtml_to_text("a &unknown; b"), "a &unknown; b");
    }

    #[test]
    fn scripts_and_width() {
        assert_eq!(name_script("山田 太郎"), NameScript::Kanji);
        assert_eq!(name_script("ヤマダ　タロウ"), NameScript::Kana);
        assert_eq!(name_script("Yamada Taro"), NameScript::Other);
        assert_eq!(nfkc_trim(" ０６１３００１７ "), "06130017");
    }
}
