//! What the providers share: the server flags (address, timeouts, basic auth), one
//! response body type, JSON answers, tracing, and a server loop that survives running out
//! of file descriptors, drops slow clients, and shuts down gracefully after ending follow
//! streams.

use std::convert::Infallible;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use faas_logs::server::LogBody;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use subtle::ConstantTimeEq;

use super::metrics;

/// The flags every provider binary has.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ServerArgs {
    /// Address to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub(crate) listen: String,
    /// Longest a log response may last, in seconds; ends follow streams.
    #[arg(long, env = "LOGS_TIMEOUT", default_value_t = 60)]
    pub(crate) timeout: u64,
    /// Longest a client may take to send a request's headers, in seconds; then the
    /// connection is closed.
    #[arg(long, env = "HEADER_TIMEOUT", default_value_t = 10)]
    pub(crate) header_timeout: u64,
    /// Longest a client may take to send a request body, in seconds; then it is answered
    /// 408 and the connection closed.
    #[arg(long, env = "BODY_TIMEOUT", default_value_t = 30)]
    pub(crate) body_timeout: u64,
    /// Longest a write to a client may wait for the client to read, in seconds; then the
    /// connection is closed (the client sees a broken body). A follower that reads late
    /// within it gets every line sent to it and a clean end.
    #[arg(long, env = "WRITE_TIMEOUT", default_value_t = 30)]
    pub(crate) write_timeout: u64,
    /// Require basic auth on every route but /healthz, with the OpenFaaS secret files.
    #[arg(long, env = "basic_auth", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub(crate) basic_auth: bool,
    /// Where `basic-auth-user` and `basic-auth-password` are read from.
    #[arg(
        long,
        env = "secret_mount_path",
        default_value = "/var/openfaas/secrets"
    )]
    pub(crate) secret_mount_path: PathBuf,
    /// Also answer `GET /metrics` on this address, without basic auth (for a Prometheus
    /// that scrapes a private address). `/metrics` on the main address stays, behind
    /// basic auth where it is on.
    #[arg(long, env = "METRICS_LISTEN", value_name = "ADDR")]
    pub(crate) metrics_listen: Option<String>,
}

impl ServerArgs {
    /// The credentials to check, when basic auth is on.
    pub(crate) fn credentials(&self) -> Result<Option<Arc<Credentials>>, String> {
        if !self.basic_auth {
            return Ok(None);
        }
        Credentials::read(&self.secret_mount_path).map(|c| Some(Arc::new(c)))
    }

    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout)
    }

    pub(crate) fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout)
    }
}

/// The one user and password allowed in.
pub(crate) struct Credentials {
    user: Vec<u8>,
    password: Vec<u8>,
}

impl Credentials {
    fn read(dir: &Path) -> Result<Self, String> {
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read_to_string(&path)
                .map(|s| s.trim().as_bytes().to_vec())
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        let credentials = Credentials {
            user: read("basic-auth-user")?,
            password: read("basic-auth-password")?,
        };
        if credentials.user.is_empty() || credentials.password.is_empty() {
            return Err(format!(
                "empty basic-auth user or password in {}",
                dir.display()
            ));
        }
        Ok(credentials)
    }

    /// Whether the request carries these credentials, compared in constant time.
    fn allow<B>(&self, req: &Request<B>) -> bool {
        let given = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b64| {
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .ok()
            });
        let Some(given) = given else {
            return false;
        };
        let Some(colon) = given.iter().position(|&b| b == b':') else {
            return false;
        };
        let user_ok = given[..colon].ct_eq(&self.user);
        let password_ok = given[colon + 1..].ct_eq(&self.password);
        bool::from(user_ok & password_ok)
    }
}

/// The answer to a request without the right credentials.
fn unauthorized() -> Response<Body> {
    let mut denied = error(
        StatusCode::UNAUTHORIZED,
        "unauthorized: basic auth required",
    );
    denied.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        hyper::header::HeaderValue::from_static("Basic realm=\"faas-logs\""),
    );
    denied
}

/// Reads a request body of at most `limit` bytes within `timeout`; the error is the
/// response to send (413 too large, 408 too slow, 400 unreadable).
pub(crate) async fn read_body(
    body: Incoming,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, Response<Body>> {
    match tokio::time::timeout(timeout, faas_logs::server::read_body(body, limit)).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(faas_logs::Error::BodyTooLarge { .. })) => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("body larger than {limit} bytes; nothing was stored"),
        )),
        Ok(Err(e)) => Err(error(StatusCode::BAD_REQUEST, &e.to_string())),
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            &format!(
                "the body did not arrive within {} s; nothing was stored",
                timeout.as_secs_f64()
            ),
        )),
    }
}

/// A log stream, or a small answer of our own.
pub(crate) type Body = Either<LogBody, Full<Bytes>>;

/// The viewer's routes, the same in every provider binary: `GET /` (the page) and
/// `GET /system/logs/functions` (what it lists). Basic auth, where it is on, covers them
/// as it covers `/system/logs`.
pub(crate) async fn viewer<R: faas_logs::Requester>(
    req: &Request<Incoming>,
    handler: &faas_logs::server::LogHandler<R>,
) -> Option<Response<Body>> {
    if req.method() != hyper::Method::GET {
        return None;
    }
    match req.uri().path() {
        "/" => Some(faas_logs::server::viewer_response().map(Either::Left)),
        faas_logs::server::FUNCTIONS_PATH => Some(handler.functions().await.map(Either::Left)),
        _ => None,
    }
}

/// The routes of a provider that serves nothing but logs: the viewer, `GET /healthz`
/// and `/system/logs`; anything else is a 404.
pub(crate) async fn log_routes<R: faas_logs::Requester>(
    req: Request<Incoming>,
    handler: faas_logs::server::LogHandler<R>,
) -> Response<Body> {
    if let Some(answer) = viewer(&req, &handler).await {
        return answer;
    }
    match (req.method(), req.uri().path()) {
        (&hyper::Method::GET, "/healthz") => {
            json(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
        }
        (_, "/system/logs") => handler.handle(req).await.map(Either::Left),
        _ => error(
            StatusCode::NOT_FOUND,
            "not found: try GET /system/logs?name=...",
        ),
    }
}

/// Listens on `address`; the error names it and says what to do (`flag` is the option
/// that sets it).
pub(crate) async fn listen(address: &str, flag: &str) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(address).await.map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                "; another program (another provider?) listens there: stop it, or choose another address with {flag}"
            ),
            std::io::ErrorKind::AddrNotAvailable => {
                format!("; this machine has no such address: choose another with {flag}")
            }
            std::io::ErrorKind::PermissionDenied => {
                format!("; a port below 1024 needs privileges: choose another with {flag}")
            }
            _ => String::new(),
        };
        format!("cannot listen on {address}: {e}{hint}")
    })
}

/// Listens on `args.listen`, prints the address, and serves [`log_routes`] over
/// `handler` until Ctrl-C or SIGTERM (see [`serve`]).
pub(crate) async fn serve_logs<R: faas_logs::Requester>(
    args: &ServerArgs,
    credentials: Option<Arc<Credentials>>,
    handler: faas_logs::server::LogHandler<R>,
) -> Result<(), Failure> {
    let listener = listen(&args.listen, "--listen").await?;
    println!("listening on http://{}/system/logs", listener.local_addr()?);
    let route = {
        let handler = handler.clone();
        move |req| log_routes(req, handler.clone())
    };
    serve(listener, args, credentials, route, || handler.shutdown()).await
}

pub(crate) fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    let (status, text) = match serde_json::to_vec(value) {
        Ok(text) => (status, text),
        Err(e) => {
            tracing::error!(error = %e, "an answer could not be written as JSON");
            let error = br#"{"error":"the answer could not be written as JSON"}"#;
            (StatusCode::INTERNAL_SERVER_ERROR, error.to_vec())
        }
    };
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(text))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

pub(crate) fn error(status: StatusCode, message: &str) -> Response<Body> {
    json(status, &serde_json::json!({ "error": message }))
}

/// Whatever can stop a provider binary.
pub(crate) type Failure = Box<dyn std::error::Error + Send + Sync>;

/// The exit status of a provider binary: an error is printed as a sentence, with its
/// causes, never as a debug dump.
pub(crate) fn exit_with(outcome: Result<(), Failure>) -> std::process::ExitCode {
    let Err(e) = outcome else {
        return std::process::ExitCode::SUCCESS;
    };
    eprintln!("error: {}", faas_logs::Error::describe(&*e));
    std::process::ExitCode::FAILURE
}

/// A duration flag: a number and a unit, `ms`, `s`, `m`, `h` or `d`, or several
/// (`1h30m`).
#[cfg_attr(not(feature = "nats"), allow(dead_code))]
pub(crate) fn parse_duration(value: &str) -> Result<Duration, String> {
    let bad = || format!("{value:?} is not a duration: write 30s, 5m, 12h or 7d");
    let mut rest = value.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86_400),
            _ => return Err(bad()),
        };
        rest = &rest[unit..];
        total += scale * u32::try_from(number).map_err(|_| bad())?;
    }
    Ok(total)
}

/// Logs to stderr, at `info` unless `RUST_LOG` says otherwise.
pub(crate) fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Ctrl-C or SIGTERM, once [`watch_for_shutdown`] has begun to listen for them.
static SHUTDOWN: std::sync::OnceLock<tokio_util::sync::CancellationToken> =
    std::sync::OnceLock::new();

/// Listens for Ctrl-C and SIGTERM from now on. Called as a provider starts, before it
/// prints its address: a signal sent as soon as the address is read then ends it
/// cleanly, where it would otherwise kill a provider still busy starting.
pub(crate) fn watch_for_shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let token = SHUTDOWN.get_or_init(Default::default).clone();
    // Registered here, not when the task first runs.
    let (interrupt, terminate) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    );
    tokio::spawn(async move {
        match (interrupt, terminate) {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        token.cancel();
    });
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    match SHUTDOWN.get() {
        Some(token) => token.clone().cancelled_owned().await,
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Serves `route` (HTTP/1 and HTTP/2) until Ctrl-C or SIGTERM; then calls `stop`, which
/// must end the open follow streams, and waits up to 5 s for connections to close.
/// `GET /metrics` is answered here, for every provider, and `--metrics-listen` starts
/// its own listener first.
///
/// With `credentials`, every route but `/healthz` wants them (401 otherwise). A client
/// gets `args.header_timeout` to send its headers. When `accept` fails (out of file
/// descriptors, say) the loop backs off, from 10 ms up to 1 s, and logs once per episode
/// rather than spin.
pub(crate) async fn serve<F, Fut>(
    listener: tokio::net::TcpListener,
    args: &ServerArgs,
    credentials: Option<Arc<Credentials>>,
    route: F,
    stop: impl FnOnce(),
) -> Result<(), Failure>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    serve_metrics(args).await?;
    serve_until(listener, args, credentials, route, shutdown_signal(), stop).await;
    Ok(())
}

/// With `--metrics-listen`, answers `GET /metrics` there (and 404 to anything else),
/// without basic auth, until Ctrl-C or SIGTERM; prints the address.
pub(crate) async fn serve_metrics(args: &ServerArgs) -> Result<(), Failure> {
    let Some(address) = &args.metrics_listen else {
        return Ok(());
    };
    let listener = listen(address, "--metrics-listen").await?;
    println!("metrics on http://{}/metrics", listener.local_addr()?);
    let args = ServerArgs {
        basic_auth: false,
        ..args.clone()
    };
    let route = |_req| async { error(StatusCode::NOT_FOUND, "not found: try GET /metrics") };
    tokio::spawn(async move {
        serve_until(listener, &args, None, route, shutdown_signal(), || {}).await;
    });
    Ok(())
}

/// [`serve`], until `until` resolves instead of a signal.
pub(crate) async fn serve_until<F, Fut>(
    listener: tokio::net::TcpListener,
    args: &ServerArgs,
    credentials: Option<Arc<Credentials>>,
    route: F,
    until: impl Future<Output = ()>,
    stop: impl FnOnce(),
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let header_timeout = Duration::from_secs(args.header_timeout);
    let write_timeout = Duration::from_secs(args.write_timeout);
    let mut http1 = http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2.timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    // Ends the connections still deciding their protocol, which no watcher can stop.
    let stopping = tokio_util::sync::CancellationToken::new();
    let signal = until;
    tokio::pin!(signal);
    let mut failures = 0u32;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut signal => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => {
                if failures > 0 {
                    tracing::info!(failures, "accepting connections again");
                    failures = 0;
                }
                // A follower's lines go out as they come, not held until the previous
                // write is acknowledged (Nagle's algorithm against delayed ACKs: up to
                // 40 ms per line on Linux).
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "TCP_NODELAY not set");
                }
                tcp
            }
            Err(e) => {
                if failures == 0 {
                    tracing::warn!(error = %e, "accept failed; retrying with a growing pause until it works again");
                }
                failures += 1;
                let pause =
                    Duration::from_millis(10 << failures.min(7)).min(Duration::from_secs(1));
                tokio::select! {
                    _ = tokio::time::sleep(pause) => continue,
                    _ = &mut signal => break,
                }
            }
        };
        let (route, credentials) = (route.clone(), credentials.clone());
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let allowed = req.uri().path() == "/healthz"
                || credentials.as_ref().is_none_or(|c| c.allow(&req));
            let counted = counted_route(req.uri().path());
            let answer = match allowed {
                false => Answer::Ready(unauthorized()),
                true if counted == "/metrics" && req.method() == hyper::Method::GET => {
                    Answer::Ready(metrics::response())
                }
                true => Answer::Routed(route(req)),
            };
            async move {
                let response = match answer {
                    Answer::Ready(response) => response,
                    Answer::Routed(answer) => answer.await,
                };
                metrics::request(counted, response.status());
                Ok::<_, Infallible>(response)
            }
        });
        let (http1, http2, watcher) = (http1.clone(), http2.clone(), graceful.watcher());
        let stopping = stopping.clone();
        tokio::spawn(async move {
            let first_bytes = tokio::time::timeout(header_timeout, speaks_http2(&tcp));
            let decided = tokio::select! {
                decided = first_bytes => decided,
                () = stopping.cancelled() => return,
            };
            let http2_preface = match decided {
                Ok(Ok(preface)) => preface,
                Ok(Err(e)) => {
                    return tracing::debug!(error = %e, "connection failed before a request")
                }
                Err(_) => return tracing::debug!("no request within the header timeout"),
            };
            let io = WriteTimeout::new(TokioIo::new(tcp), write_timeout);
            let ended = if http2_preface {
                watcher.watch(http2.serve_connection(io, service)).await
            } else {
                watcher.watch(http1.serve_connection(io, service)).await
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    tracing::info!("shutting down");
    stopping.cancel();
    stop();
    if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close within 5 s");
    }
}

/// A request's answer: one made here, or the route's.
enum Answer<Fut> {
    Ready(Response<Body>),
    Routed(Fut),
}

/// The `route` label of a request's path: one of the paths the providers serve, else
/// `other`, so that a client cannot grow the metrics with paths of its own.
fn counted_route(path: &str) -> &'static str {
    const ROUTES: [&str; 9] = [
        "/",
        "/system/logs",
        "/system/logs/push",
        "/system/logs/functions",
        "/system/invocations",
        "/v1/logs",
        "/healthz",
        "/metrics",
        "/extension/invoke",
    ];
    ROUTES.into_iter().find(|r| *r == path).unwrap_or("other")
}

/// What an HTTP/2 client without TLS sends first (RFC 9113, section 3.4).
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether the client starts with HTTP/2's preface, told from its first bytes without
/// taking them: the HTTP/1 parser then reads the request whole. (hyper-util's `auto`
/// server hands the bytes it looked at over in a short first read, which makes hyper
/// grow each connection's read buffer from 8 to 16 KiB: 8 KiB more per follower.)
async fn speaks_http2(tcp: &tokio::net::TcpStream) -> std::io::Result<bool> {
    let mut first = [0; HTTP2_PREFACE.len()];
    loop {
        let n = tcp.peek(&mut first).await?;
        if n == 0 || first[..n] != HTTP2_PREFACE[..n] {
            return Ok(false);
        }
        if n == HTTP2_PREFACE.len() {
            return Ok(true);
        }
        // Part of the preface (or an HTTP/1 "P" alone): a peek answers at once while
        // those bytes wait, so give the rest a moment to come.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A connection whose writes give up after waiting `limit` for the client to read: a
/// client that stops reading holds the server's writes, and its connection, only that
/// long. The clock starts when a write first waits and stops at any progress.
struct WriteTimeout<T> {
    inner: T,
    limit: Duration,
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> WriteTimeout<T> {
    fn new(inner: T, limit: Duration) -> Self {
        WriteTimeout {
            inner,
            limit,
            waiting: None,
        }
    }

    /// `Pending` while the write may still wait, an error once it has waited too long.
    fn waited<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<R>>,
    ) -> Poll<std::io::Result<R>> {
        if polled.is_ready() {
            self.waiting = None;
            return polled;
        }
        let limit = self.limit;
        let timer = self
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the client read nothing for {} s", limit.as_secs_f64()),
            )));
        }
        Poll::Pending
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for WriteTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for WriteTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.waited(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.waited(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.waited(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
