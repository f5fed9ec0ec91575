//! What the benches share: a handler served on loopback, and a client that reads a
//! response to its end.

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use faas_logs::server::LogBody;
use hyper_util::rt::TokioIo;

/// The runtime a bench's server process runs on: `FAAS_LOGS_BENCH_WORKERS` worker
/// threads, 2 by default (a provider's default on this 2-core machine).
#[allow(dead_code)] // some benches only
pub(crate) fn server_runtime() -> tokio::runtime::Runtime {
    let workers = std::env::var("FAAS_LOGS_BENCH_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(2);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

/// Serves `service` (a `LogHandler`, or routes around one) on a fresh 127.0.0.1 port
/// from a spawned task; returns the address.
#[allow(dead_code)] // some benches only
pub(crate) async fn serve<S>(service: S) -> SocketAddr
where
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = hyper::Response<LogBody>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            // Live lines go out at once, not after the previous write's ACK (Nagle).
            let _ = tcp.set_nodelay(true);
            let service = service.clone();
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

/// `GET path` on a fresh connection, read to the end; `chunk` sees every read.
#[allow(dead_code)] // some benches only
pub(crate) fn read_all(addr: SocketAddr, path: &str, mut chunk: impl FnMut(&[u8])) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => chunk(&buf[..n]),
            Err(e) => panic!("{e}"),
        }
    }
}

/// A figure of `/proc/PROCESS/status` in KiB (`VmRSS`, `VmHWM`), for `self` or a pid
/// (a process that has gone fails the bench); 0 for a field it does not show.
#[allow(dead_code)] // some benches only
pub(crate) fn status_kib(process: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{process}/status"))
        .unwrap_or_else(|e| panic!("the status of process {process}: {e}"));
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim_start_matches(':')
                .trim()
                .strip_suffix(" kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}
