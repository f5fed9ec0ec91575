//! OpenTelemetry logs in: records decoded and stored per second from 1,000-record
//! batches, on one core (the caller's thread), as protobuf and as OTLP/JSON; against the
//! crate's own NDJSON push of the same lines (the messages the records become, their
//! severity and attributes included) in the same run.
//!
//! `cargo bench --bench otlp`
#![allow(missing_docs)] // criterion's macros write undocumented functions

use bytes::BytesMut;
use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput};
use faas_logs::codec::encode_message;
use faas_logs::otlp::OtlpReceiver;
use faas_logs::store::{ingest_ndjson, LogStore, StoreLimits};
use faas_logs::Message;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;

const RECORDS: usize = 1000;

fn text(s: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(s.to_owned())),
    })
}

fn attribute(key: &str, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(value),
        ..Default::default()
    }
}

/// A batch as Python's SDK exports one: a resource naming the function and instance,
/// records of about 90 bytes of text with a level and the three code attributes.
fn batch(seq: u64) -> ExportLogsServiceRequest {
    let base = Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap();
    let base = base.timestamp_nanos_opt().unwrap() as u64 + seq * 1_000_000_000;
    let records = (0..RECORDS as u64)
        .map(|i| LogRecord {
            time_unix_nano: base + i * 1000,
            observed_time_unix_nano: base + i * 1000,
            severity_number: if i % 10 == 9 { 17 } else { 9 },
            severity_text: if i % 10 == 9 { "ERROR" } else { "INFO" }.into(),
            body: text(&format!(
                "GET /function/bench 200 OK - request {i:06} served in 1.2 ms to 10.0.0.12:41234"
            )),
            attributes: vec![
                attribute(
                    "code.file.path",
                    text("/home/app/function/handler.py").unwrap(),
                ),
                attribute("code.function.name", text("handle").unwrap()),
                attribute(
                    "code.line.number",
                    AnyValue {
                        value: Some(any_value::Value::IntValue(42)),
                    },
                ),
            ],
            ..Default::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    attribute("service.name", text("bench").unwrap()),
                    attribute("faas.instance", text("bench-7d9f-x2k4").unwrap()),
                ],
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

/// The store as a provider has it: default limits (10,000 lines of the function kept),
/// so that the bench measures appends that also evict.
fn store() -> LogStore {
    LogStore::with_limits(StoreLimits::default())
}

fn ingest(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let batches: Vec<ExportLogsServiceRequest> = (0..16).map(batch).collect();
    let protobuf: Vec<Vec<u8>> = batches.iter().map(|b| b.encode_to_vec()).collect();
    let json: Vec<Vec<u8>> = batches
        .iter()
        .map(|b| serde_json::to_vec(b).unwrap())
        .collect();
    // The same lines as NDJSON: what the receiver stores, as this crate encodes it.
    let kept = store();
    let receiver = OtlpReceiver::new(kept.clone());
    let ndjson: Vec<Vec<u8>> = protobuf
        .iter()
        .map(|body| {
            let outcome = runtime
                .block_on(receiver.ingest("application/x-protobuf", None, body))
                .unwrap();
            assert_eq!(outcome.stored, RECORDS);
            let mut request = faas_logs::Request::new("bench");
            request.tail = Some(RECORDS);
            let lines: Vec<Message> = runtime.block_on(async {
                use futures::StreamExt;
                let stream = faas_logs::Requester::query(&kept, request).await.unwrap();
                stream
                    .filter_map(|e| async move {
                        match e.unwrap() {
                            faas_logs::Event::Message(m) => Some(m),
                            _ => None,
                        }
                    })
                    .collect()
                    .await
            });
            assert_eq!(lines.len(), RECORDS);
            let mut out = BytesMut::new();
            for line in &lines {
                encode_message(line, &mut out);
            }
            out.to_vec()
        })
        .collect();

    let mut group = c.benchmark_group("otlp");
    group.throughput(Throughput::Elements(RECORDS as u64));
    let cases: [(&str, &str, &Vec<Vec<u8>>); 3] = [
        ("OTLP protobuf", "application/x-protobuf", &protobuf),
        ("OTLP/JSON", "application/json", &json),
        ("NDJSON push of the same lines (anchor)", "", &ndjson),
    ];
    for (name, content_type, bodies) in cases {
        let store = store();
        let receiver = OtlpReceiver::new(store.clone());
        let mut next = 0;
        group.bench_function(
            format!("{name}, {RECORDS} records a batch, one core"),
            |b| {
                b.iter(|| {
                    let body = &bodies[next % bodies.len()];
                    next += 1;
                    let stored = if content_type.is_empty() {
                        runtime.block_on(ingest_ndjson(&store, body, None)).accepted
                    } else {
                        let ingested = receiver.ingest(content_type, None, body);
                        runtime.block_on(ingested).unwrap().stored
                    };
                    assert_eq!(stored, RECORDS);
                })
            },
        );
    }
    group.finish();
}

criterion::criterion_group!(benches, ingest);
criterion::criterion_main!(benches);
