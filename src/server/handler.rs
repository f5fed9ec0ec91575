//! [`LogHandler`]: the `/system/logs` endpoint over any [`Requester`].

use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use futures_core::Stream;
use futures_util::FutureExt;
use http::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use http::{Method, StatusCode};
use http_body::Body;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::body::{json_response, LogBody};
use super::shaping::{yielded_for_budget, Backend, Line, Shaped};
use crate::error::{panicked, BoxError};
use crate::{Capabilities, Error, LogStream, Request, Requester, SharedStr};

/// The largest `POST` body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

const DEFAULT_HISTORY_QUIET: Duration = Duration::from_millis(100);
const DEFAULT_NAMESPACE: &str = "openfaas-fn";
const DEFAULT_STATUS_WAIT: Duration = Duration::from_millis(250);

/// Serves `GET /system/logs` (and `POST` with a JSON body) from any [`Requester`].
///
/// Cheap to clone: clones share the requester and the shutdown signal. Use it as
///
/// - a plain `async fn`: [`LogHandler::handle`];
/// - a hyper service: it implements [`hyper::service::Service`], so
///   `http1::Builder::new().serve_connection(io, handler.clone())` serves it;
/// - a tower service: it implements [`tower_service::Service`] with `Error = Infallible`,
///   so axum mounts it with `Router::new().route_service("/system/logs", handler)`.
///
/// Every response is answered as the crate documentation describes; the handler does not
/// look at the path, so mount it where `/system/logs` is routed.
pub struct LogHandler<R: ?Sized> {
    requester: Arc<R>,
    default_namespace: SharedStr,
    timeout: Duration,
    history_quiet: Duration,
    status_wait: Duration,
    shutdown: CancellationToken,
}

impl<R: ?Sized> Clone for LogHandler<R> {
    fn clone(&self) -> Self {
        LogHandler {
            requester: Arc::clone(&self.requester),
            default_namespace: self.default_namespace.clone(),
            timeout: self.timeout,
            history_quiet: self.history_quiet,
            status_wait: self.status_wait,
            shutdown: self.shutdown.clone(),
        }
    }
}

impl<R: ?Sized> std::fmt::Debug for LogHandler<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogHandler")
            .field("timeout", &self.timeout)
            .field("history_quiet", &self.history_quiet)
            .field("status_wait", &self.status_wait)
            .finish_non_exhaustive()
    }
}

impl<R: Requester> LogHandler<R> {
    /// A handler over `requester` whose responses last at most `timeout`.
    ///
    /// The timeout counts from the request's arrival. When it passes, a response whose
    /// history is complete ends cleanly (a follow stream, usually); one still reading
    /// history sends what it holds and is aborted as incomplete.
    pub fn new(requester: R, timeout: Duration) -> Self {
        Self::from_arc(Arc::new(requester), timeout)
    }
}

impl<R: Requester + ?Sized> LogHandler<R> {
    /// Like [`LogHandler::new`], for a requester that is shared already
    /// (`Arc<dyn Requester>` included).
    pub fn from_arc(requester: Arc<R>, timeout: Duration) -> Self {
        let default_namespace = requester
            .default_namespace()
            .map_or_else(|| SharedStr::from(DEFAULT_NAMESPACE), SharedStr::from);
        LogHandler {
            requester,
            default_namespace,
            timeout,
            history_quiet: DEFAULT_HISTORY_QUIET,
            status_wait: DEFAULT_STATUS_WAIT,
            shutdown: CancellationToken::new(),
        }
    }

    /// The provider's default namespace, which a request without one is for (default:
    /// what [`Requester::default_namespace`] says, else `openfaas-fn`). Messages of
    /// other namespaces are dropped from such a response, and a message without a
    /// namespace is sent with this one.
    #[must_use]
    pub fn with_default_namespace(mut self, namespace: impl Into<SharedStr>) -> Self {
        self.default_namespace = namespace.into();
        self
    }

    /// How long the handler waits, before it commits to `200`, for the first thing the
    /// response would send: a message, the end of history, the end of the stream, or an
    /// error (default 250 ms). An error in that time is answered with its status and a
    /// JSON body; one after it aborts the body. A follow response whose history is over
    /// (or empty) is committed at once.
    #[must_use]
    pub fn with_status_wait(mut self, wait: Duration) -> Self {
        self.status_wait = wait;
        self
    }

    /// How long a backend that never sends [`Event::HistoryEnd`](crate::Event::HistoryEnd)
    /// may be quiet before the handler takes its history as complete, in a follow request
    /// with a `tail` (default 100 ms). Nothing is lost when it is too short: a later
    /// history message is sent as live.
    #[must_use]
    pub fn with_history_quiet(mut self, quiet: Duration) -> Self {
        self.history_quiet = quiet;
        self
    }

    /// The longest a response may last.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Ends every open stream of this handler and its clones, as the timeout does (cleanly,
    /// final chunk sent and no half line, once history is complete), and answers later
    /// requests with 503. Call it before a graceful server shutdown, which would otherwise
    /// wait for follow streams that never end.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Answers a request for the backend's functions (the provider binaries serve it at
    /// [`FUNCTIONS_PATH`](super::FUNCTIONS_PATH), where the viewer asks): `200` and
    /// `{"functions": [{"namespace": "...", "name": "..."}, ...]}`, sorted, or
    /// `{"functions": null}` when the backend cannot list them
    /// ([`Requester::functions`]); a backend's error gets its status, and one that does
    /// not answer within the handler's timeout a 503.
    pub async fn functions(&self) -> http::Response<LogBody> {
        let listed = tokio::time::timeout(self.timeout, self.requester.functions()).await;
        let listed = match listed {
            Ok(Ok(listed)) => listed,
            Ok(Err(e)) => return error_response(&e),
            Err(_) => {
                return error_response(&Error::unavailable(format!(
                    "the log backend did not list its functions within {:?}",
                    self.timeout
                )))
            }
        };
        let mut response =
            json_response(StatusCode::OK, &serde_json::json!({ "functions": listed }));
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }

    /// Answers one request. Never fails: every error becomes a status and a JSON body.
    pub async fn handle<B>(&self, req: http::Request<B>) -> http::Response<LogBody>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        let arrived = Utc::now();
        let deadline = Instant::now() + self.timeout;
        let (parts, body) = req.into_parts();
        let capabilities = self.requester.capabilities();
        let name_chars = capabilities.name_chars;
        let request = match parts.method {
            Method::GET => {
                Request::from_query_at(parts.uri.query().unwrap_or(""), arrived, name_chars)
            }
            Method::POST => match read_body(body, deadline).await {
                Ok(bytes) => Request::from_json_at(&bytes, arrived, name_chars),
                Err(e) => Err(e),
            },
            _ => return method_not_allowed(),
        };
        let request = match request {
            Ok(r) => r,
            Err(e) => return error_response(&e),
        };
        if self.shutdown.is_cancelled() {
            return error_response(&Error::unavailable("the log provider is shutting down"));
        }
        tracing::debug!(?request, "log query");
        let following = request.follow;
        // A panicking backend gets a 500 like any other failure, not a dropped connection.
        let started = AssertUnwindSafe(self.start(request, capabilities, arrived, deadline))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(panicked(panic)));
        let (shaped, first) = match started {
            Ok(started) => started,
            Err(e) => return error_response(&e),
        };
        let body = LogBody::streaming(
            shaped,
            first,
            deadline,
            self.shutdown.clone().cancelled_owned(),
            following,
        );
        let mut response = http::Response::new(body);
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        response
    }

    /// Queries the backend and waits (at most [`LogHandler::with_status_wait`]) for what the
    /// response starts with, so that an early error still gets its status.
    async fn start(
        &self,
        request: Request,
        capabilities: Capabilities,
        arrived: chrono::DateTime<Utc>,
        deadline: Instant,
    ) -> Result<(Pin<Box<Shaped>>, Option<Line>), Error> {
        let backend = match self.requester.store_reader(&request) {
            Some(reader) => Backend::Store(reader?.read_encoded()),
            None => Backend::Stream(self.query(&request, deadline).await?),
        };
        let mut shaped = Box::pin(Shaped::new(
            backend,
            &request,
            &self.default_namespace,
            arrived,
            self.history_quiet,
            capabilities,
        ));
        let first = std::future::poll_fn(|cx| match shaped.as_mut().poll_next(cx) {
            Poll::Ready(item) => Poll::Ready(item.transpose()),
            Poll::Pending if shaped.history_over() && !yielded_for_budget(cx) => {
                Poll::Ready(Ok(None))
            }
            Poll::Pending => Poll::Pending,
        });
        let wait_until = deadline.min(Instant::now() + self.status_wait);
        let first = tokio::time::timeout_at(wait_until, first)
            .await
            .unwrap_or(Ok(None))?;
        Ok((shaped, first))
    }

    /// The backend's stream for `request`, or an error if it does not answer in time.
    async fn query(&self, request: &Request, deadline: Instant) -> Result<LogStream, Error> {
        let query = self.requester.query(request.clone());
        match tokio::time::timeout_at(deadline, query).await {
            Ok(stream) => stream,
            Err(_) => Err(Error::unavailable(format!(
                "the log backend did not answer within {:?}",
                self.timeout
            ))),
        }
    }
}

async fn read_body<B>(body: B, deadline: Instant) -> Result<Bytes, Error>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    match tokio::time::timeout_at(deadline, super::read_body(body, MAX_BODY_BYTES)).await {
        Ok(read) => read,
        Err(_) => Err(Error::invalid("body", "not received before the timeout")),
    }
}

fn json_error(status: StatusCode, message: &str) -> http::Response<LogBody> {
    json_response(status, &serde_json::json!({ "error": message }))
}

/// The response for an error found before the stream started, logged by its weight.
fn error_response(e: &Error) -> http::Response<LogBody> {
    let status = e.status();
    crate::meter::backend_failed(e);
    if status.is_server_error() {
        tracing::error!(status = status.as_u16(), error = %e.chain(), "log request failed");
    } else {
        tracing::debug!(status = status.as_u16(), error = %e.chain(), "log request refused");
    }
    json_error(status, &e.to_string())
}

fn method_not_allowed() -> http::Response<LogBody> {
    let mut response = json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed: use GET with a query string, or POST with a JSON body",
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET, POST"));
    response
}

super::endpoint_services!(LogHandler<R>, [R: Requester + ?Sized]);
