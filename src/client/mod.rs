//! [`LogClient`]: reads `GET /system/logs` of any OpenFaaS provider (this crate's, a Go
//! provider, the gateway) as a stream of [`Message`], over http or https (rustls).
//!
//! - **Bounded.** The body is decoded as it arrives with the crate's
//!   [`NdjsonDecoder`]: memory stays bounded by the longest
//!   line (1 MiB by default), however long the stream.
//! - **A broken stream is an error.** A transport error, a body cut off (a provider that
//!   aborts a response it cannot finish), or a last line without its newline ends the
//!   stream with an [`ClientError`], never as if it were complete. An error before the
//!   stream carries the status and the provider's `{"error": ...}` text.
//! - **Follow that survives** ([`LogClient::follow`]): providers end follow streams at
//!   their timeout and connections drop. The client reconnects with `since` set to the
//!   newest timestamp it delivered and drops the lines at that timestamp it already
//!   delivered, so every line comes once, in order, across any number of reconnects; it
//!   backs off after failures and gives up after [`Resume::max_failures`] in a row.
//!
//! [`NdjsonDecoder`]: crate::codec::NdjsonDecoder

use std::pin::Pin;
use std::time::Duration;

use bytes::BytesMut;
use chrono::{DateTime, Utc};
use futures_core::Stream;
use futures_util::StreamExt;
use tokio_util::codec::Decoder;

use crate::codec::{NdjsonDecoder, NdjsonError, DEFAULT_MAX_JSON_LINE};
use crate::ordered::TimeOrdered;
use crate::{Message, Request};

/// Why reading logs failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The base URL is not an http or https URL.
    #[error("invalid provider URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The provider answered with an error status before the stream.
    #[error("the provider answered {status}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The provider's `error` text, or its body as it came.
        message: String,
    },
    /// The provider could not be reached, or the connection broke.
    #[error("the connection to the provider failed or broke off")]
    Transport(#[source] reqwest::Error),
    /// The provider did not answer within the client's timeout.
    #[error("the provider did not answer within {0:?}")]
    Timeout(Duration),
    /// The body is not NDJSON of messages, or it was cut off inside a line.
    #[error("the log stream is broken")]
    Decode(#[source] NdjsonError),
    /// Following gave up after this many failures in a row; the last is the source.
    #[error("gave up following after {failures} failures in a row")]
    GaveUp {
        /// How many in a row.
        failures: u32,
        /// The last one.
        #[source]
        last: Box<ClientError>,
    },
}

/// The stream of a query: messages, then either the end or one error.
pub type MessageStream = Pin<Box<dyn Stream<Item = Result<Message, ClientError>> + Send>>;

/// How [`LogClient::follow`] reconnects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Resume {
    /// Failures in a row (connections refused, streams broken) before it gives up; a clean
    /// end (the provider's timeout) is not a failure.
    pub max_failures: u32,
    /// The pause after a first failure; it doubles with each failure in a row.
    pub first_backoff: Duration,
    /// The longest pause.
    pub max_backoff: Duration,
}

impl Default for Resume {
    /// Five failures in a row, pauses from 100 ms up to 5 s.
    fn default() -> Self {
        Resume {
            max_failures: 5,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl Resume {
    /// With at most `failures` failures in a row.
    #[must_use]
    pub fn max_failures(mut self, failures: u32) -> Self {
        self.max_failures = failures;
        self
    }

    /// With pauses from `first` up to `max`.
    #[must_use]
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.first_backoff = first;
        self.max_backoff = max;
        self
    }
}

/// A client of one provider's log endpoint.
///
/// ```no_run
/// # async fn run() -> Result<(), faas_logs::client::ClientError> {
/// use faas_logs::client::LogClient;
/// use faas_logs::Request;
/// use futures_util::StreamExt;
///
/// let client = LogClient::builder("https://gateway.example.com")
///     .basic_auth("admin", "secret")
///     .build()?;
/// let mut logs = client.logs(&Request { tail: Some(10), ..Request::new("hello") }).await?;
/// while let Some(message) = logs.next().await {
///     println!("{}", message?.text);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct LogClient {
    http: reqwest::Client,
    endpoint: String,
    auth: Auth,
    timeout: Duration,
    max_line: usize,
}

#[derive(Debug, Clone)]
enum Auth {
    None,
    Basic(String, String),
    Bearer(String),
}

/// The settings of a [`LogClient`], from [`LogClient::builder`].
#[derive(Debug)]
#[must_use]
pub struct LogClientBuilder {
    base: String,
    auth: Auth,
    timeout: Duration,
    max_line: usize,
    http: reqwest::ClientBuilder,
}

impl LogClientBuilder {
    /// Basic auth, as the gateway's `admin` login.
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Auth::Basic(user.into(), password.into());
        self
    }

    /// A bearer token instead of basic auth.
    pub fn bearer(mut self, token: impl Into<String>) -> Self {
        self.auth = Auth::Bearer(token.into());
        self
    }

    /// The longest wait for a connection and for the response's status (default 10 s);
    /// the stream itself may last as long as the provider sends.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The longest line accepted (default 1 MiB); a longer one is an error.
    pub fn max_line(mut self, bytes: usize) -> Self {
        self.max_line = bytes;
        self
    }

    /// Trusts this PEM certificate too (a provider's self-signed one).
    pub fn root_certificate(mut self, pem: &[u8]) -> Result<Self, ClientError> {
        let certificate = reqwest::Certificate::from_pem(pem).map_err(ClientError::Transport)?;
        self.http = self.http.add_root_certificate(certificate);
        Ok(self)
    }

    /// Accepts any certificate: for a test gateway only.
    pub fn danger_accept_invalid_certs(mut self) -> Self {
        self.http = self.http.danger_accept_invalid_certs(true);
        self
    }

    /// The client.
    pub fn build(self) -> Result<LogClient, ClientError> {
        let base = self.base.trim_end_matches('/');
        let invalid = |reason: &str| ClientError::InvalidUrl {
            url: self.base.clone(),
            reason: reason.to_owned(),
        };
        let parsed = reqwest::Url::parse(base).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid("the scheme is http or https"));
        }
        let http = self
            .http
            .connect_timeout(self.timeout)
            .build()
            .map_err(ClientError::Transport)?;
        Ok(LogClient {
            http,
            endpoint: format!("{base}/system/logs"),
            auth: self.auth.clone(),
            timeout: self.timeout,
            max_line: self.max_line,
        })
    }
}

impl LogClient {
    /// Settings for a client of the provider (or gateway) at `base_url`.
    pub fn builder(base_url: impl Into<String>) -> LogClientBuilder {
        LogClientBuilder {
            base: base_url.into(),
            auth: Auth::None,
            timeout: Duration::from_secs(10),
            max_line: DEFAULT_MAX_JSON_LINE,
            http: reqwest::Client::builder(),
        }
    }

    /// A client of the provider at `base_url`, without auth.
    pub fn new(base_url: impl Into<String>) -> Result<Self, ClientError> {
        LogClient::builder(base_url).build()
    }

    /// One query: its messages as they arrive, ended by the provider (a clean end) or by
    /// an error (a broken stream).
    pub async fn logs(&self, request: &Request) -> Result<MessageStream, ClientError> {
        let url = format!("{}?{}", self.endpoint, request.to_query());
        let mut call = self.http.get(&url);
        call = match &self.auth {
            Auth::None => call,
            Auth::Basic(user, password) => call.basic_auth(user, Some(password)),
            Auth::Bearer(token) => call.bearer_auth(token),
        };
        let response = tokio::time::timeout(self.timeout, call.send())
            .await
            .map_err(|_| ClientError::Timeout(self.timeout))?
            .map_err(ClientError::Transport)?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned());
            return Err(ClientError::Status {
                status: status.as_u16(),
                message,
            });
        }
        Ok(Box::pin(decode(response, self.max_line)))
    }

    /// Follows a function for ever (until the stream is dropped): `request` with
    /// `follow` set, then, each time the provider ends the stream or it breaks, the same
    /// request again from the newest timestamp delivered, as [`Resume`] says. Every line
    /// comes once, in order; the stream ends only with [`ClientError::GaveUp`].
    #[must_use = "the stream does nothing until polled"]
    pub fn follow(&self, request: Request, resume: Resume) -> MessageStream {
        let state = Following {
            client: self.clone(),
            request: Request {
                follow: true,
                ..request
            },
            resume,
            cursor: None,
            failures: 0,
            current: None,
            done: false,
        };
        Box::pin(futures_util::stream::unfold(
            state,
            |mut state| async move {
                let item = state.next().await?;
                Some((item, state))
            },
        ))
    }
}

/// How long a merged stream holds a message to put the functions' lines in time order.
pub const MERGE_WINDOW: Duration = Duration::from_millis(50);

impl LogClient {
    /// Several functions at once, as one stream: `request` for each of `names` (with
    /// [`LogClient::follow`] when `request.follow` is set, so the merged stream survives
    /// the provider's timeouts too), merged by timestamp within [`MERGE_WINDOW`]. Each
    /// message's `name` says which function wrote it. An error of one function ends the
    /// merged stream with that error.
    pub async fn logs_of(
        &self,
        names: &[&str],
        request: &Request,
        resume: Resume,
    ) -> Result<MessageStream, ClientError> {
        let mut streams = Vec::with_capacity(names.len());
        for name in names {
            let request = Request {
                name: (*name).to_owned(),
                ..request.clone()
            };
            streams.push(if request.follow {
                self.follow(request, resume)
            } else {
                self.logs(&request).await?
            });
        }
        Ok(merge_by_time(streams, MERGE_WINDOW))
    }
}

/// Merges `streams` into one, in timestamp order within `window`: a message is held at
/// most `window` after it arrives, so that a slightly older one of another stream can go
/// first; at the end everything held goes out in order.
#[must_use = "the stream does nothing until polled"]
pub fn merge_by_time(streams: Vec<MessageStream>, window: Duration) -> MessageStream {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    /// A held message and when it arrived.
    type Held = TimeOrdered<(tokio::time::Instant, Message)>;
    struct Merge {
        inputs: futures_util::stream::SelectAll<MessageStream>,
        held: BinaryHeap<Reverse<Held>>,
        arrivals: u64,
        ended: bool,
        failed: Option<ClientError>,
    }
    let merge = Merge {
        inputs: futures_util::stream::select_all(streams),
        held: BinaryHeap::new(),
        arrivals: 0,
        ended: false,
        failed: None,
    };
    Box::pin(futures_util::stream::unfold(
        merge,
        move |mut m| async move {
            loop {
                // The oldest held message goes once it has waited its window, or at the end.
                let due = m.held.peek().map(|Reverse(h)| h.item.0 + window);
                if let Some(due) = due {
                    if m.ended || tokio::time::Instant::now() >= due {
                        let Reverse(held) = m.held.pop()?;
                        return Some((Ok(held.item.1), m));
                    }
                }
                if m.ended {
                    return m.failed.take().map(|e| (Err(e), m));
                }
                let next = async {
                    match due {
                        Some(due) => tokio::time::timeout_at(due, m.inputs.next()).await.ok(),
                        None => Some(m.inputs.next().await),
                    }
                };
                match next.await {
                    None => continue, // the oldest held message is due
                    Some(Some(Ok(message))) => {
                        let arrival = tokio::time::Instant::now();
                        let held = Held::new(message.timestamp, m.arrivals, (arrival, message));
                        m.held.push(Reverse(held));
                        m.arrivals += 1;
                    }
                    Some(Some(Err(e))) => {
                        m.failed = Some(e);
                        m.ended = true;
                    }
                    Some(None) => m.ended = true,
                }
            }
        },
    ))
}

/// The messages of one response, then its end or what broke it.
fn decode(
    response: reqwest::Response,
    max_line: usize,
) -> impl Stream<Item = Result<Message, ClientError>> + Send {
    struct Body {
        chunks: Pin<Box<dyn Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
        decoder: NdjsonDecoder<Message>,
        buf: BytesMut,
        ended: bool,
        done: bool,
    }
    let body = Body {
        chunks: Box::pin(response.bytes_stream()),
        decoder: NdjsonDecoder::new(max_line),
        buf: BytesMut::new(),
        ended: false,
        done: false,
    };
    futures_util::stream::unfold(body, |mut body| async move {
        while !body.done {
            let decoded = if body.ended {
                body.decoder.decode_eof(&mut body.buf)
            } else {
                body.decoder.decode(&mut body.buf)
            };
            match decoded {
                Ok(Some(message)) => return Some((Ok(message), body)),
                Ok(None) if body.ended => body.done = true,
                Ok(None) => match body.chunks.next().await {
                    Some(Ok(chunk)) => body.buf.extend_from_slice(&chunk),
                    Some(Err(e)) => {
                        body.done = true;
                        return Some((Err(ClientError::Transport(e)), body));
                    }
                    None => body.ended = true,
                },
                Err(e) => {
                    body.done = true;
                    return Some((Err(ClientError::Decode(e)), body));
                }
            }
        }
        None
    })
}

/// Where a follow has got to: the newest timestamp delivered, and how many lines with
/// exactly that timestamp (the provider's `since` includes it).
#[derive(Debug, Clone, Copy)]
struct Cursor {
    last: DateTime<Utc>,
    at_last: usize,
}

struct Following {
    client: LogClient,
    request: Request,
    resume: Resume,
    cursor: Option<Cursor>,
    failures: u32,
    /// The open stream, and how many lines at the cursor it must still skip.
    current: Option<(MessageStream, usize)>,
    done: bool,
}

impl Following {
    async fn next(&mut self) -> Option<Result<Message, ClientError>> {
        loop {
            if self.done {
                return None;
            }
            if self.current.is_none() {
                let mut request = self.request.clone();
                if let Some(cursor) = self.cursor {
                    // Everything since the newest line delivered; tail no longer applies.
                    request.since = Some(cursor.last);
                    request.tail = None;
                }
                match self.client.logs(&request).await {
                    Ok(stream) => {
                        let skip = self.cursor.map_or(0, |c| c.at_last);
                        self.current = Some((stream, skip));
                    }
                    Err(e) => {
                        if let Some(gave_up) = self.failed(e).await {
                            return Some(Err(gave_up));
                        }
                        continue;
                    }
                }
            }
            let Some((stream, skip)) = self.current.as_mut() else {
                continue;
            };
            match stream.next().await {
                Some(Ok(message)) => {
                    if let Some(cursor) = self.cursor {
                        // Lines at the boundary were delivered before the reconnect.
                        if message.timestamp < cursor.last {
                            continue;
                        }
                        if message.timestamp == cursor.last && *skip > 0 {
                            *skip -= 1;
                            continue;
                        }
                    }
                    *skip = 0;
                    self.failures = 0;
                    self.cursor = Some(match self.cursor {
                        Some(c) if c.last == message.timestamp => Cursor {
                            last: c.last,
                            at_last: c.at_last + 1,
                        },
                        _ => Cursor {
                            last: message.timestamp,
                            at_last: 1,
                        },
                    });
                    return Some(Ok(message));
                }
                // The provider ended the stream (its timeout): reconnect at once.
                None => {
                    tracing::debug!("the provider ended the follow stream; resuming");
                    self.current = None;
                }
                Some(Err(e)) => {
                    self.current = None;
                    if let Some(gave_up) = self.failed(e).await {
                        return Some(Err(gave_up));
                    }
                }
            }
        }
    }

    /// Counts a failure and pauses; returns the error to end with when it is one too many.
    async fn failed(&mut self, e: ClientError) -> Option<ClientError> {
        self.failures += 1;
        if self.failures > self.resume.max_failures {
            self.done = true;
            return Some(ClientError::GaveUp {
                failures: self.failures - 1,
                last: Box::new(e),
            });
        }
        let doublings = (self.failures - 1).min(16);
        let pause = self
            .resume
            .first_backoff
            .saturating_mul(1 << doublings)
            .min(self.resume.max_backoff);
        tracing::debug!(error = %e, ?pause, "following failed; trying again");
        tokio::time::sleep(pause).await;
        None
    }
}
