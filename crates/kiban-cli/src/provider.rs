//! `kiban provider`: registering data providers and managing their intake API tokens.
//!
//! Tokens are printed once, when issued; the store keeps only their SHA-256.

use anyhow::{Context, Result};
use kiban_collection::{
    Collection, CollectionPolicy, IssuedToken, NewProviderRegistration, SystemClock,
};
use kiban_metadata::{FilingStatus, Metadata};
use kiban_model::ProviderId;
use kiban_store::Store;
use std::process::ExitCode;
use std::sync::Arc;

use crate::keys::open_master_key;
use crate::{ProviderAddArgs, ProviderCommand, RevokeTokenArgs, RotateTokenArgs, StoreArgs};

/// Runs one `kiban provider` subcommand.
pub async fn run(command: ProviderCommand) -> Result<ExitCode> {
    match command {
        ProviderCommand::Add(args) => add(args).await,
        ProviderCommand::List(args) => list(args).await,
        ProviderCommand::RotateToken(args) => rotate_token(args).await,
        ProviderCommand::RevokeToken(args) => revoke_token(args).await,
    }
    .map(|_| ExitCode::SUCCESS)
}

/// Who did it, for the collection audit log: the operator's login name.
fn actor() -> String {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| {
            !u.is_empty()
                && u.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        })
        .unwrap_or_else(|| "operator".to_owned());
    format!("cli:{user}")
}

/// The collection registers of a data directory (created if absent).
pub async fn open_collection(args: &StoreArgs) -> Result<Collection> {
    let data_dir = &args.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    let (keys, _) = open_master_key(data_dir, args.keys.key_file.as_deref())?;
    let store = Arc::new(
        Store::open(data_dir, keys)
            .with_context(|| format!("encrypted store in {}", data_dir.display()))?,
    );
    let meta = Metadata::open_in_dir(data_dir)
        .await
        .with_context(|| format!("metadata store in {}", data_dir.display()))?;
    Ok(Collection::new(
        meta,
        store,
        Arc::new(SystemClock),
        CollectionPolicy::default(),
    ))
}

fn print_token(token: &IssuedToken) {
    println!("token_id: {}", token.token_id());
    println!("token: {}", token.expose_secret());
    eprintln!(
        "warning: keep this token secret. It is shown only this once (kiban stores only its hash); \
         give it to the provider over a secure channel. If it leaks, run `kiban provider rotate-token {provider}`. \
         / 警告: このトークンは秘密にしてください。表示はこの一度だけです（kiban はハッシュのみを保存します）。\
         安全な経路で医療機関に渡してください。漏えいした場合は `kiban provider rotate-token {provider}` を実行してください。",
        provider = token.provider_id().as_str()
    );
}

/// The filing status (届出) in Japanese, for the provider list.
fn filing_status_ja(status: FilingStatus) -> &'static str {
    match status {
        FilingStatus::Pending => "未届出",
        FilingStatus::Filed => "届出済み",
        FilingStatus::Withdrawn => "取下げ",
    }
}

async fn add(args: ProviderAddArgs) -> Result<()> {
    let collection = open_collection(&args.store).await?;
    let registration = NewProviderRegistration {
        name_en: args.name_en,
        contact: args.contact,
        ..NewProviderRegistration::new(args.name, args.kind)
    };
    let (provider, token) = collection
        .add_provider(&registration, &actor())
        .await
        .context("cannot register the provider")?;
    println!("provider_id: {}", provider.as_str());
    print_token(&token);
    collection.metadata().close().await;
    Ok(())
}

async fn list(args: StoreArgs) -> Result<()> {
    let collection = open_collection(&args).await?;
    let providers = collection
        .providers()
        .await
        .context("cannot list providers")?;
    if providers.is_empty() {
        println!(
            "no providers registered; add one with `kiban provider add` / 登録された医療機関はありません。`kiban provider add` で登録します"
        );
    }
    for provider in &providers {
        let name_en = provider
            .name_en
            .as_deref()
            .map(|n| format!(" / {n}"))
            .unwrap_or_default();
        println!(
            "{}  {}  filing {}  {}{}  (registered {registered}) / {}、届出: {}、登録 {registered}",
            provider.id,
            provider.kind.code(),
            provider.filing_status,
            provider.name,
            name_en,
            provider.kind.label_ja(),
            filing_status_ja(provider.filing_status),
            registered = provider.created_at
        );
        let tokens = collection
            .tokens(&ProviderId(provider.id.clone()))
            .await
            .context("cannot list tokens")?;
        for token in tokens {
            let (state, state_ja) = match &token.revoked_at {
                Some(at) => (format!("revoked {at}"), format!("失効 {at}")),
                None => ("active".to_owned(), "有効".to_owned()),
            };
            let label = token
                .label
                .as_deref()
                .map(|l| format!("  [{l}]"))
                .unwrap_or_default();
            println!(
                "    token {}  issued {issued}  {state}{label} / トークン、発行 {issued}、{state_ja}",
                token.token_id,
                issued = token.created_at
            );
        }
    }
    collection.metadata().close().await;
    Ok(())
}

async fn rotate_token(args: RotateTokenArgs) -> Result<()> {
    let collection = open_collection(&args.store).await?;
    let provider = ProviderId(args.provider_id);
    let token = collection
        .rotate_token(&provider, &actor())
        .await
        .context("cannot rotate the token")?;
    println!(
        "provider_id: {} (every other token of it is revoked) / この医療機関のほかのトークンはすべて失効しました",
        provider.as_str()
    );
    print_token(&token);
    collection.metadata().close().await;
    Ok(())
}

async fn revoke_token(args: RevokeTokenArgs) -> Result<()> {
    let collection = open_collection(&args.store).await?;
    collection
        .revoke_token(&args.token_id, &actor())
        .await
        .context("cannot revoke the token")?;
    println!(
        "revoked token {token} / トークン {token} を失効させました",
        token = args.token_id
    );
    collection.metadata().close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyArgs, parse_provider_kind};
    use kiban_model::ProviderKind;

    #[test]
    fn every_kind_code_and_the_hospital_alias_parse() {
        assert_eq!(
            parse_provider_kind("hospital").unwrap(),
            ProviderKind::GeneralHospital
        );
        for kind in ProviderKind::ALL {
            assert_eq!(parse_provider_kind(kind.code()).unwrap(), *kind);
        }
        assert!(parse_provider_kind("pharmacy").is_err());
    }

    #[tokio::test]
    async fn add_rotate_revoke() {
        let base = tempfile::tempdir().unwrap();
        let store = StoreArgs {
            data_dir: base.path().join("data"),
            keys: KeyArgs {
                key_file: Some(base.path().join("keys/master.key")),
            },
        };
        let args = |name: &str| ProviderAddArgs {
            name: name.to_owned(),
            kind: ProviderKind::Clinic,
            name_en: Some("Toto Clinic".to_owned()),
            contact: None,
            store: store.clone(),
        };
        add(args("東都クリニック")).await.unwrap();
        add(args("西都クリニック")).await.unwrap();
        list(store.clone()).await.unwrap();
        let collection = open_collection(&store).await.unwrap();
        let providers = collection.providers().await.unwrap();
        assert_eq!(providers.len(), 2);
        let first = ProviderId(providers[0].id.clone());
        let old = collection.tokens(&first).await.unwrap();
        assert_eq!(old.len(), 1);

        rotate_token(RotateTokenArgs {
            provider_id: first.0.clone(),
            store: store.clone(),
        })
        .await
        .unwrap();
        let tokens = collection.tokens(&first).await.unwrap();
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens.iter().filter(|t| t.revoked_at.is_none()).count(), 1);
        let active = tokens.iter().find(|t| t.revoked_at.is_none()).unwrap();
        assert_ne!(active.token_id, old[0].token_id);

        revoke_token(RevokeTokenArgs {
            token_id: active.token_id.clone(),
            store: store.clone(),
        })
        .await
        .unwrap();
        let tokens = collection.tokens(&first).await.unwrap();
        assert!(tokens.iter().all(|t| t.revoked_at.is_some()));
        assert!(
            rotate_token(RotateTokenArgs {
                provider_id: "prov-999".to_owned(),
                store,
            })
            .await
            .is_err()
        );
    }
}

#[cfg(test)]
mod cli_shape {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::{CommandFactory, Parser};
        crate::Cli::command().debug_assert();
        let cli = crate::Cli::try_parse_from([
            "kiban",
            "provider",
            "add",
            "東都病院",
            "--kind",
            "hospital",
            "--data",
            "d",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            crate::Command::Provider(crate::ProviderCommand::Add(_))
        ));
        let cli = crate::Cli::try_parse_from(["kiban", "serve", "--data", "d", "--key-file", "k"])
            .unwrap();
        assert!(matches!(cli.command, crate::Command::Serve(_)));
    }
}
