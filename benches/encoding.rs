//! Encoding cost: NDJSON lines of short (100 B), typical (200 B) and long (16 KiB, with
//! characters that need escaping) messages, and the timestamp alone.
//!
//! `cargo bench --bench encoding`
// criterion_group! generates a public function without a doc comment.
#![allow(missing_docs)]

use bytes::BytesMut;
use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use faas_logs::codec::{encode_message, NdjsonDecoder, Rfc3339};
use faas_logs::Message;
use std::hint::black_box;
use tokio_util::codec::Decoder;

/// A message whose encoded line is about `line_len` bytes; short ones have short names.
fn message(line_len: usize, escaping: bool) -> Message {
    let short = line_len <= 100;
    let at = Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap()
        + chrono::Duration::nanoseconds(223_912_519);
    let mut m = Message::new(if short { "env" } else { "nodeinfo" }, at, "")
        .with_namespace(if short { "" } else { "openfaas-fn" })
        .with_instance(if short {
            "env-1"
        } else {
            "nodeinfo-6b5d5c7f9d-x2vqz"
        });
    let mut empty = BytesMut::new();
    encode_message(&m, &mut empty);
    let room = line_len.saturating_sub(empty.len());
    m.text = if escaping {
        // Quotes, backslashes, tabs and a control character: a quarter of the text escaped.
        "say \"hi\"\tC:\\path\u{1}"
            .chars()
            .cycle()
            .take(room * 3 / 4)
            .collect()
    } else {
        "GET /function/nodeinfo 200 OK - "
            .chars()
            .cycle()
            .take(room)
            .collect()
    };
    m
}

fn encode(c: &mut Criterion) {
    const BATCH: usize = 1_000;
    let cases = [
        ("short 100 B", message(100, false)),
        ("typical 200 B", message(200, false)),
        ("long 16 KiB escaped", message(16 * 1024, true)),
    ];
    for (label, m) in &cases {
        let mut line = BytesMut::new();
        encode_message(m, &mut line);
        let mut group = c.benchmark_group("encode");
        let throughputs = [
            (
                format!("{label} (messages)"),
                Throughput::Elements(BATCH as u64),
            ),
            (
                format!("{label} (bytes, line = {} B)", line.len()),
                Throughput::Bytes((line.len() * BATCH) as u64),
            ),
        ];
        for (name, throughput) in throughputs {
            group.throughput(throughput);
            group.bench_function(name, |b| {
                let mut buf = BytesMut::with_capacity(line.len() * BATCH);
                b.iter(|| {
                    buf.clear();
                    for _ in 0..BATCH {
                        encode_message(black_box(m), &mut buf);
                    }
                    black_box(buf.len())
                })
            });
        }
        group.finish();
    }
}

fn timestamp(c: &mut Criterion) {
    let base = Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap();
    let stamps: Vec<_> = (0..1_000i64)
        .map(|i| base + chrono::Duration::nanoseconds(i * 1_234_567_891))
        .collect();
    let mut group = c.benchmark_group("timestamp");
    group.throughput(Throughput::Elements(stamps.len() as u64));
    group.bench_function("ours (Go's RFC 3339 nano)", |b| {
        b.iter(|| {
            stamps
                .iter()
                .map(|t| Rfc3339::new(black_box(t)).as_str().len())
                .sum::<usize>()
        })
    });
    group.bench_function("chrono to_rfc3339_opts, for comparison", |b| {
        b.iter(|| {
            stamps
                .iter()
                .map(|t| {
                    black_box(t)
                        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                        .len()
                })
                .sum::<usize>()
        })
    });
    group.finish();
}

/// Decoding what a provider sends: 1,000 lines of 200 B in 64 KiB chunks, as a client
/// reads a dump.
fn decode(c: &mut Criterion) {
    const BATCH: usize = 1_000;
    let mut body = BytesMut::new();
    for _ in 0..BATCH {
        encode_message(&message(200, false), &mut body);
    }
    let body = body.freeze();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("typical 200 B, NdjsonDecoder<Message>", |b| {
        b.iter(|| {
            let mut decoder: NdjsonDecoder = NdjsonDecoder::default();
            let mut buf = BytesMut::new();
            let mut count = 0;
            for chunk in body.chunks(64 * 1024) {
                buf.extend_from_slice(chunk);
                while let Some(m) = decoder.decode(&mut buf).unwrap() {
                    count += black_box(m).text.len();
                }
            }
            count
        })
    });
    group.finish();
}

criterion_group!(benches, encode, timestamp, decode);
criterion_main!(benches);
