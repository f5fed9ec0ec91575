//! `faas-logs collect`: a containerd binary log driver, compatible with faasd's `collect`.
//!
//! containerd starts it for each container (`ctr run --log-uri
//! binary:///usr/local/bin/faas-logs?collect`, or faasd's `--log-uri`) with the
//! container's stdout on fd 3, its stderr on fd 4, a pipe on fd 5 to say it is ready, and
//! `CONTAINER_ID` and `CONTAINER_NAMESPACE` in its environment. Each line goes to the
//! journal with `SYSLOG_IDENTIFIER=<namespace>:<id>` (as faasd writes it), stdout at
//! priority 6 and stderr at 3, and `CONTAINER_ID=<id>` as the instance; or, with
//! `--push URL`, to a faas-logs provider's push endpoint.
//!
//! The container never waits for its logs: two threads drain its pipes into a queue of
//! bounded size, and a third writes the queue out. When the journal (or the provider)
//! is gone or slower than the container, the queue holds what it can; lines that do not
//! fit are counted, and a line saying how many were lost is written as soon as writing
//! works again. A line longer than `--max-line` is cut into pieces of that size (at a
//! character boundary); a last line without a newline is kept.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use faas_logs::journald::{JournalWriter, Priority, JOURNAL_SOCKET};
use faas_logs::{Message, OutputStream};

/// Reads a container's output for containerd and writes it to the journal or a provider.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub(crate) struct Args {
    /// The container's id, given by containerd.
    #[arg(long, env = "CONTAINER_ID")]
    id: String,
    /// The container's namespace, given by containerd.
    #[arg(long, env = "CONTAINER_NAMESPACE")]
    namespace: String,
    /// The function's name, when it is not the container's id.
    #[arg(long)]
    name: Option<String>,
    /// Send the lines to this push endpoint of a faas-logs provider
    /// (http://HOST:PORT/system/logs/push) instead of the journal.
    #[arg(long, value_name = "URL")]
    push: Option<String>,
    /// journald's native socket.
    #[arg(long, default_value = JOURNAL_SOCKET)]
    journal_socket: PathBuf,
    /// Longer lines are cut into pieces of this many bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_line: usize,
    /// The most bytes of lines held while the journal or provider is slow or gone
    /// (each line counts 64 bytes more than its text); lines beyond are counted and
    /// reported.
    #[arg(long, default_value_t = 16 << 20)]
    buffer: usize,
    /// After the container ends, how long to go on writing what is held; what is left
    /// then is counted as lost (containerd kills the driver 12 s after the container).
    #[arg(long, value_parser = humantime_secs, default_value = "9")]
    drain_timeout: Duration,
    /// Where the container's stdout is read (containerd's fd 3).
    #[arg(long, default_value = "/proc/self/fd/3", hide = true)]
    stdout: PathBuf,
    /// Where the container's stderr is read (containerd's fd 4).
    #[arg(long, default_value = "/proc/self/fd/4", hide = true)]
    stderr: PathBuf,
    /// The pipe containerd waits on until the driver is ready (fd 5).
    #[arg(long, default_value = "/proc/self/fd/5", hide = true)]
    ready: PathBuf,
}

const EXAMPLES: &str = "\
Examples (containerd runs it; the environment names the container):
  ctr run --log-uri 'binary:///usr/local/bin/faas-logs?collect' IMAGE ID
  ctr run --log-uri 'binary:///usr/local/bin/faas-logs?collect&--push=http://127.0.0.1:8080/system/logs/push' IMAGE ID";

fn humantime_secs(s: &str) -> Result<Duration, String> {
    s.trim_end_matches('s')
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{s:?} is not a number of seconds"))
}

/// containerd passes the log URI's query as arguments, key then value, in no fixed order
/// (`?collect&--push=URL` can arrive as `--push URL collect ""`). When it is containerd
/// that runs us (`CONTAINER_ID` is set and `collect` comes as a key with an empty value),
/// the arguments are put back in an order the parser reads: `collect`, then the other
/// pairs as `--key=value`.
pub(crate) fn containerd_args(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    if std::env::var_os("CONTAINER_ID").is_none() || args.len() < 3 {
        return args;
    }
    let pairs: Vec<_> = args[1..].chunks(2).collect();
    // containerd gives a key without a value an empty one: `collect ""`.
    if !pairs
        .iter()
        .any(|pair| pair[0] == "collect" && pair.get(1).is_some_and(|v| v.is_empty()))
    {
        return args;
    }
    let mut reordered = vec![args[0].clone(), "collect".into()];
    for pair in pairs.into_iter().filter(|pair| pair[0] != "collect") {
        let key = pair[0].to_string_lossy();
        let key = if key.starts_with('-') {
            key.into_owned()
        } else {
            format!("--{key}")
        };
        match pair.get(1).filter(|v| !v.is_empty()) {
            Some(value) => reordered.push(format!("{key}={}", value.to_string_lossy()).into()),
            None => reordered.push(key.into()),
        }
    }
    reordered
}

/// Runs until both of the container's pipes end and what they held is written (or the
/// drain timeout passes); errors are printed as sentences.
pub(crate) fn run(args: Args) -> std::process::ExitCode {
    match collect(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("faas-logs collect: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn collect(args: Args) -> Result<(), String> {
    // containerd sends SIGTERM as soon as the container's pipes close, and waits (12 s)
    // before it kills: what the pipes still hold is read and written in that time.
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start: {e}"))?;
    let _sigterm = signals
        .block_on(async {
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        })
        .map_err(|e| format!("cannot take SIGTERM: {e}"))?;
    let open = |path: &Path, what: &str| {
        File::open(path).map_err(|e| {
            format!(
                "cannot read the container's {what} at {}: {e}",
                path.display()
            )
        })
    };
    let stdout = open(&args.stdout, "stdout")?;
    let stderr = open(&args.stderr, "stderr")?;
    let queue = Arc::new(Queue::new(args.buffer));
    let readers = [
        (stdout, OutputStream::Stdout),
        (stderr, OutputStream::Stderr),
    ]
    .map(|(file, stream)| {
        let queue = Arc::clone(&queue);
        let max_line = args.max_line.max(1);
        std::thread::spawn(move || read_pipe(file, stream, max_line, &queue))
    });
    say_ready(&args.ready);
    let name = args.name.clone().unwrap_or_else(|| args.id.clone());
    let result = match &args.push {
        Some(url) => write_pushes(&args, &name, url, &queue),
        None => write_journal(&args, &name, &queue),
    };
    for reader in readers {
        let _ = reader.join();
    }
    result
}

/// containerd waits for a byte (or the end) on fd 5 before it starts the container.
fn say_ready(ready: &Path) {
    match std::fs::OpenOptions::new().write(true).open(ready) {
        Ok(mut pipe) => {
            let _ = pipe.write_all(b"1");
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => eprintln!("faas-logs collect: cannot tell containerd it is ready: {e}"),
    }
}

/// One line of the container's output.
struct Line {
    stream: OutputStream,
    text: Vec<u8>,
    time: DateTime<Utc>,
}

/// The lines between the pipes' readers and the writer, bounded in bytes. The readers
/// never wait: a line that does not fit is counted as dropped.
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
    capacity: usize,
}

#[derive(Default)]
struct QueueState {
    lines: VecDeque<Line>,
    /// What the lines take in memory, by [`cost`].
    bytes: usize,
    dropped: u64,
    /// Readers whose pipe has ended (two when the container is done).
    ended: usize,
    ended_at: Option<Instant>,
}

/// What a line takes in the queue: its text and its bookkeeping.
fn cost(line: &Line) -> usize {
    line.text.len() + 64
}

impl Queue {
    fn new(capacity: usize) -> Self {
        Queue {
            state: Mutex::new(QueueState::default()),
            ready: Condvar::new(),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, line: Line) {
        let mut state = self.lock();
        if state.bytes + cost(&line) > self.capacity && !state.lines.is_empty() {
            state.dropped += 1;
            return;
        }
        state.bytes += cost(&line);
        state.lines.push_back(line);
        drop(state);
        self.ready.notify_one();
    }

    fn end(&self) {
        let mut state = self.lock();
        state.ended += 1;
        if state.ended >= 2 {
            state.ended_at = Some(Instant::now());
        }
        drop(state);
        self.ready.notify_one();
    }

    /// Up to `max` lines and about `max_bytes` of text (at least one line), waiting for
    /// one; `None` once both pipes ended and all is taken. Also the count of lines
    /// dropped since the last call.
    fn take(&self, max: usize, max_bytes: usize) -> Option<(Vec<Line>, u64)> {
        let mut state = self.lock();
        while state.lines.is_empty() && state.ended < 2 {
            state = self
                .ready
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        if state.lines.is_empty() && state.dropped == 0 {
            return None;
        }
        let mut n = 0;
        let mut bytes = 0;
        for line in state.lines.iter().take(max) {
            if n > 0 && bytes + line.text.len() > max_bytes {
                break;
            }
            n += 1;
            bytes += line.text.len();
        }
        let lines: Vec<Line> = state.lines.drain(..n).collect();
        state.bytes -= lines.iter().map(cost).sum::<usize>();
        Some((lines, std::mem::take(&mut state.dropped)))
    }

    /// Gives back lines that could not be written, to be taken first next time.
    fn put_back(&self, lines: Vec<Line>, dropped: u64) {
        let mut state = self.lock();
        state.dropped += dropped;
        for line in lines.into_iter().rev() {
            state.bytes += cost(&line);
            state.lines.push_front(line);
        }
    }

    /// Whether the container ended more than `drain` ago.
    fn past(&self, drain: Duration) -> bool {
        self.lock().ended_at.is_some_and(|at| at.elapsed() > drain)
    }

    /// Empties the queue; how many lines (and dropped lines) it held.
    fn take_all(&self) -> u64 {
        let mut state = self.lock();
        let n = state.lines.len() as u64 + std::mem::take(&mut state.dropped);
        state.lines.clear();
        state.bytes = 0;
        n
    }
}

/// Drains one pipe into the queue, line by line, until it ends.
fn read_pipe(mut pipe: File, stream: OutputStream, max_line: usize, queue: &Queue) {
    let mut buffer = vec![0; 64 << 10];
    let mut line = Vec::new();
    let emit = |text: Vec<u8>| {
        queue.push(Line {
            stream,
            text,
            time: Utc::now(),
        });
    };
    loop {
        let n = match pipe.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("faas-logs collect: reading the container's output failed: {e}");
                break;
            }
        };
        let mut rest = &buffer[..n];
        while let Some(end) = memchr::memchr(b'\n', rest) {
            line.extend_from_slice(&rest[..end]);
            rest = &rest[end + 1..];
            emit_pieces(&mut line, max_line, &emit);
            emit(std::mem::take(&mut line));
        }
        line.extend_from_slice(rest);
        emit_pieces(&mut line, max_line, &emit);
    }
    if !line.is_empty() {
        emit(line);
    }
    queue.end();
}

/// Emits the front of `line` in pieces of at most `max` bytes, cut at character
/// boundaries, while it is longer than `max`.
fn emit_pieces(line: &mut Vec<u8>, max: usize, emit: &impl Fn(Vec<u8>)) {
    while line.len() > max {
        let mut cut = max;
        // Back up over at most three continuation bytes of a UTF-8 character.
        while cut > max.saturating_sub(3) && cut > 1 && (line[cut] & 0xC0) == 0x80 {
            cut -= 1;
        }
        let rest = line.split_off(cut);
        emit(std::mem::replace(line, rest));
    }
}

/// How long to wait before trying a failed write again, growing to two seconds.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(50u64 << failures.min(5)).min(Duration::from_secs(2))
}

fn dropped_notice(dropped: u64) -> String {
    format!("faas-logs collect: {dropped} lines of this container were lost: they came faster than they could be written, or while the log store was unreachable")
}

/// Where the lines go: the journal, or a provider's push endpoint.
trait Sink {
    /// Writes a batch (after a notice of `dropped` lines lost before it, when there
    /// were); on an error, how many of the lines were written before it, and whether
    /// the notice was.
    fn write(&mut self, lines: &[Line], dropped: u64) -> Result<(), Unwritten>;
    /// What the sink is, for messages.
    fn describe(&self) -> String;
}

struct Unwritten {
    written: usize,
    noticed: bool,
    error: String,
}

/// Writes the queue to `sink` until the pipes end and the queue is empty. A failed
/// write is tried again, the lines waiting in the queue meanwhile; once the container
/// has ended, what is not written within the drain timeout is counted as lost.
fn drain(
    args: &Args,
    queue: &Queue,
    sink: &mut dyn Sink,
    batch: (usize, usize),
) -> Result<(), String> {
    let mut failures = 0;
    loop {
        if queue.past(args.drain_timeout) {
            let lost = queue.take_all();
            if lost == 0 {
                return Ok(());
            }
            // One last try to say so; containerd kills the driver soon after.
            let _ = sink.write(&[], lost);
            return Err(format!(
                "the container ended and {} did not take its last {lost} lines within {:?}",
                sink.describe(),
                args.drain_timeout
            ));
        }
        let Some((lines, dropped)) = queue.take(batch.0, batch.1) else {
            return Ok(());
        };
        let Err(unwritten) = sink.write(&lines, dropped) else {
            failures = 0;
            continue;
        };
        if failures == 0 {
            eprintln!(
                "faas-logs collect: {} is not taking lines ({}); holding them and trying again",
                sink.describe(),
                unwritten.error
            );
        }
        let dropped = if unwritten.noticed { 0 } else { dropped };
        queue.put_back(lines.into_iter().skip(unwritten.written).collect(), dropped);
        std::thread::sleep(backoff(failures));
        failures += 1;
    }
}

/// journald over its native protocol.
struct Journal {
    writer: JournalWriter,
    identifier: String,
    id: String,
}

impl Sink for Journal {
    fn write(&mut self, lines: &[Line], dropped: u64) -> Result<(), Unwritten> {
        let fields: [(&str, &[u8]); 2] = [
            ("SYSLOG_IDENTIFIER", self.identifier.as_bytes()),
            ("CONTAINER_ID", self.id.as_bytes()),
        ];
        let failed = |written, noticed, e: io::Error| Unwritten {
            written,
            noticed,
            error: e.to_string(),
        };
        if dropped > 0 {
            let notice = dropped_notice(dropped);
            self.writer
                .send(notice.as_bytes(), Priority::Warning, &fields)
                .map_err(|e| failed(0, false, e))?;
        }
        for (written, line) in lines.iter().enumerate() {
            let priority = match line.stream {
                OutputStream::Stderr => Priority::Err,
                _ => Priority::Info,
            };
            self.writer
                .send(&line.text, priority, &fields)
                .map_err(|e| failed(written, true, e))?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("journald at {}", self.writer.path().display())
    }
}

fn write_journal(args: &Args, name: &str, queue: &Queue) -> Result<(), String> {
    let mut journal = Journal {
        writer: JournalWriter::new(&args.journal_socket),
        identifier: format!("{}:{name}", args.namespace),
        id: args.id.clone(),
    };
    drain(args, queue, &mut journal, (256, usize::MAX))
}

/// The text of one push, at most (a single longer line goes alone).
const PUSH_BYTES: usize = 4 << 20;

type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
>;

/// A provider's push endpoint: each batch is sent with an `Idempotency-Key`, and sent
/// again with the same key until the provider takes it, so it is stored once.
struct Pusher<'a> {
    args: &'a Args,
    name: &'a str,
    url: &'a str,
    uri: hyper::Uri,
    runtime: tokio::runtime::Runtime,
    client: HttpClient,
    started: i64,
    batches: u64,
    /// The key of the batch being sent, kept while it fails.
    pending: Option<String>,
}

impl Sink for Pusher<'_> {
    fn write(&mut self, lines: &[Line], dropped: u64) -> Result<(), Unwritten> {
        let key = self.pending.take().unwrap_or_else(|| {
            self.batches += 1;
            let args = self.args;
            format!(
                "collect-{}-{}-{}-{}",
                args.namespace, args.id, self.started, self.batches
            )
        });
        let body = push_body(self.args, self.name, lines, dropped);
        match self
            .runtime
            .block_on(push(&self.client, &self.uri, &key, body))
        {
            Ok(()) => Ok(()),
            Err(Push::Refused(e)) => {
                eprintln!(
                    "faas-logs collect: the provider refused {} lines: {e}",
                    lines.len()
                );
                Ok(())
            }
            Err(Push::Retry(error)) => {
                self.pending = Some(key);
                Err(Unwritten {
                    written: 0,
                    noticed: false,
                    error,
                })
            }
        }
    }

    fn describe(&self) -> String {
        format!("the provider at {}", self.url)
    }
}

fn write_pushes(args: &Args, name: &str, url: &str, queue: &Queue) -> Result<(), String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("--push {url:?} is not a URL: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start: {e}"))?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let mut pusher = Pusher {
        args,
        name,
        url,
        uri,
        runtime,
        client,
        started: Utc::now().timestamp_nanos_opt().unwrap_or_default(),
        batches: 0,
        pending: None,
    };
    drain(args, queue, &mut pusher, (1000, PUSH_BYTES))
}

/// The batch as NDJSON messages, the notice of dropped lines first.
fn push_body(args: &Args, name: &str, lines: &[Line], dropped: u64) -> bytes::Bytes {
    let message = |text: String, time: DateTime<Utc>, stream: OutputStream| {
        Message::new(name, time, text)
            .with_namespace(args.namespace.as_str())
            .with_instance(args.id.as_str())
            .with_stream(stream)
    };
    let mut body = Vec::new();
    let mut write = |m: Message| {
        // A Message always serialises.
        let _ = serde_json::to_writer(&mut body, &m);
        body.push(b'\n');
    };
    if dropped > 0 {
        let time = lines.first().map_or_else(Utc::now, |l| l.time);
        write(message(dropped_notice(dropped), time, OutputStream::Stderr));
    }
    for line in lines {
        let text = String::from_utf8_lossy(&line.text).into_owned();
        write(message(text, line.time, line.stream));
    }
    body.into()
}

enum Push {
    /// Worth sending again: the provider is unreachable, busy or full.
    Retry(String),
    /// The provider will not take these lines as they are.
    Refused(String),
}

async fn push(
    client: &HttpClient,
    uri: &hyper::Uri,
    key: &str,
    body: bytes::Bytes,
) -> Result<(), Push> {
    use http_body_util::BodyExt;
    let request = hyper::Request::post(uri.clone())
        .header("content-type", "application/x-ndjson")
        .header("idempotency-key", key)
        .body(http_body_util::Full::new(body))
        .map_err(|e| Push::Refused(e.to_string()))?;
    let response = tokio::time::timeout(Duration::from_secs(5), client.request(request))
        .await
        .map_err(|_| Push::Retry("no answer in 5 s".into()))?
        .map_err(|e| Push::Retry(faas_logs::Error::describe(&e)))?;
    let status = response.status();
    let text = response
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    if status.is_success() {
        Ok(())
    } else if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
        Err(Push::Retry(format!("{status}: {}", text.trim())))
    } else {
        Err(Push::Refused(format!("{status}: {}", text.trim())))
    }
}
