//! The demo's providers at work: they register, record their notices and refusals, and send
//! their files through kiban's FHIR intake API over loopback HTTP, while a few patients refuse
//! on the patient-facing opt-out page, as a real browser would post it.
//!
//! Two realistic departures from the synthetic registers make the opt-out rules visible:
//! about one patient in forty was notified only today (a first visit), so that patient's data
//! is held for a month; and half of the refusals arrive through the patient page instead of the
//! provider's refusal list.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use chrono::NaiveDate;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use indicatif::ProgressBar;
use kiban_collection::{Collection, NotificationMeans};
use kiban_model::ProviderId;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Cursor};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Largest body the demo posts to `$import` (well under the API's limit).
const BODY_BYTES: usize = 4 * 1024 * 1024;
/// Providers uploading at the same time.
const CONCURRENT_PROVIDERS: usize = 3;
/// One patient in this many was "notified today" and is held.
const RECENTLY_NOTIFIED_ONE_IN: u64 = 40;

/// What the demo's providers did.
#[derive(Debug, Default)]
pub struct DemoUploadReport {
    /// Providers registered, each with a fresh token.
    pub providers: usize,
    /// `$import` requests sent.
    pub requests: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Patients notified today (their data is held for a month).
    pub recently_notified: u64,
    /// Refusals made on the patient page.
    pub page_refusals: u64,
    /// Refusals sent in the providers' refusal lists.
    pub listed_refusals: u64,
}

/// A patient who refuses on the page, with what the page asks.
struct PageRefusal {
    provider: String,
    patient_id: String,
    birth_date: Option<String>,
    deceased: bool,
}

/// Registers the providers of `providers_dir`, records their registers, sends their refusals
/// through the patient page and their bundles through `$import` at `base_url`.
pub async fn run(
    providers_dir: &Path,
    collection: &Collection,
    base_url: &str,
    bar: &ProgressBar,
) -> Result<DemoUploadReport> {
    let providers = kiban_ingest::read_providers(&providers_dir.join(kiban_ingest::PROVIDERS_FILE))
        .context("demo providers")?;
    let meta = collection.metadata();
    let today = kiban_collection::japan_date(chrono::Utc::now());
    let mut report = DemoUploadReport {
        providers: providers.len(),
        ..DemoUploadReport::default()
    };
    let mut tokens = Vec::new();
    let mut page_refusals = Vec::new();
    for provider in &providers {
        meta.upsert_provider(provider).await?;
        let id = ProviderId(provider.id.clone());
        let token = collection.rotate_token(&id, "demo").await?;
        tokens.push((provider.id.clone(), token.expose_secret().to_owned()));
        let dir = providers_dir.join(&provider.id);
        report.recently_notified += record_notices(collection, &id, &dir, today).await?;
        let (listed, on_page) = record_listed_refusals(collection, &id, &dir).await?;
        report.listed_refusals += listed;
        page_refusals.extend(on_page);
    }
    find_birth_dates(providers_dir, &mut page_refusals)?;

    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    for refusal in &page_refusals {
        if refuse_on_page(&client, base_url, collection, refusal, today).await? {
            report.page_refusals += 1;
        }
    }

    let total: u64 = providers
        .iter()
        .filter_map(|p| std::fs::metadata(bundle_file(providers_dir, &p.id)).ok())
        .map(|m| m.len())
        .sum();
    bar.set_length(total);
    let semaphore = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_PROVIDERS));
    let mut tasks = tokio::task::JoinSet::new();
    for (provider_id, token) in tokens {
        let path = bundle_file(providers_dir, &provider_id);
        if !path.is_file() {
            continue;
        }
        let client = client.clone();
        let base_url = base_url.to_owned();
        let bar = bar.clone();
        let semaphore = semaphore.clone();
        tasks.spawn(async move {
            let _permit = semaphore.acquire_owned().await?;
            upload_file(&client, &base_url, &provider_id, &token, &path, &bar).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (requests, bytes) = done.context("upload task")??;
        report.requests += requests;
        report.bytes += bytes;
    }
    Ok(report)
}

fn bundle_file(providers_dir: &Path, provider_id: &str) -> std::path::PathBuf {
    providers_dir.join(provider_id).join("bundles.ndjson")
}

/// A stable draw in 0..n per patient (so re-running the demo picks the same patients).
fn draw(provider: &str, patient_id: &str, n: u64) -> u64 {
    let digest = Sha256::digest(format!("demo\0{provider}\0{patient_id}"));
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first) % n
}

/// Imports the provider's notification list, except a few patients who are recorded as
/// notified today instead. Returns how many were notified today.
async fn record_notices(
    collection: &Collection,
    provider: &ProviderId,
    dir: &Path,
    today: NaiveDate,
) -> Result<u64> {
    let path = dir.join("notifications.csv");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(0);
    };
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let mut listed = format!("{header}\n");
    let mut recent = Vec::new();
    for line in lines {
        let id = line.split(',').next().unwrap_or_default();
        if !id.is_empty() && draw(provider.as_str(), id, RECENTLY_NOTIFIED_ONE_IN) == 0 {
            recent.push(id.to_owned());
        } else {
            listed.push_str(line);
            listed.push('\n');
        }
    }
    collection
        .import_notifications_csv(provider, Cursor::new(listed.into_bytes()), "demo")
        .await
        .with_context(|| format!("notifications of {}", provider.as_str()))?;
    for id in &recent {
        collection
            .record_notification(provider, id, today, NotificationMeans::Letter, "demo")
            .await?;
    }
    Ok(recent.len() as u64)
}

/// Imports half of the provider's refusal list; the other half refuse on the patient page.
async fn record_listed_refusals(
    collection: &Collection,
    provider: &ProviderId,
    dir: &Path,
) -> Result<(u64, Vec<PageRefusal>)> {
    let path = dir.join("refusals.csv");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok((0, Vec::new()));
    };
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let mut listed = format!("{header}\n");
    let mut listed_count = 0;
    let mut on_page = Vec::new();
    for line in lines {
        let id = line.split(',').next().unwrap_or_default();
        if id.is_empty() {
            continue;
        }
        if draw(provider.as_str(), id, 2) == 0 {
            on_page.push(PageRefusal {
                provider: provider.0.clone(),
                patient_id: id.to_owned(),
                birth_date: None,
                deceased: false,
            });
        } else {
            listed.push_str(line);
            listed.push('\n');
            listed_count += 1;
        }
    }
    collection
        .import_refusals_csv(provider, Cursor::new(listed.into_bytes()), "demo")
        .await
        .with_context(|| format!("refusals of {}", provider.as_str()))?;
    Ok((listed_count, on_page))
}

/// The birth date (and whether deceased) of each page refuser, from the provider's own
/// Patient resources: what the patient types on the page.
fn find_birth_dates(providers_dir: &Path, refusals: &mut [PageRefusal]) -> Result<()> {
    let mut wanted: HashMap<String, HashSet<String>> = HashMap::new();
    for r in refusals.iter() {
        wanted
            .entry(r.provider.clone())
            .or_default()
            .insert(r.patient_id.clone());
    }
    let mut found: HashMap<(String, String), (Option<String>, bool)> = HashMap::new();
    for (provider, ids) in &wanted {
        let path = bundle_file(providers_dir, provider);
        let Ok(file) = std::fs::File::open(&path) else {
            continue;
        };
        for line in BufReader::new(file).lines() {
            let line = line.with_context(|| format!("reading {}", path.display()))?;
            if !ids.iter().any(|id| line.contains(id.as_str())) {
                continue;
            }
            let Ok(bundle) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let entries = bundle["entry"].as_array().cloned().unwrap_or_default();
            for entry in entries {
                let resource = &entry["resource"];
                if resource["resourceType"] != "Patient" {
                    continue;
                }
                let identifiers = resource["identifier"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                for identifier in identifiers {
                    if let Some(value) = identifier["value"].as_str()
                        && ids.contains(value)
                    {
                        let deceased = resource["deceasedBoolean"].as_bool().unwrap_or(false)
                            || resource["deceasedDateTime"].is_string();
                        found.insert(
                            (provider.clone(), value.to_owned()),
                            (resource["birthDate"].as_str().map(str::to_owned), deceased),
                        );
                    }
                }
            }
        }
    }
    for r in refusals.iter_mut() {
        if let Some((birth_date, deceased)) =
            found.remove(&(r.provider.clone(), r.patient_id.clone()))
        {
            r.birth_date = birth_date;
            r.deceased = deceased;
        }
    }
    Ok(())
}

/// Posts the opt-out form as a browser would (CSRF cookie and token from the form page).
/// Returns whether a receipt number came back.
async fn refuse_on_page(
    client: &Client<HttpConnector, Full<Bytes>>,
    base_url: &str,
    collection: &Collection,
    refusal: &PageRefusal,
    today: NaiveDate,
) -> Result<bool> {
    let Some(birth_date) = refusal.birth_date.as_deref() else {
        return Ok(false);
    };
    let page = client
        .request(
            Request::get(format!("{base_url}/optout"))
                .body(Full::new(Bytes::new()))
                .context("opt-out page request")?,
        )
        .await
        .context("opt-out page")?;
    let cookie = page
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("kiban_csrf="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    let html = String::from_utf8_lossy(&page.into_body().collect().await?.to_bytes()).into_owned();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(str::to_owned);
    let (Some(cookie), Some(csrf)) = (cookie, csrf) else {
        bail!("the opt-out page gave no form token");
    };
    let born = NaiveDate::parse_from_str(birth_date, "%Y-%m-%d").ok();
    let under_16 = born.is_some_and(|b| today.years_since(b).unwrap_or(0) < 16);
    let requester = if refusal.deceased {
        "bereaved_family"
    } else if under_16 {
        "guardian"
    } else {
        "patient"
    };
    let notice_code =
        collection.notice_code(&ProviderId(refusal.provider.clone()), &refusal.patient_id);
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf", &csrf)
        .append_pair("provider", &refusal.provider)
        .append_pair("patient_id", &refusal.patient_id)
        .append_pair("birth_date", birth_date)
        .append_pair("notice_code", &notice_code)
        .append_pair("requester", requester)
        .append_pair("consent", "on")
        .finish();
    let answer = client
        .request(
            Request::post(format!("{base_url}/optout"))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::COOKIE, cookie)
                .header(header::ORIGIN, base_url)
                .body(Full::new(Bytes::from(form)))
                .context("opt-out form request")?,
        )
        .await
        .context("opt-out form")?;
    let status = answer.status();
    let html = answer.into_body().collect().await?.to_bytes();
    Ok(
        status == StatusCode::OK
            && String::from_utf8_lossy(&html).contains("id=\"receipt-number\""),
    )
}

/// Sends one provider's ndjson file in bodies of up to [`BODY_BYTES`], each with an
/// idempotency key derived from its content (a re-run sends the same keys and takes nothing
/// twice). Returns requests and bytes sent.
async fn upload_file(
    client: &Client<HttpConnector, Full<Bytes>>,
    base_url: &str,
    provider_id: &str,
    token: &str,
    path: &Path,
    bar: &ProgressBar,
) -> Result<(u64, u64)> {
    let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut reader = BufReader::new(file);
    let mut requests = 0;
    let mut sent = 0;
    let mut body = Vec::with_capacity(BODY_BYTES);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("read {}", path.display()))?;
        if n > 0 {
            body.extend_from_slice(&line);
            if !line.ends_with(b"\n") {
                body.push(b'\n');
            }
        }
        if (n == 0 && !body.is_empty()) || body.len() >= BODY_BYTES {
            let bytes = body.len() as u64;
            post_import(
                client,
                base_url,
                provider_id,
                token,
                std::mem::take(&mut body),
            )
            .await?;
            requests += 1;
            sent += bytes;
            bar.inc(bytes);
        }
        if n == 0 {
            break;
        }
    }
    Ok((requests, sent))
}

async fn post_import(
    client: &Client<HttpConnector, Full<Bytes>>,
    base_url: &str,
    provider_id: &str,
    token: &str,
    body: Vec<u8>,
) -> Result<()> {
    let key = format!(
        "demo-{provider_id}-{}",
        hex::encode(&Sha256::digest(&body)[..12])
    );
    let body = Bytes::from(body);
    for attempt in 0..20u32 {
        let request = Request::post(format!("{base_url}/fhir/$import"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/fhir+ndjson")
            .header("Idempotency-Key", &key)
            .body(Full::new(body.clone()))
            .context("intake request")?;
        let answer = client.request(request).await.context("intake API")?;
        let status = answer.status();
        let outcome = answer.into_body().collect().await?.to_bytes();
        match status {
            StatusCode::OK | StatusCode::UNPROCESSABLE_ENTITY => return Ok(()),
            StatusCode::TOO_MANY_REQUESTS | StatusCode::CONFLICT => {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt + 1))).await;
            }
            _ => bail!(
                "the intake API answered {status} to {provider_id}: {}",
                String::from_utf8_lossy(&outcome[..outcome.len().min(600)])
            ),
        }
    }
    bail!("the intake API kept refusing {provider_id}'s upload as too frequent")
}
