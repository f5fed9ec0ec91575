//! A complete log provider on the embedded default backend, the in-memory `LogStore`.
//!
//! ```text
//! faas-logs serve                          # runs a built-in demo function
//! curl -s 'http://127.0.0.1:8080/system/logs?name=demo&tail=5'
//!
//! faas-logs serve --run hello='sh -c "while true; do date; sleep 1; done"'
//! curl -s 'http://127.0.0.1:8080/system/logs?name=hello&follow=true'
//!
//! printf '%s\n' '{"name":"pushed","text":"hello from curl"}' |
//!   curl -s --data-binary @- http://127.0.0.1:8080/system/logs/push
//! ```
//!
//! Routes: `GET`/`POST /system/logs` (the OpenFaaS log endpoint), `POST /system/logs/push`
//! (NDJSON of messages into the store), `POST /v1/logs` (OpenTelemetry's OTLP/HTTP, from
//! any SDK's exporter), `GET /healthz`, `GET /metrics`. Ctrl-C or SIGTERM end open follow
//! streams cleanly, stop the server and the commands it runs.

use std::process::Stdio;
use std::time::Duration;

use super::server;
use super::server::{error, json, read_body, Body, ServerArgs};
use chrono::Utc;
use faas_logs::otlp::OtlpReceiver;
use faas_logs::server::LogHandler;
use faas_logs::store::{
    ingest_ndjson, Capture, DiskConfig, DiskStore, Fsync, LogStore, StoreLimits, StoreReader,
    StoreTotals,
};
use faas_logs::{
    async_trait, Batch, Capabilities, Error, FunctionName, LogSink, LogStream, Message,
    OutputStream, Requester,
};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

/// A log provider on the in-memory store: runs commands as functions, captures their
/// output, accepts pushed logs, and serves GET /system/logs.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// Run a command as a function, NAME=COMMAND, with `sh -c`; its stdout and stderr
    /// become the function's logs, the instance named NAME-PID. Repeatable. Without any,
    /// a built-in demo function named `demo` runs.
    #[arg(long = "run", value_name = "NAME=COMMAND", value_parser = parse_run)]
    run: Vec<(String, String)>,
    /// The namespace that functions run and are queried in by default.
    #[arg(long, default_value = "openfaas-fn")]
    namespace: String,
    /// Most lines kept per function.
    #[arg(long, default_value_t = StoreLimits::default().max_messages)]
    max_lines: usize,
    /// Most bytes kept per function.
    #[arg(long, default_value_t = StoreLimits::default().max_bytes)]
    max_bytes: usize,
    /// Most functions the store keeps; a line of a new function beyond them is refused
    /// (422), and nothing stored is touched.
    #[arg(long, default_value_t = StoreLimits::default().max_functions)]
    max_functions: usize,
    /// Most bytes kept in the whole store (default an eighth of memory); past it the
    /// oldest lines of every function go first.
    #[arg(long, default_value_t = StoreLimits::default().max_total_bytes)]
    max_total_bytes: usize,
    /// Longest captured line kept whole; longer ones are cut with a visible marker.
    #[arg(long, default_value_t = faas_logs::codec::DEFAULT_MAX_LINE)]
    max_line_bytes: usize,
    /// Keep the logs on disk in this folder instead of memory: they survive restarts and
    /// crashes, and memory stays bounded however much history it holds. Created if
    /// missing; one provider at a time.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<std::path::PathBuf>,
    /// When lines on disk are flushed: `always` (each push), `batch` (one flush for the
    /// pushes that arrive together; a push is answered once its lines are flushed) or
    /// `never` (the system's own delay; a power loss can lose the last seconds).
    #[arg(long, default_value_t = Fsync::Batch, requires = "data_dir")]
    fsync: Fsync,
    /// Most bytes kept on disk; past it the oldest segments of any function go.
    #[arg(long, default_value_t = DiskConfig::default().max_total_bytes, requires = "data_dir")]
    disk_max_bytes: u64,
    /// Most bytes kept on disk per function; past it its oldest segments go.
    #[arg(long, requires = "data_dir")]
    disk_max_function_bytes: Option<u64>,
    /// Lines older than this leave the disk, a segment at a time (`12h`, `7d`).
    #[arg(long, value_parser = server::parse_duration, requires = "data_dir")]
    max_age: Option<Duration>,
    /// Size at which a function's segment file is sealed and a new one begun.
    #[arg(long, default_value_t = DiskConfig::default().segment_bytes, requires = "data_dir")]
    segment_bytes: u64,
    /// Keep the logs in NATS JetStream instead of memory: the servers' URLs,
    /// comma-separated. Providers pointed at one cluster serve the same logs. (Built
    /// with `--features nats`.)
    #[cfg(feature = "nats")]
    #[arg(long, value_name = "URL[,URL...]", conflicts_with = "data_dir")]
    nats: Option<String>,
    /// Copies of the JetStream stream when it is created (3 on a three-server cluster).
    #[cfg(feature = "nats")]
    #[arg(long, default_value_t = 1, requires = "nats")]
    nats_replicas: usize,
    /// Lines older than this leave the stream (`30s`, `12h`, `7d`).
    #[cfg(feature = "nats")]
    #[arg(long, default_value = "7d", value_parser = server::parse_duration, requires = "nats")]
    nats_max_age: Duration,
    /// The stream's size bound in bytes; past it the oldest lines go.
    #[cfg(feature = "nats")]
    #[arg(long, default_value_t = 1 << 30, requires = "nats")]
    nats_max_bytes: i64,
    /// The most lines the stream keeps per instance (-1: no bound).
    #[cfg(feature = "nats")]
    #[arg(long, default_value_t = 100_000, requires = "nats")]
    nats_max_lines_per_instance: i64,
    /// How long the stream remembers a line's id, so that a resent line is stored once.
    #[cfg(feature = "nats")]
    #[arg(long, default_value = "2m", value_parser = server::parse_duration, requires = "nats")]
    nats_duplicate_window: Duration,
    /// The longest a push waits for JetStream to acknowledge its lines; those not
    /// acknowledged by then make it a 503.
    #[cfg(feature = "nats")]
    #[arg(long, default_value = "5s", value_parser = server::parse_duration, requires = "nats")]
    nats_push_timeout: Duration,
    /// How long to keep trying at start while NATS cannot be reached or has no leader.
    #[cfg(feature = "nats")]
    #[arg(long, default_value = "30s", value_parser = server::parse_duration, requires = "nats")]
    nats_connect_timeout: Duration,
    /// Change an existing stream whose settings differ from these flags (otherwise each
    /// difference is reported and the stream used as it is).
    #[cfg(feature = "nats")]
    #[arg(long, requires = "nats")]
    nats_update_stream: bool,
    /// Largest body accepted by POST /system/logs/push.
    #[arg(long, default_value_t = 1 << 20)]
    max_push_bytes: usize,
    /// Largest OTLP request accepted by POST /v1/logs, as sent and as decompressed.
    #[arg(long, default_value_t = faas_logs::otlp::DEFAULT_MAX_REQUEST_BYTES)]
    max_otlp_bytes: usize,
}

fn parse_run(value: &str) -> Result<(String, String), String> {
    let (name, command) = value
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=COMMAND, got {value:?}"))?;
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid {
        return Err(format!(
            "{name:?} is not a function name: use a-z, A-Z, 0-9, '-', '_', '.'"
        ));
    }
    if command.trim().is_empty() {
        return Err(format!("no command given for {name}"));
    }
    Ok((name.to_owned(), command.to_owned()))
}

/// Where the logs are kept: the in-memory store, on disk (`--data-dir`), or (`--nats`)
/// a JetStream stream.
#[derive(Clone)]
enum Backend {
    Memory(LogStore),
    Disk(DiskStore),
    #[cfg(feature = "nats")]
    Nats(faas_logs::nats::JetStreamLogs),
}

impl Backend {
    #[cfg_attr(not(feature = "nats"), allow(clippy::unused_async))]
    async fn from_args(args: &Args, store: LogStore) -> Result<Backend, Error> {
        #[cfg(feature = "nats")]
        if let Some(urls) = &args.nats {
            let mut config = faas_logs::nats::JetStreamConfig::default()
                .with_replicas(args.nats_replicas)
                .with_retention(
                    args.nats_max_age,
                    args.nats_max_bytes,
                    args.nats_max_lines_per_instance,
                )
                .with_store_timeout(args.nats_push_timeout)
                .with_connect_timeout(args.nats_connect_timeout)
                .with_update_stream(args.nats_update_stream);
            config.duplicate_window = args.nats_duplicate_window;
            config.default_namespace = args.namespace.clone();
            let logs = faas_logs::nats::JetStreamLogs::connect(urls, config).await?;
            tracing::info!(%urls, "logs kept in NATS JetStream");
            return Ok(Backend::Nats(logs));
        }
        if let Some(dir) = &args.data_dir {
            let config = DiskConfig::default()
                .with_fsync(args.fsync)
                .with_max_total_bytes(args.disk_max_bytes)
                .with_max_function_bytes(args.disk_max_function_bytes)
                .with_max_age(args.max_age)
                .with_segment_bytes(args.segment_bytes)
                .with_max_functions(args.max_functions)
                .with_default_namespace(args.namespace.clone());
            // Opening reads indexes and checks the newest segments: file work, off the
            // runtime's workers.
            let dir = dir.clone();
            let store = tokio::task::spawn_blocking(move || DiskStore::open(dir, config))
                .await
                .map_err(|e| Error::other(format!("the log store could not be opened: {e}")))??;
            tracing::info!(path = %store.path().display(), fsync = %args.fsync, "logs kept on disk");
            return Ok(Backend::Disk(store));
        }
        Ok(Backend::Memory(store))
    }

    /// What the store holds, for `/metrics`; JetStream's stream keeps its own figures.
    fn totals(&self) -> Option<StoreTotals> {
        match self {
            Backend::Memory(store) => Some(store.totals()),
            Backend::Disk(store) => Some(store.totals()),
            #[cfg(feature = "nats")]
            Backend::Nats(_) => None,
        }
    }

    /// Makes a function known before its first line (the store answers 200, not 404).
    fn register(&self, namespace: &str, name: &str) {
        match self {
            Backend::Memory(store) => {
                if let Err(e) = store.register(namespace, name) {
                    tracing::warn!(error = %e, "function not registered");
                }
            }
            Backend::Disk(store) => {
                if let Err(e) = store.register(namespace, name) {
                    tracing::warn!(error = %e, "function not registered");
                }
            }
            #[cfg(feature = "nats")]
            Backend::Nats(_) => {}
        }
    }
}

#[async_trait]
impl Requester for Backend {
    async fn query(&self, request: faas_logs::Request) -> Result<LogStream, Error> {
        match self {
            Backend::Memory(store) => store.query(request).await,
            Backend::Disk(store) => store.query(request).await,
            #[cfg(feature = "nats")]
            Backend::Nats(logs) => logs.query(request).await,
        }
    }

    fn capabilities(&self) -> Capabilities {
        match self {
            Backend::Memory(store) => store.capabilities(),
            Backend::Disk(store) => store.capabilities(),
            #[cfg(feature = "nats")]
            Backend::Nats(logs) => logs.capabilities(),
        }
    }

    async fn functions(&self) -> Result<Option<Vec<FunctionName>>, Error> {
        match self {
            Backend::Memory(store) => store.functions().await,
            Backend::Disk(store) => store.functions().await,
            #[cfg(feature = "nats")]
            Backend::Nats(logs) => logs.functions().await,
        }
    }
    fn default_namespace(&self) -> Option<String> {
        match self {
            Backend::Memory(store) => Requester::default_namespace(store),
            Backend::Disk(store) => Requester::default_namespace(store),
            #[cfg(feature = "nats")]
            Backend::Nats(logs) => logs.default_namespace(),
        }
    }

    fn store_reader(&self, request: &faas_logs::Request) -> Option<Result<StoreReader, Error>> {
        match self {
            Backend::Memory(store) => store.store_reader(request),
            Backend::Disk(_) => None,
            #[cfg(feature = "nats")]
            Backend::Nats(_) => None,
        }
    }
}

#[async_trait]
impl LogSink for Backend {
    async fn store(&self, batch: Batch) -> Vec<Result<(), Error>> {
        match self {
            Backend::Memory(store) => store.store(batch).await,
            Backend::Disk(store) => store.store(batch).await,
            #[cfg(feature = "nats")]
            Backend::Nats(logs) => logs.store(batch).await,
        }
    }
}

/// `POST /system/logs/push`: each line stored or not, on its own; 200 when all are,
/// 422 listing the lines refused, 503 (with `Retry-After`) when the store could not take
/// some for now. An `Idempotency-Key` header names the push, so that sending it again
/// stores each line once.
async fn push(backend: &Backend, req: Request<Incoming>, limits: &PushLimits) -> Response<Body> {
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match read_body(req.into_body(), limits.bytes, limits.time).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let report = ingest_ndjson(backend, &body, key.as_deref()).await;
    let mut response = json(report.status(), &report);
    if report.unavailable.is_some() {
        response.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from_static("1"),
        );
    }
    response
}

/// The largest push body, and how long its client has to send it.
#[derive(Clone, Copy)]
struct PushLimits {
    bytes: usize,
    time: Duration,
}

async fn route(
    req: Request<Incoming>,
    handler: LogHandler<Backend>,
    backend: Backend,
    otlp: OtlpReceiver,
    push_limits: PushLimits,
) -> Response<Body> {
    if let Some(answer) = server::viewer(&req, &handler).await {
        return answer;
    }
    match (req.method(), req.uri().path()) {
        (_, "/system/logs") => handler.handle(req).await.map(Either::Left),
        (&Method::POST, "/system/logs/push") => push(&backend, req, &push_limits).await,
        (_, "/v1/logs") => otlp.handle(req).await.map(Either::Left),
        (&Method::GET, "/healthz") => json(StatusCode::OK, &serde_json::json!({ "status": "ok" })),
        (_, "/system/logs/push") | (_, "/healthz") => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "not found: try GET /system/logs?name=...",
        ),
    }
}

/// Starts `sh -c command` in a process group of its own and captures its output as
/// function `name`'s logs. Returns the group's id, for [`stop_functions`].
fn run_function(
    backend: &Backend,
    namespace: &str,
    name: &str,
    command: &str,
    max_line: usize,
) -> std::io::Result<u32> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().unwrap_or_default();
    let instance = format!("{name}-{pid}");
    backend.register(namespace, name);
    tracing::info!(function = name, %instance, command, "running");
    let outputs = [
        child.stdout.take().map(|o| {
            let o: Box<dyn tokio::io::AsyncRead + Send + Unpin> = Box::new(o);
            (o, OutputStream::Stdout)
        }),
        child.stderr.take().map(|e| {
            let e: Box<dyn tokio::io::AsyncRead + Send + Unpin> = Box::new(e);
            (e, OutputStream::Stderr)
        }),
    ];
    for (output, stream) in outputs.into_iter().flatten() {
        let backend = backend.clone();
        let capture = Capture::new(name)
            .with_namespace(namespace)
            .with_instance(instance.clone())
            .with_stream(stream)
            .with_max_line(max_line);
        let instance = instance.clone();
        tokio::spawn(async move {
            if let Err(e) = capture.lines(output, &backend).await {
                tracing::warn!(error = %e, %instance, "capture ended");
            }
        });
    }
    tokio::spawn(async move {
        match child.wait().await {
            Ok(status) => tracing::info!(%instance, %status, "function process exited"),
            Err(e) => {
                tracing::warn!(%instance, error = %e, "could not wait for the function process")
            }
        }
    });
    Ok(pid)
}

/// Ends every process the functions started, children of their shells included.
fn stop_functions(groups: &[u32]) {
    for group in groups {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", "--", &format!("-{group}")])
            .stderr(Stdio::null())
            .status();
    }
}

/// The built-in demo function: a few lines at once, then one a second.
async fn run_demo(backend: &Backend, namespace: &str) {
    let (backend, namespace) = (backend.clone(), namespace.to_owned());
    let line = move |text: String| {
        Message::new("demo", Utc::now(), text)
            .with_namespace(namespace.clone())
            .with_instance("demo-1")
    };
    // Stored before the server answers, so that the first request finds the function.
    let first = [
        "demo function started",
        "this line and one a second are kept in the store",
        "try: /system/logs?name=demo&follow=true",
    ]
    .map(|text| line(text.into()));
    for outcome in backend.store(Batch::new(first.to_vec())).await {
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "a demo line was not stored");
        }
    }
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        ticks.tick().await;
        for n in 1u64.. {
            ticks.tick().await;
            let tick = line(format!("tick {n}: handled {} requests", n * 3 % 7));
            if let Err(e) = backend.write(tick).await {
                tracing::warn!(error = %e, "a demo line was not stored");
            }
        }
    });
}

pub(crate) async fn run(args: Args) -> Result<(), server::Failure> {
    let credentials = args.server.credentials()?;
    let store = LogStore::builder()
        .limits(StoreLimits {
            max_messages: args.max_lines,
            max_bytes: args.max_bytes,
            max_functions: args.max_functions,
            max_total_bytes: args.max_total_bytes,
            ..StoreLimits::default()
        })
        .default_namespace(args.namespace.clone())
        .build();
    let backend = Backend::from_args(&args, store).await?;
    let handler = LogHandler::new(backend.clone(), args.server.timeout());
    {
        let backend = backend.clone();
        super::metrics::report_store(move || backend.totals());
    }

    let listener = server::listen(&args.server.listen, "--listen").await?;
    let local = listener.local_addr()?;
    println!("listening on http://{local}/system/logs");

    if args.run.is_empty() {
        run_demo(&backend, &args.namespace).await;
        println!("try: curl -s 'http://{local}/system/logs?name=demo&tail=5'");
    }
    let mut groups = Vec::new();
    for (name, command) in &args.run {
        groups.push(run_function(
            &backend,
            &args.namespace,
            name,
            command,
            args.max_line_bytes,
        )?);
    }

    let push_limits = PushLimits {
        bytes: args.max_push_bytes,
        time: args.server.body_timeout(),
    };
    let otlp = OtlpReceiver::new(backend.clone())
        .with_default_namespace(args.namespace.clone())
        .with_max_request_bytes(args.max_otlp_bytes);
    let route = {
        let handler = handler.clone();
        move |req| {
            route(
                req,
                handler.clone(),
                backend.clone(),
                otlp.clone(),
                push_limits,
            )
        }
    };
    server::serve(listener, &args.server, credentials, route, || {
        stop_functions(&groups);
        handler.shutdown();
    })
    .await
}
