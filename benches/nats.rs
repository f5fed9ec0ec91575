//! The JetStream backend against a real `nats-server` (started here, file storage), each
//! figure beside bare async-nats or the in-memory store doing the same in the same run,
//! printed as `nats ...:` lines:
//!
//! - pushes of 1,000-line NDJSON bodies (`store::ingest_ndjson`: parse, store, each
//!   push waiting for its own acknowledgements) from 1, 4 and 16 concurrent clients,
//!   against bare async-nats publishers with async acks (each client publishing its
//!   1,000 lines and then awaiting their acks) and against the same pushes into a
//!   `LogStore`;
//! - a dump of 1,000,000 lines (one function, 20 instances) through `LogHandler` on
//!   loopback, against a bare ordered consumer reading them;
//! - `tail=100` over them: the time over HTTP, and how many messages the backend read;
//! - follow latency at 10,000 lines a second from a push on provider A to a follower on
//!   provider B over HTTP (two connections to the server), and the other ways: from the
//!   `Requester` alone, from `LogHandler` without HTTP, from a bare ordered consumer,
//!   and (the harness itself) over HTTP from a `LogStore`.
//!
//! `cargo bench --features nats --bench nats` (needs `nats-server`);
//! `FAAS_LOGS_NATS_BENCH=push` (or `read`: the dump, the tail and the latencies) runs
//! one part.
// A bench binary; its items need no docs.
#![allow(missing_docs)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use bytes::BytesMut;
use chrono::Utc;
use faas_logs::codec::encode_message;
use faas_logs::nats::{JetStreamConfig, JetStreamLogs};
use faas_logs::server::LogHandler;
use faas_logs::{Batch, Event, LogSink, Message, Request, Requester, SharedStr};
use futures::StreamExt;

const LINES: usize = 1_000_000;

struct Server(Child, std::path::PathBuf);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn start_server() -> (Server, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("faas-logs-nats-bench-{port}"));
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server is installed");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    (Server(child, dir), format!("nats://127.0.0.1:{port}"))
}

/// The NDJSON lines of a response: each ends with `}` and a newline, which the
/// response's own framing never does.
fn json_lines(addr: std::net::SocketAddr, path: &str) -> usize {
    let (mut lines, mut last) = (0, 0u8);
    common::read_all(addr, path, |bytes| {
        for &b in bytes {
            if b == b'\n' && last == b'}' {
                lines += 1;
            }
            last = b;
        }
    });
    lines
}

fn message(name: &SharedStr, instance: &SharedStr, i: usize) -> Message {
    let text = format!("{i:>8} GET /function/bench 200 OK - {}", "a".repeat(67));
    Message::new(name.clone(), Utc::now(), text).with_instance(instance.clone())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (_server, url) = start_server();
    runtime.block_on(run(&url));
}

async fn run(url: &str) {
    let config = JetStreamConfig::default().with_retention(Duration::from_secs(3600), 4 << 30, -1);
    let logs = JetStreamLogs::connect(url, config.clone()).await.unwrap();
    let client = async_nats::connect(url).await.unwrap();
    let context = jetstream::new(client);

    let sections = std::env::var("FAAS_LOGS_NATS_BENCH").unwrap_or_else(|_| "all".into());
    let run = |section: &str| sections == "all" || sections.split(',').any(|s| s == section);
    if run("push") {
        pushes(&logs, &context).await;
    }
    if !run("read") {
        return;
    }

    // A million lines of one function over 20 instances, for the dump and the tail.
    let name = SharedStr::from("bench");
    let instances: Vec<SharedStr> = (0..20)
        .map(|i| SharedStr::from(format!("bench-{i}")))
        .collect();
    for start in (0..LINES).step_by(1_000) {
        let batch = (start..start + 1_000)
            .map(|i| message(&name, &instances[i % 20], i))
            .collect();
        for outcome in logs.store(Batch::new(batch)).await {
            outcome.unwrap();
        }
    }
    let rate = |d: Duration| LINES as f64 / d.as_secs_f64() / 1e6;

    // The dump: through LogHandler on loopback, against a bare ordered consumer.
    let addr = common::serve(LogHandler::new(logs.clone(), Duration::from_secs(600))).await;
    for _ in 0..3 {
        let started = Instant::now();
        tokio::task::spawn_blocking(move || json_lines(addr, "/system/logs?name=bench"))
            .await
            .map(|n| assert_eq!(n, LINES))
            .unwrap();
        let ours = started.elapsed();
        let started = Instant::now();
        let stream = context.get_stream("FAAS_LOGS").await.unwrap();
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                filter_subject: "faas-logs.openfaas-fn.bench.*".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut messages = consumer.messages().await.unwrap();
        let mut read = 0usize;
        while read < LINES {
            let m = messages.next().await.unwrap().unwrap();
            read += m.payload.len().min(1);
        }
        let bare = started.elapsed();
        println!(
            "nats dump of {LINES}: LogHandler {:.2} s ({:.2} M/s); bare ordered consumer {:.2} s ({:.2} M/s); ours/bare throughput = {:.2}",
            ours.as_secs_f64(),
            rate(ours),
            bare.as_secs_f64(),
            rate(bare),
            bare.as_secs_f64() / ours.as_secs_f64()
        );
    }

    // tail=100: the time over HTTP, and the messages the backend read.
    let mut over_http = Vec::new();
    for round in 0..21 {
        let started = Instant::now();
        tokio::task::spawn_blocking(move || json_lines(addr, "/system/logs?name=bench&tail=100"))
            .await
            .map(|n| assert_eq!(n, 100))
            .unwrap();
        if round > 0 {
            over_http.push(started.elapsed());
        }
    }
    over_http.sort();
    let started = Instant::now();
    let mut events = logs
        .query(Request {
            tail: Some(100),
            ..Request::new("bench")
        })
        .await
        .unwrap();
    let mut read = 0;
    while let Some(Ok(Event::Message(_))) = events.next().await {
        read += 1;
    }
    println!(
        "nats tail=100 over {LINES} (20 instances): over HTTP p50 {:.1} ms, max {:.1} ms (20 runs); the requester alone {:.1} ms, {read} messages read",
        over_http[10].as_secs_f64() * 1e3,
        over_http[19].as_secs_f64() * 1e3,
        started.elapsed().as_secs_f64() * 1e3
    );

    let other = JetStreamLogs::connect(url, config).await.unwrap();
    latencies(&logs, &other, &context).await;
}

/// Lines in each push of the push benchmark.
const PUSH: usize = 1_000;

/// Runs of each configuration of the push benchmark, interleaved; the median is shown.
const ROUNDS: usize = 3;

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

/// Lines pushed in each configuration of the push benchmark.
const PUSHED: usize = 320_000;

/// Push throughput: `clients` tasks at once, each sending `PUSHED / clients / PUSH`
/// bodies of `PUSH` lines, through `ingest_ndjson` into JetStream and into a `LogStore`,
/// against bare publishers that publish the same lines and await their acks per push.
async fn pushes(logs: &JetStreamLogs, context: &jetstream::Context) {
    for clients in [1, 4, 16] {
        let body = |client: usize, push: usize| -> bytes::Bytes {
            let mut body = BytesMut::new();
            for i in 0..PUSH {
                let m = message(
                    &SharedStr::from("push"),
                    &SharedStr::from(format!("push-{clients}-{client}")),
                    push * PUSH + i,
                );
                encode_message(&m, &mut body);
            }
            body.freeze()
        };
        let per_client = PUSHED / clients / PUSH;
        let bodies: Vec<Vec<bytes::Bytes>> = (0..clients)
            .map(|c| (0..per_client).map(|p| body(c, p)).collect())
            .collect();
        let store = faas_logs::store::LogStore::new();
        let (mut ours, mut memory, mut bare) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let (logs, context, store) = (logs.clone(), context.clone(), store.clone());
            ours.push(
                timed_clients(&bodies, move |body| {
                    let logs = logs.clone();
                    async move {
                        let report = faas_logs::store::ingest_ndjson(&logs, &body, None).await;
                        assert_eq!(report.accepted, PUSH, "{report:?}");
                    }
                })
                .await,
            );
            memory.push(
                timed_clients(&bodies, move |body| {
                    let store = store.clone();
                    async move {
                        let report = faas_logs::store::ingest_ndjson(&store, &body, None).await;
                        assert_eq!(report.accepted, PUSH);
                    }
                })
                .await,
            );
            bare.push(timed_clients(&bodies, move |body| bare_push(context.clone(), body)).await);
        }
        let (ours, memory, bare) = (median(ours), median(memory), median(bare));
        let rate = |d: Duration| PUSHED as f64 / d.as_secs_f64() / 1e3;
        println!(
            "nats push, {clients} clients, {PUSH} lines a push: ours {:.0} k lines/s; bare publisher {:.0} k/s; LogStore {:.0} k/s; ours/bare = {:.2}",
            rate(ours),
            rate(bare),
            rate(memory),
            bare.as_secs_f64() / ours.as_secs_f64()
        );
    }
}

/// A push by a bare async-nats publisher: the body's lines published one after the
/// other and their acks awaited as they come (a task of its own), no id, no header.
async fn bare_push(context: jetstream::Context, body: bytes::Bytes) {
    type Ack = <jetstream::context::PublishAckFuture as std::future::IntoFuture>::IntoFuture;
    let subject = "faas-logs.openfaas-fn.bare.bare-1";
    let lines: Vec<bytes::Bytes> = body
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(bytes::Bytes::copy_from_slice)
        .collect();
    let (sent, mut acks) = tokio::sync::mpsc::channel(1024);
    let waiter = tokio::spawn(async move {
        let mut pending = futures::stream::FuturesUnordered::<Ack>::new();
        loop {
            tokio::select! {
                Some(ack) = acks.recv() => {
                    pending.push(std::future::IntoFuture::into_future(ack));
                }
                Some(outcome) = pending.next(), if !pending.is_empty() => {
                    outcome.unwrap();
                }
                else => break,
            }
        }
    });
    for payload in lines {
        let ack = context.publish(subject, payload).await.unwrap();
        sent.send(ack).await.unwrap();
    }
    drop(sent);
    waiter.await.unwrap();
}

/// The time for one task per element of `bodies` to send its bodies one after the other.
async fn timed_clients<F, Fut>(bodies: &[Vec<bytes::Bytes>], push: F) -> Duration
where
    F: Fn(bytes::Bytes) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let started = Instant::now();
    let tasks: Vec<_> = bodies
        .iter()
        .map(|mine| {
            let (mine, push) = (mine.clone(), push.clone());
            tokio::spawn(async move {
                for body in mine {
                    push(body).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

/// Lines written by the benches' followed functions at 10,000 a second.
const LIVE: usize = 30_000;

/// Follow latency, one follower at 10,000 lines a second, read five ways: over HTTP
/// through `LogHandler` on a second connection (provider B), from the `Requester` alone, through `LogHandler` without HTTP,
/// from a bare ordered consumer, and over HTTP from a `LogStore` (the harness alone).
/// Latency is the arrival time minus the timestamp the writer gave the line; each way
/// follows a function of its own, whose first line is written before the follower starts.
async fn latencies(logs: &JetStreamLogs, other: &JetStreamLogs, context: &jetstream::Context) {
    logs.write(live("http", 0)).await.unwrap();
    let provider_b = common::serve(LogHandler::new(other.clone(), Duration::from_secs(600))).await;
    let follower = http_follower(provider_b, "http").await;
    percentiles(
        "pushed on provider A, followed over HTTP on provider B",
        pace_nats(logs, "http", follower).await,
    );

    logs.write(live("requester", 0)).await.unwrap();
    let request = Request {
        follow: true,
        ..Request::new("requester")
    };
    let mut events = logs.query(request).await.unwrap();
    let follower = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(LIVE);
        while latencies.len() < LIVE {
            if let Event::Message(m) = events.next().await.unwrap().unwrap() {
                record(&m, Utc::now(), &mut latencies);
            }
        }
        latencies
    });
    percentiles(
        "the Requester alone",
        pace_nats(logs, "requester", follower).await,
    );

    logs.write(live("handler", 0)).await.unwrap();
    let handler = LogHandler::new(logs.clone(), Duration::from_secs(600));
    let request = http::Request::get("/system/logs?name=handler&follow=true")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let mut body = handler.handle(request).await.into_body();
    let follower = tokio::spawn(async move {
        use http_body_util::BodyExt;
        let (mut latencies, mut pending) = (Vec::with_capacity(LIVE), Vec::new());
        while latencies.len() < LIVE {
            let frame = body.frame().await.unwrap().unwrap();
            pending.extend_from_slice(frame.data_ref().unwrap());
            read_lines(&mut pending, Utc::now(), &mut latencies);
        }
        latencies
    });
    percentiles(
        "LogHandler without HTTP",
        pace_nats(logs, "handler", follower).await,
    );

    let stream = context.get_stream("FAAS_LOGS").await.unwrap();
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: "faas-logs.openfaas-fn.bare-live.*".into(),
            deliver_policy: jetstream::consumer::DeliverPolicy::New,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let follower = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(LIVE);
        while latencies.len() < LIVE {
            let m = messages.next().await.unwrap().unwrap();
            let now = Utc::now();
            record(
                &serde_json::from_slice(&m.payload).unwrap(),
                now,
                &mut latencies,
            );
        }
        latencies
    });
    percentiles(
        "a bare ordered consumer",
        pace_nats(logs, "bare-live", follower).await,
    );

    let store = faas_logs::store::LogStore::new();
    store.append(live("store", 0)).unwrap();
    let store_addr = common::serve(LogHandler::new(store.clone(), Duration::from_secs(600))).await;
    let follower = http_follower(store_addr, "store").await;
    pace(|i| {
        let _ = store.append(live("store", i));
        async {}
    })
    .await;
    percentiles("the harness on a LogStore", follower.await.unwrap());
}

/// A follower of `name` over HTTP/1.1; each chunk of the response holds whole lines, a
/// line read from its `{`.
async fn http_follower(
    addr: std::net::SocketAddr,
    name: &str,
) -> tokio::task::JoinHandle<Vec<i64>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request =
        format!("GET /system/logs?name={name}&follow=true HTTP/1.1\r\nHost: bench\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    tokio::spawn(async move {
        let (mut latencies, mut pending, mut buf) = (Vec::new(), Vec::new(), vec![0u8; 65536]);
        while latencies.len() < LIVE {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "the follow ended early");
            pending.extend_from_slice(&buf[..n]);
            read_lines(&mut pending, Utc::now(), &mut latencies);
        }
        latencies
    })
}

/// Records the latency of every whole line in `pending` (from its `{`).
fn read_lines(pending: &mut Vec<u8>, now: chrono::DateTime<Utc>, latencies: &mut Vec<i64>) {
    while let Some(i) = pending.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = pending.drain(..=i).collect();
        let Some(start) = line.iter().position(|&b| b == b'{') else {
            continue;
        };
        if let Ok(m) = serde_json::from_slice::<Message>(&line[start..]) {
            record(&m, now, latencies);
        }
    }
}

/// A live line's latency; the line written before the follower is skipped.
fn record(m: &Message, now: chrono::DateTime<Utc>, latencies: &mut Vec<i64>) {
    if !m.text.trim_start().starts_with("0 ") {
        latencies.push((now - m.timestamp).num_microseconds().unwrap_or(0));
    }
}

/// Writes lines 1 to `LIVE` of `name` to JetStream at 10,000 a second; returns the
/// follower's latencies.
async fn pace_nats(
    logs: &JetStreamLogs,
    name: &str,
    follower: tokio::task::JoinHandle<Vec<i64>>,
) -> Vec<i64> {
    pace(|i| async move { logs.write(live(name, i)).await.unwrap() }).await;
    follower.await.unwrap()
}

/// Calls `write` for lines 1 to `LIVE`, ten every millisecond.
async fn pace<F: std::future::Future<Output = ()>>(mut write: impl FnMut(usize) -> F) {
    let mut ticks = tokio::time::interval(Duration::from_millis(1));
    for i in 1..=LIVE {
        if i % 10 == 1 {
            ticks.tick().await;
        }
        write(i).await;
    }
}

fn percentiles(way: &str, mut latencies: Vec<i64>) {
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "nats follow at 10,000/s, {way}: p50 {} us, p99 {} us, max {} us",
        at(0.5),
        at(0.99),
        latencies[latencies.len() - 1]
    );
}

/// Line `i` of a followed function, from its one instance.
fn live(name: &str, i: usize) -> Message {
    message(
        &SharedStr::from(name),
        &SharedStr::from(format!("{name}-1")),
        i,
    )
}
