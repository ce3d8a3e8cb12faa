//! The demo's staff account: `kiban demo` signs nobody in by itself, so that the staff pages
//! (registers, linkage review) can be tried, it creates one account with every role at its
//! first run and prints the password and the authenticator secret once.

use anyhow::{Context, Result};
use kiban_metadata::{Metadata, StaffRole};
use kiban_server::staff_auth::{PasswordParams, StaffSecretSealer, create_staff_account};
use kiban_store::KeyProvider;
use zeroize::Zeroizing;

/// Login of the demo's staff account.
pub const DEMO_STAFF_LOGIN: &str = "demo";

/// Characters of a generated password: letters and digits without look-alikes (0/O, 1/l/I).
const PASSWORD_ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// Creates the demo staff account when the store has none of that login, and prints how to
/// sign in; prints only a reminder when it exists (its password is not kept anywhere).
pub async fn ensure_demo_staff(
    meta: &Metadata,
    keys: &dyn KeyProvider,
    base_url: &str,
) -> Result<()> {
    if meta
        .staff_account_by_login(DEMO_STAFF_LOGIN)
        .await?
        .is_some()
    {
        println!(
            "  staff sign-in {base_url}/staff/sign-in: account `{DEMO_STAFF_LOGIN}` (its password and authenticator secret were printed at the first demo run; `kiban staff add` adds another) / 職員サインイン {base_url}/staff/sign-in: アカウント `{DEMO_STAFF_LOGIN}`（パスワードと認証アプリのシークレットは最初のデモ実行時に表示済み。`kiban staff add` で別のアカウントを追加できます）"
        );
        return Ok(());
    }
    let password = generate_password(20)?;
    let sealer = StaffSecretSealer::open(meta, keys)
        .await
        .context("staff key")?;
    let (_, secret) = create_staff_account(
        meta,
        &sealer,
        DEMO_STAFF_LOGIN,
        "デモ職員 (demo staff)",
        StaffRole::ALL,
        &password,
        PasswordParams::default(),
    )
    .await
    .context("demo staff account")?;
    println!(
        "  staff sign-in {base_url}/staff/sign-in (shown once, keep it): login `{DEMO_STAFF_LOGIN}`, password {password} / 職員サインイン {base_url}/staff/sign-in（一度だけ表示します。控えてください）: ログイン `{DEMO_STAFF_LOGIN}`、パスワード {password}",
        password = password.as_str()
    );
    println!(
        "    authenticator secret {secret} (add it to an authenticator app, or `oathtool --totp -b SECRET`) / 認証アプリのシークレット {secret}（認証アプリに登録するか、`oathtool --totp -b SECRET` を使います）",
        secret = secret.to_base32().as_str()
    );
    println!(
        "    {}",
        secret.otpauth_uri("kiban", DEMO_STAFF_LOGIN).as_str()
    );
    Ok(())
}

/// A random password of `length` characters of [`PASSWORD_ALPHABET`].
fn generate_password(length: usize) -> Result<Zeroizing<String>> {
    let mut password = Zeroizing::new(String::with_capacity(length));
    let mut byte = [0u8; 1];
    while password.len() < length {
        getrandom::fill(&mut byte).map_err(|e| anyhow::anyhow!("no system randomness: {e}"))?;
        // Rejection sampling keeps every character equally likely.
        let limit = 256 - 256 % PASSWORD_ALPHABET.len();
        if (byte[0] as usize) < limit {
            password.push(PASSWORD_ALPHABET[byte[0] as usize % PASSWORD_ALPHABET.len()] as char);
        }
    }
    byte.fill(0);
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_use_the_alphabet_and_differ() {
        let a = generate_password(20).unwrap();
        let b = generate_password(20).unwrap();
        assert_eq!(a.chars().count(), 20);
        assert!(a.bytes().all(|c| PASSWORD_ALPHABET.contains(&c)));
        assert_ne!(a.as_str(), b.as_str());
    }
}
