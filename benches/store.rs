//! `LogStore`: appends per second from 1 and from 4 tasks, a tail query on a full ring,
//! and (printed first) what a stored line costs in memory.
//!
//! `cargo bench --bench store`
// criterion_group! generates a public function without a doc comment.
#![allow(missing_docs)]

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use faas_logs::store::{LogStore, StoreLimits};
use faas_logs::{Event, Message, Request};
use futures_util::StreamExt;

fn line(function: &str, i: usize) -> Message {
    Message::new(
        function,
        Utc::now(),
        format!("GET /function/{function} 200 OK - request {i} served in 1.2 ms"),
    )
    .with_instance(format!("{function}-1"))
}

fn appends(c: &mut Criterion) {
    const BATCH: usize = 10_000;
    let mut group = c.benchmark_group("store append");
    group.throughput(Throughput::Elements(BATCH as u64));
    // Messages are made outside the timing: their own allocations are the writer's.
    let store = LogStore::new();
    group.bench_function("1 task, one function, full ring", |b| {
        b.iter_batched(
            || (0..BATCH).map(|i| line("f", i)).collect::<Vec<_>>(),
            |messages| {
                for m in messages {
                    store.append(m).unwrap();
                }
            },
            BatchSize::LargeInput,
        )
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    for functions in [1usize, 4] {
        let label = if functions == 1 {
            "4 tasks, one function".to_owned()
        } else {
            "4 tasks, a function each".to_owned()
        };
        group.bench_function(label, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let batches: Vec<Vec<Message>> = (0..4)
                        .map(|t| {
                            (0..BATCH / 4)
                                .map(|i| line(&format!("f{}", t % functions), i))
                                .collect()
                        })
                        .collect();
                    let store = store.clone();
                    total += runtime.block_on(async move {
                        let start = Instant::now();
                        let tasks: Vec<_> = batches
                            .into_iter()
                            .map(|batch| {
                                let store = store.clone();
                                tokio::spawn(async move {
                                    for m in batch {
                                        store.append(m).unwrap();
                                    }
                                })
                            })
                            .collect();
                        for t in tasks {
                            t.await.unwrap();
                        }
                        start.elapsed()
                    });
                }
                total
            })
        });
    }
    group.finish();
}

fn tail_query(c: &mut Criterion) {
    let store = LogStore::with_limits(StoreLimits {
        max_messages: 100_000,
        ..StoreLimits::default()
    });
    for i in 0..100_000 {
        store.append(line("f", i)).unwrap();
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("store query");
    for tail in [10usize, 100, 1_000] {
        group.throughput(Throughput::Elements(tail as u64));
        group.bench_function(format!("tail={tail} of a full 100,000-line ring"), |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let mut reader = store
                        .read(&Request {
                            tail: Some(tail),
                            ..Request::new("f")
                        })
                        .unwrap();
                    let mut n = 0;
                    while let Some(Ok(Event::Message(m))) = reader.next().await {
                        n += black_box(m.text.len()).min(1);
                    }
                    n
                })
            })
        });
    }
    group.finish();
}

/// This process's resident memory, in bytes.
fn resident() -> u64 {
    common::status_kib("self", "VmRSS") * 1024
}

/// 1,000,000 lines of about 57 bytes of text, as pushes decode them (each line with its
/// own copy of its names), over 10 functions of 4 instances, each function's ring full:
/// the store's growth a line.
fn memory_per_line(_: &mut Criterion) {
    const LINES: usize = 1_000_000;
    let store = LogStore::with_limits(StoreLimits {
        max_messages: LINES / 10,
        max_bytes: usize::MAX,
        max_total_bytes: usize::MAX,
        ..StoreLimits::default()
    });
    let before = resident();
    let mut text = 0;
    for i in 0..LINES {
        let f = i % 10;
        let line = format!("GET /function/f{f} 200 OK - request {i:08} served in 12ms");
        text += line.len();
        let name = format!("f{f}");
        let instance = format!("f{f}-7d9f8c6b5-{}", i % 4);
        store
            .append(Message::new(name, Utc::now(), line).with_instance(instance))
            .unwrap();
    }
    let grown = resident().saturating_sub(before);
    println!(
        "memory per stored line: {:.1} B for {:.1} B of text (1,000,000 lines, process RSS growth)",
        grown as f64 / LINES as f64,
        text as f64 / LINES as f64
    );
    black_box(&store);
}

criterion_group!(benches, memory_per_line, appends, tail_query);
criterion_main!(benches);
