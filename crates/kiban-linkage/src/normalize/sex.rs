//! Sex as providers type it: `1`/`2`, `男`/`女`, `M`/`F`, `male`/`female`.

use super::text::{is_space, nfkc_clean};
use kiban_model::Sex;

/// Why a sex could not be read. Messages name the rule, never the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SexError {
    /// Not one of the recognized codes.
    #[error("sex: not 1/2/9, 男/女, M/F or male/female/other/unknown")]
    Unrecognized,
}

/// Parses a sex: `1`, `男`, `男性`, `M`, `male` → male; `2`, `女`, `女性`, `F`, `female` → female;
/// `9`, `0`, `不明`, `U`, `unknown`, empty → unknown; `other`, `その他` → other.
pub fn parse_sex(raw: &str) -> Result<Sex, SexError> {
    let text: String = nfkc_clean(raw)
        .chars()
        .filter(|c| !is_space(*c))
        .collect::<String>()
        .to_lowercase();
    match text.as_str() {
        "1" | "男" | "男性" | "m" | "male" => Ok(Sex::Male),
        "2" | "女" | "女性" | "f" | "female" => Ok(Sex::Female),
        "" | "0" | "9" | "不明" | "u" | "unknown" => Ok(Sex::Unknown),
        "other" | "その他" | "o" => Ok(Sex::Other),
        _ => Err(SexError::Unrecognized),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_forms() {
        for text in ["1", "１", "男", "男性", "M", "male", " Male "] {
            assert_eq!(parse_sex(text), Ok(Sex::Male), "{text}");
        }
        for text in ["2", "２", "女", "女性", "f", "FEMALE"] {
            assert_eq!(parse_sex(text), Ok(Sex::Female), "{text}");
        }
        assert_eq!(parse_sex(""), Ok(Sex::Unknown));
        assert_eq!(parse_sex("3"), Err(SexError::Unrecognized));
    }
}
