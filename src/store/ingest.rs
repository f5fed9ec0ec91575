//! Two ways into a [`LogStore`]: a process's output captured line by line, and pushed
//! NDJSON of [`Message`].

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncRead;
use tokio_util::codec::{Decoder, FramedRead};

use super::LogStore;
use crate::codec::{trim_line_end, LineCodec, NdjsonDecoder, NdjsonError};
use crate::request::valid_name;
use crate::{Batch, Error, LogSink, Message, OutputStream, SharedStr};

/// Whose lines a capture writes, and how it cuts them: a process's stdout or stderr read
/// line by line into a [`LogStore`] or any [`LogSink`].
///
/// Made for a function's name, then set with `with_*`; each line becomes a message of
/// that function and instance, from that stream (so that a viewer and the command can
/// tell stderr), stamped when the line is complete. Lines are cut as [`LineCodec`]
/// describes, at [`DEFAULT_MAX_LINE`](crate::codec::DEFAULT_MAX_LINE) bytes unless set.
///
/// ```no_run
/// # async fn run(child: &mut tokio::process::Child) -> std::io::Result<()> {
/// use faas_logs::store::{Capture, LogStore};
/// use faas_logs::OutputStream;
///
/// let store = LogStore::new();
/// let stderr = child.stderr.take().expect("piped");
/// Capture::new("hello")
///     .with_instance("hello-1")
///     .with_stream(OutputStream::Stderr)
///     .lines(stderr, &store)
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Capture {
    namespace: SharedStr,
    name: SharedStr,
    instance: SharedStr,
    stream: OutputStream,
    max_line: usize,
}

impl Capture {
    /// Lines of the function `name`, in no namespace (the provider's default) and no
    /// instance, from stdout.
    #[must_use]
    pub fn new(name: impl Into<SharedStr>) -> Self {
        Capture {
            namespace: SharedStr::default(),
            name: name.into(),
            instance: SharedStr::default(),
            stream: OutputStream::Stdout,
            max_line: crate::codec::DEFAULT_MAX_LINE,
        }
    }

    /// The function's namespace.
    #[must_use]
    pub fn with_namespace(mut self, namespace: impl Into<SharedStr>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The instance (replica, process) that writes the lines.
    #[must_use]
    pub fn with_instance(mut self, instance: impl Into<SharedStr>) -> Self {
        self.instance = instance.into();
        self
    }

    /// The pipe the lines come from.
    #[must_use]
    pub fn with_stream(mut self, stream: OutputStream) -> Self {
        self.stream = stream;
        self
    }

    /// The longest line kept whole; a longer one is cut with a visible marker.
    #[must_use]
    pub fn with_max_line(mut self, max_line: usize) -> Self {
        self.max_line = max_line;
        self
    }

    /// Reads `reader` to its end and writes each line to `sink`.
    ///
    /// The lines that are ready go to the sink together, as one [`Batch`]. A line the
    /// sink could not store for now ([`Error::Unavailable`]) is written again, with a
    /// growing pause (up to 5 s), until it is stored; meanwhile nothing more is read, so
    /// a process that writes faster than its logs can be stored waits on its pipe rather
    /// than lose lines. A line the sink refuses for good is logged and dropped.
    ///
    /// Returns the number of lines stored; a read error ends the capture and is
    /// returned.
    pub async fn lines<R: AsyncRead + Unpin, S: LogSink + ?Sized>(
        &self,
        reader: R,
        sink: &S,
    ) -> std::io::Result<u64> {
        let codec = LineCodec::new(self.max_line);
        let lines = FramedRead::with_capacity(reader, codec, 16 * 1024);
        let mut ready = lines.ready_chunks(CAPTURE_BATCH);
        let mut stored = 0u64;
        while let Some(chunk) = ready.next().await {
            let mut messages = Vec::with_capacity(chunk.len());
            let mut failed = None;
            for text in chunk {
                match text {
                    // Every line shares the three names rather than allocating its own.
                    Ok(text) => messages.push(
                        Message::new(self.name.clone(), Utc::now(), text)
                            .with_namespace(self.namespace.clone())
                            .with_instance(self.instance.clone())
                            .with_stream(self.stream),
                    ),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            stored += store_until_settled(sink, messages, &self.name).await;
            if let Some(e) = failed {
                return Err(e);
            }
            // A flooding process keeps the pipe always ready, and tokio's budget counts
            // reads, not lines: thousands of batches could go by before this task gave
            // its worker back, while the followers it woke wait on that same worker.
            tokio::task::yield_now().await;
        }
        Ok(stored)
    }
}

/// Captured lines refused by their sinks since the process started, for the warnings.
static CAPTURE_REFUSED: AtomicU64 = AtomicU64::new(0);

/// Lines of a capture written to a sink at once, at most.
const CAPTURE_BATCH: usize = 1024;

/// Writes `messages` to `sink`, again and again for those it could not store for now,
/// until each is stored or refused for good; returns how many were stored.
async fn store_until_settled<S: LogSink + ?Sized>(
    sink: &S,
    mut messages: Vec<Message>,
    function: &str,
) -> u64 {
    let mut stored = 0u64;
    let mut pause = std::time::Duration::from_millis(100);
    while !messages.is_empty() {
        let outcomes = sink.store(Batch::new(messages.clone())).await;
        let mut again = Vec::new();
        let mut refused: Option<(usize, Error)> = None;
        for (message, outcome) in messages.into_iter().zip(outcomes) {
            match outcome {
                Ok(()) => stored += 1,
                Err(Error::Unavailable { message: why, .. }) => {
                    if again.is_empty() {
                        tracing::warn!(error = %why, %function, retry_in = ?pause, "captured lines not stored yet");
                    }
                    again.push(message);
                }
                // Refused for good (a full disk among them): counted, and reported once
                // for the batch, so that the process is never held up by its logs.
                Err(e) => match &mut refused {
                    Some((count, _)) => *count += 1,
                    None => refused = Some((1, e)),
                },
            }
        }
        if let Some((count, e)) = refused {
            let total = CAPTURE_REFUSED.fetch_add(count as u64, Ordering::Relaxed) + count as u64;
            tracing::warn!(error = %e, %function, lines = count, refused_since_start = total, "captured lines could not be stored");
        }
        messages = again;
        if !messages.is_empty() {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_secs(5));
        }
    }
    stored
}

/// The most refused lines an [`IngestReport`] lists; the rest are only counted.
pub const MAX_LISTED_REJECTIONS: usize = 100;

/// The outcome of a push ([`LogStore::ingest_ndjson`], [`ingest_ndjson`]); its
/// [`IngestReport::status`] is the HTTP status to answer with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct IngestReport {
    /// Lines stored: each one acknowledged by the store, never a line merely sent.
    pub accepted: usize,
    /// The first [`MAX_LISTED_REJECTIONS`] lines refused for what they hold, each with
    /// why. Sending them again cannot help.
    pub rejected: Vec<RejectedLine>,
    /// How many more lines were refused than `rejected` lists.
    pub more_rejected: usize,
    /// Lines not stored because the store was unavailable (no leader, no answer in
    /// time, connection lost) or full: send them again later.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<NotStored>,
    /// Whether a line was not stored because the store was full (a full disk): the
    /// answer is then 507 rather than 503.
    #[serde(skip)]
    pub full: bool,
}

/// A pushed line that was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RejectedLine {
    /// Its line number in the body, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub error: String,
}

/// The lines of a push that the store could not take for now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct NotStored {
    /// How many.
    pub count: usize,
    /// Their line numbers in the body, as inclusive ranges `[first, last]`, in order.
    pub lines: Vec<[usize; 2]>,
    /// Why the first of them was not stored.
    pub error: String,
}

impl IngestReport {
    /// The status a push endpoint answers with: `507` when a line was not stored because
    /// the store was full, `503` when it was unavailable (answer either with
    /// `Retry-After` too), else `422` when a line was refused, else `200`: every line
    /// stored.
    #[must_use]
    pub fn status(&self) -> http::StatusCode {
        if self.full {
            http::StatusCode::INSUFFICIENT_STORAGE
        } else if self.unavailable.is_some() {
            http::StatusCode::SERVICE_UNAVAILABLE
        } else if self.rejected.is_empty() {
            http::StatusCode::OK
        } else {
            http::StatusCode::UNPROCESSABLE_ENTITY
        }
    }

    fn count(&mut self, line: usize, outcome: Result<(), Error>) {
        match outcome {
            Ok(()) => self.accepted += 1,
            Err(e @ (Error::Unavailable { .. } | Error::InsufficientStorage { .. })) => {
                self.full |= matches!(e, Error::InsufficientStorage { .. });
                let message = e.to_string();
                let not_stored = self.unavailable.get_or_insert_with(|| NotStored {
                    error: message,
                    ..NotStored::default()
                });
                not_stored.count += 1;
                match not_stored.lines.last_mut() {
                    Some([_, last]) if *last + 1 == line => *last = line,
                    _ => not_stored.lines.push([line, line]),
                }
            }
            Err(e) => self.refuse(line, e.to_string()),
        }
    }

    /// Counts the push in the crate's metrics.
    fn meter(&self) {
        let later = self.unavailable.as_ref().map_or(0, |n| n.count);
        let invalid = self.rejected.len() + self.more_rejected;
        crate::meter::pushed("ndjson", self.accepted, invalid, later, self.full);
    }

    fn refuse(&mut self, line: usize, error: String) {
        if self.rejected.len() == MAX_LISTED_REJECTIONS {
            self.more_rejected += 1;
        } else {
            self.rejected.push(RejectedLine { line, error });
        }
    }
}

/// A pushed line: a [`Message`] whose namespace, instance and timestamp may be left out.
#[derive(Deserialize)]
struct Pushed {
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    instance: String,
    #[serde(default)]
    timestamp: Option<String>,
    text: String,
    #[serde(default)]
    stream: Option<OutputStream>,
    #[serde(default)]
    severity: Option<serde_json::Value>,
    #[serde(default)]
    trace_id: Option<serde_json::Value>,
    #[serde(default)]
    span_id: Option<serde_json::Value>,
    #[serde(default)]
    attributes: Option<serde_json::Value>,
}

impl LogStore {
    /// Stores pushed NDJSON: one JSON [`Message`] per line, blank lines skipped.
    ///
    /// `name` and `text` are required; `namespace` defaults to the store's; `instance` may
    /// be empty; `timestamp` (RFC 3339) defaults to now; `stream` (`stdout` or `stderr`)
    /// and a structured record's [`Details`](crate::Details) (`severity`, `trace_id`,
    /// `span_id`, `attributes`) are optional; a trailing `\n` or `\r\n` in
    /// `text` is removed. Each bad line is refused with its line number and reason (the
    /// first [`MAX_LISTED_REJECTIONS`] listed, the rest counted), and every good line is
    /// stored all the same. [`ingest_ndjson`] does the same into any [`LogSink`].
    #[must_use]
    pub fn ingest_ndjson(&self, body: &[u8]) -> IngestReport {
        let mut report = IngestReport::default();
        for (line, pushed) in pushed_lines(body) {
            match pushed.map(|(m, _)| self.append(m)) {
                Ok(stored) => report.count(line, stored),
                Err(e) => report.refuse(line, e),
            }
        }
        report.meter();
        report
    }
}

/// [`LogStore::ingest_ndjson`] into any sink: the good lines are written as one
/// [`Batch`] (with `batch_id`, a client's `Idempotency-Key`, when given), and the report
/// counts each line's own outcome once the sink has settled it: stored, refused, or not
/// stored because the sink was unavailable.
pub async fn ingest_ndjson<S: LogSink + ?Sized>(
    sink: &S,
    body: &[u8],
    batch_id: Option<&str>,
) -> IngestReport {
    let mut report = IngestReport::default();
    let mut numbers = Vec::new();
    let mut messages = Vec::new();
    let mut stamped_on_arrival = Vec::new();
    for (line, pushed) in pushed_lines(body) {
        match pushed {
            Ok((message, stamped)) => {
                if stamped {
                    stamped_on_arrival.push(messages.len());
                }
                numbers.push(line);
                messages.push(message);
            }
            Err(e) => report.refuse(line, e),
        }
    }
    let mut batch = Batch::new(messages);
    batch.id = batch_id.map(str::to_owned);
    batch.stamped_on_arrival = stamped_on_arrival;
    let outcomes = sink.store(batch).await;
    let mut outcomes = outcomes.into_iter();
    for line in numbers {
        let outcome = outcomes
            .next()
            .unwrap_or_else(|| Err(Error::other("the sink gave no outcome for this line")));
        report.count(line, outcome);
    }
    // Refusals came first while reading; list every refusal in line order.
    report.rejected.sort_by_key(|r| r.line);
    report.meter();
    report
}

/// Each non-blank line of a pushed body, numbered from 1, as a message (and whether it
/// was stamped on arrival, naming no time) or why not.
fn pushed_lines(body: &[u8]) -> impl Iterator<Item = (usize, Result<(Message, bool), String>)> {
    let now = Utc::now();
    // The whole body is at hand: any line fits, and the last needs no newline.
    let mut decoder = NdjsonDecoder::<Pushed>::new(body.len());
    let mut buf = BytesMut::with_capacity(body.len() + 1);
    buf.extend_from_slice(body);
    if !body.ends_with(b"\n") {
        buf.extend_from_slice(b"\n");
    }
    std::iter::from_fn(move || {
        let outcome = match decoder.decode(&mut buf) {
            Ok(None) => return None,
            Ok(Some(pushed)) => pushed.into_message(now),
            Err(NdjsonError::Invalid { source, .. }) => Err(format!("not a log message: {source}")),
            Err(e) => Err(e.to_string()),
        };
        Some((decoder.lines_read(), outcome))
    })
}

impl Pushed {
    fn into_message(self, now: DateTime<Utc>) -> Result<(Message, bool), String> {
        if self.name.is_empty() {
            return Err("invalid name: the function name is required".into());
        }
        let check = |param, value: String| {
            if value.is_empty() {
                return Ok(value);
            }
            valid_name(param, value.into(), "").map_err(|e| e.to_string())
        };
        let stamped = self.timestamp.is_none();
        let timestamp = match self.timestamp {
            None => now,
            Some(t) => DateTime::parse_from_rfc3339(&t)
                .map_err(|e| format!("invalid timestamp {t:?}: {e}"))?
                .with_timezone(&Utc),
        };
        let mut text = self.text;
        trim_line_end(&mut text);
        let mut message = Message::new(check("name", self.name)?, timestamp, text)
            .with_namespace(check("namespace", self.namespace)?)
            .with_instance(check("instance", self.instance)?);
        message.stream = self.stream;
        message.details =
            crate::Details::read(self.severity, self.trace_id, self.span_id, self.attributes);
        Ok((message, stamped))
    }
}
