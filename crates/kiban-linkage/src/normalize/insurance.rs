//! Health-insurance identifiers: the insurer number (保険者番号) with its check digit
//! (検証番号), the card symbol and number (記号・番号) and the branch number (枝番).
//!
//! The check digit rule is the one of the Ministry's 保険者番号設定要領: over 法別番号,
//! 都道府県番号 and 保険者別番号, multiply the digits by 2 and 1 alternately starting from the last
//! digit, add the products (a two-digit product counts as the sum of its digits), and the check
//! digit is 10 minus the last digit of the sum (0 when that last digit is 0). It applies to the
//! 8-digit numbers (法別2 + 都道府県2 + 保険者別3 + 検証1) and to the 6-digit 国民健康保険 numbers
//! (都道府県2 + 保険者別3 + 検証1).

use super::text::{is_space, nfkc_clean};

/// Why an insurance identifier is not valid. Messages name the rule, never the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InsuranceError {
    /// The insurer number is not 6 or 8 digits.
    #[error("insurer number: not 6 or 8 digits")]
    InsurerNumberLength,
    /// The insurer number's check digit (検証番号) does not match the rule.
    #[error("insurer number: check digit (検証番号) does not match")]
    InsurerCheckDigit,
    /// The branch number is not one or two digits.
    #[error("insured branch number: not 1 or 2 digits")]
    BranchNumber,
}

/// The scheme an insurer number belongs to, from its form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InsurerScheme {
    /// 6 digits: 国民健康保険 (municipal).
    NationalHealthInsurance,
    /// 8 digits beginning with 39: 後期高齢者医療.
    LateStageElderly,
    /// 8 digits with another 法別番号 (01 協会けんぽ, 06 組合, 31–34 共済, 67 退職者 …).
    Other {
        /// The 法別番号 (first two digits).
        law_code: u8,
    },
}

/// A validated insurer number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InsurerNumber {
    /// The 6 or 8 digits.
    pub digits: String,
    /// The scheme, from its length and 法別番号.
    pub scheme: InsurerScheme,
}

impl InsurerNumber {
    /// The prefecture code (01–47) it carries.
    pub fn prefecture_code(&self) -> u8 {
        let at = if self.digits.len() == 8 { 2 } else { 0 };
        self.digits[at..at + 2].parse().unwrap_or(0)
    }
}

/// The check digit (検証番号) of the digits before it (7 for 8-digit, 5 for 6-digit numbers).
///
/// Returns `None` when `body` contains a non-digit.
pub fn insurer_check_digit(body: &str) -> Option<u32> {
    let mut sum = 0;
    for (position, c) in body.chars().rev().enumerate() {
        let digit = c.to_digit(10)?;
        let product = if position % 2 == 0 { digit * 2 } else { digit };
        sum += product / 10 + product % 10;
    }
    Some((10 - sum % 10) % 10)
}

/// Validates an insurer number typed in any width, with spaces or hyphens.
pub fn validate_insurer_number(raw: &str) -> Result<InsurerNumber, InsuranceError> {
    let digits = strip_separators(raw);
    if !(digits.len() == 8 || digits.len() == 6) || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(InsuranceError::InsurerNumberLength);
    }
    let (body, check) = digits.split_at(digits.len() - 1);
    if insurer_check_digit(body).map(|d| d.to_string()).as_deref() != Some(check) {
        return Err(InsuranceError::InsurerCheckDigit);
    }
    let scheme = if digits.len() == 6 {
        InsurerScheme::NationalHealthInsurance
    } else {
        match digits[..2].parse::<u8>().unwrap_or(0) {
            39 => InsurerScheme::LateStageElderly,
            law_code => InsurerScheme::Other { law_code },
        }
    };
    Ok(InsurerNumber { digits, scheme })
}

/// Normalizes a card symbol or number (記号・番号): NFKC (full-width digits and letters to
/// ASCII), spaces and hyphens removed, letters upper-cased. `・` between parts is removed too.
pub fn normalize_card_field(raw: &str) -> String {
    strip_separators(raw).to_uppercase()
}

/// Normalizes a branch number (枝番) to two digits (`1`, `01`, `０１` → `01`); `None` if empty.
pub fn normalize_branch(raw: &str) -> Result<Option<String>, InsuranceError> {
    let digits = strip_separators(raw);
    if digits.is_empty() {
        return Ok(None);
    }
    if digits.len() > 2 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(InsuranceError::BranchNumber);
    }
    Ok(Some(format!("{digits:0>2}")))
}

fn strip_separators(raw: &str) -> String {
    nfkc_clean(raw)
        .chars()
        .filter(|c| !is_space(*c) && !matches!(c, '-' | 'ー' | '‐' | '−' | '―' | '・'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digits_of_real_insurer_numbers() {
        // 千葉県警察共済組合 33120015 (the worked example of the rule), 協会けんぽ 東京支部
        // 01130012 and 大阪支部 01270016.
        for number in ["33120015", "01130012", "01270016"] {
            assert!(validate_insurer_number(number).is_ok(), "{number}");
        }
        assert_eq!(insurer_check_digit("3312001"), Some(5));
        let kyokai = validate_insurer_number("０１１３００１２").unwrap();
        assert_eq!(kyokai.scheme, InsurerScheme::Other { law_code: 1 });
        assert_eq!(kyokai.prefecture_code(), 13);
    }

    #[test]
    fn a_wrong_check_digit_is_rejected() {
        assert_eq!(
            validate_insurer_number("33120016"),
            Err(InsuranceError::InsurerCheckDigit)
        );
        // One digit mistyped in the body.
        assert_eq!(
            validate_insurer_number("01130112"),
            Err(InsuranceError::InsurerCheckDigit)
        );
        assert_eq!(
            validate_insurer_number("0113001"),
            Err(InsuranceError::InsurerNumberLength)
        );
        assert!(
            !InsuranceError::InsurerCheckDigit
                .to_string()
                .contains("0113")
        );
    }

    #[test]
    fn six_digit_national_health_insurance_numbers() {
        // The same rule over 都道府県 + 保険者別: 13120 → 1 (as in kiban-synth).
        let body = "13120";
        let check = insurer_check_digit(body).unwrap();
        let number = validate_insurer_number(&format!("{body}{check}")).unwrap();
        assert_eq!(number.scheme, InsurerScheme::NationalHealthInsurance);
        assert_eq!(number.prefecture_code(), 13);
        assert_eq!(
            validate_insurer_number(&format!("{body}{}", (check + 1) % 10)),
            Err(InsuranceError::InsurerCheckDigit)
        );
        let late = format!("3913001{}", insurer_check_digit("3913001").unwrap());
        assert_eq!(
            validate_insurer_number(&late).unwrap().scheme,
            InsurerScheme::LateStageElderly
        );
    }

    #[test]
    fn card_symbols_numbers_and_branches() {
        assert_eq!(normalize_card_field("ａｂ－１２ ３"), "AB123");
        assert_eq!(normalize_card_field("１２３・４５"), "12345");
        assert_eq!(normalize_branch("1").unwrap().as_deref(), Some("01"));
        assert_eq!(normalize_branch("０２").unwrap().as_deref(), Some("02"));
        assert_eq!(normalize_branch(" ").unwrap(), None);
        assert_eq!(normalize_branch("123"), Err(InsuranceError::BranchNumber));
    }
}
