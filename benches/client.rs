//! Reading a dump: `LogClient` on one thread decoding 1,000,000 messages of 200 B from a
//! provider in another process on loopback (criterion, messages per second), then the `faas-logs` command against
//! `curl` on the same URL, alternately, ten runs each (printed as `faas-logs vs curl:`).
//!
//! `cargo bench --features cli --bench client` (needs `curl`).
// criterion_group! generates a public function without a doc comment.
#![allow(missing_docs)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{Criterion, Throughput};
use faas_logs::client::LogClient;
use faas_logs::server::LogHandler;
use faas_logs::store::{LogStore, StoreLimits};
use faas_logs::{Message, Request, SharedStr};
use futures::StreamExt;

const DUMP: usize = 1_000_000;
/// Runs of each command, alternately.
const RUNS: usize = 10;

/// A store holding `DUMP` messages of one function whose lines are 200 bytes.
fn history() -> LogStore {
    let store = LogStore::builder()
        .limits(StoreLimits {
            max_messages: DUMP,
            max_bytes: 1 << 30,
            ..StoreLimits::default()
        })
        .build();
    let (name, instance) = (
        SharedStr::from("bench"),
        SharedStr::from("bench-7d9c5b-x2vqz"),
    );
    let start = Utc::now() - chrono::Duration::hours(1);
    for i in 0..DUMP {
        let text = format!("{i:>8} GET /function/bench 200 OK - {}", "a".repeat(67));
        let at = start + chrono::Duration::microseconds(i as i64);
        let m = Message::new(name.clone(), at, text).with_instance(instance.clone());
        store.append(m).unwrap();
    }
    store
}

const SERVER_MODE: &str = "FAAS_LOGS_BENCH_SERVER";

fn main() {
    if std::env::var_os(SERVER_MODE).is_some() {
        serve_history();
        return;
    }
    // The provider in a process of its own, as a provider on the same machine would be.
    // It exits when its stdin closes: with this process, however this one ends.
    let mut server = Command::new(std::env::current_exe().unwrap())
        .env(SERVER_MODE, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let gateway = format!(
        "http://{}",
        first.trim().strip_prefix("listening ").unwrap()
    );

    // The client on one thread, as the faas-logs command runs it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = LogClient::new(&gateway).unwrap();
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("client");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(DUMP as u64));
    group.bench_function("LogClient::logs (messages), 1,000,000 of 200 B", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut messages = client.logs(&Request::new("bench")).await.unwrap();
                let mut count = 0;
                while let Some(message) = messages.next().await {
                    count += message.unwrap().text.len().min(1);
                }
                assert_eq!(count, DUMP);
            })
        })
    });
    group.bench_function(
        "LogClient::lines (checked lines), 1,000,000 of 200 B",
        |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let mut lines = client.lines(&Request::new("bench")).await.unwrap();
                    let mut count = 0;
                    while let Some(line) = lines.next().await {
                        count += line.unwrap().bytes().len().min(1);
                    }
                    assert_eq!(count, DUMP);
                })
            })
        },
    );
    group.finish();
    c.final_summary();

    command_against_curl(&gateway);
    let _ = server.kill();
    let _ = server.wait();
}

/// The server process: the history served until the bench closes its stdin.
fn serve_history() {
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let runtime = common::server_runtime();
    let store = history();
    runtime.block_on(async {
        let addr = common::serve(LogHandler::new(store, Duration::from_secs(600))).await;
        println!("listening {addr}");
        std::future::pending::<()>().await;
    });
}

/// `faas-logs bench --tail=false -o json > /dev/null` and `curl` of the URL it asks for,
/// alternately.
fn command_against_curl(gateway: &str) {
    let url = format!("{gateway}/system/logs?follow=false&name=bench&tail=-1");
    let faas_logs = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_faas-logs"));
        c.args(["bench", "--tail=false", "-o", "json", "-g", gateway]);
        c
    };
    let curl = || {
        let mut c = Command::new("curl");
        c.args(["-sS", "--fail", &url]);
        c
    };
    let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..RUNS {
        for (i, mut command) in [faas_logs(), curl()].into_iter().enumerate() {
            let started = Instant::now();
            let status = command
                .stdout(Stdio::null())
                .status()
                .expect("curl and the faas-logs binary run");
            times[i].push(started.elapsed());
            assert!(status.success());
        }
    }
    for t in &mut times {
        t.sort();
    }
    let show = |t: &[Duration]| {
        let all: Vec<String> = t
            .iter()
            .map(|d| format!("{:.3}", d.as_secs_f64()))
            .collect();
        format!(
            "median {:.3} s ({:.2} M lines/s), best {:.3} s; all: {}",
            t[RUNS / 2].as_secs_f64(),
            DUMP as f64 / t[RUNS / 2].as_secs_f64() / 1e6,
            t[0].as_secs_f64(),
            all.join(" ")
        )
    };
    println!("faas-logs vs curl: faas-logs -o json: {}", show(&times[0]));
    println!("faas-logs vs curl: curl:              {}", show(&times[1]));
    println!(
        "faas-logs vs curl: faas-logs / curl time = {:.2} (medians), {:.2} (best runs)",
        times[0][RUNS / 2].as_secs_f64() / times[1][RUNS / 2].as_secs_f64(),
        times[0][0].as_secs_f64() / times[1][0].as_secs_f64()
    );
}
