//! `kiban staff`: operator staff accounts (R-A2) for the portal's staff pages.
//!
//! - `add --login L --name N --role R[,R]`: reads the password (no echo on a terminal, or one
//!   line with `--password-stdin`), creates the account and prints its TOTP secret (base32 and
//!   an `otpauth://` URI) once, for the authenticator app.
//! - `list`: accounts, roles and state; never a secret.
//! - `disable --login L`: the account can no longer sign in; its sessions end.
//! - `reset-mfa --login L`: a new TOTP secret (a lost authenticator), printed once.
//!
//! The TOTP secret is sealed under the staff key, which the store's master key wraps: `add` and
//! `reset-mfa` need the key file, `list` and `disable` only the data directory.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use kiban_metadata::{Metadata, StaffRole};
use kiban_server::staff_auth::{
    PasswordParams, StaffSecretSealer, TotpSecret, check_password_policy, create_staff_account,
    reset_staff_mfa,
};
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use zeroize::Zeroizing;

use crate::KeyArgs;
use crate::keys::existing_master_key;

/// Issuer shown by authenticator apps.
const TOTP_ISSUER: &str = "kiban";

/// `kiban staff` subcommands.
#[derive(Debug, Subcommand)]
pub enum StaffCommand {
    /// Create a staff account: reads its password, prints its TOTP secret once.
    Add(StaffAddArgs),
    /// List staff accounts (login, name, roles, state), never a secret.
    List(StaffDataArgs),
    /// Disable an account: it can no longer sign in, and its sessions end.
    Disable(StaffLoginArgs),
    /// Give an account a new TOTP secret (lost authenticator), printed once.
    ResetMfa(StaffKeyedLoginArgs),
}

/// The data directory of a staff command.
#[derive(Debug, Args)]
pub struct StaffDataArgs {
    /// Data directory of the store.
    #[arg(long = "data", value_name = "DATA_DIR")]
    pub data_dir: PathBuf,
}

/// Arguments of `kiban staff disable`.
#[derive(Debug, Args)]
pub struct StaffLoginArgs {
    /// Data directory of the store.
    #[command(flatten)]
    pub data: StaffDataArgs,
    /// Login name of the account.
    #[arg(long)]
    pub login: String,
}

/// Arguments of `kiban staff reset-mfa`.
#[derive(Debug, Args)]
pub struct StaffKeyedLoginArgs {
    /// Data directory and login.
    #[command(flatten)]
    pub account: StaffLoginArgs,
    /// Key location.
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// Arguments of `kiban staff add`.
#[derive(Debug, Args)]
pub struct StaffAddArgs {
    /// Data directory of the store.
    #[command(flatten)]
    pub data: StaffDataArgs,
    /// Login name: 3 to 64 of a-z, 0-9, '.', '_', '-'.
    #[arg(long)]
    pub login: String,
    /// Name shown on the portal (e.g. 山田 太郎).
    #[arg(long)]
    pub name: String,
    /// Roles, comma-separated: general_manager (統括管理責任者), acquisition_manager
    /// (医療情報取得・整理責任者), processing_manager (医療情報加工責任者), provision_manager
    /// (提供管理責任者), security_officer (安全管理責任者), linkage_reviewer (名寄せ確認担当者).
    #[arg(long = "role", value_delimiter = ',', required = true, value_parser = parse_role)]
    pub roles: Vec<StaffRole>,
    /// Read the password as one line from standard input instead of asking on the terminal.
    #[arg(long)]
    pub password_stdin: bool,
    /// Key location.
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// A role from its code.
pub fn parse_role(text: &str) -> Result<StaffRole, String> {
    StaffRole::from_code(text).ok_or_else(|| {
        let codes: Vec<&str> = StaffRole::ALL.iter().map(|r| r.code()).collect();
        format!("unknown role; use one of: {}", codes.join(", "))
    })
}

/// Runs one `kiban staff` subcommand.
pub async fn run(command: StaffCommand) -> Result<ExitCode> {
    match command {
        StaffCommand::Add(args) => add(args).await,
        StaffCommand::List(args) => list(&args.data_dir).await,
        StaffCommand::Disable(args) => disable(&args).await,
        StaffCommand::ResetMfa(args) => reset(&args).await,
    }
    .map(|_| ExitCode::SUCCESS)
}

async fn open_metadata(data_dir: &Path) -> Result<Metadata> {
    if !data_dir.join(kiban_metadata::SQLITE_FILE).exists() {
        bail!(
            "{} is not a kiban data directory (no {}); run `kiban ingest` or `kiban demo` first",
            data_dir.display(),
            kiban_metadata::SQLITE_FILE
        );
    }
    Metadata::open_in_dir(data_dir)
        .await
        .with_context(|| format!("metadata store in {}", data_dir.display()))
}

async fn open_sealer(
    meta: &Metadata,
    data_dir: &Path,
    key_file: Option<&Path>,
) -> Result<StaffSecretSealer> {
    let Some((keys, _)) = existing_master_key(data_dir, key_file)? else {
        bail!(
            "no master key found for {} (give --key-file or KIBAN_KEY_FILE): TOTP secrets are sealed under it",
            data_dir.display()
        );
    };
    StaffSecretSealer::open(meta, keys.as_ref())
        .await
        .context("staff key")
}

/// The password: one line of standard input, or asked twice on the terminal without echo.
fn read_password(from_stdin: bool) -> Result<Zeroizing<String>> {
    if from_stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        let password = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned());
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        bail!("standard input is not a terminal: pass the password with --password-stdin");
    }
    let term = console::Term::stderr();
    eprint!("Password (12 characters or more) / パスワード（12文字以上）: ");
    let first = Zeroizing::new(
        term.read_secure_line()
            .context("cannot read the password")?,
    );
    eprint!("Repeat the password / パスワードをもう一度: ");
    let second = Zeroizing::new(
        term.read_secure_line()
            .context("cannot read the password")?,
    );
    if *first != *second {
        bail!("the two passwords differ");
    }
    Ok(first)
}

fn print_secret(login: &str, secret: &TotpSecret) {
    println!(
        "  Add this secret to the authenticator app now (TOTP, SHA-1, 6 digits, 30 s); it is shown only once: / このシークレットを今すぐ認証アプリに登録してください（TOTP、SHA-1、6桁、30 秒）。表示はこの一度だけです:"
    );
    println!("  secret: {}", secret.to_base32().as_str());
    println!(
        "  URI:    {}",
        secret.otpauth_uri(TOTP_ISSUER, login).as_str()
    );
}

fn role_list(roles: &[StaffRole]) -> String {
    roles
        .iter()
        .map(|r| format!("{} ({})", r.code(), r.label_ja()))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn add(args: StaffAddArgs) -> Result<()> {
    let data_dir = &args.data.data_dir;
    let meta = open_metadata(data_dir).await?;
    let sealer = open_sealer(&meta, data_dir, args.keys.key_file.as_deref()).await?;
    let password = read_password(args.password_stdin)?;
    check_password_policy(&password)?;
    let created = create_staff_account(
        &meta,
        &sealer,
        &args.login,
        &args.name,
        &args.roles,
        &password,
        PasswordParams::default(),
    )
    .await;
    meta.close().await;
    let (account, secret) = created.context("staff account")?;
    println!(
        "staff: account {login} ({id}) created with roles {roles} / 職員: アカウント {login}（{id}）を作成しました。ロール {roles}",
        login = account.login,
        id = account.id,
        roles = role_list(&account.roles)
    );
    print_secret(&account.login, &secret);
    Ok(())
}

async fn list(data_dir: &Path) -> Result<()> {
    let meta = open_metadata(data_dir).await?;
    let accounts = meta.staff_accounts().await;
    meta.close().await;
    let accounts = accounts?;
    if accounts.is_empty() {
        println!(
            "staff: no accounts yet; add one with `kiban staff add` / 職員: アカウントはまだありません。`kiban staff add` で追加します"
        );
        return Ok(());
    }
    let now = chrono::Utc::now();
    for a in accounts {
        let state = if let Some(at) = &a.disabled_at {
            format!("disabled {at} / 無効 {at}")
        } else if a.is_locked_at(now) {
            let until = a.locked_until.as_deref().unwrap_or_default();
            format!("locked until {until} / {until} までロック")
        } else {
            "active / 有効".to_owned()
        };
        println!(
            "{:<20} {:<24} {:<10} {}  [{}]",
            a.login,
            a.id,
            state,
            a.display_name,
            role_list(&a.roles)
        );
    }
    Ok(())
}

async fn disable(args: &StaffLoginArgs) -> Result<()> {
    let meta = open_metadata(&args.data.data_dir).await?;
    let disabled = meta.disable_staff_account(&args.login).await;
    meta.close().await;
    let account = disabled.context("staff account")?;
    println!(
        "staff: account {login} disabled (since {since}); its sessions end at their next request / 職員: アカウント {login} を無効にしました（{since} から）。セッションは次のリクエストで終了します",
        login = account.login,
        since = account.disabled_at.as_deref().unwrap_or_default()
    );
    Ok(())
}

async fn reset(args: &StaffKeyedLoginArgs) -> Result<()> {
    let data_dir = &args.account.data.data_dir;
    let meta = open_metadata(data_dir).await?;
    let sealer = open_sealer(&meta, data_dir, args.keys.key_file.as_deref()).await?;
    let reset = reset_staff_mfa(&meta, &sealer, &args.account.login).await;
    meta.close().await;
    let (account, secret) = reset.context("staff account")?;
    println!(
        "staff: account {login} has a new TOTP secret; the old one no longer signs in / 職員: アカウント {login} に新しい TOTP シークレットを発行しました。古いものではサインインできません",
        login = account.login
    );
    print_secret(&account.login, &secret);
    Ok(())
}
