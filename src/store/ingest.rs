//! Two ways into a [`LogStore`]: a process's output captured line by line, and pushed
//! NDJSON of [`Message`].

use bytes::BytesMut;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncRead;
use tokio_util::codec::{Decoder, FramedRead};

use super::LogStore;
use crate::codec::{trim_line_end, LineCodec, NdjsonDecoder, NdjsonError};
use crate::request::valid_name;
use crate::LogSink;
use crate::{Message, OutputStream, SharedStr};

/// Reads `reader` (a process's stdout or stderr, say) to its end and writes each line to
/// `sink` (a [`LogStore`], or any [`LogSink`]) as a message of the given function and instance, stamped when the line is
/// complete. Lines are cut as [`LineCodec`] describes, at `max_line` bytes
/// ([`DEFAULT_MAX_LINE`](crate::codec::DEFAULT_MAX_LINE) is a good default).
///
/// Returns the number of lines written; a read error ends the capture and is returned.
pub async fn capture_lines<R: AsyncRead + Unpin, S: LogSink + ?Sized>(
    reader: R,
    sink: &S,
    namespace: &str,
    name: &str,
    instance: &str,
    max_line: usize,
) -> std::io::Result<u64> {
    let mut lines = FramedRead::with_capacity(reader, LineCodec::new(max_line), 16 * 1024);
    let mut appended = 0u64;
    // Every line shares these three rather than allocating its own.
    let (name, namespace, instance): (SharedStr, SharedStr, SharedStr) =
        (name.into(), namespace.into(), instance.into());
    while let Some(text) = lines.next().await {
        let message = Message::new(name.clone(), Utc::now(), text?)
            .with_namespace(namespace.clone())
            .with_instance(instance.clone());
        match sink.write(message).await {
            Ok(()) => appended += 1,
            Err(e) => tracing::warn!(error = %e, function = %name, "captured line refused"),
        }
    }
    if let Err(e) = sink.flush().await {
        tracing::warn!(error = %e, function = %name, "captured lines were not all stored");
    }
    Ok(appended)
}

/// The most refused lines an [`IngestReport`] lists; the rest are only counted.
pub const MAX_LISTED_REJECTIONS: usize = 100;

/// The outcome of [`LogStore::ingest_ndjson`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestReport {
    /// Lines stored.
    pub accepted: usize,
    /// The first [`MAX_LISTED_REJECTIONS`] lines refused, each with why.
    pub rejected: Vec<RejectedLine>,
    /// How many more lines were refused than `rejected` lists.
    pub more_rejected: usize,
}

/// A pushed line that was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedLine {
    /// Its line number in the body, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub error: String,
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
}

impl LogStore {
    /// Stores pushed NDJSON: one JSON [`Message`] per line, blank lines skipped.
    ///
    /// `name` and `text` are required; `namespace` defaults to the store's; `instance` may
    /// be empty; `timestamp` (RFC 3339) defaults to now; `stream` (`stdout` or `stderr`)
    /// is optional; a trailing `\n` or `\r\n` in
    /// `text` is removed. Each bad line is refused with its line number and reason (the
    /// first [`MAX_LISTED_REJECTIONS`] listed, the rest counted), and every good line is
    /// stored all the same. [`ingest_ndjson`] does the same into any [`LogSink`].
    #[must_use]
    pub fn ingest_ndjson(&self, body: &[u8]) -> IngestReport {
        let mut report = IngestReport::default();
        for (line, pushed) in pushed_lines(body) {
            let stored = pushed.and_then(|m| self.append(m).map_err(|e| e.to_string()));
            report.count(line, stored);
        }
        report
    }
}

/// [`LogStore::ingest_ndjson`] into any sink: each good line written, then the sink
/// flushed, so that the report counts what is stored. A flush that fails is one more
/// refusal, numbered line 0, with the sink's reason.
pub async fn ingest_ndjson<S: LogSink + ?Sized>(sink: &S, body: &[u8]) -> IngestReport {
    let mut report = IngestReport::default();
    for (line, pushed) in pushed_lines(body) {
        let stored = match pushed {
            Ok(message) => sink.write(message).await.map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        report.count(line, stored);
    }
    if let Err(e) = sink.flush().await {
        report.count(0, Err(e.to_string()));
    }
    report
}

impl IngestReport {
    fn count(&mut self, line: usize, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => self.accepted += 1,
            Err(_) if self.rejected.len() == MAX_LISTED_REJECTIONS => self.more_rejected += 1,
            Err(error) => self.rejected.push(RejectedLine { line, error }),
        }
    }
}

/// Each non-blank line of a pushed body, numbered from 1, as a message or why not.
fn pushed_lines(body: &[u8]) -> impl Iterator<Item = (usize, Result<Message, String>)> {
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
    fn into_message(self, now: DateTime<Utc>) -> Result<Message, String> {
        if self.name.is_empty() {
            return Err("invalid name: the function name is required".into());
        }
        let check = |param, value: String| {
            if value.is_empty() {
                return Ok(value);
            }
            valid_name(param, value.into(), "").map_err(|e| e.to_string())
        };
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
        Ok(message)
    }
}
