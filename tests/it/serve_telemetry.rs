//! `faas-logs serve telemetry` as a Lambda extension, against an emulated Extensions and
//! Telemetry API written from the documented protocol (no real platform runs here):
//! register, subscribe, batches posted while a `faas-cli`-style client follows
//! `/system/logs`, an INVOKE, then SHUTDOWN, after which the extension ends the follow
//! stream cleanly and exits in time.

use crate::common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::sync::{mpsc, oneshot};

/// What the emulated platform saw, and the events it hands out.
struct Platform {
    registered: Mutex<Option<(String, serde_json::Value)>>,
    subscribed: Mutex<Option<oneshot::Sender<(String, serde_json::Value)>>>,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<serde_json::Value>>,
}

async fn answer(platform: Arc<Platform>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    match (parts.method.as_str(), parts.uri.path()) {
        ("POST", "/2020-01-01/extension/register") => {
            *platform.registered.lock().unwrap() = Some((header("Lambda-Extension-Name"), json));
            Response::builder()
                .header("Lambda-Extension-Identifier", "ext-7")
                .body(Full::new(Bytes::from_static(
                    br#"{"functionName":"hello","functionVersion":"$LATEST","handler":"index.handler"}"#,
                )))
                .unwrap()
        }
        ("PUT", "/2022-07-01/telemetry") => {
            assert_eq!(header("Lambda-Extension-Identifier"), "ext-7");
            if let Some(tx) = platform.subscribed.lock().unwrap().take() {
                let uri = json["destination"]["URI"].as_str().unwrap().to_owned();
                let _ = tx.send((uri, json));
            }
            Response::new(Full::new(Bytes::from_static(b"\"OK\"")))
        }
        ("GET", "/2020-01-01/extension/event/next") => {
            assert_eq!(header("Lambda-Extension-Identifier"), "ext-7");
            let event = platform.events.lock().await.recv().await.unwrap();
            Response::new(Full::new(Bytes::from(event.to_string())))
        }
        (method, path) => panic!("the extension called {method} {path}"),
    }
}

async fn emulate(platform: Arc<Platform>) -> SocketAddr {
    serve_fn(move |req| answer(Arc::clone(&platform), req)).await
}

/// Starts `faas-logs serve telemetry` on free ports with `env`.
fn start_extension(env: &[(&str, &str)]) -> Provider {
    let ports = [
        "--listen",
        "127.0.0.1:0",
        "--telemetry-listen",
        "127.0.0.1:0",
    ];
    Provider::start_env("telemetry", &ports, &[], std::process::Stdio::null(), env)
}

/// Posts a batch to the extension, as the platform does.
async fn push(uri: &str, batch: serde_json::Value) {
    let addr: SocketAddr = uri.trim_start_matches("http://").parse().unwrap();
    let mut conn = Connection::open(addr).await;
    let response = conn.send("POST", "/", batch.to_string().as_bytes()).await;
    assert_eq!(response.status(), 200);
    let report = within(response.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    let report: serde_json::Value = serde_json::from_slice(&report).unwrap();
    assert_eq!(report["rejected"], serde_json::json!([]), "{report}");
}

// Several threads: starting the example blocks one while it reads the first line, and
// the emulated platform must answer the registration meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lambda_extension_registers_subscribes_serves_follows_and_exits_on_shutdown() {
    let (events, next) = mpsc::unbounded_channel();
    let (subscribed, subscription) = oneshot::channel();
    let platform = Arc::new(Platform {
        registered: Mutex::default(),
        subscribed: Mutex::new(Some(subscribed)),
        events: tokio::sync::Mutex::new(next),
    });
    let api = emulate(Arc::clone(&platform)).await.to_string();
    let extension = start_extension(&[
        ("AWS_LAMBDA_RUNTIME_API", &api),
        ("TELEMETRY_HOST", "127.0.0.1"),
    ]);
    let (name, registration) = platform.registered.lock().unwrap().clone().unwrap();
    assert_eq!(name, "faas-logs");
    assert_eq!(
        registration,
        serde_json::json!({"events": ["INVOKE", "SHUTDOWN"]})
    );
    let (uri, subscription) = within(subscription).await.unwrap();
    assert_eq!(subscription["schemaVersion"], "2022-12-13");
    assert_eq!(
        subscription["types"],
        serde_json::json!(["platform", "function"])
    );
    assert_eq!(subscription["destination"]["protocol"], "HTTP");

    // The function's name comes from the registration answer.
    let (response, mut lines) = get(
        extension.addr,
        "/system/logs?name=hello&follow=true&tail=-1",
    )
    .await;
    assert_eq!(response.status(), 200);
    events
        .send(serde_json::json!({"eventType": "INVOKE", "requestId": "r-1"}))
        .unwrap();
    push(&uri, serde_json::json!([
        {"time": "2024-03-01T12:00:00.000Z", "type": "platform.start", "record": {"requestId": "r-1", "version": "$LATEST"}},
        {"time": "2024-03-01T12:00:00.005Z", "type": "function", "record": "handling r-1\n"}
    ]))
    .await;
    assert_eq!(
        lines.next_message().await.text,
        "START RequestId: r-1 Version: $LATEST"
    );
    assert_eq!(lines.next_message().await.text, "handling r-1");
    push(&uri, serde_json::json!([
        {"time": "2024-03-01T12:00:00.020Z", "type": "platform.report", "record": {
            "requestId": "r-1", "status": "success",
            "metrics": {"durationMs": 15.2, "billedDurationMs": 16, "memorySizeMB": 128, "maxMemoryUsedMB": 40}}}
    ]))
    .await;
    assert_eq!(lines.next_message().await.text, "END RequestId: r-1");
    let report = lines.next_message().await;
    assert_eq!(
        report.text,
        "REPORT RequestId: r-1 Duration: 15.20 ms Billed Duration: 16 ms Memory Size: 128 MB Max Memory Used: 40 MB"
    );
    let (status, records) = {
        let mut conn = Connection::open(extension.addr).await;
        let response = conn
            .send("GET", "/system/invocations?name=hello", b"")
            .await;
        let status = response.status();
        let body = within(response.into_body().collect())
            .await
            .unwrap()
            .to_bytes();
        (
            status,
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        )
    };
    assert_eq!(status, 200);
    assert_eq!(records[0]["request_id"], "r-1");
    assert_eq!(records[0]["billed_duration_ms"], 16.0);

    // SHUTDOWN: the follow stream ends cleanly and the process exits, within Lambda's 2 s.
    events
        .send(serde_json::json!({"eventType": "SHUTDOWN", "shutdownReason": "spindown"}))
        .unwrap();
    assert_eq!(lines.rest().await.unwrap(), Vec::<String>::new());
    let mut extension = extension;
    let exited = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            if let Some(status) = extension.child.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    })
    .await
    .unwrap();
    assert!(exited
        .expect("the extension exits within 2 s of SHUTDOWN")
        .success());
}

/// FunctionGraph's extension API, emulated: registration and subscription.
async fn emulate_functiongraph(
    seen: Arc<Mutex<Vec<(String, String, String)>>>,
    subscribed: oneshot::Sender<serde_json::Value>,
) -> SocketAddr {
    let subscribed = Arc::new(Mutex::new(Some(subscribed)));
    serve_fn(move |req: Request<Incoming>| {
        let (seen, subscribed) = (Arc::clone(&seen), Arc::clone(&subscribed));
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            let header = |name: &str| {
                let value = parts.headers.get(name).and_then(|v| v.to_str().ok());
                value.unwrap_or("").to_owned()
            };
            let answer: &'static [u8] = match parts.uri.path() {
                "/extension/register" => {
                    let name = header("FunctionGraph-Extension-Name");
                    let address = header("FunctionGraph-Extension-Address");
                    seen.lock()
                        .unwrap()
                        .push(("register".into(), name, address));
                    br#"{"functionName":"fg-hello","functionVersion":"latest","errorInfo":{"errorType":"","errorMessage":""}}"#
                }
                "/telemetry" => {
                    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    if let Some(tx) = subscribed.lock().unwrap().take() {
                        let _ = tx.send(json);
                    }
                    b"{}"
                }
                path => panic!("the extension called {path}"),
            };
            Response::new(Full::new(Bytes::from_static(answer)))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_functiongraph_extension_registers_its_address_subscribes_and_takes_invokes() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (subscribed, subscription) = oneshot::channel();
    let api = emulate_functiongraph(Arc::clone(&seen), subscribed)
        .await
        .to_string();
    let extension = start_extension(&[("EXTENSION_API_ADDR", &api)]);
    let subscription = within(subscription).await.unwrap();
    let uri = subscription["subscriber"]["uri"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(subscription["subscriber"]["protocol"], "POST");
    assert_eq!(
        subscription["types"],
        serde_json::json!(["platform", "function", "extension"])
    );
    let (what, name, address) = seen.lock().unwrap()[0].clone();
    assert_eq!((what.as_str(), name.as_str()), ("register", "faas-logs"));
    assert_eq!(
        format!("http://{address}"),
        uri,
        "telemetry and invokes on one address"
    );

    // An invoke notice, then the documented batch.
    let invoke_to: SocketAddr = address.parse().unwrap();
    let mut conn = Connection::open(invoke_to).await;
    let invoke = br#"{"traceId":"4b2e0a57","invokedFunctionUrn":"sn:cn:yrk:1111:function:0@test@hello:latest"}"#;
    let response = conn.send("POST", "/extension/invoke", invoke).await;
    assert_eq!(response.status(), 200);
    let batch: serde_json::Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/telemetry/functiongraph.json"
        ))
        .unwrap(),
    )
    .unwrap();
    push(&uri, batch).await;
    let (_, mut lines) = get(extension.addr, "/system/logs?name=fg-hello&tail=2").await;
    let got = texts(&lines.messages().await);
    assert_eq!(
        got[0],
        "END RequestId: 4b2e0a57-2f3c-4f6e-9a1d-58b9e6c1f0a2"
    );
    assert!(got[1]
        .starts_with("REPORT RequestId: 4b2e0a57-2f3c-4f6e-9a1d-58b9e6c1f0a2 Duration: 10.60 ms"));
    extension.interrupt();
    assert!(extension.exits_cleanly().await);
}

#[tokio::test]
async fn standalone_it_serves_the_viewer_and_its_function_list() {
    let extension = start_extension(&[]);
    let mut conn = Connection::open(extension.addr).await;
    let page = conn.send("GET", "/", b"").await;
    assert_eq!(page.status(), 200);
    let page = within(page.into_body().collect()).await.unwrap().to_bytes();
    assert_eq!(&page[..], faas_logs::server::VIEWER_HTML.as_bytes());
    let listed = conn.send("GET", "/system/logs/functions", b"").await;
    assert_eq!(listed.status(), 200);
    let listed = within(listed.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    let listed: serde_json::Value = serde_json::from_slice(&listed).unwrap();
    assert!(
        listed["functions"].is_array(),
        "the store lists its functions: {listed}"
    );
}
