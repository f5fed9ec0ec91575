//! The OpenWhisk backend against an emulated OpenWhisk API (tests/emulator), which the
//! official `openwhisk` JavaScript client checks too: records, `/system/logs` over real
//! HTTP (tail, since, instance, follow, names), failures, bad answers, and the
//! `faas-logs activations` commands.

use crate::common;
#[path = "emulator/openwhisk.rs"]
mod emulator;

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use common::{get, get_whole, within, Provider};
use emulator::Emulator;
use faas_logs::openwhisk::{
    Activation, ActivationStatus, ActivationSummary, ListOptions, OpenWhiskClient, OpenWhiskError,
    OpenWhiskRequester, PollSettings,
};
use faas_logs::server::LogHandler;
use faas_logs::{Message, OutputStream};
use serde_json::{json, Value};

const KEY: &str = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP";

/// 2024-02-17T20:00:00Z in epoch milliseconds.
const T0: i64 = 1_708_200_000_000;

fn id(n: u64) -> String {
    format!("{n:032x}")
}

/// A line as the invoker stores it: the time padded to 30 characters.
fn line(ms: i64, stream: &str, text: &str) -> String {
    let time = at(ms).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    format!("{time:<30} {stream}: {text}")
}

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).unwrap()
}

/// A full record of `entity` (`action` or `package/action`) in namespace `guest`.
fn record(n: u64, entity: &str, start: i64, logs: &[String]) -> Value {
    let name = entity.rsplit('/').next().unwrap();
    json!({
        "namespace": "guest", "name": name, "version": "0.0.1", "subject": "guest",
        "activationId": id(n), "start": start, "end": start + 40, "duration": 40,
        "response": {"result": {"n": n}, "size": 9, "status": "success", "success": true},
        "logs": logs, "publish": false,
        "annotations": [
            {"key": "path", "value": format!("guest/{entity}")},
            {"key": "waitTime", "value": 12},
            {"key": "kind", "value": "nodejs:20"},
            {"key": "timeout", "value": false},
            {"key": "limits", "value": {"concurrency": 1, "logs": 10, "memory": 256, "timeout": 60000}}
        ]
    })
}

/// DigitalOcean's documented example record (activation-records reference page).
fn digitalocean_record() -> Value {
    json!({
        "activationId": "c15d4bacedfa4bab9d4bacedfa2bcbec",
        "annotations": [
            {"key": "path", "value": "fn-52ffd9fa-0fe3-4bdd-8e0a-1cdd3a5e4b6e/sample/hello"},
            {"key": "waitTime", "value": 80},
            {"key": "uuid", "value": "0a64ac4e-9cd8-4d7c-a4f3-06d1c6c5da4b"},
            {"key": "entry", "value": "main"},
            {"key": "kind", "value": "nodejs:14"},
            {"key": "timeout", "value": false},
            {"key": "limits", "value": {"concurrency": 1, "logs": 16, "memory": 256, "timeout": 3000}},
            {"key": "user_id", "value": "1234567"},
            {"key": "gbs", "value": 0.00125},
            {"key": "initTime", "value": 50}
        ],
        "duration": 5,
        "end": 1652454791582_i64,
        "logs": ["2022-05-13T15:13:11.580825656Z stdout: Hello sammy"],
        "name": "hello",
        "namespace": "fn-52ffd9fa-0fe3-4bdd-8e0a-1cdd3a5e4b6e",
        "publish": false,
        "response": {"result": {"body": "Hello sammy!"}, "size": 27, "status": "success", "success": true},
        "start": 1652454791577_i64,
        "subject": "52ffd9fa-0fe3-4bdd-8e0a-1cdd3a5e4b6e",
        "version": "0.0.5"
    })
}

fn client(emulator: &Emulator) -> OpenWhiskClient {
    OpenWhiskClient::builder(emulator.url(), KEY)
        .build()
        .unwrap()
}

/// Polls fast so that follow tests run in a second.
fn fast() -> PollSettings {
    PollSettings::default()
        .with_interval(Duration::from_millis(100))
        .with_give_up_after(Duration::from_secs(2))
}

async fn provider(emulator: &Emulator, timeout: Duration) -> std::net::SocketAddr {
    let requester = OpenWhiskRequester::new(client(emulator)).with_poll_settings(fast());
    common::serve(LogHandler::new(requester, timeout)).await
}

async fn messages(addr: std::net::SocketAddr, query: &str) -> Vec<Message> {
    let (response, mut lines) = get(addr, &format!("/system/logs?{query}")).await;
    assert_eq!(response.status(), 200, "{query}");
    lines.messages().await
}

async fn status_and_error(addr: std::net::SocketAddr, query: &str) -> (u16, String) {
    get_whole(addr, &format!("/system/logs?{query}")).await
}

fn texts(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.text.as_str()).collect()
}

/// `count` activations of `hello`, one every second from T0, each with two lines.
fn history(emulator: &Emulator, count: u64) {
    for n in 0..count {
        let start = T0 + 1000 * n as i64;
        emulator.add(record(
            n,
            "hello",
            start,
            &[
                line(start + 1, "stdout", &format!("a{n}")),
                line(start + 2, "stderr", &format!("b{n}")),
            ],
        ));
    }
}

#[test]
fn records_read_and_write_back_the_same_json() {
    let original = digitalocean_record();
    let record: Activation = serde_json::from_value(original.clone()).unwrap();
    assert_eq!(serde_json::to_value(&record).unwrap(), original);
    assert_eq!(record.activation_id, "c15d4bacedfa4bab9d4bacedfa2bcbec");
    assert_eq!(record.entity(), "sample/hello");
    let a = &record.annotations;
    assert_eq!(a.kind(), Some("nodejs:14"));
    assert_eq!((a.wait_time(), a.init_time()), (Some(80), Some(50)));
    assert!(a.is_cold_start());
    let limits = a.limits().unwrap();
    assert_eq!(
        (limits.logs, limits.memory, limits.timeout),
        (Some(16), Some(256), Some(3000))
    );
    assert_eq!(
        (a.timeout(), a.entry(), a.gbs()),
        (Some(false), Some("main"), Some(0.00125))
    );
    assert_eq!(a.user_id(), Some("1234567"));
    assert_eq!(a.uuid(), Some("0a64ac4e-9cd8-4d7c-a4f3-06d1c6c5da4b"));
    let response = record.response.as_ref().unwrap();
    assert_eq!(response.status(), Some(ActivationStatus::Success));

    // Unknown fields and annotations survive, and a running summary has no end.
    let mut odd = original.clone();
    odd["newField"] = json!({"nested": [1, 2]});
    odd["annotations"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "binding", "value": "x/y", "extra": true}));
    odd["response"]["statusCode"] = json!(0);
    // A number that only reads back exactly with correct float parsing (found by the
    // openwhisk fuzz target).
    odd["huge"] = serde_json::from_str("16524547915899999999999999999999993").unwrap();
    let record: Activation = serde_json::from_value(odd.clone()).unwrap();
    assert_eq!(serde_json::to_value(&record).unwrap(), odd);
    let text = serde_json::to_string(&record).unwrap();
    assert_eq!(
        serde_json::from_str::<Activation>(&text).unwrap(),
        record,
        "{text}"
    );
    let running = json!({"namespace": "guest", "name": "slow", "activationId": id(9), "start": T0,
                         "annotations": [], "version": "0.0.1", "publish": false});
    let summary: ActivationSummary = serde_json::from_value(running.clone()).unwrap();
    assert_eq!(
        (summary.end, summary.duration, summary.status_code),
        (None, None, None)
    );
    assert_eq!(serde_json::to_value(&summary).unwrap().get("end"), None);
    for code in 0..4 {
        let text = ActivationStatus::from_code(code).as_str();
        assert_ne!(
            ActivationStatus::from_code(code),
            ActivationStatus::Unknown,
            "{text}"
        );
    }
}

#[tokio::test]
async fn the_official_javascript_client_reads_the_emulator() {
    let client = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/js/node_modules/openwhisk"
    );
    let node = std::process::Command::new("node").arg("--version").output();
    let present = node.is_ok_and(|o| o.status.success()) && std::path::Path::new(client).is_dir();
    let missing = "node or the openwhisk package in tests/js (npm ci there) is missing";
    if !common::needs(
        "the_official_javascript_client_reads_the_emulator",
        present,
        missing,
    ) {
        return;
    }
    let emulator = Emulator::start(KEY).await;
    history(&emulator, 5);
    let mut dig = digitalocean_record();
    dig["namespace"] = json!("guest");
    emulator.add(dig.clone());
    let since = T0 + 2000;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js/activations.js");
    let output = within(
        tokio::process::Command::new("node")
            .args([
                script,
                &emulator.url(),
                KEY,
                &id(3),
                "hello",
                &since.to_string(),
            ])
            .output(),
    )
    .await
    .expect("node runs (.ci/run installs the openwhisk package in tests/js)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: Value = serde_json::from_slice(&output.stdout).unwrap();

    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["activationId"].as_str().unwrap().to_owned())
            .collect()
    };
    // Newest first: the DigitalOcean record started in 2022, before all of these.
    let newest_first: Vec<String> = (0..5).rev().map(id).collect();
    let mut all = newest_first.clone();
    all.push(dig["activationId"].as_str().unwrap().to_owned());
    assert_eq!(ids(&out["list"]), all);
    assert!(
        out["list"][0].get("logs").is_none(),
        "a summary has no logs"
    );
    assert_eq!(out["list"][0]["statusCode"], 0);
    assert_eq!(ids(&out["named"]), newest_first);
    assert_eq!(
        out["named"][1]["logs"],
        record(
            3,
            "hello",
            T0 + 3000,
            &[
                line(T0 + 3001, "stdout", "a3"),
                line(T0 + 3002, "stderr", "b3")
            ]
        )["logs"]
    );
    assert_eq!(ids(&out["paged"]), newest_first[1..3]);
    assert_eq!(ids(&out["since"]), newest_first[..3]);
    let stored = emulator_record(&emulator, 3).await;
    assert_eq!(out["get"], stored);
    assert_eq!(out["logs"], json!({"logs": stored["logs"]}));
    assert_eq!(out["result"], stored["response"]);
    assert_eq!(out["wrongKey"], 401);
}

async fn emulator_record(emulator: &Emulator, n: u64) -> Value {
    serde_json::to_value(client(emulator).get(&id(n)).await.unwrap()).unwrap()
}

#[tokio::test]
async fn tail_since_and_a_whole_history_over_http() {
    let emulator = Emulator::start(KEY).await;
    history(&emulator, 450); // more than two pages
    let addr = provider(&emulator, Duration::from_secs(10)).await;

    let all = messages(addr, "name=hello").await;
    assert_eq!(all.len(), 900);
    let expected: Vec<String> = (0..450)
        .flat_map(|n| [format!("a{n}"), format!("b{n}")])
        .collect();
    assert_eq!(texts(&all), expected, "every line once, oldest first");
    let first = &all[1];
    assert_eq!(
        (first.name.as_str(), first.namespace.as_str()),
        ("hello", "guest")
    );
    assert_eq!(first.instance.as_str(), id(0));
    assert_eq!(
        (first.timestamp, first.stream),
        (at(T0 + 2), Some(OutputStream::Stderr))
    );

    let tail = messages(addr, "name=hello&tail=3").await;
    assert_eq!(texts(&tail), ["b448", "a449", "b449"]);

    let since = at(T0 + 447_001).to_rfc3339();
    let since = messages(addr, &format!("name=hello&since={since}")).await;
    assert_eq!(
        texts(&since),
        ["a447", "b447", "a448", "b448", "a449", "b449"]
    );

    let both = at(T0 + 100_002).to_rfc3339();
    let both = messages(addr, &format!("name=hello&since={both}&tail=1000")).await;
    assert_eq!(both.len(), 699);
    assert_eq!(both[0].text, "b100");
}

#[tokio::test]
async fn a_whole_history_where_hundreds_started_in_one_millisecond() {
    let emulator = Emulator::start(KEY).await;
    // 100 a second apart, 500 in one busy millisecond, 100 more: the busy one spans
    // what would be three windows of 200.
    let starts = (0..100)
        .map(|n| T0 + 1000 * n)
        .chain(std::iter::repeat_n(T0 + 100_000, 500))
        .chain((0..100).map(|n| T0 + 101_000 + 1000 * n));
    for (n, start) in starts.enumerate() {
        let text = format!("line {n}");
        emulator.add(record(
            n as u64,
            "hello",
            start,
            &[line(start, "stdout", &text)],
        ));
    }
    let addr = provider(&emulator, Duration::from_secs(10)).await;

    let all = messages(addr, "name=hello").await;
    let expected: Vec<String> = (0..700).map(|n| format!("line {n}")).collect();
    assert_eq!(texts(&all), expected, "every line once, in order of start");
}

#[tokio::test]
async fn a_tail_reads_only_the_pages_it_needs() {
    let emulator = Emulator::start(KEY).await;
    history(&emulator, 1000);
    let addr = provider(&emulator, Duration::from_secs(10)).await;
    emulator.forget_requests();
    let tail = messages(addr, "name=hello&tail=5").await;
    assert_eq!(texts(&tail), ["b997", "a998", "b998", "a999", "b999"]);
    let requests = emulator.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(
        requests[0].contains("limit=200") && requests[0].contains("docs=true"),
        "{requests:?}"
    );

    // 450 lines need 225 activations of two lines: two pages, no third.
    emulator.forget_requests();
    assert_eq!(messages(addr, "name=hello&tail=450").await.len(), 450);
    assert_eq!(emulator.requests().len(), 2, "{:?}", emulator.requests());
}

#[tokio::test]
async fn one_activation_by_instance() {
    let emulator = Emulator::start(KEY).await;
    history(&emulator, 3);
    emulator.add(record(7, "other", T0, &[line(T0, "stdout", "not hello")]));
    let addr = provider(&emulator, Duration::from_secs(10)).await;
    emulator.forget_requests();
    let one = messages(addr, &format!("name=hello&instance={}", id(1))).await;
    assert_eq!(texts(&one), ["a1", "b1"]);
    assert_eq!(
        emulator.requests(),
        [format!("/api/v1/namespaces/_/activations/{}?", id(1))]
    );
    // With follow it still ends: a listed activation's logs are complete.
    let one = messages(addr, &format!("name=hello&instance={}&follow=true", id(1))).await;
    assert_eq!(texts(&one), ["a1", "b1"]);

    let (status, body) = status_and_error(addr, &format!("name=hello&instance={}", id(7))).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = status_and_error(addr, &format!("name=hello&instance={}", id(99))).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = status_and_error(addr, "name=hello&instance=not-an-id").await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("32 hexadecimal"), "{body}");
}

#[tokio::test]
async fn the_forms_of_recorded_lines() {
    let emulator = Emulator::start(KEY).await;
    let sentinel = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX";
    let notices = [
        "Logs were truncated because the total bytes size exceeds the limit of 10485760 bytes.",
        "There was an issue while collecting your logs. Data might be missing.",
        "The action did not initialize or run as expected. Log data might be missing.",
    ];
    emulator.add(record(
        1,
        "hello",
        T0,
        &[
            "2024-02-17T20:00:00.001Z       stdout: padded".to_owned(),
            "2024-02-17T20:00:00.002123456Z stderr: to stderr".to_owned(),
            format!("2024-02-17T20:00:00.003Z       stdout: {sentinel}"),
            format!("2024-02-17T20:00:00.003Z       stderr: {sentinel}"),
            "no time at all".to_owned(),
            format!("2024-02-17T20:00:00.004Z       stderr: {}", notices[0]),
            format!("2024-02-17T20:00:00.005Z       stderr: {}", notices[1]),
            format!("2024-02-17T20:00:00.006Z       stderr: {}", notices[2]),
        ],
    ));
    // Inline logs empty, `/logs` answering: the log store keeps them elsewhere.
    emulator.add(record(2, "hello", T0 + 10, &[]));
    emulator.set_logs_route(&id(2), vec![line(T0 + 11, "stdout", "only at /logs")]);
    emulator.add(record(
        3,
        "hello",
        T0 + 20,
        &["Logs are not available.".to_owned()],
    ));
    emulator.set_logs_route(&id(3), vec![line(T0 + 21, "stdout", "also at /logs")]);
    let addr = provider(&emulator, Duration::from_secs(10)).await;

    let all = messages(addr, "name=hello").await;
    assert_eq!(
        texts(&all),
        [
            "padded",
            "to stderr",
            "no time at all",
            notices[0],
            notices[1],
            notices[2],
            "only at /logs",
            "also at /logs"
        ]
    );
    assert!(all.iter().all(|m| !m.text.contains(sentinel)));
    assert_eq!(all[1].stream, Some(OutputStream::Stderr));
    assert_eq!(
        all[1].timestamp,
        "2024-02-17T20:00:00.002123456Z"
            .parse::<DateTime<Utc>>()
            .unwrap()
    );
    assert_eq!(
        (all[2].timestamp, all[2].stream),
        (at(T0), None),
        "the activation's start"
    );
    assert!(all[3..6]
        .iter()
        .all(|m| m.stream == Some(OutputStream::Stderr)));
}

#[tokio::test]
async fn packaged_and_odd_names() {
    let emulator = Emulator::start(KEY).await;
    emulator.add(record(
        1,
        "sample/hello",
        T0,
        &[line(T0 + 1, "stdout", "packaged")],
    ));
    emulator.add(record(2, "hello", T0, &[line(T0 + 1, "stdout", "plain")]));
    emulator.add(record(
        3,
        "my pkg/say@home",
        T0,
        &[line(T0 + 1, "stdout", "odd")],
    ));
    let addr = provider(&emulator, Duration::from_secs(10)).await;

    let packaged = messages(addr, "name=sample%2Fhello").await;
    assert_eq!(texts(&packaged), ["packaged"]);
    assert_eq!(packaged[0].name.as_str(), "sample/hello");
    assert_eq!(
        texts(&messages(addr, "name=%2Fguest%2Fsample%2Fhello").await),
        ["packaged"]
    );
    assert_eq!(
        texts(&messages(addr, "name=hello&namespace=guest").await),
        ["plain"]
    );
    assert_eq!(
        texts(&messages(addr, "name=my+pkg%2Fsay%40home").await),
        ["odd"]
    );

    for bad in ["a%2Fb%2Fc", "%2Fguest", "a%2F", "a%3Bb"] {
        let (status, body) = status_and_error(addr, &format!("name={bad}")).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    let (status, body) = status_and_error(addr, "name=nosuch").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no action \\\"nosuch\\\""), "{body}");
    let (status, _) = status_and_error(addr, "name=hello&namespace=elsewhere").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn follow_sends_each_activation_once_as_it_finishes() {
    let emulator = Emulator::start(KEY).await;
    let now = Utc::now().timestamp_millis();
    emulator.add(record(
        1,
        "hello",
        now - 5000,
        &[line(now - 4999, "stdout", "history")],
    ));
    let addr = provider(&emulator, Duration::from_millis(2500)).await;
    let (response, mut lines) = get(addr, "/system/logs?name=hello&follow=true").await;
    assert_eq!(response.status(), 200);
    let first: Message = serde_json::from_str(&lines.next().await.unwrap().unwrap()).unwrap();
    assert_eq!(first.text, "history");

    // A new activation, then one that started before it but finished later, then a
    // neighbour's: the first two arrive once each, the third never.
    emulator.add(record(
        2,
        "hello",
        now + 10,
        &[line(now + 11, "stdout", "new")],
    ));
    let second: Message = serde_json::from_str(&lines.next().await.unwrap().unwrap()).unwrap();
    assert_eq!(
        (second.text.as_str(), second.instance.as_str()),
        ("new", id(2).as_str())
    );
    emulator.add(record(
        3,
        "hello",
        now - 100,
        &[line(now + 500, "stdout", "late")],
    ));
    emulator.add(record(
        4,
        "other",
        now + 20,
        &[line(now + 21, "stdout", "neighbour")],
    ));
    let third: Message = serde_json::from_str(&lines.next().await.unwrap().unwrap()).unwrap();
    assert_eq!(third.text, "late");
    // Then the deadline ends the stream cleanly, nothing repeated.
    assert_eq!(lines.rest().await.unwrap(), Vec::<String>::new());
}

#[tokio::test]
async fn follow_polls_until_the_deadline_and_stops_when_the_client_leaves() {
    let emulator = Emulator::start(KEY).await;
    history(&emulator, 1);
    let addr = provider(&emulator, Duration::from_secs(30)).await;
    let (_, mut lines) = get(addr, "/system/logs?name=hello&follow=true&tail=1").await;
    assert_eq!(lines.next_message().await.text, "b0");
    // Wait for a few polls, then leave: the polls stop.
    while emulator.requests().len() < 6 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(lines);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let after_leaving = emulator.requests().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        emulator.requests().len(),
        after_leaving,
        "polling went on after the client left"
    );
}

#[tokio::test]
async fn throttling_is_waited_out_and_a_storm_breaks_the_stream() {
    let emulator = Emulator::start(KEY).await;
    history(&emulator, 2);
    let addr = provider(&emulator, Duration::from_secs(20)).await;

    emulator.fail_next(1, 429, Some(1));
    assert_eq!(
        texts(&messages(addr, "name=hello&tail=2").await),
        ["a1", "b1"]
    );
    emulator.fail_next(2, 503, None);
    assert_eq!(messages(addr, "name=hello").await.len(), 4);

    // A follow whose polls fail for longer than give_up_after (2 s) ends broken.
    let (response, mut lines) = get(addr, "/system/logs?name=hello&follow=true&tail=1").await;
    assert_eq!(response.status(), 200);
    assert_eq!(lines.next_message().await.text, "b1");
    emulator.fail_next(1000, 500, None);
    assert!(
        lines.rest().await.is_err(),
        "a follow that gave up must look broken"
    );

    // Before the 200, the same storm is a 503 that says what happened.
    let (status, body) = status_and_error(addr, "name=hello").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("gave up"), "{body}");
}

#[tokio::test]
async fn a_refused_key_an_unreachable_host_and_bad_answers() {
    let emulator = Emulator::start(KEY).await;
    history(&emulator, 1);
    let wrong = OpenWhiskClient::builder(emulator.url(), "23bc46b1:wrong-secret-value")
        .build()
        .unwrap();
    let addr = common::serve(LogHandler::new(
        OpenWhiskRequester::new(wrong),
        Duration::from_secs(5),
    ))
    .await;
    let (status, body) = status_and_error(addr, "name=hello").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("refused the API key"), "{body}");
    assert!(!body.contains("wrong-secret-value"), "{body}");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let gone = OpenWhiskClient::builder(&nowhere, KEY).build().unwrap();
    let addr = common::serve(LogHandler::new(
        OpenWhiskRequester::new(gone),
        Duration::from_secs(5),
    ))
    .await;
    for query in ["name=hello", "name=hello&follow=true", "name=hello&tail=5"] {
        let (status, body) = status_and_error(addr, query).await;
        assert_eq!(status, 503, "{query}: {body}");
        assert!(
            body.contains("cannot reach the OpenWhisk API"),
            "{query}: {body}"
        );
    }

    let addr = provider(&emulator, Duration::from_secs(5)).await;
    emulator.answer_next(r#"{"not": "an array"}"#);
    let (status, body) = status_and_error(addr, "name=hello&tail=1").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("cannot be read"), "{body}");
    emulator.answer_next(r#"[{"namespace": "guest", "name": "hello"}]"#);
    let (status, body) = status_and_error(addr, "name=hello&tail=1").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("missing field"), "{body}");
    // What was stored is still served.
    assert_eq!(messages(addr, "name=hello&tail=1").await.len(), 1);
}

#[tokio::test]
async fn the_client_says_what_failed_in_its_own_error() {
    let emulator = Emulator::start(KEY).await;
    history(&emulator, 1);
    let client = client(&emulator);

    // Throttling and a failing API, each with the wait it asked for; several calls at
    // once, each answered with its own fault.
    emulator.fail_next(2, 429, Some(7));
    emulator.fail_next(1, 503, None);
    let options = ListOptions::new();
    let calls = (0..3).map(|_| client.list(&options));
    let mut errors: Vec<OpenWhiskError> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.expect_err("every call was given a fault"))
        .collect();
    errors.sort_by_key(|e| e.status().map(|s| s.as_u16()));
    let [throttled_a, throttled_b, failed] = &errors[..] else {
        panic!("{errors:?}")
    };
    for throttled in [throttled_a, throttled_b] {
        assert!(
            matches!(throttled, OpenWhiskError::Throttled { .. }),
            "{throttled:?}"
        );
        assert_eq!(throttled.retry_after(), Some(Duration::from_secs(7)));
    }
    assert!(
        matches!(failed, OpenWhiskError::Failed { .. }),
        "{failed:?}"
    );
    assert_eq!(failed.status().map(|s| s.as_u16()), Some(503));
    assert_eq!(failed.retry_after(), None);
    // As the crate's error, a provider answers each with a 503.
    let error = faas_logs::Error::from(errors.pop().unwrap());
    assert_eq!(error.status().as_u16(), 503);

    // Not found, and a refused key: no wait, and the status the API gave.
    let missing = client.get("0000000000000000").await.unwrap_err();
    assert!(
        matches!(missing, OpenWhiskError::NotFound { .. }),
        "{missing:?}"
    );
    assert_eq!(faas_logs::Error::from(missing).status().as_u16(), 404);
    let wrong = OpenWhiskClient::builder(emulator.url(), "23bc46b1:wrong-secret-value")
        .build()
        .unwrap();
    let refused = wrong.list(&options).await.unwrap_err();
    assert_eq!(refused.status().map(|s| s.as_u16()), Some(401));
    assert!(
        refused.to_string().contains("refused the API key"),
        "{refused}"
    );

    // An answer that is not what the API gives says where it broke.
    emulator.answer_next(r#"{"not": "an array"}"#);
    let unreadable = client.list(&options).await.unwrap_err();
    assert!(
        matches!(unreadable, OpenWhiskError::Unreadable { .. }),
        "{unreadable:?}"
    );

    // Nobody listening, and settings that cannot work.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let gone = OpenWhiskClient::builder(&nowhere, KEY).build().unwrap();
    let unreachable = gone.list(&options).await.unwrap_err();
    assert!(
        matches!(unreachable, OpenWhiskError::Unreachable { .. }),
        "{unreachable:?}"
    );
    assert!(std::error::Error::source(&unreachable).is_some());
    let no_key = OpenWhiskClient::builder(emulator.url(), "no-colon").build();
    assert!(
        matches!(
            no_key,
            Err(OpenWhiskError::InvalidSetting {
                setting: "auth",
                ..
            })
        ),
        "{no_key:?}"
    );

    // Every call above left the stored activation as it was.
    assert_eq!(client.list(&options).await.unwrap().len(), 1);
}

#[tokio::test]
async fn huge_lines_and_huge_activations() {
    let emulator = Emulator::start(KEY).await;
    let big = "x".repeat(10 << 20);
    emulator.add(record(1, "big", T0, &[line(T0, "stdout", &big)]));
    let many: Vec<String> = (0..100_000)
        .map(|i| line(T0 + 1, "stdout", &format!("l{i}")))
        .collect();
    emulator.add(record(2, "many", T0, &many));
    let addr = provider(&emulator, Duration::from_secs(60)).await;
    let got = messages(addr, "name=big").await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].text.len(), big.len());
    let got = messages(addr, "name=many").await;
    assert_eq!(got.len(), 100_000);
    assert_eq!(got[99_999].text, "l99999");
    assert_eq!(
        texts(&messages(addr, "name=many&tail=2").await),
        ["l99998", "l99999"]
    );
}

// ---- the commands ----

fn faas_logs(emulator: &Emulator, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_faas-logs"))
        .args(args)
        .env("TZ", "UTC")
        .env("HOME", "/nonexistent")
        .env("__OW_API_HOST", emulator.url())
        .env("__OW_API_KEY", KEY)
        .output()
        .unwrap()
}

fn stdout(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[tokio::test]
async fn activations_list_prints_wsk_s_table() {
    let emulator = Emulator::start(KEY).await;
    history(&emulator, 2);
    let mut failed = record(5, "sample/hello", T0 + 61_234, &[]);
    failed["response"]["status"] = json!("action developer error");
    failed["end"] = json!(T0 + 61_234 + 1500);
    failed["duration"] = json!(1500);
    failed["annotations"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "initTime", "value": 30}));
    emulator.add(failed);
    let emulator2 = emulator.clone();
    let out = tokio::task::spawn_blocking(move || {
        stdout(&faas_logs(&emulator2, &["activations", "list"]))
    })
    .await
    .unwrap();
    let expected = format!(
        "Datetime            Activation ID                    Kind      Start Duration   Status          Entity\n\
         2024-02-17 20:01:01 {} nodejs:20 cold  1.5s       developer error guest/hello:0.0.1\n\
         2024-02-17 20:00:01 {} nodejs:20 warm  40ms       success         guest/hello:0.0.1\n\
         2024-02-17 20:00:00 {} nodejs:20 warm  40ms       success         guest/hello:0.0.1\n",
        id(5), id(1), id(0)
    );
    assert_eq!(out, expected);

    let emulator2 = emulator.clone();
    let (limited, named, full) = tokio::task::spawn_blocking(move || {
        (
            stdout(&faas_logs(
                &emulator2,
                &["activation", "list", "--limit", "1", "--skip", "1"],
            )),
            stdout(&faas_logs(&emulator2, &["actv", "list", "sample/hello"])),
            stdout(&faas_logs(
                &emulator2,
                &[
                    "activations",
                    "list",
                    "hello",
                    "--full",
                    "--since",
                    &(T0 + 1000).to_string(),
                ],
            )),
        )
    })
    .await
    .unwrap();
    assert_eq!(limited.lines().count(), 2);
    assert!(limited.contains(&id(1)), "{limited}");
    assert_eq!(named.lines().count(), 2);
    assert!(named.contains(&id(5)), "{named}");
    assert!(
        full.starts_with("activations\n{\n    \"namespace\": \"guest\","),
        "{full}"
    );
    assert!(full.contains("b1") && !full.contains("b0"), "{full}");
}

#[tokio::test]
async fn activations_get_logs_and_result() {
    let emulator = Emulator::start(KEY).await;
    let mut dig = digitalocean_record();
    dig["namespace"] = json!("guest");
    emulator.add(dig);
    emulator.add(record(
        1,
        "hello",
        T0,
        &[
            "2019-10-11T19:08:57.298Z       stdout: padded".into(),
            "bare".into(),
        ],
    ));
    let e = emulator.clone();
    let (get, last, logs, strip, result) = tokio::task::spawn_blocking(move || {
        (
            stdout(&faas_logs(
                &e,
                &["activations", "get", "c15d4bacedfa4bab9d4bacedfa2bcbec"],
            )),
            stdout(&faas_logs(&e, &["activations", "get", "--last"])),
            stdout(&faas_logs(&e, &["activations", "logs", "--last"])),
            stdout(&faas_logs(&e, &["activations", "logs", &id(1), "--strip"])),
            stdout(&faas_logs(
                &e,
                &["activations", "result", "c15d4bacedfa4bab9d4bacedfa2bcbec"],
            )),
        )
    })
    .await
    .unwrap();
    let (ok, json) = get.split_once('\n').unwrap();
    assert_eq!(ok, "ok: got activation c15d4bacedfa4bab9d4bacedfa2bcbec");
    let printed: Value = serde_json::from_str(json).unwrap();
    // As wsk prints it: its Go client's fields, in that struct's order, zero values
    // where the record has none (a top-level and a response `statusCode`), and the
    // fields the struct does not have (the response's `size`) left out.
    let mut expected = digitalocean_record();
    expected["namespace"] = json!("guest");
    expected["statusCode"] = json!(0);
    expected["response"]["statusCode"] = json!(0);
    expected["response"].as_object_mut().unwrap().remove("size");
    assert_eq!(printed, expected);
    let keys_at = |indent: &str| -> Vec<String> {
        json.lines()
            .filter_map(|l| l.strip_prefix(indent))
            .filter(|l| l.starts_with('"'))
            .map(|l| l.split('"').nth(1).unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        keys_at("    "),
        [
            "namespace",
            "name",
            "version",
            "subject",
            "activationId",
            "start",
            "end",
            "duration",
            "statusCode",
            "response",
            "logs",
            "annotations",
            "publish"
        ]
    );
    assert_eq!(
        &keys_at("        ")[..4],
        ["status", "statusCode", "success", "result"]
    );
    assert!(
        json.contains("\n    \"activationId\""),
        "four spaces, as wsk: {json}"
    );
    assert!(
        last.starts_with(&format!("ok: got activation {}", id(1))),
        "{last}"
    );
    assert_eq!(
        logs,
        "2019-10-11T19:08:57.298Z       stdout: padded\nbare\n"
    );
    assert_eq!(strip, "padded\nbare\n");
    assert_eq!(result, "{\n    \"body\": \"Hello sammy!\"\n}\n");

    let e = emulator.clone();
    let (missing, wrong_key) = tokio::task::spawn_blocking(move || {
        let missing = faas_logs(&e, &["activations", "logs", &id(42)]);
        let wrong = std::process::Command::new(env!("CARGO_BIN_EXE_faas-logs"))
            .args([
                "activations",
                "list",
                "--apihost",
                &e.url(),
                "--auth",
                "x:secret-in-flag",
            ])
            .env("HOME", "/nonexistent")
            .output()
            .unwrap();
        (missing, wrong)
    })
    .await
    .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr)
        .contains(&format!("activation {} was not found", id(42))));
    let stderr = String::from_utf8_lossy(&wrong_key.stderr);
    assert_eq!(wrong_key.status.code(), Some(1));
    assert!(
        stderr.contains("refused the API key") && !stderr.contains("secret-in-flag"),
        "{stderr}"
    );
}

#[tokio::test]
async fn credentials_come_from_wskprops() {
    let emulator = Emulator::start(KEY).await;
    history(&emulator, 1);
    let home = std::env::temp_dir().join(format!("faas-logs-wsk-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join(".wskprops"),
        format!("APIHOST={}\nAUTH={KEY}\n", emulator.url()),
    )
    .unwrap();
    let home2 = home.clone();
    let (by_file, nothing) = tokio::task::spawn_blocking(move || {
        let run = |home: &std::path::Path| {
            std::process::Command::new(env!("CARGO_BIN_EXE_faas-logs"))
                .args(["activations", "logs", "--last"])
                .env("HOME", home)
                .env_remove("__OW_API_HOST")
                .env_remove("__OW_API_KEY")
                .env_remove("WSK_CONFIG_FILE")
                .output()
                .unwrap()
        };
        (run(&home2), run(std::path::Path::new("/nonexistent")))
    })
    .await
    .unwrap();
    std::fs::remove_dir_all(&home).unwrap();
    assert_eq!(
        stdout(&by_file),
        format!(
            "{}\n{}\n",
            line(T0 + 1, "stdout", "a0"),
            line(T0 + 2, "stderr", "b0")
        )
    );
    assert_eq!(nothing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("~/.wskprops"));
}

#[tokio::test]
async fn activations_poll_prints_each_new_activation_once() {
    let emulator = Emulator::start(KEY).await;
    let now = Utc::now().timestamp_millis();
    emulator.add(record(
        1,
        "hello",
        now - 60_000,
        &[line(now - 60_000, "stdout", "old")],
    ));
    emulator.add(record(
        2,
        "hello",
        now - 1000,
        &[line(now - 999, "stdout", "recent")],
    ));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_faas-logs"))
        .args([
            "activations",
            "poll",
            "hello",
            "--since-seconds",
            "30",
            "--interval",
            "1",
            "--exit",
            "3",
        ])
        .env("__OW_API_HOST", emulator.url())
        .env("__OW_API_KEY", KEY)
        .env("HOME", "/nonexistent")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first poll, then add one that started earlier than the newest.
    while emulator.requests().len() < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    emulator.add(record(
        3,
        "hello",
        now - 2000,
        &[
            line(now + 10, "stdout", "late"),
            line(now + 11, "stderr", "late 2"),
        ],
    ));
    let output = tokio::time::timeout(Duration::from_secs(10), async {
        let status = child.wait().await.unwrap();
        let mut out = String::new();
        use tokio::io::AsyncReadExt;
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .await
            .unwrap();
        (status, out)
    })
    .await
    .unwrap();
    assert!(output.0.success());
    let expected = format!(
        "Enter Ctrl-c to exit.\nPolling for activation logs\n\
         \nActivation: 'hello' ({})\n{}\n\
         \nActivation: 'hello' ({})\n{}\n{}\n",
        id(2),
        line(now - 999, "stdout", "recent"),
        id(3),
        line(now + 10, "stdout", "late"),
        line(now + 11, "stderr", "late 2"),
    );
    assert_eq!(output.1, expected);
}

#[tokio::test]
async fn the_provider_binary_serves_an_openwhisk_deployment() {
    let emulator = Emulator::start(KEY).await;
    emulator.add(record(
        1,
        "sample/hello",
        T0,
        &[line(T0 + 1, "stdout", "from the binary")],
    ));
    let url = emulator.url();
    let example = Provider::start_env(
        "openwhisk",
        &["--listen", "127.0.0.1:0", "--apihost", &url],
        &[],
        std::process::Stdio::inherit(),
        &[("__OW_API_KEY", KEY), ("HOME", "/nonexistent")],
    );
    let got = messages(example.addr, "name=sample%2Fhello&tail=10").await;
    assert_eq!(texts(&got), ["from the binary"]);
    let (response, _) = get(example.addr, "/healthz").await;
    assert_eq!(response.status(), 200);
    // The viewer and its function list.
    let (status, page) = get_whole(example.addr, "/").await;
    assert_eq!(
        (status, page.as_str()),
        (200, faas_logs::server::VIEWER_HTML)
    );
    let (status, body) = get_whole(example.addr, faas_logs::server::FUNCTIONS_PATH).await;
    assert_eq!(status, 200, "{body}");
    let listed: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        listed,
        json!({"functions": [{"namespace": "", "name": "sample/hello"}]})
    );
}

#[tokio::test]
async fn the_function_list_names_every_action_as_requests_name_it() {
    let emulator = Emulator::start(KEY).await;
    emulator.add(record(1, "sample/hello", T0, &[]));
    emulator.add(record(2, "hello", T0, &[]));
    for n in 0..250 {
        emulator.add_action(&format!("bulk/a{n:03}"));
    }
    let addr = provider(&emulator, Duration::from_secs(10)).await;
    let requester = OpenWhiskRequester::new(client(&emulator));
    let listed = faas_logs::Requester::functions(&requester)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listed.len(), 252, "past one page of 200");
    let names: Vec<&str> = listed.iter().map(|f| f.name.as_str()).collect();
    assert!(
        names.contains(&"sample/hello") && names.contains(&"hello") && names.contains(&"bulk/a249")
    );
    // Each name opens as it is listed.
    assert_eq!(messages(addr, "name=bulk%2Fa007").await.len(), 0);
}

#[tokio::test]
async fn a_tail_does_not_count_sentinels_as_lines() {
    let emulator = Emulator::start(KEY).await;
    let sentinel = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX";
    emulator.add(record(1, "hello", T0, &[line(T0 + 1, "stdout", "older")]));
    emulator.add(record(
        2,
        "hello",
        T0 + 10,
        &[
            line(T0 + 11, "stdout", "newer"),
            line(T0 + 12, "stdout", sentinel),
            line(T0 + 12, "stderr", sentinel),
        ],
    ));
    let addr = provider(&emulator, Duration::from_secs(10)).await;
    assert_eq!(
        texts(&messages(addr, "name=hello&tail=2").await),
        ["older", "newer"]
    );
    let since = at(T0).to_rfc3339();
    let query = format!("name=hello&tail=2&since={since}");
    assert_eq!(texts(&messages(addr, &query).await), ["older", "newer"]);
}

#[tokio::test]
async fn activations_poll_since_minutes_prints_activations_older_than_its_overlap() {
    let emulator = Emulator::start(KEY).await;
    let now = Utc::now().timestamp_millis();
    // Twelve minutes old: older than the 5-minute window each later poll looks at.
    let then = now - 12 * 60_000;
    emulator.add(record(
        1,
        "hello",
        then,
        &[line(then, "stdout", "twelve minutes ago")],
    ));
    emulator.add(record(
        2,
        "hello",
        now - 31 * 60_000,
        &[line(now, "stdout", "too old")],
    ));
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_faas-logs"))
        .args([
            "activations",
            "poll",
            "hello",
            "--since-minutes",
            "30",
            "--interval",
            "1",
            "--exit",
            "1",
        ])
        .env("__OW_API_HOST", emulator.url())
        .env("__OW_API_KEY", KEY)
        .env("HOME", "/nonexistent")
        .output();
    let output = tokio::time::timeout(Duration::from_secs(10), output)
        .await
        .unwrap()
        .unwrap();
    assert!(output.status.success());
    let expected = format!(
        "Enter Ctrl-c to exit.\nPolling for activation logs\n\
         \nActivation: 'hello' ({})\n{}\n",
        id(1),
        line(then, "stdout", "twelve minutes ago"),
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), expected);
}

#[tokio::test]
async fn an_api_without_a_list_of_actions_is_a_backend_that_cannot_list() {
    let emulator = Emulator::start(KEY).await;
    emulator.add(record(1, "hello", T0, &[line(T0, "stdout", "hi")]));
    // The actions list answers 404 (a deployment that serves activations only): the
    // function list is the null that a backend that cannot list answers, not a 404.
    let handler = LogHandler::new(
        OpenWhiskRequester::new(client(&emulator)),
        Duration::from_secs(10),
    );
    emulator.fail_next(1, 404, None);
    let response = handler.functions().await;
    assert_eq!(response.status(), 200);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(body, r#"{"functions":null}"#);
    // A missing activation says so in a sentence.
    let client = client(&emulator);
    let missing = client.get(&id(9)).await.unwrap_err();
    assert_eq!(
        missing.to_string(),
        format!("activation {} was not found on the OpenWhisk API", id(9))
    );
}
