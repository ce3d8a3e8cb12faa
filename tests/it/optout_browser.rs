//! A patient refuses on the opt-out page in a real headless browser (Chromium driven through
//! chromedriver over WebDriver), then checks the refusal by its receipt number.
//!
//! Needs `/usr/bin/chromium` and chromedriver (`/usr/bin/chromedriver`, or the path in
//! `KIBAN_CHROMEDRIVER`). Without them the test prints a loud note and passes, unless
//! `KIBAN_REQUIRE_BROWSER=1` (set in CI), where it fails.

use std::net::TcpListener as StdTcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{ClientBuilder, Locator};
use kiban_collection::{
    Collection, CollectionPolicy, FixedClock, NewProviderRegistration, NotificationMeans,
};
use kiban_ingest::IngestOptions;
use kiban_metadata::Metadata;
use kiban_model::ProviderKind;
use kiban_server::{AppState, CollectionState};
use kiban_store::{KeyFile, Store};

const CHROMIUM: &str = "/usr/bin/chromium";
const DEFAULT_CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const PATIENT_ID: &str = "004711";
const BIRTH_DATE: &str = "1975-08-09";

/// Chromium and chromedriver, or `None` (after a loud note) when they are missing and the
/// browser is not required.
fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    let chromium = PathBuf::from(CHROMIUM);
    let driver = std::env::var_os("KIBAN_CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CHROMEDRIVER));
    let missing: Vec<&Path> = [chromium.as_path(), driver.as_path()]
        .into_iter()
        .filter(|p| !p.exists())
        .collect();
    if missing.is_empty() {
        return Some((chromium, driver));
    }
    let message = format!(
        "browser test needs Chromium and chromedriver; missing: {missing:?} \
         (install with `apt-get install -y chromium chromium-driver`, or set KIBAN_CHROMEDRIVER)"
    );
    if std::env::var("KIBAN_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!("KIBAN_REQUIRE_BROWSER=1: {message}");
    }
    eprintln!("\n=============== SKIPPED optout_browser ===============");
    eprintln!("{message}");
    eprintln!("======================================================\n");
    None
}

/// A chromedriver process, killed when dropped.
struct Chromedriver {
    child: Child,
    port: u16,
}

impl Chromedriver {
    fn start(path: &Path) -> Chromedriver {
        // A free port: bind, read it, release it for chromedriver.
        let port = StdTcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .env("LANGUAGE", "ja")
            .env("LANG", "ja_JP.UTF-8")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("chromedriver {path:?} starts: {e}"));
        let driver = Chromedriver { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        driver
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_patient_refuses_in_a_browser_and_checks_the_receipt() {
    let Some((chromium, driver_path)) = browser_tools() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // A store with one provider and one notified patient.
        let base = tempfile::tempdir().unwrap();
        let keys = KeyFile::generate(&base.path().join("keys/master.key")).unwrap();
        let data = base.path().join("data");
        let store = Arc::new(Store::open(&data, Arc::new(keys)).unwrap());
        let meta = Metadata::open_in_dir(&data).await.unwrap();
        let clock = Arc::new(FixedClock::on_date("2026-03-20".parse().unwrap()));
        let collection = Arc::new(Collection::new(
            meta.clone(),
            store.clone(),
            clock,
            CollectionPolicy::default(),
        ));
        let (provider, _token) = collection
            .add_provider(
                &NewProviderRegistration::new("みなと内科クリニック", ProviderKind::Clinic),
                "staff:test",
            )
            .await
            .unwrap();
        collection
            .record_notification(
                &provider,
                PATIENT_ID,
                "2026-02-01".parse().unwrap(),
                NotificationMeans::Letter,
                "test",
            )
            .await
            .unwrap();
        let code = collection.notice_code(&provider, PATIENT_ID);

        // The portal on a free port.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let state =
            AppState::new(meta, data.display().to_string()).with_collection(CollectionState {
                store,
                collection: collection.clone(),
                ingest_options: IngestOptions::default(),
            });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(kiban_server::serve(listener, state, async {
            let _ = stopped.await;
        }));

        // Headless Chromium through chromedriver.
        let driver = Chromedriver::start(&driver_path);
        let profile = tempfile::tempdir().unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--lang=ja",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                // A Japanese browser: the page's default language and the date field's order.
                "prefs": { "intl.accept_languages": "ja,en" },
            }),
        );
        let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .expect("a chromedriver session");

        // Fill in the opt-out form as a patient would.
        browser.goto(&format!("{base_url}/optout")).await.unwrap();
        let source = browser.source().await.unwrap();
        assert!(
            source.contains("通知に記載のコード"),
            "the Japanese opt-out page: {source}"
        );
        browser
            .find(Locator::Css("#provider"))
            .await
            .unwrap()
            .select_by_value(provider.as_str())
            .await
            .unwrap();
        browser
            .find(Locator::Css("#patient_id"))
            .await
            .unwrap()
            .send_keys(PATIENT_ID)
            .await
            .unwrap();
        let birth = browser.find(Locator::Css("#birth_date")).await.unwrap();
        // Chromium's date field takes digits in its locale's order: year, month, day in
        // Japanese; month, day, year where the locale data falls back to American English.
        let (year, rest) = BIRTH_DATE.split_at(4);
        birth
            .send_keys(&format!("{year}{}", rest.replace('-', "")))
            .await
            .unwrap();
        let mut typed = birth.prop("value").await.unwrap().unwrap_or_default();
        if typed != BIRTH_DATE {
            birth.clear().await.unwrap();
            birth
                .send_keys(&format!("{}{year}", rest.replace('-', "")))
                .await
                .unwrap();
            typed = birth.prop("value").await.unwrap().unwrap_or_default();
        }
        assert_eq!(typed, BIRTH_DATE, "the date field took the birth date");
        browser
            .find(Locator::Css("#notice_code"))
            .await
            .unwrap()
            .send_keys(&code.to_lowercase())
            .await
            .unwrap();
        browser
            .find(Locator::Css("#requester_patient"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        browser
            .find(Locator::Css("#consent"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        browser
            .find(Locator::Css("#optout-submit"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();

        // The receipt page.
        let receipt_number = match browser
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::Css("#receipt-number"))
            .await
        {
            Ok(element) => element,
            Err(err) => panic!(
                "no receipt ({err}); the page: {}",
                browser.source().await.unwrap_or_default()
            ),
        }
        .text()
        .await
        .unwrap();
        assert!(
            receipt_number.starts_with("OPT-2026-"),
            "receipt number {receipt_number}"
        );
        let source = browser.source().await.unwrap();
        assert!(source.contains("提供停止を受け付けました"));
        for secret in [PATIENT_ID, BIRTH_DATE, code.as_str()] {
            assert!(
                !source.contains(secret),
                "identity echoed on the receipt page"
            );
        }

        // Check it with the receipt-number form of the opt-out page.
        browser.goto(&format!("{base_url}/optout")).await.unwrap();
        browser
            .find(Locator::Css("#number"))
            .await
            .unwrap()
            .send_keys(&receipt_number)
            .await
            .unwrap();
        browser
            .form(Locator::Css("form[action='/optout/receipt']"))
            .await
            .unwrap()
            .submit()
            .await
            .unwrap();
        let status = browser
            .wait()
            .for_element(Locator::Css("#refusal-status"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(status.contains("受け付けられています"), "status: {status}");
        let source = browser.source().await.unwrap();
        assert!(source.contains("みなと内科クリニック"));
        assert!(source.contains(&receipt_number));

        let on_record = collection
            .check_receipt(&receipt_number)
            .await
            .unwrap()
            .expect("the refusal is on record");
        assert_eq!(on_record.provider_id, provider);

        browser.close().await.unwrap();
        drop(driver);
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    });
}
