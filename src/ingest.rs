//! Two ways into a [`LogStore`]: a process's output captured line by line, and pushed
//! NDJSON of [`Message`].

use std::fmt::Write;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::message::trim_line_end;
use crate::request::valid_name;
use crate::{LogStore, Message};

/// The default longest line kept whole by [`capture_lines`]: 64 KiB.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// Splits a byte stream into lines of at most `max_line` bytes.
///
/// A line longer than that is kept up to the limit (cut at a character boundary) and ends
/// with the marker ` [faas-logs: line cut at N bytes]`; the rest of it, up to its newline,
/// is dropped. A trailing `\r` is removed; invalid UTF-8 becomes U+FFFD.
#[derive(Debug)]
pub struct LineSplitter {
    max_line: usize,
    line: Vec<u8>,
    /// Dropping the rest of an over-long line, until its newline.
    cutting: bool,
}

impl LineSplitter {
    /// A splitter that keeps lines of up to `max_line` bytes (at least 1).
    pub fn new(max_line: usize) -> Self {
        LineSplitter {
            max_line: max_line.max(1),
            line: Vec::new(),
            cutting: false,
        }
    }

    /// Feeds bytes; calls `emit` with each complete line.
    pub fn push(&mut self, mut bytes: &[u8], emit: &mut impl FnMut(String)) {
        while !bytes.is_empty() {
            let newline = bytes.iter().position(|&b| b == b'\n');
            let (piece, rest) = match newline {
                Some(i) => (&bytes[..i], &bytes[i + 1..]),
                None => (bytes, &[][..]),
            };
            if !self.cutting {
                let room = self.max_line - self.line.len();
                if piece.len() <= room {
                    self.line.extend_from_slice(piece);
                } else {
                    self.line.extend_from_slice(&piece[..room]);
                    let text = self.cut_text();
                    emit(text);
                    self.cutting = true;
                }
            }
            if newline.is_some() {
                if !self.cutting {
                    emit(self.take_text());
                }
                self.cutting = false;
            }
            bytes = rest;
        }
    }

    /// Emits what is left of an unfinished last line, if anything.
    pub fn finish(&mut self, emit: &mut impl FnMut(String)) {
        if !self.line.is_empty() && !self.cutting {
            emit(self.take_text());
        }
        self.cutting = false;
        self.line.clear();
    }

    fn take_text(&mut self) -> String {
        line_text(std::mem::take(&mut self.line), None)
    }

    fn cut_text(&mut self) -> String {
        // End at a character boundary rather than leave half a character behind.
        let end = match std::str::from_utf8(&self.line) {
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            _ => self.line.len(),
        };
        self.line.truncate(end);
        line_text(std::mem::take(&mut self.line), Some(self.max_line))
    }
}

/// A line's text from its bytes: valid UTF-8 (nearly every line) without a copy, invalid
/// sequences replaced by U+FFFD, its line ending removed, and, for a line cut at `cut_at`
/// bytes, the visible marker ` [faas-logs: line cut at N bytes]`.
pub(crate) fn line_text(bytes: Vec<u8>, cut_at: Option<usize>) -> String {
    let mut text = String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    match cut_at {
        Some(limit) => {
            let _ = write!(text, " [faas-logs: line cut at {limit} bytes]");
        }
        None => trim_line_end(&mut text),
    }
    text
}

/// Reads `reader` (a process's stdout or stderr, say) to its end and appends each line to
/// `store` as a message of the given function and instance, stamped when the line is
/// complete. Lines are split as [`LineSplitter`] describes.
///
/// Returns the number of lines appended; a read error ends the capture and is returned.
pub async fn capture_lines<R: AsyncRead + Unpin>(
    mut reader: R,
    store: &LogStore,
    namespace: &str,
    name: &str,
    instance: &str,
    max_line: usize,
) -> std::io::Result<u64> {
    let mut splitter = LineSplitter::new(max_line);
    let mut buf = vec![0u8; 16 * 1024];
    let mut appended = 0u64;
    let mut append = |text: String| {
        let message = Message {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            instance: instance.to_owned(),
            timestamp: Utc::now(),
            text,
            stream: None,
        };
        match store.append(message) {
            Ok(()) => appended += 1,
            Err(e) => tracing::warn!(error = %e, function = name, "captured line refused"),
        }
    };
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        splitter.push(&buf[..n], &mut append);
    }
    splitter.finish(&mut append);
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
}

impl LogStore {
    /// Stores pushed NDJSON: one JSON [`Message`] per line, blank lines skipped.
    ///
    /// `name` and `text` are required; `namespace` defaults to the store's; `instance` may
    /// be empty; `timestamp` (RFC 3339) defaults to now; a trailing `\n` or `\r\n` in
    /// `text` is removed. Each bad line is refused with its line number and reason (the
    /// first [`MAX_LISTED_REJECTIONS`] listed, the rest counted), and every good line is
    /// stored all the same.
    pub fn ingest_ndjson(&self, body: &[u8]) -> IngestReport {
        let mut report = IngestReport::default();
        let now = Utc::now();
        for (i, line) in body.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match self.ingest_line(line, now) {
                Ok(()) => report.accepted += 1,
                Err(_) if report.rejected.len() == MAX_LISTED_REJECTIONS => {
                    report.more_rejected += 1
                }
                Err(error) => report.rejected.push(RejectedLine { line: i + 1, error }),
            }
        }
        report
    }

    fn ingest_line(&self, line: &[u8], now: DateTime<Utc>) -> Result<(), String> {
        let pushed: Pushed =
            serde_json::from_slice(line).map_err(|e| format!("not a log message: {e}"))?;
        if pushed.name.is_empty() {
            return Err("invalid name: the function name is required".into());
        }
        let check = |param, value: String| {
            if value.is_empty() {
                return Ok(value);
            }
            valid_name(param, value.into()).map_err(|e| e.to_string())
        };
        let timestamp = match pushed.timestamp {
            None => now,
            Some(t) => DateTime::parse_from_rfc3339(&t)
                .map_err(|e| format!("invalid timestamp {t:?}: {e}"))?
                .with_timezone(&Utc),
        };
        let mut text = pushed.text;
        trim_line_end(&mut text);
        let message = Message {
            name: check("name", pushed.name)?,
            namespace: check("namespace", pushed.namespace)?,
            instance: check("instance", pushed.instance)?,
            timestamp,
            text,
            stream: None,
        };
        self.append(message).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<String> {
        let mut out = Vec::new();
        let mut splitter = LineSplitter::new(max);
        for chunk in chunks {
            splitter.push(chunk, &mut |l| out.push(l));
        }
        splitter.finish(&mut |l| out.push(l));
        out
    }

    #[test]
    fn lines_split_across_chunks_and_crlf() {
        assert_eq!(
            split(100, &[b"one\ntw", b"o\r\n", b"\nthree"]),
            ["one", "two", "", "three"]
        );
    }

    #[test]
    fn long_lines_are_cut_with_a_marker_and_the_rest_dropped() {
        let got = split(5, &[b"abcdefgh", b"ij\nok\n"]);
        assert_eq!(got, ["abcde [faas-logs: line cut at 5 bytes]", "ok"]);
        // Exactly the limit is whole.
        assert_eq!(split(5, &[b"abcde\n"]), ["abcde"]);
    }

    #[test]
    fn a_cut_never_splits_a_character_and_bad_utf8_is_replaced() {
        // "é" is two bytes; a cut after 2 bytes of "aé" would split it.
        assert_eq!(
            split(2, &["aé\n".as_bytes()]),
            ["a [faas-logs: line cut at 2 bytes]"]
        );
        assert_eq!(split(100, &[b"\xff\xfeok\n"]), ["\u{fffd}\u{fffd}ok"]);
    }
}
