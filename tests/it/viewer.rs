//! The log viewer in a real browser (headless Chromium over WebDriver) against real
//! providers: the memory binary, restarted on its port, and a provider whose backend
//! cannot list its functions. Screenshots of the page are written under `target/`
//! (`viewer*.png`) for a person to look at.
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
    filter(&browser, "ory 2").await;
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
    filter(&browser, "").await;
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

    screenshot(&browser, "viewer.png").await;

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

/// Runs `script` with `arguments[0]` set to `selector`'s first element; fails when
/// nothing matches.
async fn on(browser: &Browser, selector: &str, script: &str) -> Value {
    let script = format!(
        "const e = document.querySelector(arguments[0]); if (!e) return '__none__'; {script}"
    );
    let value = browser.eval(&script, json!([selector])).await;
    assert_ne!(value, "__none__", "nothing matches {selector}");
    value
}

/// Sets the filter to `value` as typing does, and waits for the page to apply it.
async fn filter(browser: &Browser, value: &str) {
    browser
        .eval(
            "const f = document.getElementById('filter'); f.value = arguments[0]; f.dispatchEvent(new Event('input'))",
            json!([value]),
        )
        .await;
    let applied = format!("return document.body.dataset.filter === {}", json!(value));
    browser.wait_for("the filter", &applied, PATIENCE).await;
}

/// A key pressed with nothing focused, as the page's keyboard handler sees it.
async fn press(browser: &Browser, key: &str) {
    browser
        .eval(
            "(document.activeElement || document.body).dispatchEvent(new KeyboardEvent('keydown', {key: arguments[0], bubbles: true}))",
            json!([key]),
        )
        .await;
}

#[tokio::test]
async fn a_hundred_instances_fold_into_a_menu_and_long_ids_keep_their_end() {
    if !browser_installed("a_hundred_instances_fold_into_a_menu") {
        return;
    }
    let provider = Provider::start("memory", &["--listen", "127.0.0.1:0"]);
    // OpenWhisk's activation ids: 32 hex digits that differ at their end.
    let id = |i: usize| format!("{:0>32}", format!("{i:x}c0ffee"));
    let lines: Vec<Value> = (0..100)
        .map(|i| line(&id(i), &format!("activation {i}")))
        .collect();
    push(provider.addr, &lines).await;
    let browser = Browser::start().await;
    browser
        .goto(&format!("http://{}/#alpha", provider.addr))
        .await;
    rows_once_drawn(&browser, 100).await;

    let chips: Vec<String> = serde_json::from_value(
        browser
            .eval(
                "return [...document.querySelectorAll('#instances .chip')].map(c => c.textContent)",
                json!([]),
            )
            .await,
    )
    .unwrap();
    assert_eq!(chips.len(), 6, "{chips:?}");
    for (i, chip) in chips.iter().enumerate() {
        let full = id(i);
        assert_eq!(chip, &format!("\u{2026}{}", &full[full.len() - 12..]));
    }
    // The button to the rest is in the window, not clipped.
    let more = on(&browser, "#more", "const b = e.getBoundingClientRect(); return b.right <= window.innerWidth && b.width > 0 && e.textContent").await;
    assert_eq!(more, "+94 more");
    // One row of chips, under which the lines start, even scrolled to the top; most of
    // the window is lines.
    let layout = browser
        .eval(
            "const bar = document.getElementById('instances').getBoundingClientRect();
             const l = document.getElementById('lines'); l.scrollTop = 0;
             const first = l.querySelector('.row').getBoundingClientRect();
             const box = l.getBoundingClientRect();
             const seen = [...l.querySelectorAll('.row')].filter(r => { const b = r.getBoundingClientRect(); return b.top >= box.top && b.bottom <= box.bottom; }).length;
             return [bar.height, first.top - bar.bottom, seen]",
            json!([]),
        )
        .await;
    let [height, gap, seen] = [0, 1, 2].map(|i| layout[i].as_f64().unwrap());
    assert!(height < 40.0, "the chip bar is {height}px high");
    assert!(gap >= 0.0, "the first line is under the bar: {layout}");
    assert!(seen >= 30.0, "{seen} lines fit in the window");

    // The menu lists every instance; a search finds one, which can be hidden.
    click(&browser, "#more").await;
    let listed =
        "return [...document.querySelectorAll('#more-list label')].map(l => l.textContent)";
    let all: Vec<String> = serde_json::from_value(browser.eval(listed, json!([])).await).unwrap();
    assert_eq!(all.len(), 100);
    let wanted = id(42);
    browser
        .eval(
            "const s = document.getElementById('more-search'); s.value = arguments[0]; s.dispatchEvent(new Event('input'))",
            json!([&wanted[20..]]),
        )
        .await;
    let found: Vec<String> = serde_json::from_value(browser.eval(listed, json!([])).await).unwrap();
    assert_eq!(found, vec![wanted.clone()]);
    screenshot(&browser, "viewer-instances.png").await;
    click(&browser, "#more-list input").await;
    let shown = rows_once_drawn(&browser, 99).await;
    assert!(!shown.contains(&"activation 42".to_owned()));
    press(&browser, "Escape").await;
    assert_eq!(on(&browser, "#more-menu", "return e.hidden").await, true);
}

#[tokio::test]
async fn levels_json_streams_wrapping_time_zones_the_regex_filter_and_links() {
    if !browser_installed("levels_json_streams_wrapping_time_zones") {
        return;
    }
    let provider = Provider::start("memory", &["--listen", "127.0.0.1:0"]);
    let addr = provider.addr;
    let app = |text: &str| json!({"name": "app", "instance": "app-1", "text": text});
    let long = "x".repeat(600);
    let mut lines = vec![
        json!({"name": "app", "instance": "app-1", "text": "from last year", "timestamp": "2025-01-02T03:04:05.678Z"}),
        app("ERROR db connection refused"),
        app("2026/12/04 10:00:00 WARN disk almost full"),
        app("level=info msg=started"),
        app("[DEBUG] cache miss"),
        app(r#"{"level":"error","msg":"boom","code":42}"#),
        app(r#"{"severity":"WARNING","msg":"slow"}"#),
        app("no level here"),
        app(&long),
    ];
    lines.push(
        json!({"name": "app", "instance": "app-1", "text": "from otel", "severity": "INFO",
        "trace_id": "5b8efff798038103d269b633813fc60c", "attributes": {"http.route": "/x"}}),
    );
    lines.push(
        json!({"name": "app", "instance": "app-1", "text": "stderr line", "stream": "stderr"}),
    );
    push(addr, &lines).await;

    // A zone half an hour off UTC: no test machine's own.
    let browser = Browser::start_with(&[], &[("TZ", "Asia/Kolkata")]).await;
    browser.goto(&format!("http://{addr}/")).await;
    let disabled = "return [document.getElementById('pause').disabled, document.getElementById('download').disabled]";
    assert_eq!(browser.eval(disabled, json!([])).await, json!([true, true]));
    browser.goto(&format!("http://{addr}/#app")).await;
    rows_once_drawn(&browser, lines.len()).await;
    assert_eq!(
        browser.eval(disabled, json!([])).await,
        json!([false, false])
    );

    // Levels, from the text, a JSON line's field, or the line's severity.
    let levels: Vec<(String, String)> = serde_json::from_value(
        browser
            .eval("return [...document.querySelectorAll('#lines .row')].map(r => [r.querySelector('.text').textContent, r.dataset.level || ''])", json!([]))
            .await,
    )
    .unwrap();
    let level = |text: &str| {
        levels
            .iter()
            .find(|(t, _)| t == text)
            .unwrap_or_else(|| panic!("no row {text}"))
            .1
            .clone()
    };
    for (text, want) in [
        ("ERROR db connection refused", "error"),
        ("2026/12/04 10:00:00 WARN disk almost full", "warn"),
        ("level=info msg=started", "info"),
        ("[DEBUG] cache miss", "debug"),
        (r#"{"level":"error","msg":"boom","code":42}"#, "error"),
        (r#"{"severity":"WARNING","msg":"slow"}"#, "warn"),
        ("from otel", "info"),
        ("no level here", ""),
    ] {
        assert_eq!(level(text), want, "{text}");
    }
    let colors = browser
        .eval("return ['error', 'warn', 'info', 'debug'].map(l => getComputedStyle(document.querySelector(`.row.lvl-${l} .lvl`)).color)", json!([]))
        .await;
    let colors: Vec<String> = serde_json::from_value(colors).unwrap();
    let mut distinct = colors.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "each level its colour: {colors:?}");

    // A JSON line opens into its fields, and closes; an OpenTelemetry line shows its
    // details.
    let json_row = "[...document.querySelectorAll('#lines .row')].find(r => r.querySelector('.text').textContent.includes('boom'))";
    let fields = format!("const r = {json_row}; r.querySelector('.text').click(); const f = r.querySelector('.fields'); return f && [...f.children].map(c => c.textContent)");
    let opened = browser.eval(&fields, json!([])).await;
    assert_eq!(
        opened,
        json!(["level", "error", "msg", "boom", "code", "42"])
    );
    let closed = browser
        .eval(&format!("const r = {json_row}; r.querySelector('.text').click(); return !r.querySelector('.fields')"), json!([]))
        .await;
    assert_eq!(closed, true);
    let otel = browser
        .eval("const r = [...document.querySelectorAll('#lines .row')].find(r => r.querySelector('.text').textContent === 'from otel'); r.querySelector('.text').click(); return [...r.querySelector('.fields').children].map(c => c.textContent)", json!([]))
        .await;
    assert_eq!(
        otel,
        json!([
            "severity",
            "INFO",
            "trace_id",
            "5b8efff798038103d269b633813fc60c",
            "attributes.http.route",
            "/x"
        ])
    );

    // stdout and stderr each hide and come back.
    click(&browser, "#show-stdout").await;
    assert_eq!(rows_once_drawn(&browser, 1).await, vec!["stderr line"]);
    click(&browser, "#show-stdout").await;
    click(&browser, "#show-stderr").await;
    let shown = rows_once_drawn(&browser, lines.len() - 1).await;
    assert!(!shown.contains(&"stderr line".to_owned()));
    click(&browser, "#show-stderr").await;
    rows_once_drawn(&browser, lines.len()).await;

    // Long lines wrap, or run off to the side.
    let long_row = format!("[...document.querySelectorAll('#lines .row')].find(r => r.querySelector('.text').textContent === {})", json!(long));
    let height = format!("return {long_row}.getBoundingClientRect().height");
    let one_line = browser
        .eval(
            "return document.querySelector('#lines .row').getBoundingClientRect().height",
            json!([]),
        )
        .await
        .as_f64()
        .unwrap();
    let wrapped = browser.eval(&height, json!([])).await.as_f64().unwrap();
    assert!(wrapped > 2.0 * one_line, "{wrapped} against {one_line}");
    click(&browser, "#wrap").await;
    let unwrapped = browser.eval(&height, json!([])).await.as_f64().unwrap();
    assert_eq!(unwrapped, one_line);
    let sideways =
        "const l = document.getElementById('lines'); return l.scrollWidth > l.clientWidth";
    assert_eq!(browser.eval(sideways, json!([])).await, true);
    click(&browser, "#wrap").await;

    // Times: local (the zone is named), the date where it is not today; then UTC.
    let time_of = |text: &str| {
        format!("return [...document.querySelectorAll('#lines .row')].find(r => r.querySelector('.text').textContent === {}).querySelector('.ts').textContent", json!(text))
    };
    let zone = on(&browser, "#zone", "return e.textContent").await;
    // ICU may name the zone by its older alias (Asia/Calcutta).
    let zone = zone.as_str().unwrap();
    assert!(
        zone.starts_with("time: Asia/") && zone.ends_with(" (UTC+05:30)"),
        "{zone}"
    );
    assert_eq!(
        browser.eval(&time_of("from last year"), json!([])).await,
        "2025-01-02 08:34:05.678"
    );
    let today = browser.eval(&time_of("no level here"), json!([])).await;
    let today = today.as_str().unwrap();
    assert!(today.len() == 12 && today.as_bytes()[2] == b':', "{today}");
    click(&browser, "#zone").await;
    assert_eq!(
        on(&browser, "#zone", "return e.textContent").await,
        "time: UTC"
    );
    assert_eq!(
        browser.eval(&time_of("from last year"), json!([])).await,
        "2025-01-02 03:04:05.678"
    );

    // The filter is a regular expression, case-insensitive unless asked.
    let texts_all: Vec<String> = levels.iter().map(|(t, _)| t.clone()).collect();
    let marks = "return [...document.querySelectorAll('#lines mark')].map(m => m.textContent)";
    filter(&browser, r"^(error|\[debug)").await;
    let marked = browser
        .wait_for(
            "marks",
            &format!("const m = (() => {{ {marks} }})(); return m.length && m"),
            PATIENCE,
        )
        .await;
    assert_eq!(marked, json!(["ERROR", "[DEBUG"]));
    click(&browser, "#case").await;
    browser
        .wait_for(
            "no marks",
            "return document.querySelectorAll('#lines mark').length === 0",
            PATIENCE,
        )
        .await;
    filter(&browser, "error").await;
    let marked = browser
        .wait_for(
            "marks",
            &format!("const m = (() => {{ {marks} }})(); return m.length && m"),
            PATIENCE,
        )
        .await;
    let want = texts_all.iter().filter(|t| t.contains("error")).count();
    assert_eq!(marked.as_array().unwrap().len(), want, "{marked}");
    click(&browser, "#case").await;
    // One that does not compile says why and filters nothing.
    filter(&browser, "(unclosed").await;
    let error = on(&browser, "#filter-error", "return e.textContent").await;
    assert!(
        error
            .as_str()
            .unwrap()
            .starts_with("invalid regular expression"),
        "{error}"
    );
    assert_eq!(
        on(&browser, "#filter", "return e.getAttribute('aria-invalid')").await,
        "true"
    );
    click(&browser, "#only-matching").await;
    rows_once_drawn(&browser, lines.len()).await;
    // Only matching, with no match: the page says so.
    filter(&browser, "zzz").await;
    rows_once_drawn(&browser, 0).await;
    let none = on(&browser, "#no-match", "return !e.hidden && e.textContent").await;
    assert_eq!(none, "No line matches /zzz/i.");
    // `/` goes to the filter, Esc clears it.
    browser
        .eval("document.activeElement.blur()", json!([]))
        .await;
    press(&browser, "/").await;
    assert_eq!(
        browser
            .eval("return document.activeElement.id", json!([]))
            .await,
        "filter"
    );
    press(&browser, "Escape").await;
    rows_once_drawn(&browser, lines.len()).await;
    assert_eq!(on(&browser, "#filter", "return e.value").await, "");
    assert_eq!(on(&browser, "#no-match", "return e.hidden").await, true);
    screenshot(&browser, "viewer-reading.png").await;

    // Every line links to itself: the link opens the view there, the line marked.
    let href = browser
        .eval("const r = [...document.querySelectorAll('#lines .row')].find(r => r.querySelector('.text').textContent === 'level=info msg=started'); r.querySelector('.text').dispatchEvent(new MouseEvent('mouseover', {bubbles: true})); return r.querySelector('.link').href", json!([]))
        .await;
    let href = href.as_str().unwrap().to_owned();
    assert!(
        href.contains("#app?at=") && href.ends_with("&n=2"),
        "{href}"
    );
    browser.goto("about:blank").await;
    browser.goto(&href).await;
    let target = browser
        .wait_for(
            "the linked line",
            "const r = document.querySelector('#lines .row.target'); if (!r) return false;
             const b = r.getBoundingClientRect(), l = document.getElementById('lines').getBoundingClientRect();
             return b.top >= l.top && b.bottom <= l.bottom && r.querySelector('.text').textContent",
            PATIENCE,
        )
        .await;
    assert_eq!(target, "level=info msg=started");
    // From its time on: the older line is not read. (Lines pushed together share a
    // timestamp: the link counts its line among them.)
    let shown = texts(&browser).await;
    assert!(!shown.contains(&"from last year".to_owned()), "{shown:?}");
    assert!(shown.contains(&"stderr line".to_owned()), "{shown:?}");
    assert_eq!(
        browser
            .eval(
                "return document.querySelectorAll('#lines .row.target').length",
                json!([])
            )
            .await,
        1
    );
}

async fn theme(browser: &Browser) -> Value {
    browser
        .eval("return document.documentElement.dataset.theme", json!([]))
        .await
}

/// Writes a screenshot to `target/NAME`, for a person to look at.
async fn screenshot(browser: &Browser, name: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(name);
    browser.screenshot(&path).await;
    assert!(std::fs::metadata(&path).unwrap().len() > 10_000);
}

/// The contrast of each selector's elements against their background (the lowest), as
/// WCAG computes it: colours read by painting them on a canvas.
const CONTRAST: &str = "
    const c = document.createElement('canvas'); c.width = c.height = 1;
    const ctx = c.getContext('2d', { willReadFrequently: true });
    const rgba = (color) => { ctx.clearRect(0, 0, 1, 1); ctx.fillStyle = '#000'; ctx.fillStyle = color; ctx.fillRect(0, 0, 1, 1); return [...ctx.getImageData(0, 0, 1, 1).data]; };
    const background = (e) => { for (; e; e = e.parentElement) { const v = rgba(getComputedStyle(e).backgroundColor); if (getComputedStyle(e).backgroundColor !== 'rgba(0, 0, 0, 0)' && v[3] > 0) return v; } return [255, 255, 255, 255]; };
    const lum = (v) => { const f = (x) => { x /= 255; return x <= 0.04045 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; }; return 0.2126 * f(v[0]) + 0.7152 * f(v[1]) + 0.0722 * f(v[2]); };
    const ratio = (e) => { const a = lum(rgba(getComputedStyle(e).color)), b = lum(background(e)); return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05); };
    return arguments[0].map((s) => [s, Math.min(...[...document.querySelectorAll(s)].map(ratio))]);";

const READ_ON: [&str; 12] = [
    "#lines .row .text",
    "#lines .row .ts",
    "#lines .row .inst",
    "#lines .row .fn",
    "#lines .row.lvl-error .lvl",
    "#lines .row.lvl-warn .lvl",
    "#lines .row.lvl-info .lvl",
    "#lines .row.stderr .text",
    "nav a",
    "nav a.current",
    "#fn-namespace",
    "#instances .chip",
];

async fn assert_readable(browser: &Browser, theme: &str) {
    let ratios = browser.eval(CONTRAST, json!([READ_ON])).await;
    for pair in ratios.as_array().unwrap() {
        let (what, ratio) = (pair[0].as_str().unwrap(), pair[1].as_f64());
        let ratio = ratio.unwrap_or_else(|| panic!("nothing matches {what} ({theme})"));
        assert!(
            ratio >= 4.5,
            "{what} in the {theme} theme: contrast {ratio:.2}"
        );
    }
}

#[tokio::test]
async fn several_functions_merge_by_time_and_both_themes_read_well() {
    if !browser_installed("several_functions_merge_by_time") {
        return;
    }
    let provider = Provider::start("memory", &["--listen", "127.0.0.1:0"]);
    let addr = provider.addr;
    let base = chrono::Utc::now() - chrono::Duration::seconds(60);
    let at = |ms: i64| {
        (base + chrono::Duration::milliseconds(ms))
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
    };
    let billing = |namespace: &str, ms: i64, text: &str| json!({"name": "billing", "namespace": namespace, "instance": "billing-7f9c", "timestamp": at(ms), "text": text});
    let web = |ms: i64, text: &str| json!({"name": "web", "instance": "web-1", "timestamp": at(ms), "text": text});
    push(
        addr,
        &[
            billing("team-a", 0, "ERROR charge failed"),
            billing("team-a", 2000, "INFO charge retried"),
            billing("team-a", 4000, "WARN charge slow"),
            billing("team-b", 1000, "billing of team b"),
        ],
    )
    .await;
    push(
        addr,
        &[
            web(1000, "GET / 200"),
            {
                let mut l = web(3000, "GET /pay 500");
                l["stream"] = json!("stderr");
                l
            },
            web(5000, "GET / 200 again"),
        ],
    )
    .await;

    // The system's dark preference is followed.
    let browser = Browser::start_with(&["--force-dark-mode"], &[]).await;
    browser
        .goto(&format!("http://{addr}/#team-a/billing"))
        .await;
    rows_once_drawn(&browser, 3).await;
    assert_eq!(theme(&browser).await, "dark");
    // Where am I: billing of team-a, not of team-b, and the header says so.
    let current = "return [...document.querySelectorAll('nav a.current')].map(a => a.dataset.namespace + '/' + a.dataset.name)";
    browser
        .wait_for(
            "the open function marked",
            "return document.querySelectorAll('nav a.current').length === 1",
            PATIENCE,
        )
        .await;
    assert_eq!(
        browser.eval(current, json!([])).await,
        json!(["team-a/billing"])
    );
    assert_eq!(
        on(&browser, "#fn-namespace", "return e.textContent").await,
        "namespace team-a"
    );

    // A Ctrl-click adds web: both, merged by time, each line marked by its function.
    browser
        .eval("document.querySelector(\"nav a[data-name='web']\").dispatchEvent(new MouseEvent('click', {ctrlKey: true, bubbles: true, cancelable: true}))", json!([]))
        .await;
    let merged = rows_once_drawn(&browser, 6).await;
    assert_eq!(
        merged,
        [
            "ERROR charge failed",
            "GET / 200",
            "INFO charge retried",
            "GET /pay 500",
            "WARN charge slow",
            "GET / 200 again"
        ]
    );
    assert_eq!(
        browser.eval("return location.hash", json!([])).await,
        "#team-a/billing+openfaas-fn/web"
    );
    let names = "return [...document.querySelectorAll('#lines .row .fn')].map(e => e.textContent)";
    assert_eq!(
        browser.eval(names, json!([])).await,
        json!(["billing", "web", "billing", "web", "billing", "web"])
    );
    browser
        .wait_for(
            "both marked",
            "return document.querySelectorAll('nav a.current').length === 2",
            PATIENCE,
        )
        .await;
    assert_eq!(
        on(&browser, "#fn-namespace", "return e.textContent").await,
        "namespaces team-a, openfaas-fn"
    );
    assert_eq!(
        on(&browser, "#fn-title", "return e.textContent").await,
        "billing + web"
    );

    // Live lines of both, and a late one of web placed by its time.
    push(addr, &[web(2500, "GET /late 200")]).await;
    push(addr, &[billing("team-a", 60_000, "INFO live billing")]).await;
    push(addr, &[web(60_001, "GET /live 200")]).await;
    let live = rows_once_drawn(&browser, 9).await;
    assert_eq!(
        live,
        [
            "ERROR charge failed",
            "GET / 200",
            "INFO charge retried",
            "GET /late 200",
            "GET /pay 500",
            "WARN charge slow",
            "GET / 200 again",
            "INFO live billing",
            "GET /live 200"
        ]
    );
    // Lines held by Pause come out in time order, whichever function sent first.
    click(&browser, "#pause").await;
    push(addr, &[web(60_010, "GET /held 200")]).await;
    push(addr, &[billing("team-a", 60_005, "INFO held billing")]).await;
    browser
        .wait_for(
            "both held",
            "return document.getElementById('status').textContent === 'paused, 2 new held'",
            PATIENCE,
        )
        .await;
    click(&browser, "#pause").await;
    let resumed = rows_once_drawn(&browser, 11).await;
    assert_eq!(resumed[9..], ["INFO held billing", "GET /held 200"]);

    assert_readable(&browser, "dark").await;
    screenshot(&browser, "viewer-dark.png").await;
    click(&browser, "#theme").await;
    assert_eq!(theme(&browser).await, "light");
    assert_readable(&browser, "light").await;
    screenshot(&browser, "viewer-light.png").await;
    // The choice stays over the system's preference.
    browser.goto("about:blank").await;
    browser
        .goto(&format!("http://{addr}/#team-a/billing+web"))
        .await;
    rows_once_drawn(&browser, 11).await;
    assert_eq!(theme(&browser).await, "light");
}
