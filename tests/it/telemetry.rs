//! Telemetry push over real HTTP on 127.0.0.1: the documented examples of both platforms
//! posted to a `TelemetryListener`, read back through `GET /system/logs` and the store's
//! invocation records; then bad input.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use faas_logs::server::LogHandler;
use faas_logs::store::{Invocation, LogStore, StoreLimits};
use faas_logs::telemetry::TelemetryListener;

/// A provider with both routes: the platform posts to `/telemetry`, clients read
/// `/system/logs`.
async fn serve_both(listener: TelemetryListener, store: &LogStore) -> SocketAddr {
    let handler = LogHandler::new(store.clone(), Duration::from_secs(30));
    serve_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let (listener, handler) = (listener.clone(), handler.clone());
        async move {
            if req.uri().path() == "/telemetry" {
                listener.handle(req).await
            } else {
                handler.handle(req).await
            }
        }
    })
    .await
}

/// POSTs a batch; returns the status and the JSON answer.
async fn post(addr: SocketAddr, body: &[u8]) -> (u16, serde_json::Value) {
    let (status, answer) = send_whole(addr, "POST", "/telemetry", body).await;
    (status, serde_json::from_str(&answer).unwrap())
}

async fn lines_of(addr: SocketAddr, function: &str) -> Vec<faas_logs::Message> {
    let (response, mut lines) = get(addr, &format!("/system/logs?name={function}")).await;
    assert_eq!(response.status(), 200);
    lines.messages().await
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/telemetry/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[tokio::test]
async fn lambdas_documented_examples_become_cloudwatch_lines_and_invocation_records() {
    let store = LogStore::new();
    let addr = serve_both(TelemetryListener::new(store.clone(), "hello"), &store).await;
    let (status, report) = post(addr, &fixture("lambda.json")).await;
    assert_eq!(status, 200);
    assert_eq!(report["accepted"], 12, "{report}");
    assert_eq!(report["rejected"], serde_json::json!([]));

    let got: Vec<(String, String)> = lines_of(addr, "hello")
        .await
        .into_iter()
        .map(|m| {
            (
                faas_logs::codec::Rfc3339::new(&m.timestamp).to_string(),
                m.text,
            )
        })
        .collect();
    let id = "6d68ca91-49c9-448d-89b8-7ca3e6dc66aa";
    let want = [
        ("2022-10-12T00:00:15.064Z", "INIT_START Runtime Version: nodejs-14.v3".to_owned()),
        ("2022-10-12T00:00:15.064Z", format!("START RequestId: {id} Version: $LATEST")),
        ("2022-10-12T00:00:15.074Z", "INIT_REPORT Init Duration: 125.33 ms".to_owned()),
        ("2022-10-12T00:01:15Z", format!("END RequestId: {id}")),
        ("2022-10-12T00:01:15Z", format!("REPORT RequestId: {id} Duration: 693.92 ms Billed Duration: 694 ms Memory Size: 128 MB Max Memory Used: 84 MB Init Duration: 397.68 ms")),
        ("2022-10-12T00:02:15Z", "EXTENSION Name: my-telemetry-extension State: Ready Events: [INVOKE, SHUTDOWN]".to_owned()),
        ("2022-10-12T00:02:35Z", "TELEMETRY Name: my-telemetry-extension State: Subscribed Types: [platform, function]".to_owned()),
        ("2022-10-12T00:02:35Z", "[faas-logs] the platform dropped 123 log records (12345 bytes): Some logs were dropped because the downstream consumer is slower than the logs production rate".to_owned()),
        ("2022-10-12T00:03:50Z", "[INFO] Hello world, I am a function!".to_owned()),
        ("2022-10-12T00:03:50Z", r#"INFO Hello world, I am a function! {"requestId":"79b4f56e-95b1-4643-9700-2807f4e68189","timestamp":"2022-10-12T00:03:50.000Z"}"#.to_owned()),
        ("2022-10-12T00:03:50Z", "[extension] [INFO] Hello world, I am an extension!".to_owned()),
    ];
    let want: Vec<(String, String)> = want.into_iter().map(|(t, s)| (t.to_owned(), s)).collect();
    assert_eq!(got, want);

    let records = store.invocations("", "hello", None, 10).unwrap();
    assert_eq!(records.len(), 2);
    let invoke = &records[0];
    assert_eq!(
        (invoke.request_id.as_str(), invoke.phase.as_str()),
        (id, "invoke")
    );
    assert_eq!(invoke.start, Some(at("2022-10-12T00:00:15.064Z")));
    assert_eq!(invoke.end, Some(at("2022-10-12T00:01:15Z")));
    assert_eq!(invoke.status.as_deref(), Some("success"));
    assert_eq!(invoke.duration_ms, Some(693.92));
    assert_eq!(invoke.billed_duration_ms, Some(694.0));
    assert_eq!(invoke.memory_size_mb, Some(128.0));
    assert_eq!(invoke.max_memory_used_mb, Some(84.0));
    assert_eq!(invoke.init_duration_ms, Some(397.68));
    let init = &records[1];
    assert_eq!(init.phase, "init");
    assert_eq!(init.duration_ms, Some(125.33));
    assert_eq!(init.status.as_deref(), Some("success"));
}

#[tokio::test]
async fn functiongraphs_documented_examples_with_their_stray_spaces_and_capitals() {
    let store = LogStore::new();
    let listener = TelemetryListener::new(store.clone(), "hello").with_namespace("fg");
    let addr = serve_both(listener, &store).await;
    let (status, report) = post(addr, &fixture("functiongraph.json")).await;
    assert_eq!(status, 200);
    assert_eq!(report["accepted"], 8, "{report}");

    let (_, mut lines) = get(addr, "/system/logs?name=hello&namespace=fg").await;
    let got: Vec<(String, String, String)> = lines
        .messages()
        .await
        .into_iter()
        .map(|m| {
            let t = faas_logs::codec::Rfc3339::new(&m.timestamp).to_string();
            (t, m.instance.to_string(), m.text)
        })
        .collect();
    let pod = "pool-hello-7d9f-x2vqz";
    let id = "4b2e0a57-2f3c-4f6e-9a1d-58b9e6c1f0a2";
    let want = [
        // The init's report names its pod: its start line, in the same batch, is from it.
        ("2023-02-01T00:03:50Z", pod, "INIT_START".to_owned()),
        ("2023-02-01T00:03:50.3Z", pod, "INIT_REPORT Init Duration: 300.50 ms Billed Duration: 301 ms Memory Size: 256 MB Max Memory Used: 30.2 MB".to_owned()),
        ("2023-02-01T00:03:51Z", pod, format!("START RequestId: {id}")),
        ("2023-02-01T00:03:51.01Z", pod, "this is a simple log.".to_owned()),
        ("2023-02-01T00:03:51.02Z", pod, "[extension] extension saw the invoke".to_owned()),
        ("2023-02-01T00:03:51.05Z", pod, format!("END RequestId: {id}")),
        ("2023-02-01T00:03:51.05Z", pod, format!("REPORT RequestId: {id} Duration: 10.60 ms Billed Duration: 11 ms Memory Size: 128 MB Max Memory Used: 23.4 MB")),
    ];
    let want: Vec<(String, String, String)> = want
        .into_iter()
        .map(|(t, i, s)| (t.to_owned(), i.to_owned(), s))
        .collect();
    assert_eq!(got, want);

    let records = store.invocations("fg", "hello", None, 10).unwrap();
    let want_invoke = {
        let mut r = Invocation::new(id, "invoke");
        r.start = Some(at("2023-02-01T00:03:51Z"));
        r.end = Some(at("2023-02-01T00:03:51.05Z"));
        r.status = Some("success".into());
        r.duration_ms = Some(10.6);
        r.billed_duration_ms = Some(11.0);
        r.memory_size_mb = Some(128.0);
        r.max_memory_used_mb = Some(23.4);
        r.pod = Some(pod.into());
        r
    };
    assert_eq!(records[0], want_invoke);
    assert_eq!(records[1].phase, "init");
    assert_eq!(records[1].start, Some(at("2023-02-01T00:03:50Z")));
    assert_eq!(records[1].end, Some(at("2023-02-01T00:03:50.3Z")));
    // since and limit
    let since = store.invocations("fg", "hello", Some(at("2023-02-01T00:03:50.5Z")), 10);
    assert_eq!(since.unwrap().len(), 1);
    assert_eq!(
        store.invocations("fg", "hello", None, 1).unwrap()[0].request_id,
        id
    );
}

/// A line of a function event, Lambda's form.
fn function_event(ms: i64, text: &str) -> serde_json::Value {
    let time = at("2024-03-01T12:00:00Z") + chrono::Duration::milliseconds(ms);
    serde_json::json!({"time": time.to_rfc3339(), "type": "function", "record": text})
}

#[tokio::test]
async fn one_odd_event_never_loses_its_batch_and_each_refusal_says_why() {
    let store = LogStore::new();
    let addr = serve_both(TelemetryListener::new(store.clone(), "f"), &store).await;
    let batch = serde_json::json!([
        function_event(0, "first"),
        {"time": "2024-03-01T12:00:00.001Z", "type": "platform.report", "record": {"requestId": 7}},
        {"time": "2024-03-01T12:00:00.002Z", "type": "function", "record": 42},
        "a string, not an event",
        {"time": "yesterday", "type": "function", "record": "x"},
        {"time": "2024-03-01T12:00:00.003Z", "type": "platform.report",
         "record": {"requestId": "r", "metrics": {"durationMs": "fast"}}},
        {"time": "2024-03-01T12:00:00.004Z", "type": "platform.somethingNew", "record": {"a": 1}},
        {"time": "2024-03-01T12:00:00.005Z", "type": "platform.report", "record": "wrong shape"},
        {"time": "2024-03-01T12:00:00.006Z", "type": "platform.start", "record": {"version": "1"}},
        function_event(5, "last"),
    ]);
    let (status, report) = post(addr, batch.to_string().as_bytes()).await;
    assert_eq!(status, 200);
    assert_eq!(report["accepted"], 3, "{report}");
    let refused: Vec<(u64, String)> = report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["error"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let indexes: Vec<u64> = refused.iter().map(|r| r.0).collect();
    assert_eq!(indexes, [1, 2, 3, 4, 5, 7, 8]);
    assert_eq!(refused[0].1, "requestId is a string, not a number");
    assert_eq!(
        refused[1].1,
        "a function log record is a string or an object, not a number"
    );
    assert_eq!(refused[2].1, "an event is a JSON object, not a string");
    assert!(
        refused[3]
            .1
            .starts_with("time \"yesterday\" is not an ISO 8601 time"),
        "{}",
        refused[3].1
    );
    assert_eq!(refused[4].1, "durationMs is a number, not \"fast\"");
    // A record of the wrong shape, or an invocation's event that does not name it, makes
    // no line with an empty request id.
    assert_eq!(
        refused[5].1,
        "a platform.report record is an object, not a string"
    );
    assert_eq!(refused[6].1, "a platform.start event without its requestId");
    let texts = texts(&lines_of(addr, "f").await);
    assert_eq!(texts.len(), 3);
    assert_eq!(texts[0], "first");
    assert_eq!(
        texts[1],
        r#"[faas-logs] a telemetry event of a type not known here (platform.somethingnew): {"record":{"a":1},"time":"2024-03-01T12:00:00.004Z","type":"platform.somethingNew"}"#
    );
    assert_eq!(texts[2], "last");
}

#[tokio::test]
async fn unreadable_bodies_are_answered_200_and_leave_a_visible_line() {
    let store = LogStore::new();
    let addr = serve_both(TelemetryListener::new(store.clone(), "f"), &store).await;
    let bodies: [&[u8]; 3] = [b"not json", b"42", b"[\xff\xfe]"];
    for body in bodies {
        let (status, report) = post(addr, body).await;
        assert_eq!(status, 200);
        assert_eq!(report["accepted"], 0);
        // The answer says so: not an empty success.
        let why = report["unreadable"].as_str().unwrap_or_default();
        assert!(!why.is_empty(), "{report}");
    }
    // JSON nested 10,000 deep: one event too deep to read, refused on its own.
    let deep = format!("[{}{}]", "[".repeat(10_000), "]".repeat(10_000));
    let (status, report) = post(addr, deep.as_bytes()).await;
    assert_eq!(status, 200);
    let reason = report["rejected"][0]["error"].as_str().unwrap();
    assert!(reason.contains("recursion limit"), "{reason}");
    let texts = texts(&lines_of(addr, "f").await);
    assert_eq!(texts.len(), 3);
    for (text, len) in texts.iter().zip([8, 2, 4]) {
        let prefix = format!("[faas-logs] a telemetry batch of {len} bytes was unreadable: ");
        assert!(text.starts_with(&prefix), "{text}");
    }
    assert!(texts[1].ends_with("unreadable: it is a number, not an array of events"));
}

#[tokio::test]
async fn a_batch_over_the_bound_is_413_and_nothing_of_it_is_stored() {
    let store = LogStore::new();
    let listener = TelemetryListener::new(store.clone(), "f");
    let addr = serve_both(listener, &store).await;
    post(
        addr,
        serde_json::json!([function_event(0, "before")])
            .to_string()
            .as_bytes(),
    )
    .await;
    let line = function_event(1, &"x".repeat(1_000));
    let big: Vec<serde_json::Value> = (0..10_000).map(|_| line.clone()).collect();
    let big = serde_json::to_vec(&big).unwrap();
    assert!(big.len() > 10_000_000);
    let (status, answer) = post(addr, &big).await;
    assert_eq!(status, 413);
    assert!(answer["error"].as_str().unwrap().contains("4194304 bytes"));
    assert_eq!(texts(&lines_of(addr, "f").await), ["before"]);
}

#[tokio::test]
async fn a_hundred_thousand_events_in_one_body_are_stored_within_the_stores_bounds() {
    let store = LogStore::with_limits(StoreLimits {
        max_messages: 1_000,
        ..StoreLimits::default()
    });
    // About 9 MB: more than the default bound, so the bound is raised.
    let listener = TelemetryListener::new(store.clone(), "f").with_max_batch_bytes(16 << 20);
    let addr = serve_both(listener, &store).await;
    let batch: Vec<serde_json::Value> = (0..100_000)
        .map(|i| function_event(i, &format!("line {i}")))
        .collect();
    let (status, report) = post(addr, &serde_json::to_vec(&batch).unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(report["accepted"], 100_000);
    let stats = store.stats("", "f").unwrap();
    assert_eq!((stats.messages, stats.appended), (1_000, 100_000));
    let texts = texts(&lines_of(addr, "f").await);
    assert_eq!(texts.last().unwrap(), "line 99999");
}

#[tokio::test]
async fn a_retried_batch_is_acknowledged_and_not_stored_twice() {
    let store = LogStore::new();
    let addr = serve_both(TelemetryListener::new(store.clone(), "f"), &store).await;
    let batch = serde_json::json!([function_event(0, "once"), {
        "time": "2024-03-01T12:00:00Z", "type": "platform.start", "record": {"requestId": "r-1"}
    }])
    .to_string();
    let (_, first) = post(addr, batch.as_bytes()).await;
    assert_eq!(
        (first["accepted"].as_u64(), first["duplicate"].as_bool()),
        (Some(2), Some(false))
    );
    let (status, again) = post(addr, batch.as_bytes()).await;
    assert_eq!(status, 200);
    assert_eq!(
        (again["accepted"].as_u64(), again["duplicate"].as_bool()),
        (Some(0), Some(true))
    );
    assert_eq!(
        texts(&lines_of(addr, "f").await),
        ["once", "START RequestId: r-1"]
    );
    assert_eq!(store.invocations("", "f", None, 10).unwrap().len(), 1);
}

#[tokio::test]
async fn multi_line_records_split_into_messages_and_a_get_is_405() {
    let store = LogStore::new();
    let addr = serve_both(TelemetryListener::new(store.clone(), "f"), &store).await;
    let batch = serde_json::json!([
        function_event(0, "one\r\ntwo\nthree\n"),
        {"name": "function", "startTime": "2024-03-01T12:00:01Z", "logs": "[Function]a\n[Function]b"}
    ]);
    post(addr, batch.to_string().as_bytes()).await;
    assert_eq!(
        texts(&lines_of(addr, "f").await),
        ["one", "two", "three", "a", "b"]
    );
    let mut conn = Connection::open(addr).await;
    let response = conn.send("GET", "/telemetry", b"").await;
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");
}

/// A sink that refuses lines holding "bad" for good, cannot store those holding "down"
/// for now, and stores the rest in a store; it answers each batch after a pause, so
/// that batches overlap.
struct Picky(LogStore);

#[faas_logs::async_trait]
impl faas_logs::LogSink for Picky {
    async fn store(&self, batch: faas_logs::Batch) -> Vec<Result<(), faas_logs::Error>> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        batch
            .messages
            .into_iter()
            .map(|m| {
                if m.text.contains("bad") {
                    Err(faas_logs::Error::invalid("text", "bad lines are refused"))
                } else if m.text.contains("down") {
                    Err(faas_logs::Error::unavailable("the sink is down"))
                } else {
                    self.0.append(m)
                }
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_written_to_a_sink_at_once_each_get_their_own_outcome() {
    let (records, lines) = (LogStore::new(), LogStore::new());
    let listener = TelemetryListener::new(records.clone(), "f").with_lines_to(Picky(lines.clone()));
    let addr = serve_both(listener, &lines).await;
    // Many clients at once, half of whose batches hold a line the sink refuses.
    let clients: Vec<_> = (0..8)
        .map(|c| {
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for i in 0..20 {
                    let text = if c % 2 == 0 {
                        format!("good {c}-{i}")
                    } else {
                        format!("bad {c}-{i}")
                    };
                    let body = serde_json::json!([function_event(i, &text)]).to_string();
                    answers.push((c, post(addr, body.as_bytes()).await));
                }
                answers
            })
        })
        .collect();
    for client in clients {
        for (c, (status, answer)) in client.await.unwrap() {
            assert_eq!(status, 200, "{answer}");
            if c % 2 == 0 {
                assert_eq!(
                    (
                        answer["accepted"].as_u64(),
                        answer["rejected"].as_array().map(Vec::len)
                    ),
                    (Some(1), Some(0)),
                    "{answer}"
                );
            } else {
                assert_eq!(answer["accepted"], 0, "{answer}");
                let reason = answer["rejected"][0]["error"].as_str().unwrap();
                assert!(reason.contains("bad lines are refused"), "{reason}");
            }
        }
    }
    assert_eq!(lines.stats("", "f").unwrap().messages, 80);
}

#[tokio::test]
async fn a_batch_the_sink_cannot_store_now_is_a_503_and_its_retry_is_taken() {
    let (records, lines) = (LogStore::new(), LogStore::new());
    let listener = TelemetryListener::new(records.clone(), "f").with_lines_to(Picky(lines.clone()));
    let addr = serve_both(listener, &lines).await;
    let batch = serde_json::json!([
        function_event(0, "stored"),
        function_event(1, "down for now")
    ])
    .to_string();
    let (response, answer) = {
        let mut connection = Connection::open(addr).await;
        let response = connection
            .send("POST", "/telemetry", batch.as_bytes())
            .await;
        let retry_after = response.headers().get("retry-after").cloned();
        let status = response.status();
        use http_body_util::BodyExt;
        let body = within(response.into_body().collect())
            .await
            .unwrap()
            .to_bytes();
        (
            (status, retry_after),
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        )
    };
    assert_eq!(response.0, 503, "{answer}");
    assert!(response.1.is_some(), "a 503 says when to retry");
    assert_eq!(answer["unavailable"]["lines"], 1, "{answer}");
    assert_eq!(
        answer["unavailable"]["error"], "the sink is down",
        "{answer}"
    );
    // The same batch again is not taken for a duplicate: it is stored again (a sink that
    // deduplicates, JetStream, keeps one copy of what it had).
    let (status, answer) = post(addr, batch.as_bytes()).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["duplicate"], false, "{answer}");
}

#[tokio::test]
async fn an_invocations_lines_take_the_pod_its_report_names() {
    let store = LogStore::new();
    let listener = TelemetryListener::new(store.clone(), "hello");
    let addr = serve_both(listener, &store).await;
    let invocation = |trace: &str, second: u32, pod: &str| {
        let at = |ms: u32| format!("2023-02-01T00:00:{second:02}.{ms:03}Z");
        serde_json::json!([
            {"name": "platform.start", "startTime": at(0), "traceId": trace},
            {"name": "function", "startTime": at(10), "logs": "[Function]working"},
            {"name": "platform.report", "startTime": at(0), "endTime": at(50), "traceId": trace,
             "status": "success", "reportMetrics": {"durationMs": 50, "podName": pod}},
        ])
    };
    // The first invocation ran on pod-1, the second on pod-2: each one's start, function
    // and report lines are from its own pod, though pod-2 is named only in its report.
    for (trace, second, pod) in [("t-1", 1, "pod-1"), ("t-2", 2, "pod-2")] {
        let (status, report) =
            post(addr, invocation(trace, second, pod).to_string().as_bytes()).await;
        assert_eq!(
            (status, report["accepted"].as_u64()),
            (200, Some(3)),
            "{report}"
        );
    }
    let got: Vec<(String, String)> = lines_of(addr, "hello")
        .await
        .into_iter()
        .map(|m| (m.instance.to_string(), m.text))
        .collect();
    let want = [
        ("pod-1", "START RequestId: t-1"),
        ("pod-1", "working"),
        ("pod-1", "END RequestId: t-1"),
        ("pod-1", "REPORT RequestId: t-1 Duration: 50.00 ms"),
        ("pod-2", "START RequestId: t-2"),
        ("pod-2", "working"),
        ("pod-2", "END RequestId: t-2"),
        ("pod-2", "REPORT RequestId: t-2 Duration: 50.00 ms"),
    ]
    .map(|(i, t)| (i.to_owned(), t.to_owned()));
    assert_eq!(got, want);
}
