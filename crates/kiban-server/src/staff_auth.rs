//! The credentials of operator staff (R-A2): argon2id password hashes, TOTP second factors
//! (RFC 6238) and the sealing of TOTP secrets under a key held by the store's master key.
//!
//! - [`hash_password`] / [`verify_password`]: argon2id PHC strings ([`PasswordParams`]).
//! - [`TotpSecret`]: a random 160-bit secret; [`TotpSecret::matching_step`] checks a 6-digit
//!   code (HMAC-SHA1, 30-second steps, one step of clock drift either way) and refuses the step
//!   already used, so a code is never accepted twice.
//! - [`StaffSecretSealer`]: AES-256-GCM under the staff data key, itself kept only wrapped by
//!   the master key ([`kiban_store::KeyProvider`]) in the metadata store's staff keyring, so a
//!   copy of the metadata database alone reveals no second factor.
//! - [`create_staff_account`] and [`reset_staff_mfa`]: what `kiban staff add` and
//!   `kiban staff reset-mfa` do.
//!
//! ```
//! use kiban_server::staff_auth::TotpSecret;
//! let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
//! // RFC 6238, appendix B (SHA-1, 59 s).
//! assert_eq!(secret.code_at_step(59 / 30), "287082");
//! assert_eq!(secret.matching_step("287082", 59, None), Some(1));
//! assert_eq!(secret.matching_step("287082", 59, Some(1)), None); // replayed
//! ```

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as BASE64;
use hmac::{Hmac, Mac};
use kiban_metadata::{Metadata, MetadataError, NewStaffAccount, StaffAccount, StaffRole};
use kiban_store::{DataKey, KeyProvider, StoreError, WrappedKey};
use sha1::Sha1;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Name of the staff data key in the staff keyring (and the dataset bound into its wrapping).
pub const STAFF_KEY_NAME: &str = "staff-totp";
/// Seconds of one TOTP step.
pub const TOTP_STEP_SECONDS: u64 = 30;
/// Digits of a TOTP code.
pub const TOTP_DIGITS: usize = 6;
/// Bytes of a TOTP secret (160 bits, as RFC 4226 recommends for HMAC-SHA1).
pub const TOTP_SECRET_BYTES: usize = 20;
/// Shortest password accepted.
pub const PASSWORD_MIN_CHARS: usize = 12;
/// Longest password accepted (argon2 takes any length; this bounds the work per request).
pub const PASSWORD_MAX_CHARS: usize = 256;
/// Prefix of a sealed secret: version 1, AES-256-GCM, base64 of nonce and ciphertext.
const SEALED_PREFIX: &str = "v1.";

/// Errors of staff credentials. None of them carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum StaffAuthError {
    /// The metadata store failed.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// The master key could not wrap or unwrap the staff key.
    #[error("staff key: {0}")]
    Key(#[from] StoreError),
    /// The staff keyring entry is not a wrapped key kiban wrote.
    #[error("staff keyring entry {STAFF_KEY_NAME} is malformed")]
    MalformedKeyring,
    /// A sealed TOTP secret does not open with this key for this account.
    #[error("the TOTP secret of staff account {staff_id} cannot be opened with this master key")]
    Unseal {
        /// The account.
        staff_id: String,
    },
    /// Encryption or hashing failed (no randomness, bad parameters).
    #[error("cryptography failed: {0}")]
    Crypto(&'static str),
    /// The password does not meet the policy.
    #[error("password refused: {0}")]
    WeakPassword(&'static str),
    /// The login name does not meet the rules.
    #[error("login name refused: {0}")]
    BadLogin(&'static str),
}

// ---------------------------------------------------------------------------------------------
// Passwords

/// argon2id cost of new password hashes. Verification uses the cost stored in each hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for PasswordParams {
    /// OWASP's argon2id recommendation: 19 MiB, 2 passes, 1 lane.
    fn default() -> Self {
        PasswordParams {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl PasswordParams {
    /// The smallest cost argon2 allows: for tests only.
    pub fn insecure_for_tests() -> Self {
        PasswordParams {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        }
    }

    fn argon2(self) -> Result<argon2::Argon2<'static>, StaffAuthError> {
        let params = argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|_| StaffAuthError::Crypto("argon2 parameters"))?;
        Ok(argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params,
        ))
    }
}

/// Checks the password policy: 12 to 256 characters, not all one character.
pub fn check_password_policy(password: &str) -> Result<(), StaffAuthError> {
    let chars = password.chars().count();
    if chars < PASSWORD_MIN_CHARS {
        return Err(StaffAuthError::WeakPassword("shorter than 12 characters"));
    }
    if chars > PASSWORD_MAX_CHARS {
        return Err(StaffAuthError::WeakPassword("longer than 256 characters"));
    }
    let mut all = password.chars();
    let first = all.next();
    if all.all(|c| Some(c) == first) {
        return Err(StaffAuthError::WeakPassword("one character repeated"));
    }
    Ok(())
}

/// The argon2id PHC string of a password, with a random salt.
pub fn hash_password(password: &str, params: PasswordParams) -> Result<String, StaffAuthError> {
    let hash = params
        .argon2()?
        .hash_password(password.as_bytes())
        .map_err(|_| StaffAuthError::Crypto("argon2 hashing"))?;
    Ok(hash.to_string())
}

/// Whether `password` matches a PHC string (any malformed hash does not match). Takes the
/// hash's own cost: run it off the async threads.
pub fn verify_password(password: &str, phc: &str) -> bool {
    if password.chars().count() > PASSWORD_MAX_CHARS {
        return false;
    }
    // The parameters come from the hash; the default instance only supplies the algorithm.
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

// ---------------------------------------------------------------------------------------------
// TOTP

/// A TOTP secret. Zeroed when dropped; `Debug` does not show it.
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

impl TotpSecret {
    /// A new random secret of [`TOTP_SECRET_BYTES`].
    pub fn generate() -> Result<Self, StaffAuthError> {
        let mut bytes = Zeroizing::new(vec![0u8; TOTP_SECRET_BYTES]);
        getrandom::fill(&mut bytes).map_err(|_| StaffAuthError::Crypto("no randomness"))?;
        Ok(TotpSecret(bytes))
    }

    /// A secret of these bytes (tests, RFC vectors).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        TotpSecret(Zeroizing::new(bytes))
    }

    /// The secret in RFC 4648 base32 without padding, as authenticator apps take it.
    pub fn to_base32(&self) -> Zeroizing<String> {
        Zeroizing::new(base32_encode(&self.0))
    }

    /// The `otpauth://totp/...` URI of the secret for an authenticator app (QR code or paste).
    pub fn otpauth_uri(&self, issuer: &str, login: &str) -> Zeroizing<String> {
        let issuer_enc = uri_component(issuer);
        Zeroizing::new(format!(
            "otpauth://totp/{issuer_enc}:{}?secret={}&issuer={issuer_enc}&algorithm=SHA1&digits={TOTP_DIGITS}&period={TOTP_STEP_SECONDS}",
            uri_component(login),
            self.to_base32().as_str()
        ))
    }

    /// The code of time step `step` (RFC 6238 over RFC 4226's dynamic truncation).
    pub fn code_at_step(&self, step: u64) -> String {
        // HMAC takes a key of any length, so this cannot fail.
        let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&self.0) else {
            return String::new();
        };
        mac.update(&step.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        let offset = usize::from(digest[digest.len() - 1] & 0x0f);
        let binary = (u32::from(digest[offset] & 0x7f) << 24)
            | (u32::from(digest[offset + 1]) << 16)
            | (u32::from(digest[offset + 2]) << 8)
            | u32::from(digest[offset + 3]);
        format!("{:06}", binary % 1_000_000)
    }

    /// The time step (within one step of `unix_seconds`'s) whose code is `code` and that is
    /// later than `last_used_step`; `None` when the code is wrong or already used. Spaces in
    /// the code are ignored; every candidate is compared in constant time.
    pub fn matching_step(
        &self,
        code: &str,
        unix_seconds: u64,
        last_used_step: Option<i64>,
    ) -> Option<i64> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.len() != TOTP_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let now = unix_seconds / TOTP_STEP_SECONDS;
        let mut found = None;
        for step in [now.saturating_sub(1), now, now + 1] {
            let matches = constant_time_eq(self.code_at_step(step).as_bytes(), code.as_bytes());
            let step = i64::try_from(step).ok()?;
            if matches && last_used_step.is_none_or(|last| step > last) && found.is_none() {
                found = Some(step);
            }
        }
        found
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// RFC 4648 base32, no padding.
pub fn base32_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Percent-encodes all but RFC 3986 unreserved characters.
fn uri_component(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Sealing secrets

/// Seals and opens TOTP secrets under the staff data key. `Debug` shows no key.
pub struct StaffSecretSealer {
    key: DataKey,
}

impl fmt::Debug for StaffSecretSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaffSecretSealer(<redacted>)")
    }
}

fn seal_aad(staff_id: &str) -> Vec<u8> {
    let mut aad = b"kiban staff totp v1\0".to_vec();
    aad.extend_from_slice(staff_id.as_bytes());
    aad
}

impl StaffSecretSealer {
    /// The staff data key of `meta`, unwrapped with `keys`; created (and wrapped) on first use.
    pub async fn open(meta: &Metadata, keys: &dyn KeyProvider) -> Result<Self, StaffAuthError> {
        let stored = match meta.staff_wrapped_key(STAFF_KEY_NAME).await? {
            Some(stored) => stored,
            None => {
                let key = DataKey::generate()?;
                let wrapped = keys.wrap(STAFF_KEY_NAME, &key)?;
                let json = serde_json::to_string(&wrapped)
                    .map_err(|_| StaffAuthError::MalformedKeyring)?;
                // Another process may have stored its key first: use whichever is kept.
                meta.store_staff_wrapped_key(STAFF_KEY_NAME, &json).await?
            }
        };
        let wrapped: WrappedKey =
            serde_json::from_str(&stored).map_err(|_| StaffAuthError::MalformedKeyring)?;
        Ok(StaffSecretSealer {
            key: keys.unwrap(STAFF_KEY_NAME, &wrapped)?,
        })
    }

    /// A sealer over a given key (tests).
    pub fn from_key(key: DataKey) -> Self {
        StaffSecretSealer { key }
    }

    /// Seals `secret` for account `staff_id` (the id is bound in, so a sealed secret copied to
    /// another account does not open).
    pub fn seal(&self, staff_id: &str, secret: &TotpSecret) -> Result<String, StaffAuthError> {
        let cipher = Aes256Gcm::new_from_slice(self.key.expose_bytes())
            .map_err(|_| StaffAuthError::Crypto("AES key"))?;
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|_| StaffAuthError::Crypto("no randomness"))?;
        let aad = seal_aad(staff_id);
        let ciphertext = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &secret.0,
                    aad: &aad,
                },
            )
            .map_err(|_| StaffAuthError::Crypto("AES-GCM sealing"))?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&ciphertext);
        Ok(format!("{SEALED_PREFIX}{}", BASE64.encode(bytes)))
    }

    /// Opens a secret sealed for `staff_id`.
    pub fn open_secret(&self, staff_id: &str, sealed: &str) -> Result<TotpSecret, StaffAuthError> {
        let unseal = || StaffAuthError::Unseal {
            staff_id: staff_id.to_owned(),
        };
        let bytes = sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(|b| BASE64.decode(b).ok())
            .filter(|b| b.len() > 12)
            .ok_or_else(unseal)?;
        let (nonce, ciphertext) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| unseal())?;
        let cipher = Aes256Gcm::new_from_slice(self.key.expose_bytes()).map_err(|_| unseal())?;
        let aad = seal_aad(staff_id);
        let plain = cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| unseal())?;
        Ok(TotpSecret(Zeroizing::new(plain)))
    }
}

// ---------------------------------------------------------------------------------------------
// Accounts

/// Checks a login name: 3 to 64 characters of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn check_login(login: &str) -> Result<(), StaffAuthError> {
    if !(3..=64).contains(&login.len()) {
        return Err(StaffAuthError::BadLogin("3 to 64 characters"));
    }
    if !login
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(StaffAuthError::BadLogin("only a-z, 0-9, '.', '_' and '-'"));
    }
    if !login.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(StaffAuthError::BadLogin(
            "must start with a letter or digit",
        ));
    }
    Ok(())
}

/// A fresh opaque staff id (`staff-` and 16 hex digits).
pub fn new_staff_id() -> Result<String, StaffAuthError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|_| StaffAuthError::Crypto("no randomness"))?;
    Ok(format!("staff-{}", hex::encode(bytes)))
}

/// Creates a staff account: checks the login and password policy, hashes the password, makes
/// and seals a TOTP secret. Returns the account and the secret to show once.
pub async fn create_staff_account(
    meta: &Metadata,
    sealer: &StaffSecretSealer,
    login: &str,
    display_name: &str,
    roles: &[StaffRole],
    password: &str,
    params: PasswordParams,
) -> Result<(StaffAccount, TotpSecret), StaffAuthError> {
    check_login(login)?;
    check_password_policy(password)?;
    let id = new_staff_id()?;
    let secret = TotpSecret::generate()?;
    let password_hash = hash_password(password, params)?;
    let account = meta
        .add_staff_account(&NewStaffAccount {
            totp_secret_sealed: sealer.seal(&id, &secret)?,
            id,
            login: login.to_owned(),
            display_name: display_name.trim().to_owned(),
            roles: roles.to_vec(),
            password_hash,
        })
        .await?;
    Ok((account, secret))
}

/// Gives an account a new TOTP secret (a lost authenticator) and returns it to show once.
pub async fn reset_staff_mfa(
    meta: &Metadata,
    sealer: &StaffSecretSealer,
    login: &str,
) -> Result<(StaffAccount, TotpSecret), StaffAuthError> {
    let account =
        meta.staff_account_by_login(login)
            .await?
            .ok_or_else(|| MetadataError::NotFound {
                what: "staff account",
                id: login.to_owned(),
            })?;
    let secret = TotpSecret::generate()?;
    let sealed = sealer.seal(&account.id, &secret)?;
    let account = meta.reset_staff_mfa(login, &sealed).await?;
    Ok((account, secret))
}

// ---------------------------------------------------------------------------------------------
// What the server holds: the sealer, the settings and the signed-in sessions

/// Settings of staff sign-in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StaffAuthConfig {
    /// Mark the session cookie `Secure` (sent over HTTPS only). `kiban serve` sets it unless
    /// the server listens on a loopback address, where browsers reach it over plain HTTP.
    pub secure_cookie: bool,
    /// A session unused this long ends.
    pub idle_timeout: Duration,
    /// A session ends this long after sign-in, however busy.
    pub absolute_timeout: Duration,
    /// Failed sign-ins of one account before it is locked.
    pub max_failures: i64,
    /// How long a locked account stays locked.
    pub lockout: Duration,
    /// Failed sign-ins from one address within [`StaffAuthConfig::address_window`] before
    /// that address is refused (whatever logins it tries).
    pub address_failure_limit: usize,
    /// Window of the per-address count.
    pub address_window: Duration,
    /// Cost of the stand-in hash checked for unknown logins, so that they take as long as
    /// known ones: the cost new accounts get.
    pub password_params: PasswordParams,
}

impl Default for StaffAuthConfig {
    /// Secure cookie, 30 minutes idle, 8 hours at most, 5 failures lock an account for
    /// 15 minutes, 20 failures from one address within 15 minutes block it.
    fn default() -> Self {
        StaffAuthConfig {
            secure_cookie: true,
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(8 * 60 * 60),
            max_failures: 5,
            lockout: Duration::from_secs(15 * 60),
            address_failure_limit: 20,
            address_window: Duration::from_secs(15 * 60),
            password_params: PasswordParams::default(),
        }
    }
}

/// Staff sign-in as a running server holds it: give it to
/// [`crate::AppState::with_staff_auth`]. Cheap to clone.
#[derive(Clone)]
pub struct StaffAuth {
    pub(crate) sealer: Arc<StaffSecretSealer>,
    pub(crate) config: StaffAuthConfig,
    pub(crate) sessions: Arc<StaffSessions>,
    /// A hash of a random password, checked when the login is unknown.
    pub(crate) stand_in_hash: Arc<String>,
    /// Failed sign-ins per client address.
    pub(crate) address_failures: Arc<crate::collection_pages::FailedAttempts>,
}

impl fmt::Debug for StaffAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaffAuth")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl StaffAuth {
    /// Staff sign-in with these secrets and settings (hashes one stand-in password).
    pub fn new(sealer: StaffSecretSealer, config: StaffAuthConfig) -> Result<Self, StaffAuthError> {
        let mut random = Zeroizing::new([0u8; 32]);
        getrandom::fill(random.as_mut()).map_err(|_| StaffAuthError::Crypto("no randomness"))?;
        let stand_in = hash_password(&hex::encode(random.as_ref()), config.password_params)?;
        Ok(StaffAuth {
            sealer: Arc::new(sealer),
            sessions: Arc::new(StaffSessions::new(
                config.idle_timeout,
                config.absolute_timeout,
            )),
            address_failures: Arc::new(crate::collection_pages::FailedAttempts::new(
                config.address_failure_limit,
                config.address_window,
            )),
            config,
            stand_in_hash: Arc::new(stand_in),
        })
    }

    /// The settings.
    pub fn config(&self) -> &StaffAuthConfig {
        &self.config
    }
}

/// Sessions kept before expired ones are swept.
const SESSION_SWEEP_AT: usize = 10_000;

struct StaffSession {
    staff_id: String,
    opened_at: Instant,
    last_seen: Instant,
}

/// Signed-in staff by session id, in memory (a restart signs everyone out).
pub(crate) struct StaffSessions {
    idle: Duration,
    absolute: Duration,
    by_id: Mutex<HashMap<String, StaffSession>>,
}

impl StaffSessions {
    pub(crate) fn new(idle: Duration, absolute: Duration) -> Self {
        StaffSessions {
            idle,
            absolute,
            by_id: Mutex::new(HashMap::new()),
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, StaffSession>> {
        // A panic while holding the lock leaves a consistent map.
        self.by_id
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn live(&self, session: &StaffSession, now: Instant) -> bool {
        now.saturating_duration_since(session.last_seen) < self.idle
            && now.saturating_duration_since(session.opened_at) < self.absolute
    }

    /// Opens a session for `staff_id` (a new random 256-bit id, so a session id planted
    /// before sign-in is never reused); `None` without randomness.
    pub(crate) fn open(&self, staff_id: &str, now: Instant) -> Option<String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).ok()?;
        let id = hex::encode(bytes);
        let mut sessions = self.sessions();
        if sessions.len() >= SESSION_SWEEP_AT {
            sessions.retain(|_, s| {
                now.saturating_duration_since(s.last_seen) < self.idle
                    && now.saturating_duration_since(s.opened_at) < self.absolute
            });
        }
        sessions.insert(
            id.clone(),
            StaffSession {
                staff_id: staff_id.to_owned(),
                opened_at: now,
                last_seen: now,
            },
        );
        Some(id)
    }

    /// The staff id of a live session, marking it used at `now`; an expired one is removed.
    pub(crate) fn find(&self, id: &str, now: Instant) -> Option<String> {
        let mut sessions = self.sessions();
        let live = sessions.get(id).map(|s| self.live(s, now))?;
        if !live {
            sessions.remove(id);
            return None;
        }
        let session = sessions.get_mut(id)?;
        session.last_seen = now;
        Some(session.staff_id.clone())
    }

    /// Ends a session.
    pub(crate) fn close(&self, id: &str) {
        self.sessions().remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vectors() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        // RFC 6238 appendix B gives 8 digits; 6 digits are their last six.
        for (time, code) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(secret.code_at_step(time / 30), code[2..], "{time}");
        }
    }

    #[test]
    fn codes_match_within_one_step_once() {
        let secret = TotpSecret::generate().unwrap();
        let now = 1_700_000_000u64;
        let step = (now / 30) as i64;
        let code = secret.code_at_step(now / 30);
        assert_eq!(secret.matching_step(&code, now, None), Some(step));
        assert_eq!(
            secret.matching_step(&format!("{} {}", &code[..3], &code[3..]), now, None),
            Some(step)
        );
        // The previous and the next step's codes pass; two steps away does not.
        let previous = secret.code_at_step(now / 30 - 1);
        assert_eq!(secret.matching_step(&previous, now, None), Some(step - 1));
        let next = secret.code_at_step(now / 30 + 1);
        assert_eq!(secret.matching_step(&next, now, None), Some(step + 1));
        let far = secret.code_at_step(now / 30 + 2);
        if far != code && far != previous && far != next {
            assert_eq!(secret.matching_step(&far, now, None), None);
        }
        // A used step (or an earlier one) is refused.
        assert_eq!(secret.matching_step(&code, now, Some(step)), None);
        assert_eq!(secret.matching_step(&previous, now, Some(step)), None);
        assert_eq!(secret.matching_step("12345", now, None), None);
        assert_eq!(secret.matching_step("abcdef", now, None), None);
    }

    #[test]
    fn base32_and_uri() {
        assert_eq!(base32_encode(b""), "");
        assert_eq!(base32_encode(b"f"), "MY");
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        assert_eq!(
            secret.to_base32().as_str(),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        let uri = secret.otpauth_uri("kiban 基盤", "yamada");
        assert!(uri.starts_with("otpauth://totp/kiban%20%E5%9F%BA%E7%9B%A4:yamada?secret=GEZ"));
        assert!(uri.ends_with("&digits=6&period=30"));
        assert!(!format!("{secret:?}").contains("GEZ"));
    }

    #[test]
    fn passwords_hash_and_verify() {
        let params = PasswordParams::insecure_for_tests();
        let hash = hash_password("correct horse battery", params).unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterY", &hash));
        assert!(!verify_password("correct horse battery", "not a hash"));
        assert!(check_password_policy("short").is_err());
        assert!(check_password_policy("aaaaaaaaaaaaaaaa").is_err());
        assert!(check_password_policy("長いパスフレーズを使います").is_ok());
        assert!(check_login("yamada.t").is_ok());
        assert!(check_login("Yamada").is_err());
        assert!(check_login("-ab").is_err());
        assert!(check_login("ab").is_err());
    }

    #[test]
    fn sealed_secrets_open_only_for_their_account() {
        let sealer = StaffSecretSealer::from_key(DataKey::generate().unwrap());
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        let sealed = sealer.seal("staff-1", &secret).unwrap();
        assert!(!sealed.contains("GEZ"));
        let opened = sealer.open_secret("staff-1", &sealed).unwrap();
        assert_eq!(opened.code_at_step(1), secret.code_at_step(1));
        assert!(sealer.open_secret("staff-2", &sealed).is_err());
        let other = StaffSecretSealer::from_key(DataKey::generate().unwrap());
        assert!(other.open_secret("staff-1", &sealed).is_err());
        assert!(sealer.open_secret("staff-1", "v1.AAAA").is_err());
    }

    #[test]
    fn sessions_end_when_idle_or_too_old() {
        let sessions = StaffSessions::new(Duration::from_secs(60), Duration::from_secs(300));
        let t0 = Instant::now();
        let id = sessions.open("staff-1", t0).unwrap();
        assert_eq!(id.len(), 64);
        assert_ne!(sessions.open("staff-1", t0).unwrap(), id);
        // Used every 50 s it lives until the absolute limit.
        let mut t = t0;
        for _ in 0..5 {
            t += Duration::from_secs(50);
            assert_eq!(sessions.find(&id, t).as_deref(), Some("staff-1"));
        }
        assert_eq!(sessions.find(&id, t0 + Duration::from_secs(301)), None);
        // Idle for a minute it ends.
        let idle = sessions.open("staff-2", t0).unwrap();
        assert_eq!(sessions.find(&idle, t0 + Duration::from_secs(61)), None);
        // Closed, it is gone.
        let closed = sessions.open("staff-3", t0).unwrap();
        sessions.close(&closed);
        assert_eq!(sessions.find(&closed, t0), None);
        assert_eq!(sessions.find("unknown", t0), None);
    }

    #[tokio::test]
    async fn the_staff_key_is_wrapped_by_the_master_key() {
        let dir = tempfile::tempdir().unwrap();
        let keys = kiban_store::KeyFile::generate(&dir.path().join("keys/master.key")).unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        let meta = Metadata::open_in_dir(&dir.path().join("data"))
            .await
            .unwrap();
        let sealer = StaffSecretSealer::open(&meta, &keys).await.unwrap();
        let (account, secret) = create_staff_account(
            &meta,
            &sealer,
            "yamada",
            "山田 太郎",
            &[StaffRole::LinkageReviewer],
            "correct horse battery",
            PasswordParams::insecure_for_tests(),
        )
        .await
        .unwrap();
        // Reopened, the same key opens the stored secret.
        let again = StaffSecretSealer::open(&meta, &keys).await.unwrap();
        let credentials = meta.staff_credentials("yamada").await.unwrap().unwrap();
        let opened = again
            .open_secret(&account.id, &credentials.totp_secret_sealed)
            .unwrap();
        assert_eq!(opened.code_at_step(7), secret.code_at_step(7));
        assert!(verify_password(
            "correct horse battery",
            &credentials.password_hash
        ));
        // Another master key cannot unwrap it.
        let stranger = kiban_store::KeyFile::generate(&dir.path().join("keys/other.key")).unwrap();
        assert!(StaffSecretSealer::open(&meta, &stranger).await.is_err());
        // A reset gives a new secret.
        let (_, new_secret) = reset_staff_mfa(&meta, &again, "yamada").await.unwrap();
        assert_ne!(new_secret.to_base32(), secret.to_base32());
    }
}
