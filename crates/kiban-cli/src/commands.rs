//! One function per subcommand; each calls a library crate and reports what it did.

use anyhow::{Context, Result, bail};
use kiban_collection::{Collection, CollectionPolicy, SystemClock};
use kiban_ingest::{IngestOptions, IngestProgress, IngestReport};
use kiban_metadata::Metadata;
use kiban_server::fhir_api::FhirApiConfig;
use kiban_server::rate_limit::RateLimit;
use kiban_server::{AppState, CollectionState};
use kiban_store::Store;
use kiban_synth::{SynthConfig, SynthSummary};
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use crate::keys::{existing_master_key, open_master_key};
use crate::lock::IntakeLock;
use crate::progress::{bytes_bar, count_bar};
use crate::{Command, DemoArgs, IngestArgs, IntakeApiArgs, KeygenArgs, ServeArgs, SynthArgs};

/// Exit code of a run stopped by Ctrl-C (128 + SIGINT), as shells expect.
const INTERRUPTED: u8 = 130;

/// Runs one subcommand.
pub async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Synth(args) if args.identity_csv => {
            identity_csv(args).await.map(|_| ExitCode::SUCCESS)
        }
        Command::Synth(args) => synth(args).await.map(|_| ExitCode::SUCCESS),
        Command::Ingest(args) => ingest(args).await,
        Command::Serve(args) => serve(args).await.map(|_| ExitCode::SUCCESS),
        Command::Demo(args) => demo(args).await,
        Command::Keygen(args) => keygen(args),
        Command::Provider(command) => crate::provider::run(command).await,
        Command::Extract(args) => crate::extract::run(args).await.map(|_| ExitCode::SUCCESS),
        Command::Anonymize(args) => crate::anonymize::run(args).map(|_| ExitCode::SUCCESS),
        Command::Link(args) => crate::link::run(args).await.map(|_| ExitCode::SUCCESS),
        Command::Deidentify(args) => crate::deidentify::run(args)
            .await
            .map(|_| ExitCode::SUCCESS),
        Command::Staff(command) => crate::staff::run(command).await,
    }
}

async fn synth(args: SynthArgs) -> Result<SynthSummary> {
    let config = SynthConfig {
        persons: args.persons,
        seed: args.seed,
        providers: args.providers,
        ..SynthConfig::default()
    };
    run_synth(config, &args.out).await
}

/// `kiban synth --identity-csv`: the same population's identity records in linkage CSV form.
async fn identity_csv(args: SynthArgs) -> Result<()> {
    let config = SynthConfig {
        persons: args.persons,
        seed: args.seed,
        providers: args.providers,
        ..SynthConfig::default()
    };
    let started = Instant::now();
    let bar = count_bar(config.persons, "synth persons / 合成（人）");
    let out = args.out.clone();
    let worker_bar = bar.clone();
    let summary = tokio::task::spawn_blocking(move || {
        kiban_synth::write_identity_csv(&config, &out, &|done| worker_bar.set_position(done))
            .with_context(|| format!("identity records into {}", out.display()))
    })
    .await
    .context("synthetic generator stopped unexpectedly")??;
    bar.finish_and_clear();
    println!(
        "synth: {persons} persons, {providers} providers, {records} identity records -> {path} (truth: {truth}) in {seconds:.1} s / 合成データ: {persons}人、医療機関 {providers}、識別情報の記録 {records}件 → {path}（正解: {truth}）、{seconds:.1} 秒",
        persons = summary.persons,
        providers = summary.providers,
        records = summary.records,
        path = summary.records_path.display(),
        truth = summary.truth_path.display(),
        seconds = started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn run_synth(config: SynthConfig, out: &Path) -> Result<SynthSummary> {
    let started = Instant::now();
    let bar = count_bar(config.persons, "synth persons / 合成（人）");
    let out = out.to_path_buf();
    let worker_bar = bar.clone();
    let summary = tokio::task::spawn_blocking(move || {
        kiban_synth::generate(&config, &out, &|done| worker_bar.set_position(done))
            .with_context(|| format!("synthetic population into {}", out.display()))
    })
    .await
    .context("synthetic generator stopped unexpectedly")??;
    bar.finish_and_clear();
    println!(
        "synth: {persons} persons, {providers} providers, {patients} patient records, {bundles} bundles, {mb:.1} MB in {seconds:.1} s / 合成データ: {persons}人、医療機関 {providers}、患者の記録 {patients}件、バンドル {bundles}件、{mb:.1} MB、{seconds:.1} 秒",
        persons = summary.persons,
        providers = summary.providers,
        patients = summary.patient_records,
        bundles = summary.bundles,
        mb = summary.bytes_written as f64 / 1e6,
        seconds = started.elapsed().as_secs_f64()
    );
    Ok(summary)
}

/// Outcome of an ingest that may be interrupted.
enum Ingested {
    Done(IngestReport),
    Interrupted,
}

async fn run_ingest(
    input: &Path,
    data_dir: &Path,
    key_file: Option<&Path>,
    chunk_lines: usize,
) -> Result<Ingested> {
    let started = Instant::now();
    let _lock = IntakeLock::acquire(data_dir)?;
    let (keys, key_path) = open_master_key(data_dir, key_file)?;
    let store = Arc::new(
        Store::open(data_dir, keys)
            .with_context(|| format!("encrypted store in {}", data_dir.display()))?,
    );
    let meta = Metadata::open_in_dir(data_dir)
        .await
        .with_context(|| format!("metadata store in {}", data_dir.display()))?;
    println!(
        "ingest: {input} -> {data} (master key {key}) / 取り込み: {input} → {data}（マスター鍵 {key}）",
        input = input.display(),
        data = data_dir.display(),
        key = key_path.display()
    );
    let options = IngestOptions {
        lines_per_chunk: chunk_lines,
        ..IngestOptions::default()
    };
    let bar = bytes_bar(0, "ingest / 取り込み");
    let progress_bar = bar.clone();
    let progress = move |p: IngestProgress| {
        progress_bar.set_length(p.bytes_total);
        progress_bar.set_position(p.bytes_done);
    };
    let outcome = tokio::select! {
        report = kiban_ingest::ingest_dir(store, &meta, input, &options, &progress) => {
            Ingested::Done(report.with_context(|| format!("ingest of {}", input.display()))?)
        }
        _ = tokio::signal::ctrl_c() => Ingested::Interrupted,
    };
    bar.finish_and_clear();
    match &outcome {
        Ingested::Done(report) => {
            println!(
                "ingest: {files} files ({skipped} already held), {lines} lines, {accepted} resources accepted, {duplicates} duplicates, {quarantined} quarantined, in {seconds:.1} s / 取り込み: ファイル {files}件（取り込み済み {skipped}件）、{lines}行、受け入れたリソース {accepted}件、重複 {duplicates}件、隔離 {quarantined}件、{seconds:.1} 秒",
                files = report.intakes + report.files_skipped,
                skipped = report.files_skipped,
                lines = report.lines,
                accepted = report.resources_accepted,
                duplicates = report.resources_duplicate,
                quarantined = report.resources_rejected,
                seconds = started.elapsed().as_secs_f64()
            );
            println!(
                "  opt-out: {held} resources held until their notices are a month old, {refused} refused (patients opted out) / 提供停止: 通知から1か月経つまで保留 {held}件、提供停止により受け入れず {refused}件",
                held = report.resources_held,
                refused = report.resources_refused
            );
            let release = &report.held_release;
            if release.lines_released + release.lines_refused > 0 {
                println!(
                    "  held lines from earlier intakes: {released} released, {refused} dropped after a refusal, {held} still held / 以前の取り込みで保留した行: 解除 {released}行、提供停止により破棄 {refused}行、保留中 {held}行",
                    released = release.lines_released,
                    refused = release.lines_refused,
                    held = release.lines_still_held
                );
            }
            for (table, rows) in &report.rows_per_table {
                println!("  {table:<22} {rows:>10} rows / {rows}行");
            }
        }
        Ingested::Interrupted => {
            eprintln!(
                "ingest interrupted: every committed chunk is kept and the store is consistent; run the same command again to resume / 取り込みを中断しました: 確定済みのチャンクはすべて保持され、ストアは整合しています。同じコマンドを再実行すると続きから再開します"
            );
        }
    }
    meta.close().await;
    Ok(outcome)
}

async fn ingest(args: IngestArgs) -> Result<ExitCode> {
    match run_ingest(
        &args.input,
        &args.data_dir,
        args.keys.key_file.as_deref(),
        args.chunk_lines,
    )
    .await?
    {
        Ingested::Done(_) => Ok(ExitCode::SUCCESS),
        Ingested::Interrupted => Ok(ExitCode::from(INTERRUPTED)),
    }
}

async fn run_server(
    data_dir: &Path,
    key_file: Option<&Path>,
    listen: SocketAddr,
    intake_api: &IntakeApiArgs,
) -> Result<()> {
    if !data_dir.join(kiban_metadata::SQLITE_FILE).exists() {
        bail!(
            "{} is not a kiban data directory (no {}); run `kiban ingest` or `kiban demo` first",
            data_dir.display(),
            kiban_metadata::SQLITE_FILE
        );
    }
    let meta = Metadata::open_in_dir(data_dir)
        .await
        .with_context(|| format!("metadata store in {}", data_dir.display()))?;
    let mut lock = None;
    let mut staff = None;
    let (collection, intake) = match existing_master_key(data_dir, key_file)? {
        Some((keys, key_path)) => {
            lock = Some(IntakeLock::acquire(data_dir)?);
            staff = Some(staff_auth(&meta, keys.as_ref(), listen).await?);
            let store = Arc::new(
                Store::open(data_dir, keys)
                    .with_context(|| format!("encrypted store in {}", data_dir.display()))?,
            );
            let collection = Collection::new(
                meta.clone(),
                store.clone(),
                Arc::new(SystemClock),
                CollectionPolicy::default(),
            );
            let state = CollectionState {
                store,
                collection: Arc::new(collection),
                ingest_options: IngestOptions::default(),
            };
            (Some(state), Some(key_path))
        }
        None => (None, None),
    };
    let mut state = app_state(&meta, data_dir, collection, intake_api);
    if let Some(staff) = staff {
        state = state.with_staff_auth(staff);
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!(
        "serve: portal at http://{listen}/ (日本語 / English); press Ctrl-C to stop / ポータル: http://{listen}/ （Ctrl-C で停止）"
    );
    match intake {
        Some(key_path) => println!(
            "serve: FHIR intake API at http://{listen}/fhir (master key {key}); register senders with `kiban provider add` / FHIR 取り込み API: http://{listen}/fhir （マスター鍵 {key}）。送信する医療機関は `kiban provider add` で登録します",
            key = key_path.display()
        ),
        None => println!(
            "serve: note: no master key found for {data} (give --key-file or KIBAN_KEY_FILE): serving the read-only portal only, the FHIR intake API answers 503 / 注意: {data} のマスター鍵が見つかりません（--key-file または KIBAN_KEY_FILE で指定）。閲覧専用のポータルのみを提供し、FHIR 取り込み API は 503 を返します",
            data = data_dir.display()
        ),
    }
    kiban_server::serve(listener, state, async {
        // A failure to install the handler only means Ctrl-C kills the process instead.
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .context("web server")?;
    meta.close().await;
    // Held to here: another intake process may use the directory from now on.
    drop(lock);
    println!("serve: stopped / 停止しました");
    Ok(())
}

/// Staff sign-in over the store's master key. The session cookie is `Secure` unless the
/// portal listens on a loopback address: browsers reach a loopback server over plain HTTP, and
/// kiban serves plain HTTP, so a server on any other address must sit behind HTTPS.
async fn staff_auth(
    meta: &Metadata,
    keys: &dyn kiban_store::KeyProvider,
    listen: SocketAddr,
) -> Result<kiban_server::staff_auth::StaffAuth> {
    let sealer = kiban_server::staff_auth::StaffSecretSealer::open(meta, keys)
        .await
        .context("staff key")?;
    let config = kiban_server::staff_auth::StaffAuthConfig {
        secure_cookie: !listen.ip().is_loopback(),
        ..Default::default()
    };
    kiban_server::staff_auth::StaffAuth::new(sealer, config).context("staff sign-in")
}

/// The portal's state: with the collection registers (and so the intake API) when the master
/// key is at hand.
fn app_state(
    meta: &Metadata,
    data_dir: &Path,
    collection: Option<CollectionState>,
    intake_api: &IntakeApiArgs,
) -> AppState {
    let held_release = (intake_api.held_release_minutes > 0)
        .then(|| Duration::from_secs(intake_api.held_release_minutes.saturating_mul(60)));
    let state = AppState::new(meta.clone(), data_dir.display().to_string())
        .with_fhir_api_config(FhirApiConfig {
            max_body_bytes: intake_api.max_upload_mib.saturating_mul(1024 * 1024),
            rate_limit: RateLimit {
                per_second: intake_api.rate_limit,
                burst: intake_api.rate_burst,
            },
        })
        .with_held_release_interval(held_release);
    match collection {
        Some(collection) => state.with_collection(collection),
        None => state,
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
    run_server(
        &args.data_dir,
        args.keys.key_file.as_deref(),
        args.listen,
        &args.intake,
    )
    .await
}

async fn demo(args: DemoArgs) -> Result<ExitCode> {
    let providers_dir = args.dir.join("providers");
    let data_dir = args.dir.join("data");
    let marker = args.dir.join("demo-population.txt");
    let wanted = format!("persons={} seed={}\n", args.persons, args.seed);
    let have = std::fs::read_to_string(&marker).unwrap_or_default();
    println!(
        "kiban demo — working folder {dir} / 作業フォルダ {dir}",
        dir = args.dir.display()
    );
    if have == wanted && providers_dir.join("providers.json").exists() {
        println!(
            "1/4 synth: reusing the population in {dir} / 合成データ: {dir} の集団を再利用します",
            dir = providers_dir.display()
        );
    } else {
        if providers_dir.exists() {
            std::fs::remove_dir_all(&providers_dir).with_context(|| {
                format!(
                    "cannot clear old synthetic input {}",
                    providers_dir.display()
                )
            })?;
        }
        println!(
            "1/4 synth: {persons} persons (seed {seed}) and their providers -> {dir} / 合成データ: {persons}人（シード {seed}）とその医療機関 → {dir}",
            persons = args.persons,
            seed = args.seed,
            dir = providers_dir.display()
        );
        let config = SynthConfig {
            persons: args.persons,
            seed: args.seed,
            ..SynthConfig::default()
        };
        run_synth(config, &providers_dir).await?;
        std::fs::write(&marker, &wanted)
            .with_context(|| format!("cannot write {}", marker.display()))?;
    }
    println!(
        "2/4 upload: the providers send their files to the FHIR intake API -> encrypted store {dir} / 送信: 医療機関がファイルを FHIR 取り込み API へ送信 → 暗号化ストア {dir}",
        dir = data_dir.display()
    );
    let _lock = IntakeLock::acquire(&data_dir)?;
    let (keys, key_path) = open_master_key(&data_dir, args.keys.key_file.as_deref())?;
    let store = Arc::new(
        Store::open(&data_dir, keys.clone())
            .with_context(|| format!("encrypted store in {}", data_dir.display()))?,
    );
    let meta = Metadata::open_in_dir(&data_dir)
        .await
        .with_context(|| format!("metadata store in {}", data_dir.display()))?;
    // Files of an upload killed in an earlier run are not part of the store.
    let committed = meta.committed_paths().await?;
    store.remove_uncommitted(&committed)?;
    let collection = Arc::new(Collection::new(
        meta.clone(),
        store.clone(),
        Arc::new(SystemClock),
        CollectionPolicy::default(),
    ));
    let state = app_state(
        &meta,
        &data_dir,
        Some(CollectionState {
            store: store.clone(),
            collection: collection.clone(),
            ingest_options: IngestOptions::default(),
        }),
        &args.intake,
    )
    .with_staff_auth(staff_auth(&meta, keys.as_ref(), args.listen).await?);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(kiban_server::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    println!(
        "  master key {key} (outside the data directory) / マスター鍵 {key}（データディレクトリの外）",
        key = key_path.display()
    );
    let started = Instant::now();
    let bar = bytes_bar(0, "upload / 送信");
    let uploaded = tokio::select! {
        report = crate::demo_upload::run(&providers_dir, &collection, &base_url, &bar) => Some(report),
        _ = tokio::signal::ctrl_c() => None,
    };
    bar.finish_and_clear();
    let Some(uploaded) = uploaded else {
        let _ = stop.send(());
        let _ = server.await;
        meta.close().await;
        eprintln!(
            "demo interrupted: every committed upload is kept; run the same command again to resume / デモを中断しました: 確定済みの送信はすべて保持されます。同じコマンドを再実行すると続きから再開します"
        );
        return Ok(ExitCode::from(INTERRUPTED));
    };
    let uploaded = uploaded?;
    let intakes = meta.intake_log(i64::MAX).await?;
    let sum = |f: fn(&kiban_metadata::Intake) -> i64| intakes.iter().map(f).sum::<i64>();
    println!(
        "  {providers} providers sent {requests} uploads ({mb:.1} MB) to {base_url}/fhir/$import in {seconds:.1} s / 医療機関 {providers} が {base_url}/fhir/$import へ {requests}回送信（{mb:.1} MB）、{seconds:.1} 秒",
        providers = uploaded.providers,
        requests = uploaded.requests,
        mb = uploaded.bytes as f64 / 1e6,
        seconds = started.elapsed().as_secs_f64()
    );
    println!(
        "  store: {accepted} resources taken, {duplicates} duplicates, {quarantined} quarantined; {held} held (patients notified today: {notified}), {refused} refused / ストア: 受け入れたリソース {accepted}件、重複 {duplicates}件、隔離 {quarantined}件、保留 {held}件（本日通知した患者 {notified}人）、提供停止により受け入れず {refused}件",
        accepted = sum(|i| i.resources_accepted),
        duplicates = sum(|i| i.resources_duplicate),
        quarantined = sum(|i| i.resources_rejected),
        held = sum(|i| i.resources_held),
        notified = uploaded.recently_notified,
        refused = sum(|i| i.resources_refused)
    );
    println!(
        "  opt-out: {page} patients refused on the patient page ({base_url}/optout), {listed} through their providers' refusal lists / 提供停止: 患者向けページ（{base_url}/optout）から {page}人、医療機関の提供停止リストから {listed}人",
        page = uploaded.page_refusals,
        listed = uploaded.listed_refusals
    );
    println!(
        "3/4 release: persons linked, extraction, anonymized release (匿名加工) / 提供: 名寄せ、抽出、匿名加工データの作成"
    );
    crate::demo_release::run(
        &store,
        &meta,
        &collection,
        keys.as_ref(),
        &args.dir,
        Some(&key_path),
    )
    .await?;
    if args.no_serve {
        let _ = stop.send(());
        server.await.context("web server")?.context("web server")?;
        meta.close().await;
        println!(
            "4/4 serve: skipped (--no-serve); start it with `kiban serve --data {dir}` / サーバー起動: 省略しました（--no-serve）。`kiban serve --data {dir}` で起動します",
            dir = data_dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    // Before the line that says Ctrl-C stops the demo: hashing the password takes a moment,
    // and a Ctrl-C before the handler below listens would be lost.
    crate::demo_staff::ensure_demo_staff(&meta, keys.as_ref(), &base_url).await?;
    println!(
        "4/4 serve: portal at {base_url}/ (日本語 / English), intake API at {base_url}/fhir; press Ctrl-C to stop / サーバー起動: ポータル {base_url}/ 、取り込み API {base_url}/fhir（Ctrl-C で停止）"
    );
    // A failure to install the handler only means Ctrl-C kills the process instead.
    let _ = tokio::signal::ctrl_c().await;
    let _ = stop.send(());
    server.await.context("web server")?.context("web server")?;
    meta.close().await;
    println!("serve: stopped / 停止しました");
    Ok(ExitCode::SUCCESS)
}

fn keygen(args: KeygenArgs) -> Result<ExitCode> {
    let key = kiban_store::KeyFile::generate(&args.key_file)
        .with_context(|| format!("master key file {}", args.key_file.display()))?;
    println!(
        "keygen: new master key {id} written to {path} (keep it outside every data directory, and back it up apart from the data) / 新しいマスター鍵 {id} を {path} に書き込みました（どのデータディレクトリの外にも置き、データとは別にバックアップしてください）",
        id = kiban_store::KeyProvider::key_id(&key),
        path = args.key_file.display()
    );
    Ok(ExitCode::SUCCESS)
}
