//! The store on disk (`DiskStore`) beside the in-memory store, in the same run:
//!
//! - pushes of 100-line NDJSON bodies through `ingest_ndjson`, by 1 and 4 concurrent
//!   clients (and of 1,000-line bodies), into the memory store and into the disk store
//!   with `--fsync batch` and `never`;
//! - `tail=100` and `since` (the last 100 lines) over 10,000, 1,000,000 and 10,000,000
//!   stored lines of one function;
//! - pushes over HTTP to `faas-logs serve` in memory and with `--data-dir`, the same four
//!   cases, three runs of each in turn (needs the binary: `--features cli`);
//! - a dump of 1,000,000 lines through `LogHandler` over loopback, from each store;
//! - start-up with 1,000,000 and 10,000,000 lines on disk, to the first answered query;
//! - `faas-logs serve --data-dir` memory with 200 MB and 2 GB on disk (needs the binary:
//!   `--features cli`), after a tail, a since and a whole dump.
//!
//! `cargo bench --bench disk --features disk` (the stores are built once under
//! `target/tmp/bench-disk` and kept; 2.2 GB for the largest). Figures in BENCHMARKS.md.

// criterion_group! generates a public function without a doc comment.
#![allow(missing_docs)]

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use criterion::{BatchSize, Criterion, Throughput};
use faas_logs::server::LogHandler;
use faas_logs::store::{ingest_ndjson, DiskConfig, DiskStore, Fsync, LogStore, StoreLimits};
use faas_logs::{Batch, Event, LogSink, Message, Request};
use futures::StreamExt;

const SIZES: [u64; 3] = [10_000, 1_000_000, 10_000_000];

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

/// Line `i` of the stored histories: about 200 bytes on disk, a millisecond apart.
fn line(i: u64) -> Message {
    let text = format!(
        "{i:010} GET /api/v1/orders/{} 200 {}ms ua=bench/1.0 trace=4bf92f3577b34da6a3ce929d0e0e4736 \
         span=00f067aa0ba902b7 region=eu-west-1 pod=orders-7d9c5b6f4-x2k8q",
        i % 9973,
        i % 97
    );
    Message::new("f", base() + chrono::Duration::milliseconds(i as i64), text)
        .with_instance(format!("f-{}", i % 3))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-disk")
}

/// The store of `lines` lines of `f`, built once and kept for later runs.
fn prepared(lines: u64, runtime: &tokio::runtime::Runtime) -> PathBuf {
    let dir = root().join(format!("lines-{lines}"));
    let config = DiskConfig::default()
        .with_fsync(Fsync::Never)
        .with_max_total_bytes(u64::MAX);
    if let Ok(store) = DiskStore::open(&dir, config.clone()) {
        // Kept when whole, and read from its indexes (not those of an older build).
        if store.lines("", "f") == Some(lines) && store.recovery().scanned <= 1 {
            return dir;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let started = Instant::now();
    let store = DiskStore::open(&dir, config).unwrap();
    runtime.block_on(async {
        for from in (0..lines).step_by(1_000) {
            let batch: Vec<Message> = (from..(from + 1_000).min(lines)).map(line).collect();
            for outcome in store.store(Batch::new(batch)).await {
                outcome.unwrap();
            }
        }
    });
    println!(
        "disk: wrote {lines} lines ({} MB) in {:.1?}",
        store.total_bytes() / 1_000_000,
        started.elapsed()
    );
    dir
}

fn push_body(lines: u64) -> Vec<u8> {
    let mut body = Vec::new();
    for i in 0..lines {
        let m = line(i);
        body.extend_from_slice(
            format!(
                "{{\"name\":\"f\",\"instance\":\"f-1\",\"text\":\"{}\"}}\n",
                m.text
            )
            .as_bytes(),
        );
    }
    body
}

fn pushes(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let dir = root().join("pushes");
    let _ = std::fs::remove_dir_all(&dir);
    let disk = DiskStore::open(
        dir.join("batch"),
        DiskConfig::default().with_max_total_bytes(1 << 30),
    )
    .unwrap();
    let never = DiskStore::open(
        dir.join("never"),
        DiskConfig::default()
            .with_fsync(Fsync::Never)
            .with_max_total_bytes(1 << 30),
    )
    .unwrap();
    let memory = LogStore::new();
    let mut group = c.benchmark_group("disk push");
    for (lines, clients) in [(100, 1usize), (100, 4), (1_000, 1), (1_000, 4)] {
        let body = push_body(lines);
        group.throughput(Throughput::Elements(lines));
        for (label, sink) in [
            (
                "memory",
                std::sync::Arc::new(memory.clone()) as std::sync::Arc<dyn LogSink>,
            ),
            ("disk, fsync batch", std::sync::Arc::new(disk.clone())),
            ("disk, fsync never", std::sync::Arc::new(never.clone())),
        ] {
            let body = body.clone();
            group.bench_function(
                format!("{clients} clients, {lines}-line pushes, {label}"),
                |b| {
                    b.iter_custom(|iters| {
                        let each = iters.div_ceil(clients as u64);
                        runtime.block_on(async {
                            let started = Instant::now();
                            let tasks: Vec<_> = (0..clients)
                                .map(|_| {
                                    let (sink, body) = (sink.clone(), body.clone());
                                    tokio::spawn(async move {
                                        for _ in 0..each {
                                            let report = ingest_ndjson(&*sink, &body, None).await;
                                            assert_eq!(report.accepted as u64, lines);
                                        }
                                    })
                                })
                                .collect();
                            for task in tasks {
                                task.await.unwrap();
                            }
                            let done = (each * clients as u64) as f64;
                            Duration::from_secs_f64(
                                started.elapsed().as_secs_f64() * iters as f64 / done,
                            )
                        })
                    });
                },
            );
        }
    }
    group.finish();
    drop((disk, never));
    let _ = std::fs::remove_dir_all(&dir);
}

async fn drain(store: &DiskStore, request: &Request) -> usize {
    let mut reader = store.read(request).unwrap();
    let mut lines = 0;
    while let Some(event) = reader.next().await {
        if let Event::Message(_) = event.unwrap() {
            lines += 1;
        }
    }
    lines
}

fn queries(c: &mut Criterion, runtime: &tokio::runtime::Runtime, dirs: &[(u64, PathBuf)]) {
    let mut group = c.benchmark_group("disk query");
    for (lines, dir) in dirs {
        let store =
            DiskStore::open(dir, DiskConfig::default().with_max_total_bytes(u64::MAX)).unwrap();
        let tail = Request {
            tail: Some(100),
            ..Request::new("f")
        };
        group.bench_function(format!("tail=100 of {lines} lines"), |b| {
            b.iter(|| assert_eq!(runtime.block_on(drain(&store, &tail)), 100));
        });
        let since = Request {
            since: Some(line(lines - 100).timestamp),
            ..Request::new("f")
        };
        group.bench_function(format!("since (the last 100) of {lines} lines"), |b| {
            b.iter(|| assert_eq!(runtime.block_on(drain(&store, &since)), 100));
        });
    }
    group.finish();
}

fn dump(c: &mut Criterion, runtime: &tokio::runtime::Runtime, dir: &Path) {
    const LINES: u64 = 1_000_000;
    let disk = DiskStore::open(dir, DiskConfig::default().with_max_total_bytes(u64::MAX)).unwrap();
    let memory = LogStore::with_limits(StoreLimits {
        max_messages: LINES as usize,
        max_bytes: 1 << 30,
        ..StoreLimits::default()
    });
    for from in (0..LINES).step_by(1_000) {
        for i in from..from + 1_000 {
            memory.append(line(i)).unwrap();
        }
    }
    let timeout = Duration::from_secs(600);
    let (disk_addr, memory_addr) = runtime.block_on(async {
        (
            common::serve(LogHandler::new(disk, timeout)).await,
            common::serve(LogHandler::new(memory, timeout)).await,
        )
    });
    let mut group = c.benchmark_group("disk dump");
    group.sample_size(10);
    group.throughput(Throughput::Elements(LINES));
    for (label, addr) in [("memory", memory_addr), ("disk", disk_addr)] {
        group.bench_function(
            format!("1,000,000 lines through LogHandler, {label}"),
            |b| {
                b.iter_batched(
                    || (),
                    |()| {
                        let mut bytes = 0;
                        common::read_all(addr, "/system/logs?name=f", |chunk| bytes += chunk.len());
                        assert!(bytes > 100_000_000);
                    },
                    BatchSize::PerIteration,
                );
            },
        );
    }
    group.finish();
}

/// Opens each store and answers one query, five times; prints the median.
fn restart(runtime: &tokio::runtime::Runtime, dirs: &[(u64, PathBuf)]) {
    for (lines, dir) in dirs.iter().filter(|(lines, _)| *lines >= 1_000_000) {
        let mut times: Vec<Duration> = (0..5)
            .map(|_| {
                let started = Instant::now();
                let store =
                    DiskStore::open(dir, DiskConfig::default().with_max_total_bytes(u64::MAX))
                        .unwrap();
                let tail = Request {
                    tail: Some(1),
                    ..Request::new("f")
                };
                assert_eq!(runtime.block_on(drain(&store, &tail)), 1);
                let took = started.elapsed();
                drop(store);
                took
            })
            .collect();
        times.sort();
        println!(
            "disk restart: {lines} lines on disk, open to the first answered query: {:.1?} (median of 5; files in the page cache)",
            times[2]
        );
    }
}

/// The provider's memory with a store on disk, after a tail, a since and a whole dump.
/// The `faas-logs` binary: `FAAS_LOGS_BENCH_BINARY`, or the one cargo built.
fn binary() -> Option<String> {
    std::env::var("FAAS_LOGS_BENCH_BINARY")
        .ok()
        .or(option_env!("CARGO_BIN_EXE_faas-logs").map(String::from))
}

/// `faas-logs serve` on a free port with `args`, and its address.
fn provider(binary: &str, args: &[&str]) -> (std::process::Child, std::net::SocketAddr) {
    let mut child = Command::new(binary)
        .args(["serve", "--listen", "127.0.0.1:0", "--run", "idle=true"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .parse()
        .unwrap();
    (child, addr)
}

/// Lines per second that `clients` connections push to `addr` in 100- or 1,000-line
/// bodies, each waiting for its answer, for `time`.
fn push_rate(addr: std::net::SocketAddr, clients: usize, lines: u64, time: Duration) -> f64 {
    use std::io::{BufRead, Read, Write};
    let body = std::sync::Arc::new(push_body(lines));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || {
                let tcp = std::net::TcpStream::connect(addr).unwrap();
                tcp.set_nodelay(true).unwrap();
                let mut reader = std::io::BufReader::new(tcp.try_clone().unwrap());
                let mut writer = tcp;
                let mut pushed = 0u64;
                while started.elapsed() < time {
                    let head = format!(
                        "POST /system/logs/push HTTP/1.1\r\nHost: bench\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    writer.write_all(head.as_bytes()).unwrap();
                    writer.write_all(&body).unwrap();
                    let mut status = String::new();
                    reader.read_line(&mut status).unwrap();
                    assert!(status.contains(" 200 "), "{status}");
                    let mut length = 0;
                    loop {
                        let mut header = String::new();
                        reader.read_line(&mut header).unwrap();
                        if header == "\r\n" {
                            break;
                        }
                        if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut answer = vec![0; length];
                    reader.read_exact(&mut answer).unwrap();
                    pushed += lines;
                }
                pushed
            })
        })
        .collect();
    let pushed: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    pushed as f64 / started.elapsed().as_secs_f64()
}

/// Pushes over HTTP to `faas-logs serve` in memory and with `--data-dir` (fsync batch),
/// three runs of each in turn; prints the medians.
fn http_pushes() {
    let Some(binary) = binary() else {
        println!("disk http push: skipped, the binary needs --features serve");
        return;
    };
    let dir = root().join("http-pushes");
    for (lines, clients) in [(100, 1usize), (100, 4), (1_000, 1), (1_000, 4)] {
        let mut rates = [Vec::new(), Vec::new()];
        for _ in 0..3 {
            for (disk, rates) in rates.iter_mut().enumerate() {
                let _ = std::fs::remove_dir_all(&dir);
                let data_dir = dir.to_str().unwrap();
                let args: &[&str] = if disk == 1 {
                    &["--data-dir", data_dir, "--max-push-bytes", "8388608"]
                } else {
                    &["--max-push-bytes", "8388608"]
                };
                let (mut child, addr) = provider(&binary, args);
                rates.push(push_rate(addr, clients, lines, Duration::from_secs(3)));
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        for rates in &mut rates {
            rates.sort_by(f64::total_cmp);
        }
        let (memory, disk) = (rates[0][1], rates[1][1]);
        println!(
            "disk http push: {clients} clients, {lines}-line pushes to faas-logs serve: memory {:.0} lines/s, --data-dir (fsync batch) {:.0} lines/s: {:.2} of memory (medians of 3 in turn)",
            memory,
            disk,
            disk / memory
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn provider_memory(dirs: &[(u64, PathBuf)]) {
    let Some(binary) = binary() else {
        println!("disk memory: skipped, the binary needs --features serve");
        return;
    };
    for (lines, dir) in dirs.iter().filter(|(lines, _)| *lines >= 1_000_000) {
        let bytes: u64 = du(dir);
        let max = u64::MAX.to_string();
        let (mut child, addr) = provider(
            &binary,
            &[
                "--data-dir",
                dir.to_str().unwrap(),
                "--disk-max-bytes",
                &max,
            ],
        );
        let pid = child.id().to_string();
        let started = common::status_kib(&pid, "VmRSS");
        let since = line(lines - 100)
            .timestamp
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        common::read_all(addr, "/system/logs?name=f&tail=100", |_| {});
        common::read_all(addr, &format!("/system/logs?name=f&since={since}"), |_| {});
        let dumped = Instant::now();
        common::read_all(addr, "/system/logs?name=f", |_| {});
        println!(
            "disk memory: faas-logs serve with {} MB ({lines} lines) on disk: {started} KiB at start, {} KiB after tail, since and a whole dump ({:.1?}), peak {} KiB",
            bytes / 1_000_000,
            common::status_kib(&pid, "VmRSS"),
            dumped.elapsed(),
            common::status_kib(&pid, "VmHWM"),
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn du(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => du(&e.path()),
                _ => e.metadata().map_or(0, |m| m.len()),
            })
            .sum()
    })
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let runtime = common::server_runtime();
    // FAAS_LOGS_BENCH_ONLY=push|http|query|dump|restart|memory runs one part.
    let only = std::env::var("FAAS_LOGS_BENCH_ONLY").unwrap_or_default();
    let run = |part: &str| only.is_empty() || only == part;
    if run("push") {
        pushes(&mut c, &runtime);
    }
    if run("http") {
        http_pushes();
    }
    let dirs: Vec<(u64, PathBuf)> = if only == "push" || only == "http" {
        Vec::new()
    } else {
        SIZES.iter().map(|&n| (n, prepared(n, &runtime))).collect()
    };
    if run("query") {
        queries(&mut c, &runtime, &dirs);
    }
    if run("restart") {
        restart(&runtime, &dirs);
    }
    if run("memory") {
        provider_memory(&dirs);
    }
    // Last: its server keeps the store open (and locked) to the end.
    if run("dump") {
        dump(&mut c, &runtime, &dirs[1].1);
    }
    c.final_summary();
}
