//! Drives headless Chromium through chromedriver (WebDriver) for the browser tests.
//!
//! Each test runs inside [`run`], which takes a process-wide lock (one browser test at a
//! time, so two cores are not shared by several Chromiums), starts chromedriver on a free
//! loopback port, and afterwards closes every browser the test opened and stops chromedriver,
//! whether the test passed or panicked.
//!
//! Without `/usr/bin/chromium` and `/usr/bin/chromedriver` (or `CHROMIUM` / `CHROMEDRIVER`
//! pointing elsewhere) the tests are skipped with a printed reason, except under `CI=true`,
//! where they fail.
#![allow(dead_code)]

use std::future::Future;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tempfile::TempDir;

/// How long any wait for the page lasts before the test fails.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// One browser test at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What a test gets: a way to open browsers and make profiles.
#[derive(Clone)]
pub(crate) struct Harness {
    webdriver: String,
    chromium: PathBuf,
    opened: Arc<Mutex<Vec<Client>>>,
    profiles: Arc<Mutex<Vec<TempDir>>>,
}

/// Runs a browser test, or skips it (failing under `CI=true`) when there is no browser.
pub(crate) async fn run<F, Fut>(name: &str, test: F)
where
    F: FnOnce(Harness) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some((chromium, chromedriver)) = find_browser(name) else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    let driver = Driver::start(&chromedriver).await;
    let harness = Harness {
        webdriver: driver.url.clone(),
        chromium,
        opened: Arc::default(),
        profiles: Arc::default(),
    };
    let outcome = tokio::spawn(test(harness.clone())).await;
    let opened = std::mem::take(&mut *harness.opened.lock().unwrap());
    for client in opened {
        // Already closed by the test, or closing now: either way, no Chromium outlives it.
        let _ = client.close().await;
    }
    drop(driver);
    drop(harness);
    if let Err(e) = outcome {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
        panic!("{name}: {e}");
    }
}

fn find_browser(name: &str) -> Option<(PathBuf, PathBuf)> {
    let path = |var: &str, default: &str| {
        PathBuf::from(std::env::var_os(var).unwrap_or_else(|| default.into()))
    };
    let chromium = path("CHROMIUM", "/usr/bin/chromium");
    let chromedriver = path("CHROMEDRIVER", "/usr/bin/chromedriver");
    let missing: Vec<String> = [&chromium, &chromedriver]
        .into_iter()
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    if missing.is_empty() {
        return Some((chromium, chromedriver));
    }
    let reason = format!(
        "{name}: no browser ({} missing; `apt-get install chromium chromium-driver`, or set \
         CHROMIUM and CHROMEDRIVER)",
        missing.join(", ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{reason}; browser tests must run under CI=true");
    }
    // Straight to stderr: libtest hides `eprintln!` output of passing tests, and a skip
    // should not go unnoticed.
    let _ = writeln!(std::io::stderr(), "skipping {reason}");
    None
}

/// A chromedriver process on a loopback port, stopped on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start(binary: &Path) -> Self {
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let status = reqwest::Client::new();
        let deadline = Instant::now() + WAIT;
        loop {
            let ready = status
                .get(format!("{}/status", driver.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return driver;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

impl Harness {
    /// A new, empty browser profile directory, removed after the test.
    pub(crate) fn profile(&self) -> PathBuf {
        let dir = tempfile::Builder::new()
            .prefix("login-browser-profile-")
            .tempdir()
            .expect("a temporary profile directory");
        let path = dir.path().to_owned();
        self.profiles.lock().unwrap().push(dir);
        path
    }

    /// Starts headless Chromium on `profile` and connects to it.
    pub(crate) async fn open(&self, profile: &Path) -> Client {
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1100,800".to_owned(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.chromium.display().to_string(),
                "args": args,
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.webdriver)
            .await
            .expect("a WebDriver session with headless Chromium");
        self.opened.lock().unwrap().push(client.clone());
        client
    }

    /// Quits `client`'s browser, as a user closing it would, so the profile keeps only what
    /// outlives a browser session.
    pub(crate) async fn quit(&self, client: Client) {
        client.close().await.expect("the browser quits");
    }
}

/// Waits until the page with `data-page="{id}"` is shown, and returns its `<body>`.
pub(crate) async fn wait_page(c: &Client, id: &str) -> Element {
    let css = format!("body[data-page='{id}']");
    match c.wait().at_most(WAIT).for_element(Locator::Css(&css)).await {
        Ok(body) => body,
        Err(e) => {
            let url = c.current_url().await.ok();
            let shown = match c.find(Locator::Css("body")).await {
                Ok(body) => body.attr("data-page").await.ok().flatten(),
                Err(_) => None,
            };
            panic!("waited for page {id:?}, but {url:?} shows page {shown:?}: {e}");
        }
    }
}

/// Clicks `button` and waits until the page it leads to, `id`, has replaced this one (which
/// matters when `id` is the page we are on: its old `<body>` must not count).
pub(crate) async fn click_to(c: &Client, button: Element, id: &str) -> Element {
    let old = c.find(Locator::Css("body")).await.expect("a page");
    button.click().await.expect("the button clicks");
    let deadline = Instant::now() + WAIT;
    loop {
        match old.tag_name().await {
            Err(e) if e.is_stale_element_reference() => break,
            _ if Instant::now() >= deadline => panic!("clicking did not leave the page for {id:?}"),
            _ => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
    wait_page(c, id).await
}

/// Opens `url` and waits for page `id`.
pub(crate) async fn goto(c: &Client, url: &str, id: &str) -> Element {
    c.goto(url).await.expect("navigation");
    wait_page(c, id).await
}

/// The text of the first element `css` matches.
pub(crate) async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css:?} on the page: {e}"))
        .text()
        .await
        .expect("its text")
}

/// The element `css` matches.
pub(crate) async fn find(c: &Client, css: &str) -> Element {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css:?} on the page: {e}"))
}
