//! End to end over loopback TCP, with the server in a child process of its own so that
//! its memory can be read apart from the client's:
//!
//! - a non-follow dump of 1,000,000 messages from a requester that ignores every
//!   parameter, read by a client that only counts bytes (messages per second, server
//!   peak memory);
//! - `tail=100` over a backend that returns 10,000,000 messages and ignores `tail` (time,
//!   server peak memory growth);
//! - follow latency from `LogStore::append` to the line at the client (p50, p99): 1
//!   follower at 10,000 messages/s; 1,000 followers of 1,000 functions at 1,000
//!   messages/s in all; 1,000 followers of one function at 1 message/s; and the server's
//!   memory with 1,000 idle followers and once they have left; the same against
//!   `faas-logs serve` fed by pushes (with `--features cli`; `FAAS_LOGS_BENCH_BINARY`
//!   names another build to measure).
//!
//! - against a backend that is always ready and never ends: how far past a 1 s timeout
//!   its responses end, and how long a small request waits while such responses keep
//!   both server workers busy.
//!
//! `cargo bench --bench serve` (criterion times the dumps; the latency figures are
//! printed as `follow ...` and `hostile ...` lines). `FAAS_LOGS_BENCH_ONLY=dump`, `tail`,
//! `follow` or `hostile` runs one part.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{Criterion, Throughput};

const SERVER_MODE: &str = "FAAS_LOGS_BENCH_SERVER";

fn main() {
    if let Ok(mode) = std::env::var(SERVER_MODE) {
        server::run(&mode);
        return;
    }
    // FAAS_LOGS_BENCH_ONLY=dump|tail|follow|hostile runs one part.
    let only = std::env::var("FAAS_LOGS_BENCH_ONLY").unwrap_or_default();
    let run = |part: &str| only.is_empty() || only == part;
    let mut c = Criterion::default().configure_from_args();
    if run("dump") {
        dump(&mut c);
    }
    if run("tail") {
        tail(&mut c);
    }
    if run("follow") {
        follow();
    }
    if run("hostile") {
        hostile();
    }
    c.final_summary();
}

/// The bench binary again, as a server in `mode`.
struct Server {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
    addr: SocketAddr,
}

impl Server {
    fn start(mode: &str) -> Server {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command.env(SERVER_MODE, mode);
        Server::spawn(command)
    }

    /// Runs `command`, a server that prints `listening ADDR` first (or, as `faas-logs
    /// serve` does, `listening on http://ADDR/system/logs`).
    fn spawn(mut command: Command) -> Server {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line.trim().strip_prefix("listening ").unwrap();
        let addr = addr.strip_prefix("on http://").map_or(addr, |url| {
            url.split_once('/').map_or(url, |(addr, _)| addr)
        });
        let addr = addr.parse().unwrap();
        Server {
            child,
            stdin,
            stdout,
            addr,
        }
    }

    /// A figure from /proc/PID/status, in KiB (`VmRSS`, `VmHWM`).
    fn kib(&self, field: &str) -> u64 {
        common::status_kib(&self.child.id().to_string(), field)
    }

    /// How many files the server has open (its listener and connections among them).
    fn open_files(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).map_or(0, |dir| dir.count())
    }

    /// Waits until the server has no more open files than `count`: the connections its
    /// clients closed are closed on its side too.
    fn wait_for_open_files(&self, count: usize) {
        let started = Instant::now();
        while self.open_files() > count {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the server kept closed connections"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Resets the peak (VmHWM) to the current size.
    fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5");
    }

    /// Sends a command to the server and waits for its answer line.
    fn command(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).unwrap();
        answer
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` read to the end; returns the bytes received.
fn read_all(addr: SocketAddr, path: &str) -> usize {
    let mut total = 0;
    common::read_all(addr, path, |bytes| total += bytes.len());
    total
}

const DUMP: u64 = 1_000_000;
const HUGE: u64 = 10_000_000;

fn dump(c: &mut Criterion) {
    let server = Server::start(&format!("generated {DUMP}"));
    let idle = server.kib("VmRSS");
    server.reset_peak();
    let bytes = read_all(server.addr, "/system/logs?name=bench");
    let peak = server.kib("VmHWM");
    println!(
        "dump: {DUMP} messages, {} bytes on the wire; server memory {idle} KiB idle, peak {peak} KiB (+{} KiB)",
        bytes,
        peak.saturating_sub(idle)
    );
    let mut group = c.benchmark_group("serve");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    group.throughput(Throughput::Elements(DUMP));
    group.bench_function("non-follow dump of 1,000,000 messages", |b| {
        b.iter(|| read_all(server.addr, "/system/logs?name=bench"))
    });
    group.finish();
    // The wire's limit, in the same run: the same lines encoded beforehand into a file
    // and sent with sendfile(2), dumps of each taken in turn.
    let limit = Server::start(&format!("sendfile {DUMP}"));
    let (ours, sendfile) = dumps_in_turn(&server, &limit, 10, bytes / 100);
    println!(
        "dump against the wire's limit: {ours:.1?} against {sendfile:.1?} for the same bytes pre-encoded and sent with sendfile (medians of 10 in turn): {:.2} of the limit",
        sendfile.as_secs_f64() / ours.as_secs_f64()
    );
    // Against Go's handler, when benches/go/build.sh has built it: the same messages
    // through faas-provider's `logs.NewLogHandlerFunc`.
    if let Ok(go) = std::env::var("FAAS_LOGS_BENCH_GO") {
        let mut command = Command::new(go);
        command.arg(DUMP.to_string());
        let go = Server::spawn(command);
        // Go sends a chunk per line: about 7 bytes of framing a line more.
        let (ours, theirs) = dumps_in_turn(&server, &go, 3, bytes / 20);
        println!(
            "dump against Go's faas-provider handler: {ours:.1?} against {theirs:.1?} (medians of 3 in turn): {:.1}x as fast",
            theirs.as_secs_f64() / ours.as_secs_f64()
        );
    }
}

/// Median times of `rounds` dumps from each of two servers, taken in turn; each dump's
/// size must be within `slack` bytes of the other's.
fn dumps_in_turn(a: &Server, b: &Server, rounds: usize, slack: usize) -> (Duration, Duration) {
    let path = "/system/logs?name=bench";
    let (mut times_a, mut times_b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let started = Instant::now();
        let size_a = read_all(a.addr, path);
        times_a.push(started.elapsed());
        let started = Instant::now();
        let size_b = read_all(b.addr, path);
        times_b.push(started.elapsed());
        assert!(size_a.abs_diff(size_b) < slack, "both send the same lines");
    }
    times_a.sort();
    times_b.sort();
    (percentile(&times_a, 0.5), percentile(&times_b, 0.5))
}

fn tail(c: &mut Criterion) {
    let server = Server::start(&format!("generated {HUGE}"));
    let idle = server.kib("VmRSS");
    server.reset_peak();
    let started = Instant::now();
    let bytes = read_all(server.addr, "/system/logs?name=bench&tail=100");
    let took = started.elapsed();
    let peak = server.kib("VmHWM");
    println!(
        "tail=100 over {HUGE} messages: {took:.2?}, {bytes} bytes; server memory {idle} KiB idle, peak {peak} KiB (+{} KiB)",
        peak.saturating_sub(idle)
    );
    let mut group = c.benchmark_group("serve");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(HUGE));
    group.bench_function("tail=100 over 10,000,000 messages", |b| {
        b.iter(|| read_all(server.addr, "/system/logs?name=bench&tail=100"))
    });
    group.finish();
}

/// Latencies of the lines that arrive on one follow connection, measured from each
/// message's timestamp (stamped at append, in the server) to its arrival here.
async fn follower(
    addr: SocketAddr,
    query: String,
    expect: usize,
    ready: tokio::sync::mpsc::Sender<()>,
) -> (Vec<Duration>, Vec<u64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET /system/logs?{query} HTTP/1.1\r\nHost: bench\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut latencies = Vec::with_capacity(expect);
    // Each line's number (`request N`), to count lines missed or repeated; a line without
    // one (a gap line) is counted as u64::MAX.
    let mut numbers = Vec::with_capacity(expect);
    let mut head_seen = false;
    while latencies.len() < expect {
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(n > 0, "the server closed a follow stream early");
        let arrived = Utc::now().timestamp_nanos_opt().unwrap();
        pending.extend_from_slice(&buf[..n]);
        if !head_seen {
            if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                pending.drain(..i + 4);
                head_seen = true;
                let _ = ready.send(()).await;
            } else {
                continue;
            }
        }
        // Lines are found by their timestamps; chunk sizes between them are skipped. The
        // client shares the machine with the server, so it reads bytes, not text.
        let mut consumed = 0;
        while let Some(i) = TIMESTAMP_KEY.find(&pending[consumed..]) {
            let start = consumed + i + TIMESTAMP_KEY.needle().len();
            let Some(len) = memchr::memchr(b'"', &pending[start..]) else {
                break;
            };
            let written = timestamp_nanos(&pending[start..start + len])
                .unwrap_or_else(|| panic!("a line with a bad timestamp"));
            latencies.push(Duration::from_nanos(arrived.saturating_sub(written) as u64));
            consumed = start + len;
            let line_end =
                memchr::memchr(b'\n', &pending[consumed..]).map_or(pending.len(), |e| consumed + e);
            let number = REQUEST_KEY
                .find(&pending[consumed..line_end])
                .and_then(|i| {
                    let digits = &pending[consumed + i + REQUEST_KEY.needle().len()..line_end];
                    let end = digits.iter().position(|b| !b.is_ascii_digit())?;
                    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
                });
            numbers.push(number.unwrap_or(u64::MAX));
        }
        pending.drain(..consumed);
    }
    (latencies, numbers)
}

static REQUEST_KEY: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b" - request "));

static TIMESTAMP_KEY: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"timestamp\":\""));

/// Nanoseconds since the epoch of an RFC 3339 UTC timestamp as the encoder writes it
/// (`2006-01-02T15:04:05.999999999Z`, trailing zeros of the fraction dropped).
fn timestamp_nanos(t: &[u8]) -> Option<i64> {
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        std::str::from_utf8(t.get(range)?).ok()?.parse().ok()
    };
    let date =
        chrono::NaiveDate::from_ymd_opt(number(0..4)? as i32, number(5..7)?, number(8..10)?)?;
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let mut nanos = 0;
    if t.get(19) == Some(&b'.') {
        let digits = &t[20..t.len() - 1];
        nanos = number(20..t.len() - 1)? * 10u32.pow(9 - digits.len() as u32);
    }
    let at = date.and_hms_nano_opt(hour, minute, second, nanos)?;
    at.and_utc().timestamp_nanos_opt()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Waits for the followers; returns every latency, and how many lines the followers
/// missed and got twice in all.
async fn gather(
    tasks: Vec<tokio::task::JoinHandle<(Vec<Duration>, Vec<u64>)>>,
    per_follower: usize,
) -> (Vec<Duration>, usize, usize) {
    let (mut all, mut misses, mut repeats) = (Vec::new(), 0, 0);
    for t in tasks {
        let (latencies, mut numbers) = tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .unwrap()
            .unwrap();
        all.extend(latencies);
        // Gap lines are not lines of the writer: the lines they stand for are missed.
        numbers.retain(|&n| n != u64::MAX);
        numbers.sort_unstable();
        let received = numbers.len();
        numbers.dedup();
        repeats += received - numbers.len();
        misses += per_follower.saturating_sub(numbers.len());
    }
    (all, misses, repeats)
}

/// Opens a follow stream for each query, each to read `expect` lines, and returns once
/// every one has its response's head.
fn open_followers(
    runtime: &tokio::runtime::Runtime,
    addr: SocketAddr,
    queries: impl ExactSizeIterator<Item = String>,
    expect: usize,
) -> Vec<tokio::task::JoinHandle<(Vec<Duration>, Vec<u64>)>> {
    let followers = queries.len();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(followers);
    let tasks = queries
        .map(|query| runtime.spawn(follower(addr, query, expect, ready_tx.clone())))
        .collect();
    runtime.block_on(async {
        for _ in 0..followers {
            ready_rx.recv().await.unwrap();
        }
    });
    tasks
}

/// `N lines, M missed, R repeated, p50 …, p99 …, max …` of a follow case.
fn follow_summary(latencies: &mut [Duration], misses: usize, repeats: usize) -> String {
    latencies.sort();
    format!(
        "{} lines, {misses} missed, {repeats} repeated, p50 {:.3?}, p99 {:.3?}, max {:.3?}",
        latencies.len(),
        percentile(latencies, 0.50),
        percentile(latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
    )
}

/// Opens `followers` follow streams (round-robin over `functions` functions), has the
/// server write `count` lines at `rate` per second, and prints the latencies.
fn follow_case(label: &str, followers: usize, functions: usize, rate: u64, count: u64) {
    follow_case_on("store", label, followers, functions, rate, count);
}

/// [`follow_case`] against the server `mode` (`store`, or `bare` for the anchor).
fn follow_case_on(
    mode: &str,
    label: &str,
    followers: usize,
    functions: usize,
    rate: u64,
    count: u64,
) {
    // FAAS_LOGS_BENCH_CASE=TEXT runs only the cases whose label holds TEXT (to profile one).
    if !label.contains(&std::env::var("FAAS_LOGS_BENCH_CASE").unwrap_or_default()) {
        return;
    }
    let mut server = Server::start(&format!("{mode} {functions}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let before = server.kib("VmRSS");
    let files_before = server.open_files();
    let per_follower = if functions == 1 {
        count as usize
    } else {
        (count as usize) / functions
    };
    let queries = (0..followers).map(|i| format!("name=f{}&follow=true", i % functions));
    let tasks = open_followers(&runtime, server.addr, queries, per_follower);
    let idle = server.kib("VmRSS");
    let answer = server.command(&format!("write {functions} {rate} {count}"));
    assert_eq!(answer.trim(), "written");
    let (mut all, misses, repeats) = runtime.block_on(gather(tasks, per_follower));
    let after = server.kib("VmRSS");
    // The followers have gone; one more line per function makes each response write,
    // find its connection closed and end. Then the memory left is what the server keeps.
    let answer = server.command(&format!("write {functions} 100000 {functions}"));
    assert_eq!(answer.trim(), "written");
    server.wait_for_open_files(files_before);
    let left = server.kib("VmRSS");
    println!(
        "follow {label}: {}; server memory {before} KiB before, {idle} KiB with {followers} idle followers, {after} KiB after, {left} KiB once they left",
        follow_summary(&mut all, misses, repeats),
    );
}

fn follow() {
    follow_case("1 follower at 10,000/s", 1, 1, 10_000, 30_000);
    follow_case(
        "1,000 followers of 1,000 functions at 1,000/s in all",
        1_000,
        1_000,
        1_000,
        5_000,
    );
    follow_case("1,000 followers of one function at 1/s", 1_000, 1, 1, 5);
    // Issue 23's target: p99 under 10 ms here.
    follow_case(
        "1,000 followers of one function at 1,000/s",
        1_000,
        1,
        1_000,
        2_000,
    );
    // Its anchor, the wire's limit: the same lines encoded once, each follower woken once
    // per append and writing what it has not sent in one chunk, no handler in between.
    follow_case_on(
        "bare",
        "1,000 followers of one function at 1,000/s, bare fan-out",
        1_000,
        1,
        1_000,
        2_000,
    );
    follow_the_binary();
}

/// The same 1,000 followers of one function at 1,000 lines/s against `faas-logs serve`,
/// the binary an operator runs (with its allocator), fed by pushes: then how long its
/// memory takes to come back once the followers have left.
fn follow_the_binary() {
    const LABEL: &str = "1,000 followers of one function at 1,000/s, faas-logs serve";
    const FOLLOWERS: usize = 1_000;
    const LINES: usize = 2_000;
    if !LABEL.contains(&std::env::var("FAAS_LOGS_BENCH_CASE").unwrap_or_default()) {
        return;
    }
    // FAAS_LOGS_BENCH_BINARY=PATH measures another build of it, to compare two.
    let binary = std::env::var("FAAS_LOGS_BENCH_BINARY")
        .ok()
        .or(option_env!("CARGO_BIN_EXE_faas-logs").map(String::from));
    let Some(binary) = binary else {
        println!("follow {LABEL}: skipped, the binary needs --features serve");
        return;
    };
    let mut command = Command::new(binary);
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::null());
    let server = Server::spawn(command);
    let mut pusher = Pusher::connect(server.addr);
    pusher.push(u64::MAX); // the function exists before anyone follows it
    let before = server.kib("VmRSS");
    let files_before = server.open_files();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // History from now on: without the line that made the function exist.
    let since = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let queries = std::iter::repeat_n(format!("name=f0&follow=true&since={since}"), FOLLOWERS);
    let tasks = open_followers(&runtime, server.addr, queries, LINES);
    let idle = server.kib("VmRSS");
    let start = Instant::now();
    for i in 0..LINES as u64 {
        let due = start + Duration::from_millis(i);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        pusher.push(i);
    }
    let (mut all, misses, repeats) = runtime.block_on(gather(tasks, LINES));
    let after = server.kib("VmRSS");
    // One more line makes each response write, find its connection closed and end.
    pusher.push(u64::MAX);
    let gone = Instant::now();
    server.wait_for_open_files(files_before);
    let left = server.kib("VmRSS");
    // Freed pages go back as the allocator's background threads purge them.
    let settled = loop {
        let now = server.kib("VmRSS");
        if now <= 2 * before || gone.elapsed() > Duration::from_secs(60) {
            break now;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    println!(
        "follow {LABEL}: {}; server memory {before} KiB before, {idle} KiB with {FOLLOWERS} idle followers, {after} KiB after, {left} KiB once they left, {settled} KiB {:.1?} after they left",
        follow_summary(&mut all, misses, repeats),
        gone.elapsed(),
    );
}

/// Pushes lines of `f0` to `/system/logs/push` over one kept-alive connection.
struct Pusher {
    tcp: BufReader<std::net::TcpStream>,
}

impl Pusher {
    fn connect(addr: SocketAddr) -> Pusher {
        let tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_nodelay(true).unwrap();
        Pusher {
            tcp: BufReader::new(tcp),
        }
    }

    /// Pushes line `number` (`u64::MAX`: a line without a number), stamped now, and
    /// waits for the 200 that says it is stored.
    fn push(&mut self, number: u64) {
        use std::io::Read;
        let text = if number == u64::MAX {
            "GET /function/f0 200 OK - warming up".to_string()
        } else {
            format!("GET /function/f0 200 OK - request {number} served")
        };
        let timestamp = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let body = format!(
            r#"{{"name":"f0","instance":"f0-1","timestamp":"{timestamp}","text":"{text}"}}"#
        );
        let tcp = self.tcp.get_mut();
        write!(
            tcp,
            "POST /system/logs/push HTTP/1.1\r\nHost: bench\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut status = String::new();
        self.tcp.read_line(&mut status).unwrap();
        assert!(status.contains(" 200 "), "a push was answered {status:?}");
        let mut length = 0;
        loop {
            let mut header = String::new();
            self.tcp.read_line(&mut header).unwrap();
            let header = header.trim();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut answer = vec![0; length];
        self.tcp.read_exact(&mut answer).unwrap();
    }
}

/// Sends `GET path` and reads until the server closes the connection, cleanly or not.
fn read_until_closed(addr: SocketAddr, path: &str) {
    use std::io::Read;
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    while matches!(tcp.read(&mut buf), Ok(n) if n > 0) {}
}

fn hostile() {
    // A 1 s timeout: how late does each kind of response end?
    let server = Server::start("endless 1");
    for query in ["tail=5", "tail=5&follow=true", "instance=nobody"] {
        let mut late: Vec<Duration> = (0..5)
            .map(|_| {
                let start = Instant::now();
                read_until_closed(server.addr, &format!("/system/logs?name=f&{query}"));
                start.elapsed().saturating_sub(Duration::from_secs(1))
            })
            .collect();
        late.sort();
        println!(
            "hostile: {query} over an endless always-ready backend, 1 s timeout: ended {:?} to {:?} late",
            late[0],
            late[late.len() - 1]
        );
    }
    drop(server);
    // Two endless scans on a two-worker server; then small requests (a 422) one by one.
    let server = Server::start("endless 60");
    let addr = server.addr;
    for _ in 0..2 {
        std::thread::spawn(move || read_until_closed(addr, "/system/logs?name=f&instance=nobody"));
    }
    std::thread::sleep(Duration::from_millis(200));
    let mut waits: Vec<Duration> = (0..50)
        .map(|_| {
            let start = Instant::now();
            read_until_closed(addr, "/system/logs?name=f&tail=x");
            start.elapsed()
        })
        .collect();
    waits.sort();
    println!(
        "hostile: a small request while two endless scans run on two workers: p50 {:?}, p99 {:?}, max {:?}",
        percentile(&waits, 0.5),
        percentile(&waits, 0.99),
        waits[waits.len() - 1]
    );
}

/// The child process: a server on 127.0.0.1 in one of three modes.
mod server {
    use std::io::BufRead;
    use std::time::{Duration, Instant};

    use chrono::Utc;
    use faas_logs::server::LogHandler;
    use faas_logs::store::{LogStore, StoreLimits};
    use faas_logs::{async_trait, Error, Event, LogStream, Message, Request, Requester, SharedStr};

    /// Ignores every parameter and answers with `n` messages of 200 bytes' line.
    struct Generated(u64);

    /// The messages [`Generated`] answers with, from an hour ago.
    fn generated(n: u64) -> impl Iterator<Item = Message> {
        let start = Utc::now() - chrono::Duration::hours(1);
        let proto = Message::new("bench", start, "GET /function/bench 200 OK - ".repeat(3))
            .with_namespace("openfaas-fn")
            .with_instance("bench-7d9f8c6b5-x2vqz");
        (0..n).map(move |i| {
            let mut m = proto.clone();
            m.timestamp = start + chrono::Duration::microseconds(i as i64);
            m
        })
    }

    #[async_trait]
    impl Requester for Generated {
        async fn query(&self, _: Request) -> Result<LogStream, Error> {
            let messages = generated(self.0).map(|m| Ok(Event::Message(m)));
            Ok(Box::pin(futures_util::stream::iter(messages)))
        }
    }

    /// The dump's limit: [`Generated`]'s lines encoded into a file once, then every
    /// request answered with the file through sendfile(2). Serves for ever.
    fn sendfile(n: u64) {
        use std::io::{Read, Write};
        let path = std::env::temp_dir().join(format!("faas-logs-dump-{}", std::process::id()));
        let mut encoded = bytes::BytesMut::new();
        for m in generated(n) {
            faas_logs::codec::encode_message(&m, &mut encoded);
        }
        std::fs::write(&path, &encoded).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        println!("listening {}", listener.local_addr().unwrap());
        let file = std::fs::File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        for tcp in listener.incoming() {
            let mut tcp = tcp.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match tcp.read(&mut buf) {
                    Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            let len = encoded.len();
            let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n");
            if tcp.write_all(head.as_bytes()).is_err() {
                continue;
            }
            let mut offset = 0u64;
            while offset < len as u64 {
                let left = len - offset as usize;
                match rustix::fs::sendfile(&tcp, &file, Some(&mut offset), left) {
                    Ok(sent) if sent > 0 => {}
                    _ => break,
                }
            }
        }
    }

    /// Always ready, never ending: old lines of instance `f-1`, no history mark. Its
    /// names are shared, as a backend's names should be (BENCHMARKS.md has the figures
    /// of one that makes them afresh for each line).
    struct Endless;

    #[async_trait]
    impl Requester for Endless {
        async fn query(&self, _: Request) -> Result<LogStream, Error> {
            let start = Utc::now() - chrono::Duration::hours(1);
            let mut i = 0;
            let (name, namespace, instance): (SharedStr, SharedStr, SharedStr) =
                ("f".into(), "openfaas-fn".into(), "f-1".into());
            Ok(Box::pin(futures_util::stream::repeat_with(move || {
                i += 1;
                let at = start + chrono::Duration::microseconds(i);
                Ok(Event::Message(
                    Message::new(name.clone(), at, "an old line")
                        .with_namespace(namespace.clone())
                        .with_instance(instance.clone()),
                ))
            })))
        }
    }

    pub(crate) fn run(mode: &str) {
        let runtime = crate::common::server_runtime();
        let (kind, arg) = mode.split_once(' ').unwrap_or((mode, "0"));
        let n: u64 = arg.parse().unwrap();
        match kind {
            "generated" => runtime.block_on(serve(LogHandler::new(
                Generated(n),
                Duration::from_secs(600),
            ))),
            "store" => {
                let store = LogStore::with_limits(StoreLimits {
                    max_messages: 10_000,
                    max_functions: 10_000,
                    ..StoreLimits::default()
                });
                for f in 0..n {
                    store.register("", &format!("f{f}")).unwrap();
                }
                let handler = LogHandler::new(store.clone(), Duration::from_secs(600));
                std::thread::spawn(move || commands(|m| store.append(m).unwrap()));
                runtime.block_on(serve(handler));
            }
            "bare" => {
                let lines = std::sync::Arc::new(crate::bare::Lines::default());
                let writer = std::sync::Arc::clone(&lines);
                std::thread::spawn(move || commands(|m| writer.push(&m)));
                runtime.block_on(crate::bare::serve(lines));
            }
            "sendfile" => sendfile(n),
            "endless" => runtime.block_on(serve(LogHandler::new(Endless, Duration::from_secs(n)))),
            other => panic!("unknown server mode {other}"),
        }
    }

    /// Serves `handler` and prints its address for the parent, for ever.
    async fn serve<R: Requester>(handler: LogHandler<R>) {
        let addr = crate::common::serve(handler).await;
        println!("listening {addr}");
        std::future::pending::<()>().await;
    }

    /// `write FUNCTIONS RATE COUNT`: appends COUNT lines round-robin over the functions at
    /// RATE per second, then answers `written`.
    fn commands(mut append: impl FnMut(Message)) {
        for line in std::io::stdin().lock().lines() {
            let line = line.unwrap();
            let parts: Vec<u64> = line
                .split(' ')
                .skip(1)
                .map(|p| p.parse().unwrap())
                .collect();
            let [functions, rate, count] = parts[..] else {
                panic!("bad command {line:?}");
            };
            let interval = Duration::from_secs_f64(1.0 / rate as f64);
            let start = Instant::now();
            for i in 0..count {
                let due = start + interval * i as u32;
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                let f = i % functions;
                append(
                    Message::new(
                        format!("f{f}"),
                        Utc::now(),
                        format!("GET /function/f{f} 200 OK - request {i} served"),
                    )
                    .with_namespace("openfaas-fn")
                    .with_instance(format!("f{f}-1")),
                );
            }
            println!("written");
        }
    }
}

/// The fan-out anchor: followers of one function served with nothing but what the wire
/// needs. Each line is encoded once as it is appended; every connection waits on one
/// shared signal and writes all the lines it has not sent as one HTTP chunk.
mod bare {
    use std::sync::{Mutex, PoisonError};

    use bytes::Bytes;
    use faas_logs::Message;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::watch;

    pub(crate) struct Lines {
        encoded: Mutex<Vec<Bytes>>,
        count: watch::Sender<usize>,
    }

    impl Default for Lines {
        fn default() -> Self {
            Lines {
                encoded: Mutex::default(),
                count: watch::Sender::new(0),
            }
        }
    }

    impl Lines {
        pub(crate) fn push(&self, m: &Message) {
            let mut line = bytes::BytesMut::new();
            faas_logs::codec::encode_message(m, &mut line);
            let mut encoded = self.encoded.lock().unwrap_or_else(PoisonError::into_inner);
            encoded.push(line.freeze());
            self.count.send_replace(encoded.len());
        }
    }

    pub(crate) async fn serve(lines: std::sync::Arc<Lines>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("listening {}", listener.local_addr().unwrap());
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            tokio::spawn(follow(tcp, std::sync::Arc::clone(&lines)));
        }
    }

    async fn follow(mut tcp: tokio::net::TcpStream, lines: std::sync::Arc<Lines>) {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut buf).await {
                Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
                _ => return,
            }
        }
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n";
        if tcp.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let mut count = lines.count.subscribe();
        let mut sent = *count.borrow_and_update();
        let mut chunk = Vec::new();
        loop {
            let now = *count.borrow_and_update();
            if now == sent {
                // Wait for a line, or for the client to leave.
                tokio::select! {
                    changed = count.changed() => if changed.is_err() {
                        return;
                    },
                    _ = tcp.read(&mut buf) => return,
                }
                continue;
            }
            chunk.clear();
            {
                let encoded = lines.encoded.lock().unwrap_or_else(PoisonError::into_inner);
                let size: usize = encoded[sent..now].iter().map(Bytes::len).sum();
                chunk.extend_from_slice(format!("{size:x}\r\n").as_bytes());
                for line in &encoded[sent..now] {
                    chunk.extend_from_slice(line);
                }
            }
            chunk.extend_from_slice(b"\r\n");
            sent = now;
            if tcp.write_all(&chunk).await.is_err() {
                return;
            }
        }
    }
}
