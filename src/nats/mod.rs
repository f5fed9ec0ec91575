//! [`JetStreamLogs`] (feature `nats`): logs kept in one NATS JetStream stream that any
//! number of providers share, written by a sink and read by a [`Requester`].
//!
//! - **Subjects** `<prefix>.<namespace>.<name>.<instance>`, each token encoded so that
//!   any name works (dots included) and decodes back.
//! - **Writing** ([`JetStreamLogs::write`], [`JetStreamLogs::flush`]): each message is
//!   published at once and its acknowledgement awaited in the background, so that
//!   publishing runs in batches; a message counts as stored once acknowledged, and
//!   `flush` waits for every acknowledgement and reports any refusal.
//! - **Reading**: a query is one ephemeral pull consumer filtered on the function's
//!   subjects (one instance's subject for `instance`), starting at the time `since`
//!   names, or at the sequence where the last `tail` lines begin (found by a binary
//!   search on the consumer's pending count, without reading the history). History
//!   ends, with [`Event::HistoryEnd`](crate::Event::HistoryEnd), right after the last
//!   matching message that existed when the query began; a follow goes on with the same
//!   consumer. Dropping the stream deletes the consumer.
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

use crate::{
    async_trait, Capabilities, Error, FunctionName, LogStream, Message, Request, Requester,
};

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
    /// The most lines kept per instance (default 100,000).
    pub max_messages_per_subject: i64,
    /// Copies of the stream in a cluster (default 1; 3 survives the loss of a server).
    pub replicas: usize,
    /// The longest wait for an answer from the server (default 2 s): past it a query is
    /// a 503 and a write an error.
    pub timeout: Duration,
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
            timeout: Duration::from_secs(2),
        }
    }
}

impl JetStreamConfig {
    /// With the stream named `name`.
    #[must_use]
    pub fn stream(mut self, name: impl Into<String>) -> Self {
        self.stream = name.into();
        self
    }

    /// With `replicas` copies of the stream.
    #[must_use]
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas;
        self
    }

    /// With these retention bounds.
    #[must_use]
    pub fn retention(mut self, max_age: Duration, max_bytes: i64, per_instance: i64) -> Self {
        self.max_age = max_age;
        self.max_bytes = max_bytes;
        self.max_messages_per_subject = per_instance;
        self
    }
}

/// Logs in a JetStream stream: [`JetStreamLogs::write`] publishes, the [`Requester`]
/// serves `GET /system/logs` from it. Clones share one connection.
///
/// ```no_run
/// # async fn run() -> Result<(), faas_logs::Error> {
/// use faas_logs::nats::{JetStreamConfig, JetStreamLogs};
/// use faas_logs::server::LogHandler;
/// use faas_logs::Message;
///
/// let logs = JetStreamLogs::connect("nats://127.0.0.1:4222", JetStreamConfig::default()).await?;
/// logs.write(Message::new("hello", chrono::Utc::now(), "ready")).await?;
/// logs.flush().await?; // acknowledged: stored
/// let handler = LogHandler::new(logs, std::time::Duration::from_secs(60));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct JetStreamLogs {
    inner: Arc<Inner>,
}

struct Inner {
    config: JetStreamConfig,
    context: jetstream::Context,
    writer: writer::Writer,
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
    /// creates the stream if it does not exist (an existing one is used as it is).
    pub async fn connect(urls: &str, config: JetStreamConfig) -> Result<Self, Error> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(config.timeout)
            .request_timeout(Some(config.timeout))
            .connect(urls)
            .await
            .map_err(|e| unavailable(&format!("cannot connect to NATS at {urls}"), e))?;
        let context = jetstream::ContextBuilder::new()
            .timeout(config.timeout)
            .max_ack_inflight(writer::IN_FLIGHT)
            .backpressure_on_inflight(true)
            .build(client);
        let stream = jetstream::stream::Config {
            name: config.stream.clone(),
            subjects: vec![format!("{}.>", config.prefix)],
            max_age: config.max_age,
            max_bytes: config.max_bytes,
            max_messages_per_subject: config.max_messages_per_subject,
            num_replicas: config.replicas.max(1),
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        };
        context
            .get_or_create_stream(stream)
            .await
            .map_err(|e| unavailable(&format!("cannot open the stream {}", config.stream), e))?;
        let writer = writer::Writer::new(context.clone());
        Ok(JetStreamLogs {
            inner: Arc::new(Inner {
                config,
                context,
                writer,
            }),
        })
    }

    /// The configuration in use.
    #[must_use]
    pub fn config(&self) -> &JetStreamConfig {
        &self.inner.config
    }

    /// Publishes `message` (an empty namespace is the default one); its acknowledgement
    /// is awaited in the background. Fails when the server refuses at once or is gone.
    pub async fn write(&self, mut message: Message) -> Result<(), Error> {
        let config = &self.inner.config;
        if message.namespace.is_empty() {
            message.namespace = config.default_namespace.as_str().into();
        }
        let subject = subject::subject(
            &config.prefix,
            &message.namespace,
            &message.name,
            &message.instance,
        );
        let mut payload = bytes::BytesMut::with_capacity(message.text.len() + 160);
        crate::codec::encode_message(&message, &mut payload);
        payload.truncate(payload.len() - 1); // the newline
        self.inner.writer.publish(subject, payload.freeze()).await
    }

    /// Waits until every message written so far is acknowledged; an error names how many
    /// were not stored since the last flush, and the last reason.
    pub async fn flush(&self) -> Result<(), Error> {
        self.inner.writer.flush().await
    }
}

#[async_trait]
impl crate::LogSink for JetStreamLogs {
    async fn write(&self, message: Message) -> Result<(), Error> {
        JetStreamLogs::write(self, message).await
    }

    async fn flush(&self) -> Result<(), Error> {
        JetStreamLogs::flush(self).await
    }
}

#[async_trait]
impl Requester for JetStreamLogs {
    async fn query(&self, request: Request) -> Result<LogStream, Error> {
        reader::query(&self.inner.context, &self.inner.config, request).await
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
            .with_history_end()
            .with_instance_selection()
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

/// A 503 for a server that did not answer, with its cause.
fn unavailable(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::unavailable(format!("{what}: {e}")).with_source(e)
}
