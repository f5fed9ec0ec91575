//! [`JetStreamLogs`] (feature `nats`): logs kept in one NATS JetStream stream that any
//! number of providers share, written by a sink and read by a [`Requester`].
//!
//! - **Subjects** `<prefix>.<namespace>.<name>.<instance>`, each token encoded so that
//!   any name works (dots included) and decodes back.
//! - **Writing** ([`JetStreamLogs::store`], the [`LogSink`](crate::LogSink)): a batch's
//!   lines are published in order and the batch waits for its own acknowledgements,
//!   together, within [`JetStreamConfig::with_store_timeout`]. Each line's outcome is its
//!   own: stored (acknowledged), refused for what it is ([`Error::InvalidRequest`]), or
//!   not stored because JetStream is unavailable ([`Error::Unavailable`]: no leader,
//!   no answer in time, connection lost). Every line carries a `Nats-Msg-Id` (from the
//!   batch's id, or its content), so a batch sent again after a timeout or a 503 stores
//!   each line once within the stream's duplicate window; and its number on its
//!   subject (a last JSON field, `faas_logs_line`), so that a reader can count lines
//!   lost to retention.
//! - **Reading**: a query is one ephemeral pull consumer filtered on the function's
//!   subjects (one instance's subject for `instance`), starting at the time `since`
//!   names, or where the last `tail` lines begin (found from the consumer's pending
//!   counts with a few probes, without reading the history). History ends, with
//!   [`Event::HistoryEnd`](crate::Event::HistoryEnd), right after the last matching
//!   message that existed when the query began; a follow goes on with the same
//!   consumer. A reader that falls behind retention gets [`Event::Gap`](crate::Event::Gap)
//!   with the number of lines it lost. Dropping the stream deletes the consumer.
//! - **Retention** is the stream's: [`JetStreamConfig::max_age`], `max_bytes` and
//!   `max_messages_per_subject` (per instance).
//!
//! async-nats needs Rust 1.89; this feature is off by default.

mod reader;
mod subject;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;

use crate::{async_trait, Batch, Capabilities, Error, FunctionName, LogStream, Request, Requester};

/// Where and how the logs are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JetStreamConfig {
    /// The stream's name (default `FAAS_LOGS`).
    pub stream: String,
    /// The first token of every subject (default `faas-logs`).
    pub prefix: String,
    /// The namespace of a message or request without one (default `openfaas-fn`).
    pub default_namespace: String,
    /// Lines older than this are removed (default 7 days).
    pub max_age: Duration,
    /// The stream's size bound in bytes; past it the oldest lines go (default 1 GiB).
    pub max_bytes: i64,
    /// The most lines kept per instance (default 100,000; -1 for no bound).
    pub max_messages_per_subject: i64,
    /// Copies of the stream in a cluster (default 1; 3 survives the loss of a server).
    pub replicas: usize,
    /// How long the stream remembers a line's id to store a resent line once (default
    /// 2 minutes): a client's retry within it is safe.
    pub duplicate_window: Duration,
    /// The longest wait for an answer from the server (default 2 s): past it a query is
    /// a 503 and a line not acknowledged is not stored.
    pub timeout: Duration,
    /// The longest a batch waits for all its acknowledgements (default 5 s): lines not
    /// acknowledged by then are reported not stored ([`Error::Unavailable`]).
    pub store_timeout: Duration,
    /// How long [`JetStreamLogs::connect`] keeps trying while NATS cannot be reached or
    /// has no JetStream leader yet (default 30 s; zero tries once).
    pub connect_timeout: Duration,
    /// Whether [`JetStreamLogs::connect`] changes an existing stream whose settings
    /// differ from these (default `false`: the differences are logged and the stream is
    /// used as it is).
    pub update_stream: bool,
}

impl Default for JetStreamConfig {
    fn default() -> Self {
        JetStreamConfig {
            stream: "FAAS_LOGS".into(),
            prefix: "faas-logs".into(),
            default_namespace: "openfaas-fn".into(),
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 1 << 30,
            max_messages_per_subject: 100_000,
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            timeout: Duration::from_secs(2),
            store_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(30),
            update_stream: false,
        }
    }
}

impl JetStreamConfig {
    /// With the stream named `name`.
    #[must_use]
    pub fn with_stream(mut self, name: impl Into<String>) -> Self {
        self.stream = name.into();
        self
    }

    /// With `replicas` copies of the stream.
    #[must_use]
    pub fn with_replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas;
        self
    }

    /// With these retention bounds.
    #[must_use]
    pub fn with_retention(mut self, max_age: Duration, max_bytes: i64, per_instance: i64) -> Self {
        self.max_age = max_age;
        self.max_bytes = max_bytes;
        self.max_messages_per_subject = per_instance;
        self
    }

    /// With this deadline for a batch's acknowledgements.
    #[must_use]
    pub fn with_store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// With this bound on [`JetStreamLogs::connect`]'s retries.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Whether to change an existing stream to these settings.
    #[must_use]
    pub fn with_update_stream(mut self, update: bool) -> Self {
        self.update_stream = update;
        self
    }

    /// The stream these settings ask for.
    fn stream_config(&self) -> jetstream::stream::Config {
        jetstream::stream::Config {
            name: self.stream.clone(),
            subjects: vec![format!("{}.>", self.prefix)],
            max_age: self.max_age,
            max_bytes: self.max_bytes,
            max_messages_per_subject: self.max_messages_per_subject,
            num_replicas: self.replicas.max(1),
            duplicate_window: self.duplicate_window,
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        }
    }
}

/// The last field of a stored line's JSON: its number on its subject. A field rather
/// than a header: a reader then parses one header (`Nats-Msg-Id`) per line, not two.
/// Go decoders, and this crate's, ignore it.
const LINE_FIELD: &[u8] = b",\"faas_logs_line\":";

/// `payload` (a line's JSON without its closing brace) with its number and the brace.
fn numbered(mut payload: bytes::BytesMut, number: u64) -> bytes::Bytes {
    payload.extend_from_slice(LINE_FIELD);
    payload.extend_from_slice(number.to_string().as_bytes());
    payload.extend_from_slice(b"}");
    payload.freeze()
}

/// The number a stored line carries, if its writer numbered it.
fn line_number(payload: &[u8]) -> Option<u64> {
    let body = payload.strip_suffix(b"}")?;
    let start = body.iter().rposition(|b| !b.is_ascii_digit())? + 1;
    let (before, digits) = body.split_at(start);
    if digits.is_empty() || digits.len() > 19 || !before.ends_with(LINE_FIELD) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Logs in a JetStream stream: [`JetStreamLogs::store`] writes, the [`Requester`]
/// serves `GET /system/logs` from it. Clones share one connection.
///
/// ```no_run
/// # async fn run() -> Result<(), faas_logs::Error> {
/// use faas_logs::nats::{JetStreamConfig, JetStreamLogs};
/// use faas_logs::server::LogHandler;
/// use faas_logs::{LogSink, Message};
///
/// let logs = JetStreamLogs::connect("nats://127.0.0.1:4222", JetStreamConfig::default()).await?;
/// logs.write(Message::new("hello", chrono::Utc::now(), "ready")).await?; // acknowledged: stored
/// let handler = LogHandler::new(logs, std::time::Duration::from_secs(60));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct JetStreamLogs {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<JetStreamConfig>,
    context: jetstream::Context,
    writer: writer::Writer,
    differences: Vec<String>,
}

impl std::fmt::Debug for JetStreamLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamLogs")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl JetStreamLogs {
    /// Connects to the servers at `urls` (comma-separated, `nats://host:port`), and
    /// creates the stream if it does not exist. An existing stream whose settings differ
    /// from `config`'s is used as it is, each difference logged (see
    /// [`JetStreamLogs::stream_differences`]), unless [`JetStreamConfig::with_update_stream`]
    /// asks to change it.
    ///
    /// While NATS cannot be reached, or has no JetStream leader yet (a cluster that is
    /// starting), it tries again with a growing pause, logging each attempt, for at most
    /// [`JetStreamConfig::with_connect_timeout`].
    pub async fn connect(urls: &str, config: JetStreamConfig) -> Result<Self, Error> {
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(100);
        for attempt in 1.. {
            match Self::connect_once(urls, &config).await {
                Ok(logs) => return Ok(logs),
                Err(e @ Error::Unavailable { .. })
                    if started.elapsed() + pause < config.connect_timeout =>
                {
                    tracing::warn!(attempt, error = %e, retry_in = ?pause, "NATS is not ready; trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the attempts are numbered without end")
    }

    async fn connect_once(urls: &str, config: &JetStreamConfig) -> Result<Self, Error> {
        let servers: Vec<&str> = urls
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        let client = connect_options(config)
            .connect(servers.as_slice())
            .await
            .map_err(|e| {
                let what = format!("cannot connect to NATS at {urls}");
                match e.kind() {
                    async_nats::ConnectErrorKind::ServerParse => {
                        Error::invalid("NATS address", format!("{what}: {e}")).with_source(e)
                    }
                    _ => unavailable(&what, e),
                }
            })?;
        let context = context(config, client);
        let (subjects, differences) = open_stream(&context, config).await?;
        let config = Arc::new(config.clone());
        let servers = servers.into_iter().map(str::to_owned).collect();
        let writer = writer::Writer::new(context.clone(), Arc::clone(&config), servers, subjects);
        Ok(JetStreamLogs {
            inner: Arc::new(Inner {
                config,
                context,
                writer,
                differences,
            }),
        })
    }

    /// The configuration in use.
    #[must_use]
    pub fn config(&self) -> &JetStreamConfig {
        &self.inner.config
    }

    /// How the stream found at [`JetStreamLogs::connect`] differs from what the
    /// configuration asks for, one sentence each (empty when it matches, was created,
    /// or was updated).
    #[must_use]
    pub fn stream_differences(&self) -> &[String] {
        &self.inner.differences
    }

    /// Stores `batch` (an empty namespace is the default one) and returns once each line
    /// is acknowledged or known not to be stored, within
    /// [`JetStreamConfig::with_store_timeout`]: one outcome per line, in order (see the
    /// [module documentation](self)).
    pub async fn store(&self, batch: Batch) -> Vec<Result<(), Error>> {
        self.inner.writer.store(batch).await
    }
}

/// How every connection of a `JetStreamLogs` connects.
fn connect_options(config: &JetStreamConfig) -> async_nats::ConnectOptions {
    async_nats::ConnectOptions::new()
        .connection_timeout(config.timeout)
        .request_timeout(Some(config.timeout))
}

/// JetStream on `client`, with the configured timeouts and a bound on acknowledgements
/// awaited at once.
fn context(config: &JetStreamConfig, client: async_nats::Client) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(config.timeout)
        .ack_timeout(config.timeout)
        .max_ack_inflight(writer::IN_FLIGHT)
        .backpressure_on_inflight(true)
        .build(client)
}

/// Creates the stream, or reads the existing one and compares (or updates) it; returns
/// its subjects and its differences from `config`.
async fn open_stream(
    context: &jetstream::Context,
    config: &JetStreamConfig,
) -> Result<(Vec<String>, Vec<String>), Error> {
    let wanted = config.stream_config();
    let what = format!("cannot open the log stream {}", config.stream);
    let found = match context.get_stream(&config.stream).await {
        Ok(stream) => stream.cached_info().config.clone(),
        Err(e) if stream_missing(&e) => {
            let created = context
                .create_stream(wanted)
                .await
                .map_err(|e| unavailable(&what, e))?;
            tracing::info!(stream = %config.stream, replicas = config.replicas, "log stream created");
            return Ok((created.cached_info().config.subjects.clone(), Vec::new()));
        }
        Err(e) => return Err(unavailable(&what, e)),
    };
    let differences = differences(&found, &wanted);
    if differences.is_empty() {
        return Ok((found.subjects, differences));
    }
    if config.update_stream {
        let updated = context.update_stream(wanted).await.map_err(|e| {
            Error::invalid(
                "stream",
                format!(
                    "the log stream {} cannot be changed to the settings asked for ({}): {e}",
                    config.stream,
                    differences.join("; ")
                ),
            )
        })?;
        tracing::info!(stream = %config.stream, changes = %differences.join("; "), "log stream updated");
        return Ok((updated.config.subjects, Vec::new()));
    }
    for difference in &differences {
        tracing::warn!(stream = %config.stream, "{difference} (used as it is; update it with --nats-update-stream)");
    }
    Ok((found.subjects, differences))
}

/// Whether `e` says that the stream does not exist.
fn stream_missing(e: &jetstream::context::GetStreamError) -> bool {
    matches!(
        e.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(e)
            if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

/// Each setting in which `found` differs from `wanted`, as a sentence.
fn differences(
    found: &jetstream::stream::Config,
    wanted: &jetstream::stream::Config,
) -> Vec<String> {
    let settings = |c: &jetstream::stream::Config| {
        [
            ("subjects", c.subjects.join(", ")),
            ("replicas", c.num_replicas.to_string()),
            ("max age", format!("{:?}", c.max_age)),
            ("max bytes", c.max_bytes.to_string()),
            (
                "max lines per instance",
                c.max_messages_per_subject.to_string(),
            ),
            ("duplicate window", format!("{:?}", c.duplicate_window)),
            ("storage", format!("{:?}", c.storage)),
        ]
    };
    settings(found)
        .into_iter()
        .zip(settings(wanted))
        .filter(|((_, has), (_, asked))| has != asked)
        .map(|((what, has), (_, asked))| {
            format!("{what}: the stream has {has}, the configuration asks for {asked}")
        })
        .collect()
}

#[async_trait]
impl crate::LogSink for JetStreamLogs {
    async fn store(&self, batch: Batch) -> Vec<Result<(), Error>> {
        JetStreamLogs::store(self, batch).await
    }
}

#[async_trait]
impl Requester for JetStreamLogs {
    async fn query(&self, request: Request) -> Result<LogStream, Error> {
        reader::query(&self.inner.context, &self.inner.config, request).await
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
            .with_marks_history_end()
            .with_selects_instance()
    }

    fn default_namespace(&self) -> Option<String> {
        Some(self.inner.config.default_namespace.clone())
    }

    /// Every function with a line in the stream, from the stream's subjects.
    async fn functions(&self) -> Result<Option<Vec<FunctionName>>, Error> {
        use futures_util::TryStreamExt;
        let config = &self.inner.config;
        let cannot = |e| {
            unavailable(
                &format!("the log stream {} cannot be read", config.stream),
                e,
            )
        };
        let stream = self
            .inner
            .context
            .get_stream(&config.stream)
            .await
            .map_err(cannot)?;
        let subjects = stream
            .info_with_subjects(format!("{}.>", config.prefix))
            .await
            .map_err(|e| unavailable("the stream's subjects cannot be listed", e))?;
        let mut names: Vec<FunctionName> = subjects
            .map_err(|e| unavailable("the stream's subjects cannot be listed", e))
            .try_filter_map(|(subject, _)| {
                let named = subject::function_of(&config.prefix, &subject);
                std::future::ready(Ok(named))
            })
            .try_collect()
            .await?;
        names.sort();
        names.dedup();
        Ok(Some(names))
    }
}

/// A 503 for a server that did not answer, with its cause; when the cause is that
/// JetStream has no leader to answer, the message says so.
fn unavailable(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    let cause = Error::describe(&e);
    let lower = cause.to_lowercase();
    let no_leader = [
        "no responders",
        "temporarily unavailable",
        "not leader",
        "no leader",
    ]
    .iter()
    .any(|sign| lower.contains(sign));
    let hint = if no_leader {
        " (JetStream has no leader to answer right now: a leader election, or too few of its servers are up)"
    } else if lower.contains("timed out") {
        " (no answer in time: a leader election, too few servers up, or a network problem)"
    } else {
        ""
    };
    Error::unavailable(format!("{what}: {cause}{hint}")).with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_number_reads_back_and_nothing_else_passes_for_one() {
        let line = br#"{"name":"f","namespace":"ns","instance":"f-1","timestamp":"2024-03-01T12:00:00Z","text":"a }"}"#;
        let payload = bytes::BytesMut::from(&line[..line.len() - 1]);
        let stored = numbered(payload, 1234);
        assert_eq!(line_number(&stored), Some(1234));
        let message: crate::Message = serde_json::from_slice(&stored).unwrap();
        assert_eq!(message.text, "a }");
        for other in [
            &line[..],
            br#"{"text":"x","faas_logs_line":}"#,
            br#"{"text":"x","line":12}"#,
            br#"{"faas_logs_line":99999999999999999999999}"#,
            b"",
            b"}",
        ] {
            assert_eq!(
                line_number(other),
                None,
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }
}
