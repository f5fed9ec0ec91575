//! The OpenWhisk backend: reading activation log lines (`TIME STREAM: TEXT`) on one
//! core, and a `tail=100` over 10,000 emulated activations, which must read only the
//! pages it needs (the count of requests the emulated API saw is printed).
//!
//! `cargo bench --features openwhisk --bench openwhisk`
// criterion_group! generates a public function without a doc comment.
#![allow(missing_docs)]

#[path = "../tests/it/emulator/openwhisk.rs"]
mod emulator;

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use faas_logs::openwhisk::{parse_line, OpenWhiskClient, OpenWhiskRequester};
use faas_logs::{Event, Request, Requester};
use futures_util::StreamExt;
use serde_json::json;

const KEY: &str = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:secret";
const T0: i64 = 1_708_200_000_000;

/// Lines as the invoker stores them: nine digits (Docker), shorter times padded,
/// stderr, an invoker notice, and a line without the form.
fn lines(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let at = Utc.timestamp_millis_opt(T0 + i as i64).unwrap();
            match i % 5 {
                0 => format!("{} stdout: GET /hello 200 in {i} us", at.format("%Y-%m-%dT%H:%M:%S%.9fZ")),
                1 => format!("{:<30} stdout: handled request {i}", at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
                2 => format!("{} stderr: warning: slow dependency ({i} ms)", at.format("%Y-%m-%dT%H:%M:%S%.6fZ")),
                3 => format!("{:<30} stderr: There was an issue while collecting your logs. Data might be missing.", at.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
                _ => format!("a line a blackbox image printed without the form {i}"),
            }
        })
        .collect()
}

fn parse(c: &mut Criterion) {
    let input = lines(100_000);
    let mut group = c.benchmark_group("openwhisk parse_line");
    group.throughput(Throughput::Elements(input.len() as u64));
    group.bench_function("mixed forms, one core", |b| {
        b.iter(|| {
            for line in &input {
                black_box(parse_line(black_box(line)));
            }
        })
    });
    group.finish();
}

fn tail(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let emulator = runtime.block_on(emulator::Emulator::start(KEY));
    for n in 0..10_000u64 {
        let start = T0 + 1000 * n as i64;
        emulator.add(json!({
            "namespace": "guest", "name": "hello", "activationId": format!("{n:032x}"),
            "start": start, "end": start + 3, "duration": 3,
            "response": {"result": {}, "status": "success", "success": true},
            "logs": [format!("2024-02-17T20:00:00.000000001Z stdout: request {n}")],
            "annotations": [{"key": "path", "value": "guest/hello"}]
        }));
    }
    let client = OpenWhiskClient::builder(emulator.url(), KEY)
        .build()
        .unwrap();
    let requester = OpenWhiskRequester::new(client);
    let query = || async {
        let mut request = Request::new("hello");
        request.tail = Some(100);
        let mut stream = requester.query(request).await.unwrap();
        let mut lines = 0;
        while let Some(Ok(event)) = stream.next().await {
            if matches!(event, Event::Message(_)) {
                lines += 1;
            }
        }
        lines
    };
    emulator.forget_requests();
    let lines = runtime.block_on(query());
    eprintln!(
        "tail=100 over 10,000 activations: {lines} lines from {} request(s): {:?}",
        emulator.requests().len(),
        emulator.requests()
    );
    let mut group = c.benchmark_group("openwhisk tail");
    group.bench_function("tail=100 over 10,000 activations", |b| {
        b.iter(|| black_box(runtime.block_on(query())))
    });
    group.finish();
}

criterion_group!(benches, parse, tail);
criterion_main!(benches);
