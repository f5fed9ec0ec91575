//! A real browser for the viewer's tests and bench: Debian's headless Chromium, driven
//! over the W3C WebDriver protocol by `chromedriver` (both installed by `.ci/run`).
//! Only what the tests need: open a page, run a script in it, wait for what a script
//! sees, take a screenshot.

use std::io::{Read, Write};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

/// Debian's Chromium, where `chromium-driver` expects it.
const CHROMIUM: &str = "/usr/bin/chromium";

pub(crate) struct Browser {
    http: reqwest::Client,
    driver: std::process::Child,
    port: u16,
    session: String,
    profile: std::path::PathBuf,
}

impl Browser {
    /// Whether Chromium and chromedriver are installed.
    pub(crate) fn installed() -> bool {
        let driver = std::process::Command::new("chromedriver")
            .arg("--version")
            .output();
        driver.is_ok_and(|o| o.status.success()) && std::path::Path::new(CHROMIUM).exists()
    }

    /// Starts chromedriver on a free port and a headless Chromium session.
    pub(crate) async fn start() -> Browser {
        Browser::start_with(&[], &[]).await
    }

    /// [`Browser::start`] with more Chromium flags (`--force-dark-mode`) and variables
    /// of its environment (`TZ`).
    pub(crate) async fn start_with(flags: &[&str], env: &[(&str, &str)]) -> Browser {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let driver = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver is installed (bash .ci/run installs chromium-driver)");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http.get(format!("{base}/status")).send().await;
            if let Ok(answer) = ready {
                let status: Value = answer.json().await.unwrap_or_default();
                if status["value"]["ready"] == true {
                    break;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = std::env::temp_dir().join(format!("faas-logs-chromium-{port}"));
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1280,860".to_owned(),
            format!("--user-data-dir={}", profile.display()),
        ];
        args.extend(flags.iter().map(|f| (*f).to_owned()));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args }
        }}});
        let created = post(&http, &format!("{base}/session"), &capabilities).await;
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {created}"))
            .to_owned();
        Browser {
            http,
            driver,
            port,
            session,
            profile,
        }
    }

    fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/session/{}{path}",
            self.port, self.session
        )
    }

    async fn command(&self, path: &str, body: Value) -> Value {
        let answer = post(&self.http, &self.url(path), &body).await;
        if answer["value"]["error"].is_string() {
            panic!("WebDriver {path}: {}", answer["value"]);
        }
        answer["value"].clone()
    }

    /// Navigates to `url` and waits for the page to load.
    pub(crate) async fn goto(&self, url: &str) {
        self.command("/url", json!({ "url": url })).await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub(crate) async fn eval(&self, script: &str, args: Value) -> Value {
        self.command("/execute/sync", json!({ "script": script, "args": args }))
            .await
    }

    /// Evaluates `script` until it returns something truthy, and returns that; fails
    /// after `limit`. The page is another process: asking it again is how its progress
    /// is seen.
    pub(crate) async fn wait_for(&self, what: &str, script: &str, limit: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let value = self.eval(script, json!([])).await;
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            if tokio::time::Instant::now() >= deadline {
                let text = self.eval("return document.body.innerText", json!([])).await;
                panic!(
                    "waited {limit:?} for {what}; the page shows:\n{}",
                    text.as_str().unwrap_or("")
                );
            }
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    }

    /// Writes a PNG of the window to `path`.
    #[allow(dead_code)] // the tests use it; the bench that shares this module does not
    pub(crate) async fn screenshot(&self, path: &std::path::Path) {
        let answer: Value = self
            .http
            .get(self.url("/screenshot"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(answer["value"].as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

/// A WebDriver command: POST a JSON body, read the JSON answer.
async fn post(http: &reqwest::Client, url: &str, body: &Value) -> Value {
    let answer = http.post(url).json(body).send().await.unwrap();
    answer.json().await.unwrap()
}

impl Drop for Browser {
    /// Ends the session (chromedriver then closes Chromium), then the driver.
    fn drop(&mut self) {
        if let Ok(mut tcp) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                self.session
            );
            if tcp.write_all(request.as_bytes()).is_ok() {
                // The answer comes once Chromium has quit; chromedriver keeps the
                // connection open after it, so read the answer, not to the end.
                let mut answer = Vec::new();
                let mut chunk = [0u8; 4096];
                while let Ok(n @ 1..) = tcp.read(&mut chunk) {
                    answer.extend_from_slice(&chunk[..n]);
                    if is_whole_answer(&answer) {
                        break;
                    }
                }
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Whether `answer` holds an HTTP answer's head and all the body its length announces.
fn is_whole_answer(answer: &[u8]) -> bool {
    let Some(head_end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&answer[..head_end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    answer.len() >= head_end + 4 + length
}
