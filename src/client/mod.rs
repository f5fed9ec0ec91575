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
//!   backs off after failures and gives up after [`Resume::with_max_failures`] in a row.
//! - **Any provider.** The query is written as faas-cli writes it ([`LogClient::query`]),
//!   so Go providers and the gateway read it too.
//! - **Lines as they came** ([`LogClient::lines`]): each [`LogLine`] is checked to be a
//!   message (the usual form at a glance, any other by the JSON parser) and keeps the
//!   provider's bytes; the [`Message`] is built only when asked for. The `faas-logs`
//!   command passes lines on this way.
//!
//! [`NdjsonDecoder`]: crate::codec::NdjsonDecoder

mod body;
mod follow;
mod merge;
mod query;

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_core::Stream;
use futures_util::StreamExt;

use crate::codec::{canonical, NdjsonError, DEFAULT_MAX_JSON_LINE};
use crate::message::MessageRef;
use crate::{FunctionName, Message, Request};

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
    /// A function list that does not read as one.
    #[error("the {what} does not read as one")]
    UnreadableList {
        /// Which list.
        what: &'static str,
        /// How it does not.
        #[source]
        source: serde_json::Error,
    },
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

/// The stream of a query as [`LogLine`]s: each message with the line it came in.
pub type LineStream = Pin<Box<dyn Stream<Item = Result<LogLine, ClientError>> + Send>>;

/// One line of a provider's stream: checked to be a [`Message`] when it was read, kept
/// as the bytes the provider sent, with its timestamp at hand. The message itself is
/// built only when asked for, so a caller that passes lines on unchanged
/// (`faas-logs -o json`) never pays for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    timestamp: DateTime<Utc>,
    line: Bytes,
}

impl LogLine {
    /// Checks that `line` (one NDJSON line, without its newline) is a message, as the
    /// client checks every line it reads: the form providers write is checked at a
    /// glance, any other read in full; either way it is accepted exactly when it reads as
    /// a [`Message`].
    ///
    /// ```
    /// use faas_logs::client::LogLine;
    ///
    /// let line = LogLine::parse(&br#"{"name":"hello","text":"hi","timestamp":"2024-01-02T15:04:05Z"}"#[..]).unwrap();
    /// assert_eq!(line.message().text, "hi");
    /// assert!(LogLine::parse(&b"<html>"[..]).is_err());
    /// ```
    pub fn parse(line: impl Into<Bytes>) -> Result<LogLine, serde_json::Error> {
        let line = line.into();
        let timestamp = match canonical(&line) {
            Some(checked) => checked.timestamp,
            None => serde_json::from_slice::<MessageRef<'_>>(&line)?.timestamp,
        };
        Ok(LogLine { timestamp, line })
    }

    /// When the line was written.
    #[must_use]
    pub fn timestamp(&self) -> DateTime<Utc> {
        self.timestamp
    }

    /// The line as the provider sent it, without its newline.
    #[must_use]
    pub fn bytes(&self) -> &Bytes {
        &self.line
    }

    /// The message of the line.
    #[must_use]
    pub fn message(&self) -> Message {
        if let Some(message) = canonical(&self.line).and_then(|c| c.message()) {
            return message;
        }
        // The line was read with the same rules when it arrived, so this cannot fail.
        serde_json::from_slice(&self.line).unwrap_or_else(|e| {
            tracing::error!(error = %e, "a checked line did not read as a message");
            Message::default().with_timestamp(self.timestamp)
        })
    }
}

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
    pub fn with_max_failures(mut self, failures: u32) -> Self {
        self.max_failures = failures;
        self
    }

    /// With pauses from `first` up to `max`.
    #[must_use]
    pub fn with_backoff(mut self, first: Duration, max: Duration) -> Self {
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
    unlimited_tail: Option<i64>,
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
    unlimited_tail: Option<i64>,
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

    /// Sends `tail=N` (`N <= 0`, which every provider reads as unlimited) for a request
    /// without a tail, where the default sends no `tail`: faas-cli sends `tail=-1` for its
    /// default `--lines -1`.
    pub fn unlimited_tail_as(mut self, tail: i64) -> Self {
        self.unlimited_tail = Some(tail.min(0));
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
            unlimited_tail: self.unlimited_tail,
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
            unlimited_tail: None,
            http: reqwest::Client::builder(),
        }
    }

    /// A client of the provider at `base_url`, without auth.
    pub fn new(base_url: impl Into<String>) -> Result<Self, ClientError> {
        LogClient::builder(base_url).build()
    }

    /// The query string sent for `request`, as faas-cli writes it (keys sorted, values
    /// escaped as Go's `url.Values.Encode` does, `since` in RFC 3339), so that Go
    /// providers read it too.
    ///
    /// ```
    /// # fn main() -> Result<(), faas_logs::client::ClientError> {
    /// use faas_logs::client::LogClient;
    /// use faas_logs::Request;
    ///
    /// let client = LogClient::builder("http://127.0.0.1:8080").unlimited_tail_as(-1).build()?;
    /// assert_eq!(client.query(&Request::new("hist")), "follow=false&name=hist&tail=-1");
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn query(&self, request: &Request) -> String {
        query::wire_query(request, self.unlimited_tail)
    }

    /// One query: its messages as they arrive, ended by the provider (a clean end) or by
    /// an error (a broken stream).
    pub async fn logs(&self, request: &Request) -> Result<MessageStream, ClientError> {
        Ok(messages(self.lines(request).await?))
    }

    /// As [`LogClient::logs`], each message with the line it came in.
    pub async fn lines(&self, request: &Request) -> Result<LineStream, ClientError> {
        let url = format!("{}?{}", self.endpoint, self.query(request));
        let response = self.get(&url).await?;
        Ok(Box::pin(body::Lines::new(response, self.max_line)))
    }

    /// The functions the provider has logs for, from the list this crate's providers
    /// serve ([`FUNCTIONS_PATH`](crate::server::FUNCTIONS_PATH)); else those an OpenFaaS
    /// gateway deploys in `namespace` (its default when empty), from its
    /// `/system/functions`. `None` when neither lists them.
    pub async fn functions(
        &self,
        namespace: &str,
    ) -> Result<Option<Vec<FunctionName>>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Listed {
            functions: Option<Vec<FunctionName>>,
        }
        #[derive(serde::Deserialize)]
        struct Deployed {
            name: String,
            #[serde(default)]
            namespace: String,
        }
        let base = self.endpoint.trim_end_matches("/system/logs");
        let unreadable = |what, source| ClientError::UnreadableList { what, source };
        match self
            .get(&format!("{base}{}", crate::server::FUNCTIONS_PATH))
            .await
        {
            Ok(response) => {
                let body = response.bytes().await.map_err(ClientError::Transport)?;
                let listed: Listed =
                    serde_json::from_slice(&body).map_err(|e| unreadable("function list", e))?;
                return Ok(listed.functions);
            }
            Err(ClientError::Status {
                status: 404 | 405 | 422,
                ..
            }) => {}
            Err(e) => return Err(e),
        }
        let mut url = format!("{base}/system/functions");
        if !namespace.is_empty() {
            let query: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("namespace", namespace)
                .finish();
            url = format!("{url}?{query}");
        }
        match self.get(&url).await {
            Ok(response) => {
                let body = response.bytes().await.map_err(ClientError::Transport)?;
                let deployed: Vec<Deployed> = serde_json::from_slice(&body)
                    .map_err(|e| unreadable("gateway's function list", e))?;
                let mut names: Vec<FunctionName> = deployed
                    .into_iter()
                    .map(|d| FunctionName::new(d.namespace, d.name))
                    .collect();
                names.sort();
                Ok(Some(names))
            }
            Err(ClientError::Status {
                status: 404 | 405, ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET url` with the client's auth, answered with a success (any other status is
    /// [`ClientError::Status`] with the provider's message).
    async fn get(&self, url: &str) -> Result<reqwest::Response, ClientError> {
        let mut call = self.http.get(url);
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
        Ok(response)
    }

    /// Follows a function for ever (until the stream is dropped): `request` with
    /// `follow` set, then, each time the provider ends the stream or it breaks, the same
    /// request again from the newest timestamp delivered, as [`Resume`] says. Every line
    /// comes once, in order; the stream ends only with [`ClientError::GaveUp`].
    #[must_use = "the stream does nothing until polled"]
    pub fn follow(&self, request: Request, resume: Resume) -> MessageStream {
        messages(self.follow_lines(request, resume))
    }

    /// As [`LogClient::follow`], each message with the line it came in.
    #[must_use = "the stream does nothing until polled"]
    pub fn follow_lines(&self, request: Request, resume: Resume) -> LineStream {
        let state = follow::Following::new(self.clone(), request, resume);
        Box::pin(futures_util::stream::unfold(
            state,
            |mut state| async move {
                let item = state.next().await?;
                Some((item, state))
            },
        ))
    }

    /// Several functions at once, as one stream: `request` for each of `names`, merged
    /// by timestamp within [`MERGE_WINDOW`]. When `request.follow` is set and `resume`
    /// given, each function is followed with [`LogClient::follow`], so the merged stream
    /// survives the provider's timeouts; without `resume` each ends when the provider
    /// ends it. Each message's `name` says which function wrote it. An error of one
    /// function ends the merged stream with that error.
    pub async fn logs_of(
        &self,
        names: &[&str],
        request: &Request,
        resume: Option<Resume>,
    ) -> Result<MessageStream, ClientError> {
        Ok(messages(self.lines_of(names, request, resume).await?))
    }

    /// As [`LogClient::logs_of`], each message with the line it came in.
    pub async fn lines_of(
        &self,
        names: &[&str],
        request: &Request,
        resume: Option<Resume>,
    ) -> Result<LineStream, ClientError> {
        let mut streams = Vec::with_capacity(names.len());
        for name in names {
            let request = Request {
                name: (*name).to_owned(),
                ..request.clone()
            };
            streams.push(match resume {
                Some(resume) if request.follow => self.follow_lines(request, resume),
                _ => self.lines(&request).await?,
            });
        }
        Ok(merge::merge(streams, MERGE_WINDOW))
    }
}

/// How long a merged stream holds a message to put the functions' lines in time order.
pub const MERGE_WINDOW: Duration = Duration::from_millis(50);

/// Merges `streams` into one, in timestamp order within `window`: a message is held at
/// most `window` after it arrives, so that a slightly older one of another stream can go
/// first; at the end everything held goes out in order.
#[must_use = "the stream does nothing until polled"]
pub fn merge_by_time(streams: Vec<MessageStream>, window: Duration) -> MessageStream {
    merge::merge(streams, window)
}

/// [`merge_by_time`] for streams of lines: several functions' lines, each with the bytes
/// it came in, as one stream in timestamp order within `window`.
#[must_use = "the stream does nothing until polled"]
pub fn merge_lines_by_time(streams: Vec<LineStream>, window: Duration) -> LineStream {
    merge::merge(streams, window)
}

/// The messages of a stream of lines.
fn messages(lines: LineStream) -> MessageStream {
    Box::pin(lines.map(|line| line.map(|l| l.message())))
}
