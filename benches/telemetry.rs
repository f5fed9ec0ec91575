//! Telemetry push: function events parsed and stored per second, end to end over HTTP on
//! loopback, the server on one core (a current-thread runtime on its own thread); and
//! the time to answer a 1 MiB batch.
//!
//! `cargo bench --bench telemetry`

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use faas_logs::store::{LogStore, StoreLimits};
use faas_logs::telemetry::TelemetryListener;
use hyper_util::rt::TokioIo;

/// A batch of Lambda function events of about 200 bytes each, up to `bytes`; returns the
/// body and how many events it holds. `seq` makes each batch's bytes unique (identical
/// batches would be taken for retries).
fn batch(bytes: usize, seq: usize) -> (Vec<u8>, usize) {
    let mut body = b"[".to_vec();
    let mut n = 0;
    while body.len() + 210 < bytes {
        if n > 0 {
            body.push(b',');
        }
        let ms = n % 1000;
        write!(
            body,
            r#"{{"time":"2024-03-01T12:00:00.{ms:03}Z","type":"function","record":"2024-03-01T12:00:00.{ms:03}Z\tb3c1-{seq:08}\tINFO\tGET /function/bench 200 OK - request {n:06} served in 1.2 ms to 10.0.0.12:41234"}}"#
        )
        .unwrap();
        n += 1;
    }
    body.push(b']');
    (body, n)
}

/// The listener on a fresh port, served by one thread.
fn serve(listener: TelemetryListener) -> SocketAddr {
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = tcp.local_addr().unwrap();
    tcp.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let tcp = tokio::net::TcpListener::from_std(tcp).unwrap();
            while let Ok((stream, _)) = tcp.accept().await {
                let listener = listener.clone();
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), listener)
                        .await;
                });
            }
        });
    });
    addr
}

/// POSTs `body` on a kept-alive connection and reads the whole answer.
fn post(tcp: &mut TcpStream, body: &[u8]) {
    write!(
        tcp,
        "POST / HTTP/1.1\r\nHost: bench\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    tcp.write_all(body).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tcp.read(&mut buf).unwrap();
        assert!(n > 0, "the server closed the connection");
        answer.extend_from_slice(&buf[..n]);
        if let Some(head_end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&answer[..head_end]).to_ascii_lowercase();
            assert!(head.starts_with("http/1.1 200"), "{head}");
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|l| l.trim().parse().unwrap())
                .unwrap_or(0);
            if answer.len() >= head_end + 4 + length {
                return;
            }
        }
    }
}

/// The store as a provider has it: default limits (10,000 lines of the function kept),
/// so that the bench measures appends that also evict.
fn store() -> LogStore {
    LogStore::with_limits(StoreLimits::default())
}

fn ingest(c: &mut Criterion) {
    let store = store();
    let addr = serve(TelemetryListener::new(store, "bench"));
    let mut tcp = TcpStream::connect(addr).unwrap();
    // More distinct batches than the listener remembers, or a repeat would be taken for a
    // platform's retry and not stored.
    let batches: Vec<(Vec<u8>, usize)> = (0..128).map(|seq| batch(256 * 1024, seq)).collect();
    let events = batches[0].1;
    let mut group = c.benchmark_group("telemetry");
    group.throughput(Throughput::Elements(events as u64));
    let mut next = 0;
    group.bench_function(
        format!("{events} function events of 200 B in a 256 KiB batch, over HTTP, one core"),
        |b| {
            b.iter(|| {
                let (body, _) = &batches[next % batches.len()];
                next += 1;
                post(&mut tcp, body)
            })
        },
    );
    group.finish();
}

/// p50 and p99 of the time to answer a 1 MiB batch, printed.
fn one_mib_latency() {
    let addr = serve(TelemetryListener::new(store(), "bench"));
    let mut tcp = TcpStream::connect(addr).unwrap();
    let mut times: Vec<Duration> = (0..200)
        .map(|seq| {
            let (body, _) = batch(1 << 20, seq);
            let start = Instant::now();
            post(&mut tcp, &body);
            start.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "telemetry: a 1 MiB batch ({} events) answered in p50 {:?}, p99 {:?}, max {:?}",
        batch(1 << 20, 0).1,
        times[times.len() / 2],
        times[times.len() * 99 / 100],
        times[times.len() - 1]
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    ingest(&mut c);
    one_mib_latency();
    c.final_summary();
}
