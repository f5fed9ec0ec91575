//! OpenTelemetry logs in, over real HTTP: the official Python SDK's exporters (protobuf
//! and JSON, gzip or not) into `faas-logs serve`, read back through `/system/logs` by a
//! follower open before they send; the protocol's own JSON example; hostile bodies; and
//! a sink that fails, with the SDK and concurrent exporters sending again until every
//! record is stored, once.

use crate::common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use faas_logs::otlp::OtlpReceiver;
use faas_logs::server::LogHandler;
use faas_logs::store::{LogStore, StoreLimits};
use faas_logs::{async_trait, Batch, Error, LogSink, Message, OutputStream};
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue, KeyValueList};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;
use serde_json::json;

const PROTOBUF: &str = "application/x-protobuf";

/// A sink over a store that refuses (as unavailable) every `fail_every`-th batch whole,
/// before storing any of it, and counts the batches it was given (from a number set
/// at the start, which chooses the first refused).
struct Flaky {
    store: LogStore,
    fail_every: usize,
    batches: AtomicUsize,
}

#[async_trait]
impl LogSink for Flaky {
    async fn store(&self, batch: Batch) -> Vec<Result<(), Error>> {
        let n = self.batches.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fail_every > 0 && n % self.fail_every == 0 {
            let refused = || Err(Error::unavailable("the sink is down for a moment"));
            return batch.messages.iter().map(|_| refused()).collect();
        }
        self.store.store(batch).await
    }
}

/// A server with `POST /v1/logs` (a receiver of `max_request` bytes into a [`Flaky`]
/// sink) and `GET /system/logs` over the same store.
async fn start_receiver(
    fail_every: usize,
    batches_before: usize,
    max_request: usize,
) -> (SocketAddr, Arc<Flaky>) {
    let store = LogStore::builder()
        .default_namespace("openfaas-fn")
        .limits(StoreLimits {
            max_messages: 200_000,
            max_bytes: 256 << 20,
            ..StoreLimits::default()
        })
        .build();
    let flaky = Arc::new(Flaky {
        store: store.clone(),
        fail_every,
        batches: AtomicUsize::new(batches_before),
    });
    let receiver = OtlpReceiver::new(flaky.clone())
        .with_max_request_bytes(max_request)
        .with_max_record_bytes(64 << 10);
    let handler = LogHandler::new(store, Duration::from_secs(30));
    let addr = serve_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let (receiver, handler) = (receiver.clone(), handler.clone());
        async move {
            if req.uri().path() == "/v1/logs" {
                receiver.handle(req).await
            } else {
                handler.handle(req).await
            }
        }
    })
    .await;
    (addr, flaky)
}

/// `POST /v1/logs`: the status, the content type and the body.
async fn post(
    addr: SocketAddr,
    content_type: &str,
    encoding: Option<&str>,
    body: &[u8],
) -> (u16, String, Bytes) {
    let mut headers = vec![("content-type", content_type)];
    if let Some(encoding) = encoding {
        headers.push(("content-encoding", encoding));
    }
    let mut conn = Connection::open(addr).await;
    let response = conn.send_with("POST", "/v1/logs", &headers, body).await;
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = within(response.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    (status, kind, body)
}

/// The `message` of a protobuf `google.rpc.Status` (field 2), read by hand: the test
/// checks the bytes the receiver wrote, not its own type.
fn status_message(body: &[u8]) -> String {
    #[derive(Clone, PartialEq, prost::Message)]
    struct Status {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
    }
    Status::decode(body).expect("a Status").message
}

fn text(s: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(s.to_owned())),
    })
}

fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: text(value),
        ..Default::default()
    }
}

/// A request of one resource (with `resource` attributes) holding `records`.
fn request(resource: Vec<KeyValue>, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Record `i`: `text`, at `base()` plus `i` microseconds, INFO.
fn record(i: u64, body: &str) -> LogRecord {
    let base = base().timestamp_nanos_opt().unwrap() as u64;
    LogRecord {
        time_unix_nano: base + i * 1000,
        severity_number: 9,
        body: text(body),
        ..Default::default()
    }
}

/// Every line of function `name` in the store behind `addr`.
async fn history(addr: SocketAddr, name: &str) -> Vec<Message> {
    let (response, mut lines) = get(addr, &format!("/system/logs?name={name}")).await;
    assert_eq!(response.status(), 200, "{name}");
    lines.messages().await
}

/// Runs `tests/python/emit.py` with `args`; its stdout and stderr. Python and the SDK
/// start slowly on a loaded machine: a minute at most.
async fn emit(python: &std::path::Path, args: &[&str]) -> (String, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/emit.py");
    let run = tokio::process::Command::new(python)
        .arg(script)
        .args(args)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the SDK's script ends within a minute")
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "emit.py {args:?} failed: {stderr}");
    (stdout, stderr)
}

/// A record logged in a span: its number, the trace and the span.
type Span = (usize, String, String);

/// What the script says it did: the records it logged in spans (`i -> (trace, span)`)
/// and how many records each export carried, by its result. (Its records' times are
/// read by [`times`].)
fn spans_and_exports(stdout: &str) -> (Vec<Span>, Vec<(String, usize)>) {
    let (mut spans, mut exports) = (Vec::new(), Vec::new());
    for line in stdout.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        match words[..] {
            ["time", _, _] => {}
            ["span", i, trace, span] => {
                spans.push((i.parse().unwrap(), trace.to_owned(), span.to_owned()))
            }
            ["export", result, n] => exports.push((result.to_owned(), n.parse().unwrap())),
            _ => panic!("unexpected line from emit.py: {line:?}"),
        }
    }
    (spans, exports)
}

/// The time of each record the script logged, in nanoseconds, by its number.
fn times(stdout: &str) -> Vec<i64> {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("time "))
        .map(|rest| rest.split_once(' ').unwrap().1.parse().unwrap())
        .collect()
}

/// Checks the lines of one run of emit.py (`count` records from `instance`).
fn check_run(lines: &[Message], instance: &str, count: usize, stdout: &str) {
    let (spans, exports) = spans_and_exports(stdout);
    assert!(
        exports.iter().all(|(result, _)| result == "SUCCESS"),
        "{stdout}"
    );
    assert_eq!(exports.iter().map(|(_, n)| n).sum::<usize>(), count);
    assert_eq!(lines.len(), count, "{instance}");
    let levels = [
        ("DEBUG", "DEBUG"),
        ("INFO", "INFO"),
        ("WARNING", "WARN"),
        ("ERROR", "ERROR"),
    ];
    for (i, line) in lines.iter().enumerate() {
        let (python_level, severity) = levels[i % levels.len()];
        assert_eq!(line.text, format!("record {i} at {python_level}"));
        assert_eq!((&*line.name, &*line.namespace), ("py", "openfaas-fn"));
        assert_eq!(
            &*line.instance, instance,
            "faas.instance before service.instance.id"
        );
        let details = line.details.as_deref().expect("details");
        assert_eq!(details.severity.as_deref(), Some(severity));
        let stream = if severity == "ERROR" {
            OutputStream::Stderr
        } else {
            OutputStream::Stdout
        };
        assert_eq!(line.stream, Some(stream));
        assert_eq!(details.attributes["order.id"], json!(i));
        let span = spans.iter().find(|(n, _, _)| *n == i);
        assert_eq!(
            (details.trace_id.as_deref(), details.span_id.as_deref()),
            span.map(|(_, t, s)| (t.as_str(), s.as_str()))
                .map_or((None, None), |(t, s)| (Some(t), Some(s))),
            "record {i}"
        );
    }
    let stamped: Vec<i64> = lines
        .iter()
        .map(|l| l.timestamp.timestamp_nanos_opt().unwrap())
        .collect();
    assert_eq!(
        stamped,
        times(stdout),
        "each record's own time, to the nanosecond"
    );
}

#[tokio::test]
async fn the_python_sdk_exports_protobuf_and_json_gzip_or_not_to_a_follower() {
    let Some(python) = crate::common::python("the_python_sdk_exports") else {
        return;
    };
    let provider = Provider::start("memory", &["--listen", "127.0.0.1:0"]);
    let endpoint = format!("http://{}/v1/logs", provider.addr);
    // The function is known from its first record on: a follower then waits for more.
    let (first, _) = emit(
        &python,
        &[&endpoint, "protobuf", "none", "py", "first", "1"],
    )
    .await;
    let (response, mut follower) = get(provider.addr, "/system/logs?name=py&follow=true").await;
    assert_eq!(response.status(), 200);
    check_run(&[follower.next_message().await], "first", 1, &first);

    let runs = [
        ("protobuf", "none"),
        ("protobuf", "gzip"),
        ("json", "none"),
        ("json", "gzip"),
    ];
    let mut everything = vec![];
    for (encoding, compression) in runs {
        let instance = format!("{encoding}-{compression}");
        let (stdout, _) = emit(
            &python,
            &[&endpoint, encoding, compression, "py", &instance, "12"],
        )
        .await;
        let mut live = vec![];
        for _ in 0..12 {
            live.push(follower.next_message().await);
        }
        check_run(&live, &instance, 12, &stdout);
        everything.extend(live);
    }
    // The history holds the same lines, in the same order.
    let stored = history(provider.addr, "py").await;
    assert_eq!(stored[1..], everything[..]);
}

#[tokio::test]
async fn the_sdk_sends_again_while_the_sink_is_unavailable_and_each_record_is_stored_once() {
    let Some(python) = crate::common::python("the_sdk_sends_again") else {
        return;
    };
    // The sink refuses every other batch, the first among them.
    let (addr, flaky) = start_receiver(2, 1, 1 << 20).await;
    let endpoint = format!("http://{addr}/v1/logs");
    let (stdout, stderr) = emit(&python, &[&endpoint, "protobuf", "gzip", "py", "p", "6"]).await;
    assert!(
        stderr.contains("retrying"),
        "the SDK was told to retry: {stderr}"
    );
    // Each export refused once, then stored.
    let (_, exports) = spans_and_exports(&stdout);
    assert_eq!(flaky.batches.load(Ordering::SeqCst), 1 + 2 * exports.len());
    let lines = history(addr, "py").await;
    check_run(&lines, "p", 6, &stdout);
}

/// The log example of the OTLP repository (`examples/logs.json`), its fields and
/// values as written there: uppercase hex ids, times as JSON numbers, every kind of
/// attribute value, scope attributes.
fn protocol_example() -> serde_json::Value {
    let value = |kind: &str, v: serde_json::Value| json!({ kind: v });
    json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": value("stringValue", json!("my.service"))}]},
        "scopeLogs": [{
            "scope": {"name": "my.library", "version": "1.0.0", "attributes": [
                {"key": "my.scope.attribute", "value": value("stringValue", json!("some scope attribute"))}
            ]},
            "logRecords": [{
                "timeUnixNano": 1_544_712_660_300_000_000_u64,
                "observedTimeUnixNano": 1_544_712_660_300_000_000_u64,
                "severityText": "Information",
                "traceId": "5B8EFFF798038103D269B633813FC60C",
                "spanId": "EEE19B7EC3C1B174",
                "body": value("stringValue", json!("Example log record")),
                "attributes": [
                    {"key": "string.attribute", "value": value("stringValue", json!("some string"))},
                    {"key": "boolean.attribute", "value": value("boolValue", json!(true))},
                    {"key": "int.attribute", "value": value("intValue", json!(10))},
                    {"key": "double.attribute", "value": value("doubleValue", json!(637.704))},
                    {"key": "array.attribute", "value": value("arrayValue", json!({"values": [
                        {"stringValue": "many"}, {"stringValue": "values"}
                    ]}))},
                    {"key": "map.attribute", "value": value("kvlistValue", json!({"values": [
                        {"key": "some.map.key", "value": {"stringValue": "some value"}}
                    ]}))}
                ]
            }]
        }]
    }]})
}

#[tokio::test]
async fn the_protocol_example_decodes_to_what_it_says() {
    let (addr, _) = start_receiver(0, 0, 1 << 20).await;
    let example = protocol_example().to_string();
    let (status, kind, body) = post(addr, "application/json", None, example.as_bytes()).await;
    assert_eq!((status, kind.as_str()), (200, "application/json"));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        json!({})
    );
    // int64 as strings, as OTLP/JSON writes them too.
    let mut as_strings = protocol_example();
    let record = &mut as_strings["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0];
    record["timeUnixNano"] = json!("1544712660300000000");
    record["attributes"][2]["value"]["intValue"] = json!("10");
    let (status, _, _) = post(
        addr,
        "application/json",
        None,
        as_strings.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200);

    let lines = history(addr, "my.service").await;
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0], lines[1]);
    let line = serde_json::to_value(&lines[0]).unwrap();
    assert_eq!(
        line,
        json!({
            "name": "my.service",
            "namespace": "openfaas-fn",
            "instance": "",
            "timestamp": "2018-12-13T14:51:00.3Z",
            "text": "Example log record",
            "stream": "stdout",
            "severity": "Information",
            "trace_id": "5b8efff798038103d269b633813fc60c",
            "span_id": "eee19b7ec3c1b174",
            "attributes": {
                "string.attribute": "some string",
                "boolean.attribute": true,
                "int.attribute": 10,
                "double.attribute": 637.704,
                "array.attribute": ["many", "values"],
                "map.attribute": {"some.map.key": "some value"}
            }
        })
    );
}

/// A body nested `depth` maps deep.
fn nested(depth: usize) -> AnyValue {
    let mut value = AnyValue {
        value: Some(any_value::Value::StringValue("bottom".into())),
    };
    for _ in 0..depth {
        value = AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: vec![KeyValue {
                    key: "k".into(),
                    value: Some(value),
                    ..Default::default()
                }],
            })),
        };
    }
    value
}

#[tokio::test]
async fn hostile_bodies_get_clear_answers_and_lose_nothing_stored() {
    let (addr, flaky) = start_receiver(0, 0, 1 << 20).await;
    let who = || vec![attribute("faas.name", "f")];
    let good = request(who(), vec![record(0, "kept")]).encode_to_vec();
    assert_eq!(post(addr, PROTOBUF, None, &good).await.0, 200);

    // A truncated protobuf: 400, with a Status saying why, in protobuf.
    let long = request(who(), (1..100).map(|i| record(i, "x")).collect()).encode_to_vec();
    let (status, kind, body) = post(addr, PROTOBUF, None, &long[..long.len() - 7]).await;
    assert_eq!((status, kind.as_str()), (400, PROTOBUF));
    assert!(
        status_message(&body).contains("nothing of it was stored"),
        "{body:?}"
    );

    // Another content type: 415, whatever the body.
    let (status, _, body) = post(addr, "text/plain", None, &good).await;
    assert_eq!(status, 415);
    assert!(String::from_utf8_lossy(&body).contains("text/plain"));
    let (status, _, _) = post(addr, PROTOBUF, Some("br"), &good).await;
    assert_eq!(status, 415);

    // A gzip bomb: 64 MiB of one byte, a few KiB on the wire, inflated to the limit only.
    let bomb = gzip(&vec![b'\n'; 64 << 20]);
    assert!(bomb.len() < 128 << 10);
    let (status, _, body) = post(addr, PROTOBUF, Some("gzip"), &bomb).await;
    assert_eq!(status, 413);
    assert!(status_message(&body).contains("larger than 1048576 bytes"));
    // Over the limit as sent, too.
    let (status, _, _) = post(addr, PROTOBUF, None, &vec![0; (1 << 20) + 1]).await;
    assert_eq!(status, 413);

    // Invalid UTF-8 in a string field: the protobuf does not decode.
    let marked = request(who(), vec![record(1, "MARK")]).encode_to_vec();
    let at = marked.windows(4).position(|w| w == b"MARK").unwrap();
    let mut broken = marked.clone();
    broken[at] = 0xff;
    let (status, _, body) = post(addr, PROTOBUF, None, &broken).await;
    assert_eq!(status, 400);
    assert!(status_message(&body).contains("UTF-8") || status_message(&body).contains("utf-8"));
    // Invalid UTF-8 in OTLP/JSON: the same.
    let mut json_body = protocol_example().to_string().into_bytes();
    let at = json_body.windows(7).position(|w| w == b"Example").unwrap();
    json_body[at] = 0xff;
    assert_eq!(
        post(addr, "application/json", None, &json_body).await.0,
        400
    );

    // Bodies nested as deep as the decoders allow (30 maps: 100 protobuf messages) are
    // kept as JSON; deeper ones are 400.
    let mut deep = record(2, "");
    deep.body = Some(nested(30));
    let (status, _, _) = post(
        addr,
        PROTOBUF,
        None,
        &request(who(), vec![deep]).encode_to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    let mut deeper = record(3, "");
    deeper.body = Some(nested(40));
    let (status, _, _) = post(
        addr,
        PROTOBUF,
        None,
        &request(who(), vec![deeper]).encode_to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    let deep_json = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(
        post(addr, "application/json", None, deep_json.as_bytes())
            .await
            .0,
        400
    );

    // Records with no name and a record too long: refused and counted, the rest stored.
    let mixed = ExportLogsServiceRequest {
        resource_logs: vec![
            request(
                vec![attribute("host.name", "h")],
                vec![record(4, "nameless"); 2],
            )
            .resource_logs[0]
                .clone(),
            request(
                who(),
                vec![record(5, "fine"), record(6, &"y".repeat(65 << 10))],
            )
            .resource_logs[0]
                .clone(),
        ],
    };
    let (status, _, body) = post(addr, PROTOBUF, None, &mixed.encode_to_vec()).await;
    assert_eq!(status, 200);
    let partial = ExportLogsServiceResponse::decode(body)
        .unwrap()
        .partial_success
        .unwrap();
    assert_eq!(partial.rejected_log_records, 3);
    assert!(partial
        .error_message
        .contains("neither faas.name nor service.name"));

    // A name that is not one (it would be a path on disk) is refused; an instance with
    // other characters is kept, with them replaced.
    let named = |name: &str| {
        request(
            vec![
                attribute("faas.name", name),
                attribute("faas.instance", "host:8080/x"),
            ],
            vec![record(7, "named")],
        )
        .encode_to_vec()
    };
    let (status, _, body) = post(addr, PROTOBUF, None, &named("../etc")).await;
    assert_eq!(status, 200);
    let partial = ExportLogsServiceResponse::decode(body)
        .unwrap()
        .partial_success
        .unwrap();
    assert_eq!(partial.rejected_log_records, 1);
    assert!(
        partial.error_message.contains("invalid function"),
        "{}",
        partial.error_message
    );
    assert_eq!(post(addr, PROTOBUF, None, &named("g")).await.0, 200);
    let g = history(addr, "g").await;
    assert_eq!(&*g[0].instance, "host-8080-x");

    // Attribute keys that are serde_json's private tokens are kept renamed, so that every
    // reader (this crate's client, the store on disk) reads the line back.
    let token = "$serde_json::private::RawValue";
    let mut tokened = record(8, "tokens");
    tokened.attributes = vec![attribute(token, "not JSON {")];
    let nested = KeyValueList {
        values: vec![attribute(token, "1")],
    };
    tokened.attributes.push(KeyValue {
        key: "nested".into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::KvlistValue(nested)),
        }),
        ..Default::default()
    });
    let body = request(vec![attribute("faas.name", "tok")], vec![tokened]).encode_to_vec();
    assert_eq!(post(addr, PROTOBUF, None, &body).await.0, 200);
    let tok = history(addr, "tok").await;
    let attributes = &tok[0].details.as_deref().unwrap().attributes;
    assert_eq!(attributes[&format!("_{token}")], json!("not JSON {"));
    assert_eq!(attributes["nested"], json!({ format!("_{token}"): "1" }));

    let texts: Vec<String> = history(addr, "f")
        .await
        .into_iter()
        .map(|m| m.text)
        .collect();
    let deep_text = texts
        .iter()
        .find(|t| t.starts_with("{\"k\""))
        .expect("the deep body");
    assert_eq!(deep_text.matches('{').count(), 30);
    assert_eq!(texts.len(), 3);
    assert_eq!([&texts[0], &texts[2]], ["kept", "fine"]);
    assert_eq!(flaky.batches.load(Ordering::SeqCst), 5);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn a_hundred_thousand_records_in_one_request_are_stored_in_order() {
    let (addr, _) = start_receiver(0, 0, 32 << 20).await;
    let records: Vec<LogRecord> = (0..100_000)
        .map(|i| record(i, &format!("line {i}")))
        .collect();
    let body = gzip(&request(vec![attribute("service.name", "bulk")], records).encode_to_vec());
    let (status, _, body) = post(addr, PROTOBUF, Some("gzip"), &body).await;
    assert_eq!(status, 200);
    assert_eq!(
        ExportLogsServiceResponse::decode(body)
            .unwrap()
            .partial_success,
        None
    );
    let lines = history(addr, "bulk").await;
    assert_eq!(lines.len(), 100_000);
    assert!(lines
        .iter()
        .enumerate()
        .all(|(i, l)| l.text == format!("line {i}")));
}

#[tokio::test]
async fn concurrent_exporters_sending_again_on_503_get_every_record_stored_once() {
    // Every third batch is refused: each exporter sees 503s and sends again, as OTLP says.
    let (addr, flaky) = start_receiver(3, 0, 1 << 20).await;
    let exporters = (0..8).map(|e| {
        tokio::spawn(async move {
            let (mut refused, mut stored) = (0, 0);
            for r in 0..20u64 {
                let records = (0..50)
                    .map(|i| record(r * 50 + i, &format!("e{e} r{r} i{i}")))
                    .collect();
                let who = vec![
                    attribute("faas.name", "many"),
                    attribute("faas.instance", &format!("e{e}")),
                ];
                let body = request(who, records).encode_to_vec();
                loop {
                    let (status, _, _) = post(addr, PROTOBUF, None, &body).await;
                    match status {
                        200 => break stored += 1,
                        503 => refused += 1,
                        other => panic!("status {other}"),
                    }
                }
            }
            (refused, stored)
        })
    });
    let mut refused = 0;
    for exporter in exporters {
        let (r, stored) = within(exporter).await.unwrap();
        assert_eq!(stored, 20);
        refused += r;
    }
    assert!(refused > 0);
    assert_eq!(flaky.batches.load(Ordering::SeqCst), 8 * 20 + refused);
    let lines = history(addr, "many").await;
    assert_eq!(lines.len(), 8 * 20 * 50);
    for e in 0..8 {
        let own: Vec<&str> = lines
            .iter()
            .filter(|l| *l.instance == *format!("e{e}"))
            .map(|l| l.text.as_str())
            .collect();
        let expected: Vec<String> = (0..20)
            .flat_map(|r| (0..50).map(move |i| format!("e{e} r{r} i{i}")))
            .collect();
        assert_eq!(own, expected);
    }
}

#[tokio::test]
async fn records_on_disk_keep_their_details_across_a_kill() {
    let dir = crate::disk_store::Scratch::new("otlp");
    let data_dir = dir.0.to_str().unwrap();
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data_dir,
        "--fsync",
        "always",
    ];
    let provider = Provider::start("memory", &args);
    let mut records: Vec<LogRecord> = (0..40).map(|i| record(i, &format!("line {i}"))).collect();
    for (i, r) in records.iter_mut().enumerate() {
        r.severity_number = [5, 9, 13, 17][i % 4];
        r.trace_id = vec![i as u8 + 1; 16];
        r.span_id = vec![7; 8];
        r.attributes = vec![attribute("order.id", &i.to_string())];
    }
    let who = vec![
        attribute("service.name", "durable"),
        attribute("service.namespace", "team"),
    ];
    let body = request(who, records).encode_to_vec();
    assert_eq!(post(provider.addr, PROTOBUF, None, &body).await.0, 200);
    let query = "/system/logs?name=durable&namespace=team";
    let (_, mut lines) = get(provider.addr, query).await;
    let before = lines.messages().await;
    assert_eq!(before.len(), 40);
    assert_eq!(before[3].stream, Some(OutputStream::Stderr));
    let details = before[3].details.as_deref().unwrap();
    assert_eq!(details.severity.as_deref(), Some("ERROR"));
    assert_eq!(details.trace_id.as_deref(), Some(&*"04".repeat(16)));
    assert_eq!(details.attributes["order.id"], json!("3"));
    drop(provider); // kill -9

    let provider = Provider::start("memory", &args);
    let (_, mut lines) = get(provider.addr, query).await;
    assert_eq!(lines.messages().await, before);
}

#[tokio::test]
async fn details_pushed_as_ndjson_are_kept_and_served() {
    let store = LogStore::new();
    let line = r#"{"name":"f","text":"t","severity":"ERROR","trace_id":"ab","attributes":{"k":[1,"<b>"]}}"#;
    let odd = r#"{"name":"f","text":"u","severity":3,"attributes":"not an object"}"#;
    let report =
        faas_logs::store::ingest_ndjson(&store, format!("{line}\n{odd}\n").as_bytes(), None).await;
    assert_eq!(report.accepted, 2);
    let (addr, _) = start(store).await;
    let (_, mut lines) = get(addr, "/system/logs?name=f").await;
    let raw = lines.rest().await.unwrap();
    assert!(raw[0].ends_with(r#","text":"t","severity":"ERROR","trace_id":"ab","attributes":{"k":[1,"\u003cb\u003e"]}}"#), "{}", raw[0]);
    assert!(raw[1].ends_with(r#","text":"u"}"#), "{}", raw[1]);
}
