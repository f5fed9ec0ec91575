//! Shared pieces of the black-box tests: a real server on 127.0.0.1, a real HTTP client,
//! and a scripted backend that ignores every request parameter.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use faas_logs::server::LogHandler;
use faas_logs::{async_trait, Capabilities, Error, Event, LogStream, Message, Request, Requester};
use futures::{Stream, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, Notify};

/// Serves `handler` on a fresh 127.0.0.1 port, one task per connection (the handler is
/// hyper's service itself).
pub(crate) async fn serve<R: Requester>(handler: LogHandler<R>) -> SocketAddr {
    serve_service(handler).await
}

/// Serves `answer` (every request of every connection) on a fresh 127.0.0.1 port.
pub(crate) async fn serve_fn<F, Fut, B>(answer: F) -> SocketAddr
where
    F: Fn(hyper::Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = hyper::Response<B>> + Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    serve_service(hyper::service::service_fn(move |req| {
        let answered = answer(req);
        async move { Ok::<_, std::convert::Infallible>(answered.await) }
    }))
    .await
}

async fn serve_service<S, B>(service: S) -> SocketAddr
where
    S: hyper::service::Service<
            hyper::Request<Incoming>,
            Response = hyper::Response<B>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
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

/// One HTTP/1.1 connection to the server. Dropping it closes the TCP connection.
pub(crate) struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Connection {
    pub(crate) async fn open(addr: SocketAddr) -> Connection {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        Connection::over(tcp).await
    }

    /// A connection whose receive buffer is a few KiB, so that a reader that stops
    /// reading stops the server within a few lines (the kernel would otherwise buffer
    /// megabytes for it).
    pub(crate) async fn open_narrow(addr: SocketAddr) -> Connection {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let tcp = socket.connect(addr).await.unwrap();
        Connection::over(tcp).await
    }

    async fn over(tcp: tokio::net::TcpStream) -> Connection {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        let task = tokio::spawn(async move {
            let _ = conn.await;
        });
        Connection { sender, task }
    }

    pub(crate) async fn send(
        &mut self,
        method: &str,
        path_and_query: &str,
        body: &[u8],
    ) -> hyper::Response<Incoming> {
        self.send_with(method, path_and_query, &[], body).await
    }

    /// [`Connection::send`] with extra request headers.
    pub(crate) async fn send_with(
        &mut self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> hyper::Response<Incoming> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path_and_query)
            .header("host", "127.0.0.1");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req.body(Full::new(Bytes::copy_from_slice(body))).unwrap();
        within(self.sender.send_request(req)).await.unwrap()
    }
}

/// `GET path` on a new connection; the connection lives as long as the response's body is
/// read through [`Lines`].
pub(crate) async fn get(addr: SocketAddr, path_and_query: &str) -> (hyper::Response<()>, Lines) {
    get_on(Connection::open(addr).await, path_and_query).await
}

/// [`get`] on a connection made with [`Connection::open_narrow`].
pub(crate) async fn get_narrow(
    addr: SocketAddr,
    path_and_query: &str,
) -> (hyper::Response<()>, Lines) {
    get_on(Connection::open_narrow(addr).await, path_and_query).await
}

async fn get_on(mut conn: Connection, path_and_query: &str) -> (hyper::Response<()>, Lines) {
    let response = conn.send("GET", path_and_query, b"").await;
    let (parts, body) = response.into_parts();
    (
        hyper::Response::from_parts(parts, ()),
        Lines {
            body,
            pending: Vec::new(),
            _conn: conn,
        },
    )
}

/// `GET path` over HTTP/2 with prior knowledge, on a new connection that lives as long
/// as the response's body.
pub(crate) async fn get_http2(
    addr: SocketAddr,
    path_and_query: &str,
) -> hyper::Response<hyper::body::Incoming> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let request = hyper::Request::get(format!("http://{addr}{path_and_query}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    within(sender.send_request(request)).await.unwrap()
}

/// `GET path` on a new connection, read whole: the status and the body as text.
#[cfg_attr(not(feature = "cli"), allow(dead_code))] // used by the parts that need `cli`
pub(crate) async fn get_whole(addr: SocketAddr, path: &str) -> (u16, String) {
    send_whole(addr, "GET", path, b"").await
}

/// `METHOD path` with `body` on a new connection, read whole: the status and the body
/// as text.
pub(crate) async fn send_whole(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, String) {
    let mut conn = Connection::open(addr).await;
    let response = conn.send(method, path, body).await;
    let status = response.status().as_u16();
    let body = within(response.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Reads a response body line by line as it arrives.
pub(crate) struct Lines {
    body: Incoming,
    pending: Vec<u8>,
    _conn: Connection,
}

impl Lines {
    /// The next line, `Ok(None)` at a clean end, `Err` when the body broke off.
    pub(crate) async fn next(&mut self) -> Result<Option<String>, hyper::Error> {
        loop {
            if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=i).collect();
                return Ok(Some(String::from_utf8(line[..i].to_vec()).unwrap()));
            }
            match within(self.body.frame()).await {
                None => {
                    assert!(
                        self.pending.is_empty(),
                        "body ended inside a line: {:?}",
                        String::from_utf8_lossy(&self.pending)
                    );
                    return Ok(None);
                }
                Some(Err(e)) => return Err(e),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.pending.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    /// Every remaining line, or the error that broke the body off.
    pub(crate) async fn rest(&mut self) -> Result<Vec<String>, hyper::Error> {
        let mut lines = Vec::new();
        while let Some(line) = self.next().await? {
            lines.push(line);
        }
        Ok(lines)
    }

    pub(crate) async fn messages(&mut self) -> Vec<Message> {
        self.rest()
            .await
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub(crate) async fn next_message(&mut self) -> Message {
        let line = self.next().await.unwrap().expect("a line, not the end");
        serde_json::from_str(&line).unwrap()
    }
}

/// Whether `test` can run, given that what it needs outside the crate is `present`.
/// Without it, the test is a failure in CI (`CI` set, as `.ci/run` sets it) and a
/// visible skip elsewhere, so that `cargo test` passes on a machine with Rust alone.
#[cfg_attr(not(feature = "cli"), allow(dead_code))] // used by the parts that need `cli`
pub(crate) fn needs(test: &str, present: bool, missing: &str) -> bool {
    if present {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{missing}, and CI needs it for {test}"
    );
    // Straight to stderr, past the test harness's capture, so that the skip shows.
    let note = format!("SKIPPED {test}: {missing} (bash .ci/run sets it up)\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), note.as_bytes());
    false
}

/// The Python of `tests/python/.venv` (the OpenTelemetry SDK, prometheus_client), which
/// `bash .ci/run` makes; where it is missing, `None`, after [`needs`] has made `test` a
/// skip (a failure in CI).
#[cfg_attr(not(feature = "cli"), allow(dead_code))] // used by the parts that need `cli`
pub(crate) fn python(test: &str) -> Option<std::path::PathBuf> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/.venv/bin/python");
    let present = std::path::Path::new(path).is_file();
    let missing = "tests/python/.venv (the OpenTelemetry SDK, prometheus_client) is missing";
    needs(test, present, missing).then(|| std::path::PathBuf::from(path))
}

/// A guard against hangs: anything a test awaits must happen within 10 s.
pub(crate) async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("timed out waiting for the server")
}

/// A message of function `f` from `instance`, `ms` milliseconds after `base()`.
pub(crate) fn message(instance: &str, ms: i64, text: &str) -> Message {
    Message::new("f", base() + chrono::Duration::milliseconds(ms), text)
        .with_namespace("openfaas-fn")
        .with_instance(instance)
}

pub(crate) fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap()
}

/// A large history over three instances, each instance's lines in order but the instances
/// concatenated (as a naive backend reading one log after another would), with some equal
/// timestamps across instances.
pub(crate) fn big_history(per_instance: i64) -> Vec<Message> {
    let mut all = Vec::new();
    for (k, instance) in ["f-a", "f-b", "f-c"].iter().enumerate() {
        for i in 0..per_instance {
            let ms = i * 3 + (k as i64 % 2) * 3 / 2;
            all.push(message(instance, ms, &format!("{instance} line {i}")));
        }
    }
    all
}

/// Set when the backend's stream is dropped; awaitable.
#[derive(Default)]
pub(crate) struct Dropped {
    flag: AtomicBool,
    notify: Notify,
}

impl Dropped {
    pub(crate) fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    pub(crate) async fn wait(&self) {
        within(async {
            loop {
                let notified = self.notify.notified();
                if self.is_set() {
                    return;
                }
                notified.await;
            }
        })
        .await
    }
}

/// A backend that ignores every request parameter: it answers with `history`, then the
/// `HistoryEnd` mark if `mark` is set, then whatever the test sends through `live`; after
/// that it ends, or stays open if `open` is set.
pub(crate) struct Scripted {
    pub(crate) history: Vec<Message>,
    pub(crate) mark: bool,
    /// What it tells the handler it does itself.
    pub(crate) capabilities: Capabilities,
    pub(crate) open: bool,
    pub(crate) live: Mutex<Option<mpsc::UnboundedReceiver<Result<Event, Error>>>>,
    pub(crate) queries: AtomicUsize,
    pub(crate) last_request: Mutex<Option<Request>>,
    pub(crate) dropped: Arc<Dropped>,
}

impl Scripted {
    pub(crate) fn new(history: Vec<Message>) -> Scripted {
        Scripted {
            history,
            mark: false,
            capabilities: Capabilities::NONE,
            open: false,
            live: Mutex::new(None),
            queries: AtomicUsize::new(0),
            last_request: Mutex::new(None),
            dropped: Arc::default(),
        }
    }

    pub(crate) fn marked(mut self) -> Self {
        self.mark = true;
        self
    }

    /// Marks history's end and says so to the handler.
    pub(crate) fn trusted(mut self) -> Self {
        self.mark = true;
        self.capabilities = self.capabilities.with_marks_history_end();
        self
    }

    /// Tells the handler that it marks history's end and applies `tail` itself, without
    /// sending the mark after `history` (the test sends it through `live`).
    pub(crate) fn exact(mut self) -> Self {
        self.capabilities = self
            .capabilities
            .with_marks_history_end()
            .with_applies_tail();
        self
    }

    pub(crate) fn open(mut self) -> Self {
        self.open = true;
        self
    }

    /// Live events for the (first) query's stream.
    pub(crate) fn live(self) -> (Self, mpsc::UnboundedSender<Result<Event, Error>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.live.lock().unwrap() = Some(rx);
        (self, tx)
    }
}

#[async_trait]
impl Requester for Scripted {
    async fn query(&self, request: Request) -> Result<LogStream, Error> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        *self.last_request.lock().unwrap() = Some(request);
        let history = futures::stream::iter(self.history.clone()).map(|m| Ok(Event::Message(m)));
        let mark = futures::stream::iter(self.mark.then_some(Ok(Event::HistoryEnd)));
        let live: Pin<Box<dyn Stream<Item = Result<Event, Error>> + Send>> =
            match self.live.lock().unwrap().take() {
                Some(rx) => Box::pin(futures::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|e| (e, rx))
                })),
                None => Box::pin(futures::stream::empty()),
            };
        let tail: Pin<Box<dyn Stream<Item = Result<Event, Error>> + Send>> = if self.open {
            Box::pin(futures::stream::pending())
        } else {
            Box::pin(futures::stream::empty())
        };
        Ok(Box::pin(Guarded {
            inner: Box::pin(history.chain(mark).chain(live).chain(tail)),
            dropped: Arc::clone(&self.dropped),
        }))
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }
}

/// A stream that raises its [`Dropped`] flag when it is dropped.
pub(crate) struct Guarded {
    inner: LogStream,
    dropped: Arc<Dropped>,
}

impl Stream for Guarded {
    type Item = Result<Event, Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.dropped.flag.store(true, Ordering::SeqCst);
        self.dropped.notify.notify_waiters();
    }
}

/// A backend that fails before any stream with the given error.
pub(crate) struct Failing(pub fn() -> Error);

#[async_trait]
impl Requester for Failing {
    async fn query(&self, _: Request) -> Result<LogStream, Error> {
        Err((self.0)())
    }
}

/// Starts a server over `backend` with a generous timeout.
pub(crate) async fn start<R: Requester>(backend: R) -> (SocketAddr, LogHandler<R>) {
    let handler = LogHandler::new(backend, Duration::from_secs(30));
    (serve(handler.clone()).await, handler)
}

/// The newest `n` of `messages` in timestamp order (ties in input order).
pub(crate) fn newest(messages: &[Message], n: usize) -> Vec<Message> {
    let mut sorted = messages.to_vec();
    sorted.sort_by_key(|m| m.timestamp);
    sorted.split_off(sorted.len().saturating_sub(n))
}

pub(crate) fn texts(messages: &[Message]) -> Vec<String> {
    messages.iter().map(|m| m.text.clone()).collect()
}

/// The login of [`Provider::start_behind_login`], `admin:s3cret`, as a header.
#[cfg_attr(not(feature = "cli"), allow(dead_code))] // used by the parts that need `cli`
pub(crate) const LOGIN: (&str, &str) = ("authorization", "Basic YWRtaW46czNjcmV0");

/// A provider binary running as a user would run it; killed when dropped.
pub(crate) struct Provider {
    pub(crate) child: std::process::Child,
    pub(crate) addr: SocketAddr,
    #[cfg_attr(not(feature = "cli"), allow(dead_code))] // used by the parts that need `cli`
    pub(crate) stdout: std::io::BufReader<std::process::ChildStdout>,
}

/// The program and first arguments that start the provider `kind`: `faas-logs serve`
/// (`memory`) or one of its subcommands (`docker`, `openwhisk`, `telemetry`), or the
/// example `static` or `axum`, which cargo builds and names.
fn provider_command(kind: &str) -> (std::path::PathBuf, Vec<&str>) {
    #[cfg(feature = "cli")]
    let serve = || std::path::PathBuf::from(env!("CARGO_BIN_EXE_faas-logs"));
    #[cfg(not(feature = "cli"))]
    let serve = || -> std::path::PathBuf {
        panic!("the provider binaries are `faas-logs serve`: test with --features cli")
    };
    match kind {
        "memory" => (serve(), vec!["serve"]),
        "static" | "axum" => (built_example(kind), Vec::new()),
        "docker-example" => (built_example("docker"), Vec::new()),
        _ => (serve(), vec!["serve", kind]),
    }
}

/// The path of the example `name`, built by cargo (quick: `cargo test` built it) and
/// named by cargo's own build report.
fn built_example(name: &str) -> std::path::PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = std::process::Command::new(cargo);
    // What cargo set for this test would look like a change to build scripts (ring's
    // reads CARGO_MANIFEST_DIR) and rebuild half the tree.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let set_for_the_test = key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "OUT_DIR",
            ]
            .contains(&&*key);
        if set_for_the_test {
            command.env_remove(&*key);
        }
    }
    let output = command
        .args([
            "build",
            "--quiet",
            "--all-features",
            "--message-format=json",
        ])
        .args(["--example", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo build --example {name} failed"
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|report| report["target"]["name"] == name)
        .find_map(|report| report["executable"].as_str().map(std::path::PathBuf::from))
        .unwrap_or_else(|| panic!("cargo names no executable for the example {name}"))
}

impl Provider {
    /// Starts the provider `kind` (see [`provider_command`]) with `args`, and reads the
    /// address from its first line, `listening on http://ADDR/...`.
    pub(crate) fn start(kind: &str, args: &[&str]) -> Provider {
        Provider::start_with(kind, args, &[], std::process::Stdio::null())
    }

    /// Like [`Provider::start`], run through `wrapper` (a command that runs the rest of
    /// its arguments, such as `prlimit --nofile=64:64 --`), with stderr sent to `stderr`.
    pub(crate) fn start_with(
        kind: &str,
        args: &[&str],
        wrapper: &[&str],
        stderr: std::process::Stdio,
    ) -> Provider {
        Provider::start_env(kind, args, wrapper, stderr, &[])
    }

    /// Like [`Provider::start_with`], with extra environment variables.
    pub(crate) fn start_env(
        kind: &str,
        args: &[&str],
        wrapper: &[&str],
        stderr: std::process::Stdio,
        env: &[(&str, &str)],
    ) -> Provider {
        use std::io::BufRead;
        let (program, first_args) = provider_command(kind);
        let mut command = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = std::process::Command::new(first);
                c.args(rest).arg(program);
                c
            }
            None => std::process::Command::new(program),
        };
        command.args(first_args);
        let mut child = command
            .args(args)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("the provider starts");
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let addr = first
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
        Provider {
            child,
            addr,
            stdout,
        }
    }

    /// Starts the provider `kind` on a free port with basic auth on. Its login ([`LOGIN`]) is
    /// in OpenFaaS secret files, in a folder removed once the binary has read them (it
    /// reads them before it listens).
    #[cfg_attr(not(feature = "cli"), allow(dead_code))] // used by the parts that need `cli`
    pub(crate) fn start_behind_login(kind: &str) -> Provider {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, Ordering::SeqCst);
        let dir = format!("faas-logs-login-{}-{n}", std::process::id());
        let secrets = std::env::temp_dir().join(dir);
        std::fs::create_dir_all(&secrets).unwrap();
        std::fs::write(secrets.join("basic-auth-user"), "admin\n").unwrap();
        std::fs::write(secrets.join("basic-auth-password"), "s3cret\n").unwrap();
        let secrets_arg = secrets.to_str().unwrap();
        let args = [
            "--listen",
            "127.0.0.1:0",
            "--basic-auth",
            "--secret-mount-path",
            secrets_arg,
        ];
        let provider = Provider::start(kind, &args);
        std::fs::remove_dir_all(&secrets).unwrap();
        provider
    }

    /// Sends SIGINT, as Ctrl-C does.
    pub(crate) fn interrupt(&self) {
        let pid = self.child.id().to_string();
        let status = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit by itself and returns whether it succeeded.
    pub(crate) async fn exits_cleanly(mut self) -> bool {
        let waited = within(tokio::task::spawn_blocking(move || {
            let status = self.child.wait();
            (self, status)
        }))
        .await;
        let (_, status) = waited.unwrap();
        status.unwrap().success()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// faas-cli's `PlainFormatMessage` and `KeyValueFormatMessage`, transcribed from its Go
/// source (`commands/logs_format.go`), with the timestamp already written.
#[cfg_attr(not(feature = "cli"), allow(dead_code))] // used by the parts that need `cli`
pub(crate) fn faas_cli_line(
    m: &Message,
    time: &str,
    keyvalue: bool,
    name: bool,
    instance: bool,
) -> String {
    let mut b = String::new();
    if keyvalue {
        if !time.is_empty() {
            b.push_str("timestamp=\"");
            b.push_str(time);
            b.push_str("\" ");
        }
        if name {
            b.push_str("name=\"");
            b.push_str(&m.name);
            b.push_str("\" ");
        }
        if instance {
            b.push_str("instance=\"");
            b.push_str(&m.instance);
            b.push_str("\" ");
        }
        b.push_str("text=\"");
        b.push_str(m.text.trim_end_matches('\n'));
        b.push_str("\" ");
        b
    } else {
        if !time.is_empty() {
            b.push_str(time);
            b.push(' ');
        }
        if name {
            b.push_str(&m.name);
            b.push(' ');
        }
        if instance {
            b.push('(');
            b.push_str(&m.instance);
            b.push_str(") ");
        }
        b.push_str(&m.text);
        b.trim_end_matches('\n').to_owned()
    }
}

/// A certificate for `host`, signed by its own key, as PEM, and a TLS acceptor serving
/// it (rustls on ring).
#[cfg_attr(not(feature = "cli"), allow(dead_code))] // used by the parts that need `cli`
pub(crate) fn self_signed_tls(host: &str) -> (String, tokio_rustls::TlsAcceptor) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec![host.to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    (
        cert.pem(),
        tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    )
}
