//! The log viewer in a real browser (headless Chromium over WebDriver) against real
//! providers: the memory binary, restarted on its port, and a provider whose backend
//! cannot list its functions. A screenshot of the page with lines in it is written to
//! `target/viewer.png`.

use crate::common;
#[path = "browser/webdriver.rs"]
mod webdriver;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Connection, Provider, Scripted, LOGIN};
use faas_logs::server::{viewer_response, LogHandler, FUNCTIONS_PATH};
use serde_json::{json, Value};
use webdriver::Browser;

/// Long enough for a page to load and a fetch to go round on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(10);

/// Whether `test` can drive a browser here; a skip, or a failure in CI, if not.
fn browser_installed(test: &str) -> bool {
    common::needs(
        test,
        Browser::installed(),
        "Chromium or chromedriver is not installed",
    )
}

async fn push(addr: SocketAddr, lines: &[Value]) {
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let mut connection = Connection::open(addr).await;
    let response = connection
        .send("POST", "/system/logs/push", body.as_bytes())
        .await;
    assert_eq!(response.status(), 200);
}

fn line(instance: &str, text: &str) -> Value {
    json!({"name": "alpha", "instance": instance, "text": text})
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

const TEXTS: &str =
    "return [...document.querySelectorAll('#lines .row .text')].map(e => e.textContent)";

async fn texts(browser: &Browser) -> Vec<String> {
    serde_json::from_value(browser.eval(TEXTS, json!([])).await).unwrap()
}

/// Waits until the page shows a line with exactly `text`.
async fn wait_for_line(browser: &Browser, text: &str, limit: Duration) {
    let script = format!("{TEXTS}.includes({})", json!(text));
    browser
        .wait_for(&format!("the line {text:?}"), &script, limit)
        .await;
}

/// The page draws rows on its next animation frame: waits until it shows `n` of them
/// (a redraw of this size happens in one frame), and returns their texts.
async fn rows_once_drawn(browser: &Browser, n: usize) -> Vec<String> {
    let script = format!("return document.querySelectorAll('#lines .row').length === {n}");
    browser
        .wait_for(&format!("{n} rows"), &script, PATIENCE)
        .await;
    texts(browser).await
}

async fn click(browser: &Browser, selector: &str) {
    let clicked = browser
        .eval(
            "const e = document.querySelector(arguments[0]); if (!e) return false; e.click(); return true",
            json!([selector]),
        )
        .await;
    assert_eq!(clicked, true, "nothing matches {selector}");
}

#[tokio::test]
async fn the_viewer_lists_shows_follows_filters_pauses_and_survives_a_restart() {
    if !browser_installed("the_viewer_lists_shows_follows_filters_pauses_and_survives_a_restart") {
        return;
    }
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let args = ["--listen", listen.as_str(), "--timeout", "30"];
    let provider = Provider::start("memory", &args);
    let addr = provider.addr;
    let history: Vec<Value> = (0..30)
        .map(|i| {
            let mut l = line(
                if i % 2 == 0 { "alpha-1" } else { "alpha-2" },
                &format!("history {i}"),
            );
            if i == 7 {
                l["stream"] = json!("stderr");
            }
            l
        })
        .collect();
    push(addr, &history).await;
    push(
        addr,
        &[json!({"name": "beta", "namespace": "team", "text": "in another namespace"})],
    )
    .await;

    let browser = Browser::start().await;
    browser.goto(&format!("http://{addr}/")).await;
    // The function list, by namespace.
    let listed = browser
        .wait_for(
            "the function list",
            "const a = [...document.querySelectorAll('#function-list a')].map(a => a.dataset.namespace + '/' + a.textContent); return a.length >= 3 && a",
            PATIENCE,
        )
        .await;
    let listed: Vec<String> = serde_json::from_value(listed).unwrap();
    assert!(
        listed.contains(&"openfaas-fn/alpha".to_owned()),
        "{listed:?}"
    );
    assert!(listed.contains(&"team/beta".to_owned()), "{listed:?}");

    // Picking a function shows its history (the newest 100 by default: all 30).
    click(&browser, "#function-list a[data-name='alpha']").await;
    wait_for_line(&browser, "history 29", PATIENCE).await;
    let shown = texts(&browser).await;
    let expected: Vec<String> = (0..30).map(|i| format!("history {i}")).collect();
    assert_eq!(shown, expected);
    let stderr = browser
        .eval("return [...document.querySelectorAll('#lines .row.stderr .text')].map(e => e.textContent)", json!([]))
        .await;
    assert_eq!(stderr, json!(["history 7"]));
    let hash = browser.eval("return location.hash", json!([])).await;
    assert_eq!(hash, "#openfaas-fn/alpha");

    // A line written now appears within a second.
    push(addr, &[line("alpha-1", "live one")]).await;
    wait_for_line(&browser, "live one", Duration::from_secs(1)).await;

    // Instance toggle: alpha-2's lines go and come back.
    click(&browser, "#instances .chip[data-instance='alpha-2']").await;
    let count = "return document.querySelectorAll(\"#lines .row[data-instance='alpha-2']\").length";
    assert_eq!(rows_once_drawn(&browser, 16).await.len(), 16);
    assert_eq!(browser.eval(count, json!([])).await, 0);
    click(&browser, "#instances .chip[data-instance='alpha-2']").await;
    rows_once_drawn(&browser, 31).await;
    assert_eq!(browser.eval(count, json!([])).await, 15);

    // The filter highlights, then hides the rest.
    browser
        .eval(
            "const f = document.getElementById('filter'); f.value = 'ory 2'; f.dispatchEvent(new Event('input'))",
            json!([]),
        )
        .await;
    let marks = browser
        .wait_for(
            "highlighted matches",
            "const m = document.querySelectorAll('#lines mark'); return m.length && m.length",
            PATIENCE,
        )
        .await;
    assert_eq!(marks, 11, "history 2 and 20-29");
    assert_eq!(texts(&browser).await.len(), 31, "nothing hidden yet");
    click(&browser, "#only-matching").await;
    let only = rows_once_drawn(&browser, 11).await;
    assert!(only.iter().all(|t| t.contains("ory 2")), "{only:?}");
    click(&browser, "#only-matching").await;
    browser
        .eval(
            "const f = document.getElementById('filter'); f.value = ''; f.dispatchEvent(new Event('input'))",
            json!([]),
        )
        .await;
    browser
        .wait_for(
            "no highlight",
            "return document.querySelectorAll('#lines mark').length === 0",
            PATIENCE,
        )
        .await;

    // Pause holds a new line back (the page has it: it says so); resume shows it.
    click(&browser, "#pause").await;
    push(addr, &[line("alpha-2", "held back")]).await;
    browser
        .wait_for(
            "the held line to be counted",
            "return document.getElementById('status').textContent === 'paused, 1 new held'",
            PATIENCE,
        )
        .await;
    assert!(!texts(&browser).await.contains(&"held back".to_owned()));
    click(&browser, "#pause").await;
    wait_for_line(&browser, "held back", PATIENCE).await;

    let screenshot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/viewer.png");
    browser.screenshot(&screenshot).await;
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 10_000);

    // The provider restarts (losing its memory): the page resumes by itself and shows
    // what is written after, with nothing shown twice.
    drop(provider);
    browser
        .wait_for(
            "the page to notice the provider went away",
            "return !document.getElementById('message').hidden",
            PATIENCE,
        )
        .await;
    let provider = Provider::start("memory", &args);
    push(provider.addr, &[line("alpha-3", "after the restart")]).await;
    wait_for_line(&browser, "after the restart", PATIENCE).await;
    let shown = texts(&browser).await;
    let mut unique = shown.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), shown.len(), "a line shown twice: {shown:?}");
    assert_eq!(shown.len(), 33);

    // A function that does not exist: a clear message, not a blank page.
    browser.goto(&format!("http://{addr}/#nosuch")).await;
    let message = browser
        .wait_for(
            "the 404 message",
            "const m = document.getElementById('message'); return !m.hidden && m.textContent",
            PATIENCE,
        )
        .await;
    assert!(
        message.as_str().unwrap().starts_with("Not found:"),
        "{message}"
    );
}

#[tokio::test]
async fn the_stream_resumes_after_the_provider_s_timeout_without_repeating_a_line() {
    if !browser_installed(
        "the_stream_resumes_after_the_provider_s_timeout_without_repeating_a_line",
    ) {
        return;
    }
    let provider = Provider::start("memory", &["--listen", "127.0.0.1:0", "--timeout", "1"]);
    let addr = provider.addr;
    push(
        addr,
        &(0..5)
            .map(|i| line("alpha-1", &format!("before {i}")))
            .collect::<Vec<_>>(),
    )
    .await;
    let browser = Browser::start().await;
    // Opened straight from the address.
    browser.goto(&format!("http://{addr}/#alpha")).await;
    wait_for_line(&browser, "before 4", PATIENCE).await;
    // Two timeouts pass: two resumes.
    browser
        .wait_for(
            "two resumes",
            "return Number(document.body.dataset.connections) >= 3",
            PATIENCE,
        )
        .await;
    push(addr, &[line("alpha-1", "after resuming")]).await;
    wait_for_line(&browser, "after resuming", PATIENCE).await;
    let shown = texts(&browser).await;
    let expected: Vec<String> = (0..5)
        .map(|i| format!("before {i}"))
        .chain(["after resuming".into()])
        .collect();
    assert_eq!(shown, expected);
}

#[tokio::test]
async fn a_backend_that_cannot_list_takes_a_typed_name() {
    if !browser_installed("a_backend_that_cannot_list_takes_a_typed_name") {
        return;
    }
    let line = common::message("one-1", 0, "scripted line").with_name("typed");
    let backend = Scripted::new(vec![line]);
    let handler = LogHandler::new(backend, Duration::from_secs(30));
    let addr = common::serve_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let handler = handler.clone();
        async move {
            match req.uri().path() {
                "/" => viewer_response(),
                FUNCTIONS_PATH => handler.functions().await,
                _ => handler.handle(req).await,
            }
        }
    })
    .await;
    let browser = Browser::start().await;
    browser.goto(&format!("http://{addr}/")).await;
    browser
        .wait_for(
            "the note",
            "return document.getElementById('list-note').textContent.includes('cannot list')",
            PATIENCE,
        )
        .await;
    browser
        .eval(
            "document.getElementById('open-name').value = 'typed'; document.querySelector('#open-form button').click()",
            json!([]),
        )
        .await;
    wait_for_line(&browser, "scripted line", PATIENCE).await;
    assert_eq!(
        browser.eval("return location.hash", json!([])).await,
        "#typed"
    );
}

#[tokio::test]
async fn a_hundred_thousand_lines_are_capped_on_the_page_and_download_whole() {
    if !browser_installed("a_hundred_thousand_lines_are_capped_on_the_page_and_download_whole") {
        return;
    }
    let provider = Provider::start(
        "memory",
        &[
            "--listen",
            "127.0.0.1:0",
            "--max-lines",
            "200000",
            "--max-push-bytes",
            "67108864",
        ],
    );
    let lines: Vec<Value> = (0..100_000)
        .map(|i| line("alpha-1", &format!("bulk {i}")))
        .collect();
    push(provider.addr, &lines).await;
    let browser = Browser::start().await;
    browser
        .goto(&format!("http://{}/#alpha", provider.addr))
        .await;
    wait_for_line(&browser, "bulk 99999", PATIENCE).await;
    browser
        .eval(
            "const t = document.getElementById('tail'); t.value = 'all'; t.dispatchEvent(new Event('change'))",
            json!([]),
        )
        .await;
    let note = browser
        .wait_for(
            "the note on lines not shown",
            "const d = document.getElementById('dropped'), rows = document.querySelectorAll('#lines .row');
             return !d.hidden && rows.length === 2000 && rows[0].textContent.endsWith('bulk 98000') && d.textContent",
            Duration::from_secs(30),
        )
        .await;
    assert!(
        note.as_str().unwrap().contains("Download has them all"),
        "{note}"
    );
    let shown = texts(&browser).await;
    assert_eq!(shown.len(), 2000);
    assert_eq!(shown[0], "bulk 98000");
    assert_eq!(shown[1999], "bulk 99999");

    // Scrolled up, the reader is left where it is and told what waits below.
    browser
        .eval(
            "const l = document.getElementById('lines'); l.scrollTop = 0; l.dispatchEvent(new Event('scroll'))",
            json!([]),
        )
        .await;
    push(provider.addr, &[line("alpha-2", "while scrolled up")]).await;
    browser
        .wait_for(
            "the count of lines below",
            "const b = document.getElementById('below'); return !b.hidden && b.textContent === '1 new line below'",
            PATIENCE,
        )
        .await;
    assert_eq!(
        browser
            .eval(
                "return document.getElementById('lines').scrollTop",
                json!([])
            )
            .await,
        0
    );
    click(&browser, "#below").await;
    let at_bottom = "const l = document.getElementById('lines'); return l.scrollHeight - l.scrollTop - l.clientHeight < 40";
    assert_eq!(browser.eval(at_bottom, json!([])).await, true);
    assert_eq!(
        browser
            .eval("return document.getElementById('below').hidden", json!([]))
            .await,
        true
    );

    // Download: every line kept, as the provider sent it.
    browser
        .eval(
            "URL.createObjectURL = (b) => { window.downloaded = b; return 'blob:kept'; };
             HTMLAnchorElement.prototype.click = function () { window.savedAs = this.download; };
             document.getElementById('download').click();",
            json!([]),
        )
        .await;
    let downloaded = browser
        .eval(
            "return window.downloaded ? window.downloaded.text() : 'nothing'",
            json!([]),
        )
        .await;
    let saved_as = browser.eval("return window.savedAs", json!([])).await;
    assert_eq!(saved_as, "alpha.ndjson");
    let downloaded = downloaded.as_str().unwrap();
    assert_eq!(
        downloaded.lines().count(),
        100_000,
        "the newest 100,000 are kept"
    );
    let last: faas_logs::Message =
        serde_json::from_str(downloaded.lines().last().unwrap()).unwrap();
    assert_eq!(
        (last.name.as_str(), last.text.as_str()),
        ("alpha", "while scrolled up")
    );
}

#[tokio::test]
async fn behind_basic_auth_the_page_and_its_requests_use_the_login_it_was_opened_with() {
    if !browser_installed(
        "behind_basic_auth_the_page_and_its_requests_use_the_login_it_was_opened_with",
    ) {
        return;
    }
    let provider = Provider::start_behind_login("memory");
    let body = format!("{}\n", line("alpha-1", "behind the login"));
    let mut connection = Connection::open(provider.addr).await;
    let response = connection
        .send_with("POST", "/system/logs/push", &[LOGIN], body.as_bytes())
        .await;
    assert_eq!(response.status(), 200);
    drop(connection);

    // A login in the address: the page's own requests must not carry it in their URL
    // (fetch refuses such URLs), yet must be let in.
    let browser = Browser::start().await;
    browser
        .goto(&format!("http://admin:s3cret@{}/#alpha", provider.addr))
        .await;
    wait_for_line(&browser, "behind the login", PATIENCE).await;
    browser
        .wait_for(
            "the function list",
            "return [...document.querySelectorAll('#function-list a')].some(a => a.textContent === 'alpha')",
            PATIENCE,
        )
        .await;
}
