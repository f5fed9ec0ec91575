//! The Kubernetes backend against the emulated API server of the tests: a dump of
//! 100,000 lines from three pods through `LogHandler`, beside `kubectl logs` of the same
//! pods one after another (kubectl prints each pod's log as it comes; the handler merges
//! the three by time); and the time to the first line of a `tail=1` follow over 1 and 10
//! replicas whose log requests each take 5 ms to be answered (a kubelet's round trip),
//! which the requester opens at once.
//!
//! `cargo bench --features cli --bench kubernetes` (kubectl on PATH for its side)
// criterion_group! generates a public function without a doc comment.
#![allow(missing_docs)]

#[path = "../tests/it/emulator/kubernetes.rs"]
#[allow(dead_code)] // the tests use all of it; the bench a part
mod emulator;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use emulator::Emulator;
use faas_logs::kubernetes::{Client, KubernetesRequester};
use faas_logs::server::LogHandler;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};

const NS: &str = "openfaas-fn";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `replicas` pods of `function` with `per_pod` lines each, interleaved in time.
fn pods(emulator: &Emulator, function: &str, replicas: usize, per_pod: usize) -> Vec<String> {
    emulator.add_deployment(NS, function);
    let t0 = Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap();
    (0..replicas)
        .map(|k| {
            let pod = format!("{function}-7d4b9c-{k}");
            emulator.add_pod(NS, function, &pod);
            let lines = (0..per_pod)
                .map(|n| {
                    let at = t0 + chrono::Duration::microseconds((n * replicas + k) as i64 * 10);
                    (
                        at,
                        format!("GET /api/orders/{n} 200 in {} us from 10.42.0.{k}", n % 997),
                    )
                })
                .collect();
            emulator.write_at(NS, &pod, function, lines);
            pod
        })
        .collect()
}

/// Serves a `LogHandler` over the emulator on a 127.0.0.1 port.
async fn serve(emulator: &Emulator) -> SocketAddr {
    let client = Client::try_from(kube::Config::new(emulator.url().parse().unwrap())).unwrap();
    let handler = LogHandler::new(KubernetesRequester::new(client), Duration::from_secs(600));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), handler)
                    .await;
            });
        }
    });
    addr
}

/// `GET path`: the lines of the body as it comes; `first` stops at its first line.
async fn get(addr: SocketAddr, path: &str, first: bool) -> usize {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = hyper::Request::get(path)
        .header("host", "127.0.0.1")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let mut body = sender.send_request(request).await.unwrap().into_body();
    let mut lines = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            lines += memchr::memchr_iter(b'\n', &data).count();
            if first && lines > 0 {
                break;
            }
        }
    }
    lines
}

fn dump(c: &mut Criterion) {
    let runtime = runtime();
    let emulator = runtime.block_on(Emulator::start());
    let names = pods(&emulator, "orders", 3, 33_334);
    let addr = runtime.block_on(serve(&emulator));
    let dir = std::env::temp_dir().join(format!("faas-logs-bench-k8s-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = emulator.kubeconfig(&dir);
    let mut group = c.benchmark_group("kubernetes dump of 100,000 lines from 3 pods");
    group.throughput(Throughput::Elements(3 * 33_334));
    group.sample_size(10);
    group.bench_function("LogHandler, merged by time", |b| {
        b.iter(|| {
            let lines = runtime.block_on(get(addr, "/system/logs?name=orders", false));
            assert_eq!(lines, 3 * 33_334);
        })
    });
    let kubectl = Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok();
    if kubectl {
        group.bench_function("kubectl logs --timestamps, each pod in turn", |b| {
            b.iter(|| {
                let lines = names
                    .iter()
                    .map(|pod| {
                        let out = Command::new("kubectl")
                            .arg("--kubeconfig")
                            .arg(&kubeconfig)
                            .args(["logs", "--timestamps", pod])
                            .output()
                            .unwrap();
                        assert!(out.status.success());
                        memchr::memchr_iter(b'\n', &out.stdout).count()
                    })
                    .sum::<usize>();
                assert_eq!(lines, 3 * 33_334);
            })
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

fn first_line(c: &mut Criterion) {
    let runtime = runtime();
    let mut group =
        c.benchmark_group("kubernetes first line of tail=1&follow=true, log requests 5 ms");
    group.sample_size(20);
    for replicas in [1, 10] {
        let emulator = runtime.block_on(Emulator::start());
        pods(&emulator, "web", replicas, 1000);
        emulator.set_log_delay(Duration::from_millis(5));
        let addr = runtime.block_on(serve(&emulator));
        group.bench_function(format!("{replicas} replicas"), |b| {
            b.iter(|| runtime.block_on(get(addr, "/system/logs?name=web&tail=1&follow=true", true)))
        });
    }
    group.finish();
}

criterion_group!(benches, dump, first_line);
criterion_main!(benches);
