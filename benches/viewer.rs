//! The viewer's responsiveness in headless Chromium (needs `chromium` and
//! `chromedriver`, which `bash .ci/run` installs): the longest task on the page's main
//! thread, measured with the browser's own performance API, while 1,000 lines a second
//! arrive for ten seconds, and while a history of 100,000 lines loads.
//!
//! `cargo bench --bench viewer`; prints `viewer ...:` lines. Not criterion: one long run
//! is the measurement.
#![allow(missing_docs)]

mod common;
#[path = "../tests/it/browser/webdriver.rs"]
mod webdriver;

use std::convert::Infallible;
use std::time::Duration;

use chrono::Utc;
use faas_logs::server::{viewer_response, LogBody, LogHandler, FUNCTIONS_PATH};
use faas_logs::store::{LogStore, StoreLimits};
use faas_logs::Message;
use serde_json::json;
use webdriver::Browser;

/// Watches the main thread: every task of 50 ms or more (the Long Tasks API), and the
/// longest delay of a timer that asks to run every 10 ms (which sees shorter tasks too).
const PROBE: &str = "
    window.probe = { longTasks: 0, longest: 0, worstLag: 0 };
    new PerformanceObserver((list) => {
        for (const e of list.getEntries()) {
            probe.longTasks++;
            probe.longest = Math.max(probe.longest, e.duration);
        }
    }).observe({ type: 'longtask' });
    let last = performance.now();
    setInterval(() => {
        const now = performance.now();
        probe.worstLag = Math.max(probe.worstLag, now - last - 10);
        last = now;
    }, 10);";

const READ: &str = "return [probe.longTasks, probe.longest, probe.worstLag, document.querySelectorAll('#lines .row').length]";

/// Serves the viewer's page, its function list and the logs of `store`.
async fn serve(store: LogStore) -> std::net::SocketAddr {
    let handler = LogHandler::new(store, Duration::from_secs(600));
    common::serve(hyper::service::service_fn(
        move |req: hyper::Request<hyper::body::Incoming>| {
            let handler = handler.clone();
            async move {
                let response: hyper::Response<LogBody> = match req.uri().path() {
                    "/" => viewer_response(),
                    FUNCTIONS_PATH => handler.functions().await,
                    _ => handler.handle(req).await,
                };
                Ok::<_, Infallible>(response)
            }
        },
    ))
    .await
}

fn line(i: usize) -> Message {
    Message::new(
        "bench",
        Utc::now(),
        format!("GET /function/bench 200 OK - request {i} served in 1.2 ms by the handler"),
    )
    .with_instance(format!("bench-{}", i % 3))
}

/// A line for the second round: two functions taking turns, a level in every line (in
/// four forms the viewer detects), one line in eight JSON.
fn levelled_line(i: usize) -> Message {
    let level = ["INFO", "WARN", "ERROR", "DEBUG"][i % 4];
    let text = if i % 8 == 7 {
        format!(
            r#"{{"level":"{}","msg":"request {i} served","ms":1.2}}"#,
            level.to_lowercase()
        )
    } else {
        format!("{level} GET /function/bench 200 OK - request {i} served in 1.2 ms by the handler")
    };
    let name = if i % 2 == 0 { "bench" } else { "bench2" };
    Message::new(name, Utc::now(), text).with_instance(format!("{name}-{}", i % 3))
}

/// What one round shows the page, and how: the address it opens, its lines, and a
/// filter typed before the lines come.
struct Round {
    what: &'static str,
    hash: &'static str,
    line: fn(usize) -> Message,
    filter: Option<&'static str>,
}

async fn open(browser: &Browser, addr: std::net::SocketAddr, round: &Round) {
    browser.goto("about:blank").await;
    browser.goto(&format!("http://{addr}/{}", round.hash)).await;
    browser
        .wait_for(
            "the page",
            "return document.getElementById('status').textContent === 'live'",
            Duration::from_secs(10),
        )
        .await;
    if let Some(filter) = round.filter {
        browser
            .eval("const f = document.getElementById('filter'); f.value = arguments[0]; f.dispatchEvent(new Event('input'))", json!([filter]))
            .await;
        browser
            .wait_for(
                "the filter",
                &format!("return document.body.dataset.filter === {}", json!(filter)),
                Duration::from_secs(10),
            )
            .await;
    }
    browser.eval(PROBE, json!([])).await;
}

async fn run(browser: &Browser, store: &LogStore, addr: std::net::SocketAddr, round: &Round) {
    // 1,000 lines a second for ten seconds, in batches of ten every 10 ms.
    open(browser, addr, round).await;
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    for batch in 0..1000 {
        ticker.tick().await;
        for i in 0..10 {
            store.append((round.line)(batch * 10 + i)).unwrap();
        }
    }
    let last = format!("request {} served", 9_999);
    browser
        .wait_for(
            "the last line",
            &format!("return document.body.innerText.includes({})", json!(last)),
            Duration::from_secs(10),
        )
        .await;
    let result = browser.eval(READ, json!([])).await;
    println!(
        "viewer live{}, 1,000 lines/s for 10 s: tasks >= 50 ms: {}, longest of those: {:.0} ms, worst timer lag: {:.1} ms, rows on the page: {}",
        round.what, result[0], result[1].as_f64().unwrap_or(0.0), result[2].as_f64().unwrap_or(0.0), result[3]
    );

    // A history of 100,000 lines (the 10,000 above and 90,000 more), tail=all.
    for i in 10_000..100_000 {
        store.append((round.line)(i)).unwrap();
    }
    open(browser, addr, round).await;
    let started = std::time::Instant::now();
    // The page asks again (each function's stream counted), and the newest 2,000 of the
    // whole history are on it.
    let asked = browser
        .eval("const before = Number(document.body.dataset.connections); const t = document.getElementById('tail'); t.value = 'all'; t.dispatchEvent(new Event('change')); return before", json!([]))
        .await;
    let last = format!("request {} served", 99_999);
    let shown = format!(
        "return Number(document.body.dataset.connections) > {asked} && document.querySelectorAll('#lines .row').length === 2000 && document.body.innerText.includes({})",
        json!(last)
    );
    browser
        .wait_for("the last line", &shown, Duration::from_secs(60))
        .await;
    let took = started.elapsed();
    let result = browser.eval(READ, json!([])).await;
    println!(
        "viewer history of 100,000 lines{}: shown after {:.2} s; tasks >= 50 ms: {}, longest of those: {:.0} ms, worst timer lag: {:.1} ms, rows on the page: {}",
        round.what, took.as_secs_f64(), result[0], result[1].as_f64().unwrap_or(0.0), result[2].as_f64().unwrap_or(0.0), result[3]
    );
}

fn main() {
    // `cargo bench` passes --bench; a filter that names another bench skips this one.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"viewer".contains(a.as_str()))
    {
        return;
    }
    if !Browser::installed() {
        eprintln!("viewer bench skipped: Chromium or chromedriver is not installed (bash .ci/run installs them)");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let rounds = [
            Round {
                what: "",
                hash: "#bench",
                line,
                filter: None,
            },
            Round {
                what: " (two functions merged, levels, a regex filter)",
                hash: "#bench+bench2",
                line: levelled_line,
                filter: Some(r"request \d*7 served"),
            },
        ];
        for round in &rounds {
            let store = LogStore::with_limits(StoreLimits {
                max_messages: 200_000,
                ..StoreLimits::default()
            });
            store.register("", "bench").unwrap();
            store.register("", "bench2").unwrap();
            let addr = serve(store.clone()).await;
            let browser = Browser::start().await;
            run(&browser, &store, addr, round).await;
        }
    });
}
