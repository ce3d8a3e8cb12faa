//! Operator staff (R-A2): accounts with named roles, the secrets their sign-in checks, failed
//! attempts and lockout, and the staff audit log (R-A3).
//!
//! The password is kept only as an argon2id PHC string and the TOTP secret only sealed (the
//! caller encrypts it under a data key wrapped by the store's master key, kept in the staff
//! keyring table). [`StaffAccount`], what listings return, holds neither; [`StaffCredentials`]
//! holds both for the sign-in check and never prints them.
//!
//! The audit log records who (staff id), when, what (sign-in, sign-out, a review pair viewed or
//! decided), the outcome and the source address: never a password, a code or an identity value.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use std::fmt;

use crate::{Metadata, MetadataError, Result, now};

/// A role of operator staff. The first five are the responsible persons an operator names
/// under the certification guideline; least privilege means each page declares the roles it
/// needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StaffRole {
    /// 統括管理責任者: responsible for the whole operation.
    GeneralManager,
    /// 医療情報取得・整理責任者: taking data in and organizing it (registers, linkage).
    AcquisitionManager,
    /// 医療情報加工責任者: processing (anonymization, pseudonymization).
    ProcessingManager,
    /// 提供管理責任者: provision of processed data to users.
    ProvisionManager,
    /// 安全管理責任者: security (accounts, logs).
    SecurityOfficer,
    /// 名寄せ確認担当者: clerical review of uncertain record pairs, and nothing else. Why a
    /// role of its own: reviewers see identity values of the pairs they review, so the
    /// reviewing clerks need not hold the acquisition manager's access to every register.
    LinkageReviewer,
}

impl StaffRole {
    /// Every role, in display order.
    pub const ALL: &'static [StaffRole] = &[
        StaffRole::GeneralManager,
        StaffRole::AcquisitionManager,
        StaffRole::ProcessingManager,
        StaffRole::ProvisionManager,
        StaffRole::SecurityOfficer,
        StaffRole::LinkageReviewer,
    ];

    /// The stable code stored in the database and typed on the command line.
    pub fn code(self) -> &'static str {
        match self {
            StaffRole::GeneralManager => "general_manager",
            StaffRole::AcquisitionManager => "acquisition_manager",
            StaffRole::ProcessingManager => "processing_manager",
            StaffRole::ProvisionManager => "provision_manager",
            StaffRole::SecurityOfficer => "security_officer",
            StaffRole::LinkageReviewer => "linkage_reviewer",
        }
    }

    /// The role of a code (`-` taken as `_`, case-insensitive).
    pub fn from_code(code: &str) -> Option<StaffRole> {
        let code = code.trim().to_ascii_lowercase().replace('-', "_");
        StaffRole::ALL.iter().copied().find(|r| r.code() == code)
    }

    /// The Japanese title.
    pub fn label_ja(self) -> &'static str {
        match self {
            StaffRole::GeneralManager => "統括管理責任者",
            StaffRole::AcquisitionManager => "医療情報取得・整理責任者",
            StaffRole::ProcessingManager => "医療情報加工責任者",
            StaffRole::ProvisionManager => "提供管理責任者",
            StaffRole::SecurityOfficer => "安全管理責任者",
            StaffRole::LinkageReviewer => "名寄せ確認担当者",
        }
    }

    /// The English title.
    pub fn label_en(self) -> &'static str {
        match self {
            StaffRole::GeneralManager => "General manager",
            StaffRole::AcquisitionManager => "Acquisition manager",
            StaffRole::ProcessingManager => "Processing manager",
            StaffRole::ProvisionManager => "Provision manager",
            StaffRole::SecurityOfficer => "Security officer",
            StaffRole::LinkageReviewer => "Linkage reviewer",
        }
    }
}

impl fmt::Display for StaffRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

fn roles_text(roles: &[StaffRole]) -> String {
    let mut roles = roles.to_vec();
    roles.sort();
    roles.dedup();
    roles.iter().map(|r| r.code()).collect::<Vec<_>>().join(",")
}

fn parse_roles(text: &str) -> Result<Vec<StaffRole>> {
    text.split(',')
        .filter(|c| !c.trim().is_empty())
        .map(|c| {
            StaffRole::from_code(c).ok_or_else(|| MetadataError::Invalid {
                what: "staff role",
                detail: c.to_owned(),
            })
        })
        .collect()
}

/// A staff account to create. The caller hashes the password and seals the TOTP secret.
pub struct NewStaffAccount {
    /// Opaque account id (`staff-…`), chosen by the caller (the sealed secret is bound to it).
    pub id: String,
    /// Login name, unique.
    pub login: String,
    /// Name shown on pages and in the audit log.
    pub display_name: String,
    /// Roles (at least one).
    pub roles: Vec<StaffRole>,
    /// argon2id PHC string of the password.
    pub password_hash: String,
    /// The TOTP secret, sealed by the caller.
    pub totp_secret_sealed: String,
}

impl fmt::Debug for NewStaffAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewStaffAccount")
            .field("id", &self.id)
            .field("login", &self.login)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

/// A staff account as listed: no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaffAccount {
    /// Opaque account id.
    pub id: String,
    /// Login name.
    pub login: String,
    /// Name shown on pages.
    pub display_name: String,
    /// Roles.
    pub roles: Vec<StaffRole>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it was disabled, if it was (a disabled account cannot sign in).
    pub disabled_at: Option<String>,
    /// Failed sign-ins since the last success or lockout.
    pub failed_attempts: i64,
    /// Locked until then (RFC 3339) after too many failures.
    pub locked_until: Option<String>,
    /// When the TOTP secret was last replaced.
    pub mfa_reset_at: Option<String>,
}

impl StaffAccount {
    /// Whether the account holds `role`.
    pub fn has_role(&self, role: StaffRole) -> bool {
        self.roles.contains(&role)
    }

    /// Whether the account holds any of `roles`.
    pub fn has_any_role(&self, roles: &[StaffRole]) -> bool {
        roles.iter().any(|r| self.has_role(*r))
    }

    /// Whether the account is locked at `at` (an unreadable lock time counts as locked).
    pub fn is_locked_at(&self, at: DateTime<Utc>) -> bool {
        match &self.locked_until {
            None => false,
            Some(until) => DateTime::parse_from_rfc3339(until)
                .map(|until| until.with_timezone(&Utc) > at)
                .unwrap_or(true),
        }
    }
}

/// What the sign-in check needs. `Debug` shows no secret.
pub struct StaffCredentials {
    /// The account.
    pub account: StaffAccount,
    /// argon2id PHC string of the password.
    pub password_hash: String,
    /// The sealed TOTP secret.
    pub totp_secret_sealed: String,
    /// The last TOTP time step accepted (a code of this step or an earlier one is refused).
    pub totp_last_step: Option<i64>,
}

impl fmt::Debug for StaffCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaffCredentials")
            .field("account", &self.account)
            .field("totp_last_step", &self.totp_last_step)
            .finish_non_exhaustive()
    }
}

/// One entry of the staff audit log to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStaffAuditEvent {
    /// The staff member, when known (an unknown login has none).
    pub staff_id: Option<String>,
    /// What was done: `sign_in`, `sign_out`, `review_list`, `review_view`, `review_decide`, ...
    pub action: String,
    /// How it ended: `success`, `refused`, `locked`, `forbidden`, ...
    pub outcome: String,
    /// The client's address.
    pub source_address: Option<String>,
    /// What it concerned (a review pair id), never an identity value.
    pub subject: Option<String>,
}

/// One entry of the staff audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaffAuditEvent {
    /// Sequence number.
    pub id: i64,
    /// When (RFC 3339).
    pub at: String,
    /// The staff member, when known.
    pub staff_id: Option<String>,
    /// What was done.
    pub action: String,
    /// How it ended.
    pub outcome: String,
    /// The client's address.
    pub source_address: Option<String>,
    /// What it concerned.
    pub subject: Option<String>,
}

const ACCOUNT_COLUMNS: &str = "id, login, display_name, roles, created_at, disabled_at, \
     failed_attempts, locked_until, mfa_reset_at";

fn account_from_row(r: &AnyRow) -> Result<StaffAccount> {
    let roles: String = r.try_get("roles")?;
    Ok(StaffAccount {
        id: r.try_get("id")?,
        login: r.try_get("login")?,
        display_name: r.try_get("display_name")?,
        roles: parse_roles(&roles)?,
        created_at: r.try_get("created_at")?,
        disabled_at: r.try_get("disabled_at")?,
        failed_attempts: r.try_get("failed_attempts")?,
        locked_until: r.try_get("locked_until")?,
        mfa_reset_at: r.try_get("mfa_reset_at")?,
    })
}

fn not_found(login: &str) -> MetadataError {
    MetadataError::NotFound {
        what: "staff account",
        id: login.to_owned(),
    }
}

impl Metadata {
    /// Creates a staff account; [`MetadataError::Conflict`] when the login or id is taken,
    /// [`MetadataError::Invalid`] without a role or with an empty login.
    pub async fn add_staff_account(&self, account: &NewStaffAccount) -> Result<StaffAccount> {
        if account.roles.is_empty() {
            return Err(MetadataError::Invalid {
                what: "staff account",
                detail: "at least one role is needed".to_owned(),
            });
        }
        if account.login.trim().is_empty() || account.id.trim().is_empty() {
            return Err(MetadataError::Invalid {
                what: "staff account",
                detail: "login and id must not be empty".to_owned(),
            });
        }
        if self.staff_account_by_login(&account.login).await?.is_some()
            || self.staff_account(&account.id).await?.is_some()
        {
            return Err(MetadataError::Conflict {
                what: "staff login",
                id: account.login.clone(),
            });
        }
        sqlx::query(
            "INSERT INTO staff_accounts (id, login, display_name, roles, password_hash,
                 totp_secret_sealed, totp_last_step, failed_attempts, locked_until, created_at,
                 disabled_at, mfa_reset_at)
             VALUES ($1, $2, $3, $4, $5, $6, NULL, 0, NULL, $7, NULL, NULL)",
        )
        .bind(&account.id)
        .bind(&account.login)
        .bind(&account.display_name)
        .bind(roles_text(&account.roles))
        .bind(&account.password_hash)
        .bind(&account.totp_secret_sealed)
        .bind(now())
        .execute(&self.pool)
        .await?;
        self.staff_account(&account.id)
            .await?
            .ok_or_else(|| not_found(&account.login))
    }

    /// Every staff account, by login.
    pub async fn staff_accounts(&self) -> Result<Vec<StaffAccount>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM staff_accounts ORDER BY login"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(account_from_row).collect()
    }

    /// The account of an id.
    pub async fn staff_account(&self, id: &str) -> Result<Option<StaffAccount>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM staff_accounts WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    /// The account of a login name.
    pub async fn staff_account_by_login(&self, login: &str) -> Result<Option<StaffAccount>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM staff_accounts WHERE login = $1"
        )))
        .bind(login)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    /// The account of a login with its secrets, for the sign-in check only.
    pub async fn staff_credentials(&self, login: &str) -> Result<Option<StaffCredentials>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS}, password_hash, totp_secret_sealed, totp_last_step
             FROM staff_accounts WHERE login = $1"
        )))
        .bind(login)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        Ok(Some(StaffCredentials {
            account: account_from_row(&r)?,
            password_hash: r.try_get("password_hash")?,
            totp_secret_sealed: r.try_get("totp_secret_sealed")?,
            totp_last_step: r.try_get("totp_last_step")?,
        }))
    }

    /// Disables an account (it can no longer sign in; its sessions end at their next request).
    /// Disabling twice keeps the first time.
    pub async fn disable_staff_account(&self, login: &str) -> Result<StaffAccount> {
        sqlx::query(
            "UPDATE staff_accounts SET disabled_at = COALESCE(disabled_at, $2) WHERE login = $1",
        )
        .bind(login)
        .bind(now())
        .execute(&self.pool)
        .await?;
        self.staff_account_by_login(login)
            .await?
            .ok_or_else(|| not_found(login))
    }

    /// Replaces an account's TOTP secret (a lost authenticator): the last accepted step, the
    /// failed attempts and any lockout are cleared with it.
    pub async fn reset_staff_mfa(
        &self,
        login: &str,
        totp_secret_sealed: &str,
    ) -> Result<StaffAccount> {
        let done = sqlx::query(
            "UPDATE staff_accounts SET totp_secret_sealed = $2, totp_last_step = NULL,
                 failed_attempts = 0, locked_until = NULL, mfa_reset_at = $3
             WHERE login = $1",
        )
        .bind(login)
        .bind(totp_secret_sealed)
        .bind(now())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(not_found(login));
        }
        self.staff_account_by_login(login)
            .await?
            .ok_or_else(|| not_found(login))
    }

    /// Counts one failed sign-in of an account; at `max_failures` the account is locked until
    /// `locked_until` (RFC 3339) and the count starts again. Returns the account after it.
    pub async fn record_staff_sign_in_failure(
        &self,
        id: &str,
        max_failures: i64,
        locked_until: &str,
    ) -> Result<StaffAccount> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE staff_accounts SET failed_attempts = failed_attempts + 1 WHERE id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE staff_accounts SET locked_until = $2, failed_attempts = 0
             WHERE id = $1 AND failed_attempts >= $3",
        )
        .bind(id)
        .bind(locked_until)
        .bind(max_failures)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.staff_account(id).await?.ok_or_else(|| not_found(id))
    }

    /// Records a successful sign-in with the TOTP time step it used: `false` (and nothing
    /// changed) when that step or a later one was already accepted, so a code is never taken
    /// twice, even by two requests at once. On success the failure count and lock are cleared.
    pub async fn record_staff_sign_in_success(&self, id: &str, totp_step: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE staff_accounts SET totp_last_step = $2, failed_attempts = 0, locked_until = NULL
             WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
        )
        .bind(id)
        .bind(totp_step)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Appends to the staff audit log.
    pub async fn record_staff_audit(&self, event: &NewStaffAuditEvent) -> Result<()> {
        sqlx::query(
            "INSERT INTO staff_audit (at, staff_id, action, outcome, source_address, subject)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(now())
        .bind(event.staff_id.clone())
        .bind(&event.action)
        .bind(&event.outcome)
        .bind(event.source_address.clone())
        .bind(event.subject.clone())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The latest `limit` entries of the staff audit log, newest first.
    pub async fn staff_audit(&self, limit: i64) -> Result<Vec<StaffAuditEvent>> {
        let rows = sqlx::query(
            "SELECT id, at, staff_id, action, outcome, source_address, subject FROM staff_audit
             ORDER BY id DESC LIMIT $1",
        )
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StaffAuditEvent {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    staff_id: r.try_get("staff_id")?,
                    action: r.try_get("action")?,
                    outcome: r.try_get("outcome")?,
                    source_address: r.try_get("source_address")?,
                    subject: r.try_get("subject")?,
                })
            })
            .collect()
    }

    /// The wrapped data key `name` of the staff keyring, if created.
    pub async fn staff_wrapped_key(&self, name: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT wrapped_key FROM staff_keyring WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("wrapped_key")).transpose()?)
    }

    /// Stores the wrapped data key `name` unless one is already there, and returns the one
    /// kept: two processes creating it at once end up using the same key.
    pub async fn store_staff_wrapped_key(&self, name: &str, wrapped_key: &str) -> Result<String> {
        sqlx::query(
            "INSERT INTO staff_keyring (name, wrapped_key, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(wrapped_key)
        .bind(now())
        .execute(&self.pool)
        .await?;
        self.staff_wrapped_key(name)
            .await?
            .ok_or_else(|| MetadataError::NotFound {
                what: "staff keyring entry",
                id: name.to_owned(),
            })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn account(id: &str, login: &str, roles: &[StaffRole]) -> NewStaffAccount {
        NewStaffAccount {
            id: id.into(),
            login: login.into(),
            display_name: "山田 太郎".into(),
            roles: roles.to_vec(),
            password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
            totp_secret_sealed: "sealed-secret".into(),
        }
    }

    #[test]
    fn roles_round_trip() {
        for role in StaffRole::ALL {
            assert_eq!(StaffRole::from_code(role.code()), Some(*role));
            assert!(!role.label_ja().is_empty() && !role.label_en().is_empty());
        }
        assert_eq!(
            StaffRole::from_code(" Linkage-Reviewer"),
            Some(StaffRole::LinkageReviewer)
        );
        assert_eq!(StaffRole::from_code("admin"), None);
        assert_eq!(
            roles_text(&[
                StaffRole::SecurityOfficer,
                StaffRole::GeneralManager,
                StaffRole::SecurityOfficer
            ]),
            "general_manager,security_officer"
        );
    }

    #[tokio::test]
    async fn accounts_secrets_lockout_and_replay() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Metadata::open_in_dir(dir.path()).await.unwrap();
        check_staff_accounts(&meta).await;
    }

    /// Also run on PostgreSQL (`collection::tests`).
    pub(crate) async fn check_staff_accounts(meta: &Metadata) {
        let created = meta
            .add_staff_account(&account(
                "staff-1",
                "yamada",
                &[StaffRole::AcquisitionManager, StaffRole::LinkageReviewer],
            ))
            .await
            .unwrap();
        assert_eq!(created.login, "yamada");
        assert!(created.has_role(StaffRole::LinkageReviewer));
        assert!(!created.has_role(StaffRole::SecurityOfficer));
        // Listings carry no secret.
        let listed = serde_json::to_string(&meta.staff_accounts().await.unwrap()).unwrap();
        assert!(!listed.contains("sealed-secret") && !listed.contains("argon2"));
        // A login is unique; an account needs a role.
        assert!(matches!(
            meta.add_staff_account(&account("staff-2", "yamada", &[StaffRole::GeneralManager]))
                .await,
            Err(MetadataError::Conflict { .. })
        ));
        assert!(matches!(
            meta.add_staff_account(&account("staff-3", "sato", &[]))
                .await,
            Err(MetadataError::Invalid { .. })
        ));

        let credentials = meta.staff_credentials("yamada").await.unwrap().unwrap();
        assert_eq!(credentials.totp_secret_sealed, "sealed-secret");
        assert!(!format!("{credentials:?}").contains("sealed-secret"));
        assert!(meta.staff_credentials("nobody").await.unwrap().is_none());

        // Three failures lock the account and start the count again.
        let until = "2999-01-01T00:00:00.000Z";
        for expected in [1, 2] {
            let a = meta
                .record_staff_sign_in_failure("staff-1", 3, until)
                .await
                .unwrap();
            assert_eq!(a.failed_attempts, expected);
            assert!(!a.is_locked_at(Utc::now()));
        }
        let locked = meta
            .record_staff_sign_in_failure("staff-1", 3, until)
            .await
            .unwrap();
        assert!(locked.is_locked_at(Utc::now()));
        assert_eq!(locked.failed_attempts, 0);

        // A step is accepted once; an earlier one never; success clears the lock.
        assert!(
            meta.record_staff_sign_in_success("staff-1", 100)
                .await
                .unwrap()
        );
        assert!(
            !meta
                .record_staff_sign_in_success("staff-1", 100)
                .await
                .unwrap()
        );
        assert!(
            !meta
                .record_staff_sign_in_success("staff-1", 99)
                .await
                .unwrap()
        );
        assert!(
            meta.record_staff_sign_in_success("staff-1", 101)
                .await
                .unwrap()
        );
        let a = meta.staff_account("staff-1").await.unwrap().unwrap();
        assert!(!a.is_locked_at(Utc::now()));

        // A new secret forgets the last step.
        let reset = meta.reset_staff_mfa("yamada", "new-sealed").await.unwrap();
        assert!(reset.mfa_reset_at.is_some());
        let c = meta.staff_credentials("yamada").await.unwrap().unwrap();
        assert_eq!(c.totp_last_step, None);
        assert_eq!(c.totp_secret_sealed, "new-sealed");
        assert!(matches!(
            meta.reset_staff_mfa("nobody", "x").await,
            Err(MetadataError::NotFound { .. })
        ));

        let disabled = meta.disable_staff_account("yamada").await.unwrap();
        let first = disabled.disabled_at.clone().unwrap();
        let again = meta.disable_staff_account("yamada").await.unwrap();
        assert_eq!(again.disabled_at.unwrap(), first);

        meta.record_staff_audit(&NewStaffAuditEvent {
            staff_id: Some("staff-1".into()),
            action: "sign_in".into(),
            outcome: "success".into(),
            source_address: Some("127.0.0.1".into()),
            subject: None,
        })
        .await
        .unwrap();
        let log = meta.staff_audit(10).await.unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].action, "sign_in");

        assert_eq!(meta.staff_wrapped_key("totp").await.unwrap(), None);
        assert_eq!(
            meta.store_staff_wrapped_key("totp", "first").await.unwrap(),
            "first"
        );
        assert_eq!(
            meta.store_staff_wrapped_key("totp", "second")
                .await
                .unwrap(),
            "first"
        );
    }
}
