//! The Docker backend: the demultiplexer's throughput on a stream recorded in Docker's
//! exact format, and, where an engine answers, 200,000 lines of one container read
//! through the provider against `docker logs` reading the same container and against the
//! anchor, the daemon's answer to the provider's request read and dropped, in one run,
//! with the CPU the daemon spends on each.
//!
//! `cargo bench --features docker --bench docker`

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{Criterion, Throughput};
use faas_logs::docker::frames::Multiplexed;
use faas_logs::docker::DockerRequester;
use faas_logs::server::LogHandler;
use tokio_util::codec::Decoder;

const LINES: usize = 200_000;
const IMAGE: &str = "faas-logs-busybox:1";

/// What the daemon sends for `timestamps=1` on a non-TTY container: one frame per line,
/// stdout and stderr mixed, a long line in 16 KiB pieces now and then.
fn recorded_stream() -> Vec<u8> {
    let mut stream = Vec::new();
    let mut frame = |kind: u8, payload: &[u8]| {
        stream.extend_from_slice(&[kind, 0, 0, 0]);
        stream.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        stream.extend_from_slice(payload);
    };
    for i in 0..LINES {
        let ts = format!(
            "2024-03-01T12:{:02}:{:02}.{:09}Z",
            i / 60_000 % 60,
            i / 1_000 % 60,
            i * 1_000 % 1_000_000_000
        );
        let kind = if i % 10 == 0 { 2 } else { 1 };
        frame(
            kind,
            format!("{ts} GET /function/bench 200 OK - request {i} served in 1.2 ms\n").as_bytes(),
        );
        if i % 10_000 == 0 {
            frame(1, format!("{ts} {}", "x".repeat(16 * 1024)).as_bytes());
            frame(1, format!("{ts} end of a long line\n").as_bytes());
        }
    }
    stream
}

/// Lines of `stream` fed to the decoder in `chunk`-byte reads, as the backend reads them.
fn demux_count(stream: &[u8], chunk: usize) -> usize {
    let mut decoder = Multiplexed::new();
    let mut buf = BytesMut::with_capacity(chunk * 2);
    let mut lines = 0;
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Ok(Some(_)) = decoder.decode(&mut buf) {
            lines += 1;
        }
    }
    while let Ok(Some(_)) = decoder.decode_eof(&mut buf) {
        lines += 1;
    }
    lines
}

fn demux(c: &mut Criterion) {
    let stream = recorded_stream();
    let mut group = c.benchmark_group("docker demux");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    for chunk in [4 * 1024, 64 * 1024] {
        group.bench_function(
            format!("{LINES} lines in {} KiB reads (bytes)", chunk / 1024),
            |b| b.iter(|| demux_count(&stream, chunk)),
        );
    }
    group.throughput(Throughput::Elements(LINES as u64));
    group.bench_function(format!("{LINES} lines in 64 KiB reads (lines)"), |b| {
        b.iter(|| demux_count(&stream, 64 * 1024))
    });
    group.finish();
}

fn docker(args: &[&str]) -> Option<String> {
    let out = Command::new("docker").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Our provider against `docker logs` on one container of 200,000 lines.
fn against_docker_logs() {
    if docker(&["version", "--format", "{{.Server.Version}}"]).is_none() {
        println!("docker logs comparison: SKIPPED, no Docker engine answers");
        return;
    }
    if docker(&["image", "inspect", IMAGE]).is_none() {
        println!("docker logs comparison: SKIPPED, no image {IMAGE} (bash .ci/run builds it)");
        return;
    }
    let function = format!("bench-{}", std::process::id());
    let script = format!("awk 'BEGIN {{ for (i = 1; i <= {LINES}; i++) print \"GET /function/bench 200 OK - request \" i \" served in 1.2 ms\" }}'");
    let id = docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "-l",
        &format!("com.openfaas.function={function}"),
        IMAGE,
        "sh",
        "-c",
        &script,
    ])
    .expect("docker run");
    docker(&["wait", &id]);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let handler = LogHandler::new(
        DockerRequester::from_env().unwrap(),
        Duration::from_secs(600),
    );
    let addr = runtime.block_on(common::serve(handler));
    let ours = || {
        let started = Instant::now();
        let mut lines = 0;
        common::read_all(addr, &format!("/system/logs?name={function}"), |bytes| {
            lines += bytes.iter().filter(|&&b| b == b'\n').count();
        });
        assert!(lines >= LINES, "only {lines} lines");
        started.elapsed()
    };
    let theirs = |timestamps: bool| {
        let started = Instant::now();
        let mut args = vec!["logs"];
        if timestamps {
            args.push("--timestamps");
        }
        args.push(&id);
        let status = Command::new("docker")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        started.elapsed()
    };
    // The anchor: the daemon's answer to the provider's own request, read and dropped.
    let daemon_alone = || {
        let started = Instant::now();
        let bytes = raw_logs(&id);
        assert!(bytes > LINES * 40, "only {bytes} bytes");
        started.elapsed()
    };
    let daemon = dockerd_pid();
    let mut times: [Vec<Duration>; 4] = Default::default();
    let mut daemon_cpu: [Vec<Duration>; 4] = Default::default();
    for _ in 0..7 {
        let readers: [&dyn Fn() -> Duration; 4] =
            [&ours, &|| theirs(true), &|| theirs(false), &daemon_alone];
        for (i, read) in readers.iter().enumerate() {
            let cpu = daemon.map(cpu_time);
            times[i].push(read());
            if let (Some(pid), Some(cpu)) = (daemon, cpu) {
                daemon_cpu[i].push(cpu_time(pid).saturating_sub(cpu));
            }
        }
    }
    let [a, b, c, d] = times.map(median);
    let cpu = daemon_cpu.map(|t| {
        if t.is_empty() {
            Duration::ZERO
        } else {
            median(t)
        }
    });
    println!(
        "docker logs comparison, {LINES} lines, median of 7: provider {a:.3?} ({:.0} lines/s); `docker logs --timestamps` {b:.3?} (ratio {:.2}); `docker logs` {c:.3?} (ratio {:.2}); the daemon's answer alone {d:.3?} (ratio {:.2}); dockerd's CPU during each: {:.3?}, {:.3?}, {:.3?}, {:.3?}",
        LINES as f64 / a.as_secs_f64(),
        a.as_secs_f64() / b.as_secs_f64(),
        a.as_secs_f64() / c.as_secs_f64(),
        a.as_secs_f64() / d.as_secs_f64(),
        cpu[0],
        cpu[1],
        cpu[2],
        cpu[3],
    );
    docker(&["rm", "-f", &id]);
}

/// The bytes of `GET /containers/ID/logs` with the provider's parameters, read from the
/// daemon's socket to the end and counted.
fn raw_logs(id: &str) -> usize {
    use std::io::{Read, Write};
    let socket = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(String::from))
        .unwrap_or_else(|| "/var/run/docker.sock".into());
    let mut unix = std::os::unix::net::UnixStream::connect(socket).unwrap();
    write!(
        unix,
        "GET /containers/{id}/logs?stdout=1&stderr=1&timestamps=1 HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0;
    loop {
        match unix.read(&mut buf).unwrap() {
            0 => return total,
            n => total += n,
        }
    }
}

/// The daemon's process, to read how much CPU it spends.
fn dockerd_pid() -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            (comm.trim() == "dockerd").then_some(pid)
        })
}

/// User and system CPU time of `pid` so far (clock ticks at 100 per second).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis: utime and stime are the 12th and
    // 13th of them.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    demux(&mut c);
    against_docker_logs();
    c.final_summary();
}
