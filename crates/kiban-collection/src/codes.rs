//! Human-typable codes (notice codes, receipt numbers), intake tokens and their comparison.

use std::fmt;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use kiban_model::ProviderId;

use crate::CollectionError;

/// Crockford base32: no I, L, O, U, so codes read aloud or typed by hand survive.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Characters of a notice code (50 bits), printed as two groups of five.
pub(crate) const NOTICE_CODE_CHARS: usize = 10;
/// Random characters of a receipt number (40 bits).
const RECEIPT_CHARS: usize = 8;
/// Prefix of every intake token, so leaked tokens are recognizable by secret scanners.
pub const TOKEN_PREFIX: &str = "kbn_";
const TOKEN_ID_BYTES: usize = 6;
const TOKEN_SECRET_BYTES: usize = 32;

/// The first `chars` Crockford characters of `bytes` (5 bits each, most significant first).
pub(crate) fn crockford(bytes: &[u8], chars: usize) -> String {
    let mut out = String::with_capacity(chars);
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut input = bytes.iter();
    while out.len() < chars {
        if bits < 5 {
            let Some(&b) = input.next() else { break };
            acc = (acc << 8) | u32::from(b);
            bits += 8;
        }
        bits -= 5;
        out.push(char::from(CROCKFORD[((acc >> bits) & 31) as usize]));
        acc &= (1 << bits) - 1;
    }
    out
}

/// Normalizes a typed Crockford code: drops hyphens and spaces, upper-cases, reads O as 0 and
/// I or L as 1. Returns `None` when a character is outside the alphabet.
pub(crate) fn normalize_crockford(typed: &str) -> Option<String> {
    let mut out = String::with_capacity(typed.len());
    for c in typed.chars() {
        let c = match c.to_ascii_uppercase() {
            '-' | ' ' | '\u{3000}' | '\u{30fc}' | '\u{2010}'..='\u{2015}' | '\u{ff0d}' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c if c.is_ascii() && CROCKFORD.contains(&(c as u8)) => c,
            // Full-width letters and digits, as typed with a Japanese input method.
            c @ ('\u{ff10}'..='\u{ff19}' | '\u{ff21}'..='\u{ff3a}' | '\u{ff41}'..='\u{ff5a}') => {
                let ascii = char::from_u32(c as u32 - 0xfee0)?.to_ascii_uppercase();
                match ascii {
                    'O' => '0',
                    'I' | 'L' => '1',
                    a if CROCKFORD.contains(&(a as u8)) => a,
                    _ => return None,
                }
            }
            _ => return None,
        };
        out.push(c);
    }
    Some(out)
}

/// Groups a notice code for printing: `XXXXX-XXXXX`.
pub(crate) fn group_notice_code(code: &str) -> String {
    let (a, b) = code.split_at(code.len().min(NOTICE_CODE_CHARS / 2));
    format!("{a}-{b}")
}

/// Compares two byte strings in time that depends only on their lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

pub(crate) fn random_bytes<const N: usize>() -> Result<Zeroizing<[u8; N]>, CollectionError> {
    let mut bytes = Zeroizing::new([0u8; N]);
    getrandom::fill(&mut *bytes).map_err(|_| CollectionError::RandomSource)?;
    Ok(bytes)
}

/// A new random receipt number `OPT-<year>-XXXXXXXX`.
pub(crate) fn new_receipt_number(year: i32) -> Result<String, CollectionError> {
    let bytes = random_bytes::<5>()?;
    Ok(format!("OPT-{year}-{}", crockford(&*bytes, RECEIPT_CHARS)))
}

/// Normalizes a typed receipt number (`opt-2026-abcd efgh` → `OPT-2026-ABCDEFGH`); `None`
/// when it cannot be one.
pub(crate) fn normalize_receipt_number(typed: &str) -> Option<String> {
    let typed = typed.trim();
    if !typed.get(..4)?.eq_ignore_ascii_case("OPT-") {
        return None;
    }
    let compact = normalize_crockford(&typed[4..])?;
    if compact.len() != 4 + RECEIPT_CHARS || !compact[..4].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!("OPT-{}-{}", &compact[..4], &compact[4..]))
}

/// SHA-256 of a token, as stored.
pub(crate) fn token_sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A newly issued intake token. The secret is shown once (to print it for the provider) and
/// wiped from memory when this value is dropped; `Debug` never prints it.
pub struct IssuedToken {
    provider_id: ProviderId,
    token_id: String,
    token: Zeroizing<String>,
}

impl IssuedToken {
    /// Draws a new token `kbn_<token id>_<64 hex secret>` for a provider.
    pub(crate) fn generate(provider_id: &ProviderId) -> Result<IssuedToken, CollectionError> {
        let id = random_bytes::<TOKEN_ID_BYTES>()?;
        let secret = random_bytes::<TOKEN_SECRET_BYTES>()?;
        let token_id = hex::encode(*id);
        let secret_hex = Zeroizing::new(hex::encode(*secret));
        let mut token = Zeroizing::new(String::with_capacity(
            TOKEN_PREFIX.len() + token_id.len() + 1 + secret_hex.len(),
        ));
        token.push_str(TOKEN_PREFIX);
        token.push_str(&token_id);
        token.push('_');
        token.push_str(&secret_hex);
        Ok(IssuedToken {
            provider_id: provider_id.clone(),
            token_id,
            token,
        })
    }

    /// The provider the token authenticates.
    pub fn provider_id(&self) -> &ProviderId {
        &self.provider_id
    }

    /// The token's public id (not secret: used to list and revoke it).
    pub fn token_id(&self) -> &str {
        &self.token_id
    }

    /// The whole token, to hand to the provider once (`Authorization: Bearer <token>`).
    pub fn expose_secret(&self) -> &str {
        &self.token
    }

    pub(crate) fn sha256(&self) -> [u8; 32] {
        token_sha256(&self.token)
    }
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("provider_id", &self.provider_id)
            .field("token_id", &self.token_id)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Splits a bearer token into its public id, or `None` when it is not a kiban token.
pub(crate) fn token_id_of(bearer: &str) -> Option<&str> {
    let rest = bearer.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex_of = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    (hex_of(id, TOKEN_ID_BYTES * 2) && hex_of(secret, TOKEN_SECRET_BYTES * 2)).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crockford_codes_read_back_however_typed() {
        assert_eq!(crockford(&[0xff; 2], 3), "ZZZ");
        assert_eq!(crockford(&[0; 7], 10), "0000000000");
        assert_eq!(crockford(&[0b0000_1000, 0b0100_0000], 3), "110");
        assert_eq!(
            normalize_crockford("abcde-fghjk").as_deref(),
            Some("ABCDEFGHJK")
        );
        assert_eq!(normalize_crockford("o1 il").as_deref(), Some("0111"));
        assert_eq!(normalize_crockford("ＡＢ０ー１").as_deref(), Some("AB01"));
        assert_eq!(normalize_crockford("AB!"), None);
        assert_eq!(normalize_crockford("ABU"), None);
        assert_eq!(group_notice_code("ABCDEFGHJK"), "ABCDE-FGHJK");
    }

    #[test]
    fn receipt_numbers_normalize() {
        let r = new_receipt_number(2026).unwrap();
        assert!(r.starts_with("OPT-2026-") && r.len() == 17, "{r}");
        assert_eq!(normalize_receipt_number(&r.to_lowercase()), Some(r.clone()));
        assert_eq!(
            normalize_receipt_number(" opt-2026-abcd efgh "),
            Some("OPT-2026-ABCDEFGH".into())
        );
        assert_eq!(normalize_receipt_number("OPT-2026-ABC"), None);
        assert_eq!(normalize_receipt_number("XYZ-2026-ABCDEFGH"), None);
        assert_eq!(normalize_receipt_number("OPT-20A6-ABCDEFGH"), None);
    }

    #[test]
    fn tokens_have_a_public_id_and_a_hidden_secret() {
        let t = IssuedToken::generate(&ProviderId::from("prov-001")).unwrap();
        assert_eq!(token_id_of(t.expose_secret()), Some(t.token_id()));
        assert!(!format!("{t:?}").contains(&t.expose_secret()[20..]));
        assert_eq!(token_id_of("kbn_abc_def"), None);
        assert_eq!(token_id_of("Bearer x"), None);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
