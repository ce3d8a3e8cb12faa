//! Load test of the FHIR intake API on loopback: many providers upload at once.
//!
//! Starts kiban's server in-process on `127.0.0.1:0` over a fresh store, registers
//! `--providers` providers (each with its intake token and its patients notified two months
//! before the server's clock), then runs one client per provider, all at the same time, each
//! POSTing `--bundles-per-provider` transaction Bundles to `/fhir` with an `Idempotency-Key`
//! (one connection per request). Prints throughput and latency percentiles, then checks in the
//! metadata database that every resource sent was taken exactly once: the acquisition records
//! count them all, nothing is quarantined or held, and every table holds exactly the rows
//! sent. Finally one upload is sent again with its key and must be replayed, adding nothing.
//!
//! ```text
//! cargo run --release --example intake_load -- --providers 200 --bundles-per-provider 20
//! ```
//!
//! Bounded: each request must answer within `--request-timeout-secs` (60) and the whole upload
//! phase within `--timeout-secs` (600). Exits non-zero on any error or lost resource.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use kiban_collection::{
    Collection, CollectionPolicy, FixedClock, NewProviderRegistration, NotificationMeans,
};
use kiban_ingest::IngestOptions;
use kiban_metadata::Metadata;
use kiban_model::{
    ConditionRow, EncounterRow, IdentityRow, LabObservationRow, ProviderKind, TableRow,
};
use kiban_server::fhir_api::{FhirApiConfig, RateLimit};
use kiban_server::{AppState, CollectionState};
use kiban_store::{KeyFile, Store};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Resources in each Bundle: Patient, Encounter, Condition, two Observations.
pub const RESOURCES_PER_BUNDLE: u64 = 5;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Providers uploading at the same time (one client each).
    pub providers: usize,
    /// Bundles each provider sends, one after another.
    pub bundles_per_provider: usize,
    /// Longest wait for one response.
    pub request_timeout: Duration,
    /// Longest the whole upload phase may take.
    pub total_timeout: Duration,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            providers: 200,
            bundles_per_provider: 20,
            request_timeout: Duration::from_secs(60),
            total_timeout: Duration::from_secs(600),
        }
    }
}

/// What a run measured and verified.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Bundles sent.
    pub bundles: u64,
    /// Resources in them.
    pub resources: u64,
    /// Requests that did not answer 200 (or did not answer).
    pub errors: u64,
    /// The first few errors, in words.
    pub error_samples: Vec<String>,
    /// Wall time of the upload phase.
    pub elapsed: Duration,
    /// Latencies of the successful requests, sorted.
    pub latencies: Vec<Duration>,
    /// Resources the acquisition records count as accepted.
    pub recorded_accepted: i64,
    /// Resources the acquisition records count as duplicate, rejected, held or refused.
    pub recorded_not_accepted: i64,
    /// Rows per table, as the metadata holds them.
    pub rows_per_table: BTreeMap<String, i64>,
    /// Rows per table expected from what was sent.
    pub expected_rows: BTreeMap<String, i64>,
    /// The repeated upload was answered from the stored response.
    pub replay_ok: bool,
}

impl LoadReport {
    /// The `p`-th percentile (0–100) of the latencies.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * (self.latencies.len() - 1) as f64).round() as usize;
        self.latencies[rank.min(self.latencies.len() - 1)]
    }

    /// Resources sent but not stored exactly once: rows missing or extra per table, plus the
    /// difference between the resources sent and those the acquisition records count.
    pub fn lost_resources(&self) -> i64 {
        let rows: i64 = self
            .expected_rows
            .iter()
            .map(|(table, expected)| {
                (expected - self.rows_per_table.get(table).copied().unwrap_or(0)).abs()
            })
            .sum();
        rows + (self.resources as i64 - self.recorded_accepted).abs()
    }

    /// Prints the summary.
    pub fn print(&self, config: &LoadConfig) {
        let secs = self.elapsed.as_secs_f64().max(f64::EPSILON);
        println!(
            "intake load: {} providers x {} bundles = {} bundles, {} resources",
            config.providers, config.bundles_per_provider, self.bundles, self.resources
        );
        println!("  wall time          {:.2} s", secs);
        println!(
            "  throughput         {:.1} bundles/s, {:.1} resources/s",
            self.bundles as f64 / secs,
            self.resources as f64 / secs
        );
        println!(
            "  latency            p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            ms(self.percentile(50.0)),
            ms(self.percentile(90.0)),
            ms(self.percentile(99.0)),
            ms(self.latencies.last().copied().unwrap_or_default())
        );
        println!("  errors             {}", self.errors);
        for sample in &self.error_samples {
            println!("    {sample}");
        }
        println!(
            "  recorded           {} accepted, {} duplicate/rejected/held/refused",
            self.recorded_accepted, self.recorded_not_accepted
        );
        for (table, expected) in &self.expected_rows {
            println!(
                "  rows {:<16} {} stored, {} sent",
                table,
                self.rows_per_table.get(table).copied().unwrap_or(0),
                expected
            );
        }
        println!("  lost resources     {}", self.lost_resources());
        println!(
            "  idempotent replay  {}",
            if self.replay_ok { "ok" } else { "FAILED" }
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The provider patient id system of a provider (JP Core: the OID prefix and a 10-digit
/// medical institution code).
fn patient_id_system(provider: usize) -> String {
    format!(
        "urn:oid:1.2.392.100495.20.3.51.1{:010}",
        1_300_000_000 + provider
    )
}

/// The provider patient id of a provider's `bundle`-th patient.
fn patient_id(bundle: usize) -> String {
    format!("LT{bundle:06}")
}

/// A transaction Bundle of one patient's visit: Patient, Encounter, Condition and two lab
/// Observations, with `urn:uuid:` references.
fn visit_bundle(provider: usize, bundle: usize) -> Value {
    let urn = |n: usize| format!("urn:uuid:{provider:08x}-{bundle:04x}-4000-8000-{n:012x}");
    let day = 1 + bundle % 28;
    let entry = |n: usize, resource: Value| {
        let kind = resource["resourceType"].clone();
        json!({"fullUrl": urn(n), "resource": resource, "request": {"method": "POST", "url": kind}})
    };
    let observation = |code: &str, name: &str, value: f64, unit: &str| {
        json!({
            "resourceType": "Observation",
            "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": name}], "text": name},
            "subject": {"reference": urn(1)},
            "encounter": {"reference": urn(2)},
            "effectiveDateTime": format!("2026-01-{day:02}T09:30:00+09:00"),
            "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
        })
    };
    json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            entry(1, json!({
                "resourceType": "Patient",
                "identifier": [{"system": patient_id_system(provider), "value": patient_id(bundle)}],
                "name": [{"use": "official", "family": "負荷", "given": ["試験"]}],
                "gender": if bundle.is_multiple_of(2) { "female" } else { "male" },
                "birthDate": format!("{}-0{}-1{}", 1940 + bundle % 60, 1 + bundle % 9, bundle % 10)
            })),
            entry(2, json!({
                "resourceType": "Encounter",
                "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                "subject": {"reference": urn(1)},
                "period": {"start": format!("2026-01-{day:02}T09:00:00+09:00"), "end": format!("2026-01-{day:02}T09:40:00+09:00")}
            })),
            entry(3, json!({
                "resourceType": "Condition",
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "E11.9"}], "text": "2型糖尿病"},
                "subject": {"reference": urn(1)},
                "encounter": {"reference": urn(2)},
                "onsetDateTime": "2025-06-01"
            })),
            entry(4, observation("4548-4", "HbA1c", 6.0 + (bundle % 20) as f64 / 10.0, "%")),
            entry(5, observation("2345-7", "血糖", 100.0 + (bundle % 50) as f64, "mg/dL")),
        ]
    })
}

/// A response to one request: status, headers (lower-case names) and body.
struct HttpResponse {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// One POST over a fresh loopback connection (`Connection: close`, read to the end).
async fn post(
    addr: std::net::SocketAddr,
    path: &str,
    token: &str,
    idempotency_key: &str,
    body: &[u8],
) -> anyhow::Result<HttpResponse> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/fhir+json\r\nIdempotency-Key: {idempotency_key}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("response without a header end")?;
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("response without a status")?;
    let mut body = response[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body)?;
    }
    Ok(HttpResponse { status, head, body })
}

/// The payload of a chunked body.
fn dechunk(mut raw: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("chunk size line")?;
        let size_text = std::str::from_utf8(&raw[..line_end])?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        ensure!(raw.len() >= size + 2, "truncated chunk");
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// Runs the load test (see the file's documentation).
pub async fn run(config: &LoadConfig) -> anyhow::Result<LoadReport> {
    let dir = tempfile::tempdir()?;
    let keys = KeyFile::generate(&dir.path().join("keys/master.key"))?;
    let data = dir.path().join("data");
    let store = Arc::new(Store::open(&data, Arc::new(keys))?);
    let meta = Metadata::open_in_dir(&data).await?;
    let collection = Arc::new(Collection::new(
        meta.clone(),
        store.clone(),
        Arc::new(FixedClock::on_date("2026-03-20".parse()?)),
        CollectionPolicy::default(),
    ));

    // Providers, tokens, notifications.
    let mut tokens = Vec::with_capacity(config.providers);
    for p in 0..config.providers {
        let (provider, token) = collection
            .add_provider(
                &NewProviderRegistration::new(format!("負荷試験病院{p:03}"), ProviderKind::Clinic),
                "load-test",
            )
            .await?;
        for b in 0..config.bundles_per_provider {
            collection
                .record_notification(
                    &provider,
                    &patient_id(b),
                    "2026-01-10".parse()?,
                    NotificationMeans::Letter,
                    "load-test",
                )
                .await?;
        }
        tokens.push(token.expose_secret().to_owned());
    }

    // The server, with a rate limit above what the clients ask for.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = AppState::new(meta.clone(), data.display().to_string())
        .with_held_release_interval(None)
        .with_fhir_api_config(FhirApiConfig {
            rate_limit: RateLimit {
                per_second: 10_000.0,
                burst: 10_000,
            },
            ..FhirApiConfig::default()
        })
        .with_collection(CollectionState {
            store,
            collection,
            ingest_options: IngestOptions::default(),
        });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(kiban_server::serve(listener, state, async {
        let _ = stopped.await;
    }));

    // Every provider's client at once.
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for (p, token) in tokens.iter().cloned().enumerate() {
        let bundles = config.bundles_per_provider;
        let request_timeout = config.request_timeout;
        clients.spawn(async move {
            let mut latencies = Vec::with_capacity(bundles);
            let mut errors = Vec::new();
            for b in 0..bundles {
                let body = serde_json::to_vec(&visit_bundle(p, b)).unwrap_or_default();
                let key = format!("load-{p}-{b}");
                let sent = Instant::now();
                match tokio::time::timeout(
                    request_timeout,
                    post(addr, "/fhir", &token, &key, &body),
                )
                .await
                {
                    Ok(Ok(response)) if response.status == 200 => latencies.push(sent.elapsed()),
                    Ok(Ok(response)) => errors.push(format!(
                        "provider {p} bundle {b}: status {}: {}",
                        response.status,
                        String::from_utf8_lossy(&response.body)
                            .chars()
                            .take(300)
                            .collect::<String>()
                    )),
                    Ok(Err(error)) => errors.push(format!("provider {p} bundle {b}: {error}")),
                    Err(_) => errors.push(format!(
                        "provider {p} bundle {b}: no answer within {request_timeout:?}"
                    )),
                }
            }
            (latencies, errors)
        });
    }
    let mut latencies = Vec::new();
    let mut errors = Vec::new();
    let collected = tokio::time::timeout(config.total_timeout, async {
        while let Some(joined) = clients.join_next().await {
            match joined {
                Ok((l, e)) => {
                    latencies.extend(l);
                    errors.extend(e);
                }
                Err(error) => errors.push(format!("client task failed: {error}")),
            }
        }
    })
    .await;
    let elapsed = started.elapsed();
    if collected.is_err() {
        clients.abort_all();
        bail!(
            "the upload phase did not finish within {:?}",
            config.total_timeout
        );
    }
    latencies.sort();

    // The same upload again, with its key: answered from the stored response.
    let replay_ok = match tokens.first() {
        Some(token) => {
            let body = serde_json::to_vec(&visit_bundle(0, 0))?;
            let response = post(addr, "/fhir", token, "load-0-0", &body).await?;
            response.status == 200 && response.head.contains("idempotent-replayed: true")
        }
        None => true,
    };

    let _ = stop.send(());
    server.await??;

    // What the metadata holds.
    let intakes = meta.intake_log(i64::MAX).await?;
    let recorded_accepted = intakes.iter().map(|i| i.resources_accepted).sum();
    let recorded_not_accepted = intakes
        .iter()
        .map(|i| {
            i.resources_duplicate + i.resources_rejected + i.resources_held + i.resources_refused
        })
        .sum();
    let rows_per_table = meta
        .table_counts()
        .await?
        .into_iter()
        .map(|t| (t.table_name, t.rows))
        .collect();
    let bundles = (config.providers * config.bundles_per_provider) as i64;
    let expected_rows = BTreeMap::from([
        (IdentityRow::TABLE.to_owned(), bundles),
        (EncounterRow::TABLE.to_owned(), bundles),
        (ConditionRow::TABLE.to_owned(), bundles),
        (LabObservationRow::TABLE.to_owned(), 2 * bundles),
    ]);
    Ok(LoadReport {
        bundles: bundles as u64,
        resources: bundles as u64 * RESOURCES_PER_BUNDLE,
        errors: errors.len() as u64,
        error_samples: errors.into_iter().take(5).collect(),
        elapsed,
        latencies,
        recorded_accepted,
        recorded_not_accepted,
        rows_per_table,
        expected_rows,
        replay_ok,
    })
}

/// `--name VALUE` from the command line.
fn arg_value(args: &[String], name: &str) -> anyhow::Result<Option<u64>> {
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) => {
            let value = args
                .get(i + 1)
                .with_context(|| format!("{name} needs a value"))?;
            Ok(Some(
                value
                    .parse()
                    .with_context(|| format!("{name}: not a whole number"))?,
            ))
        }
    }
}

#[allow(dead_code)] // The integration test includes this file for `run` only.
fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let known = [
        "--providers",
        "--bundles-per-provider",
        "--request-timeout-secs",
        "--timeout-secs",
    ];
    if let Some(unknown) = args
        .iter()
        .step_by(2)
        .find(|a| !known.contains(&a.as_str()))
    {
        bail!("unknown argument {unknown}; known: {}", known.join(", "));
    }
    let mut config = LoadConfig::default();
    if let Some(n) = arg_value(&args, "--providers")? {
        config.providers = usize::try_from(n)?;
    }
    if let Some(n) = arg_value(&args, "--bundles-per-provider")? {
        config.bundles_per_provider = usize::try_from(n)?;
    }
    if let Some(n) = arg_value(&args, "--request-timeout-secs")? {
        config.request_timeout = Duration::from_secs(n);
    }
    if let Some(n) = arg_value(&args, "--timeout-secs")? {
        config.total_timeout = Duration::from_secs(n);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(run(&config))?;
    report.print(&config);
    ensure!(report.errors == 0, "{} requests failed", report.errors);
    ensure!(
        report.lost_resources() == 0,
        "resources lost or stored twice"
    );
    ensure!(report.replay_ok, "the repeated upload was not replayed");
    Ok(())
}
