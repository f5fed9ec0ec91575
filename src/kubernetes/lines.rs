//! One container's log as the API server sends it with `timestamps=true`: a line per
//! entry, each starting with its RFC 3339 time and a space.

use chrono::{DateTime, Utc};
use futures_util::io::{AsyncBufRead, AsyncBufReadExt};

/// The longest line kept whole; the rest of a longer one is dropped (a container that
/// never writes a newline must not grow a reader's memory without end).
pub(super) const MAX_LINE: usize = 1 << 20;

/// A line of a container's log: when the container wrote it, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogLine {
    /// The time the line starts with.
    pub timestamp: DateTime<Utc>,
    /// The rest of the line, without its newline; bytes that are not UTF-8 replaced.
    pub text: String,
}

/// Reads the lines of a pod log body asked for with `timestamps=true` (each line an RFC
/// 3339 time, a space and the text), keeping at most 1 MiB of each line. A line without
/// a time keeps the last line's time.
#[derive(Debug)]
pub struct LogReader<R> {
    body: R,
    line: Vec<u8>,
    /// The time of the last line read, for a line without one.
    last: Option<DateTime<Utc>>,
}

impl<R: AsyncBufRead + Unpin> LogReader<R> {
    /// Reads `body`.
    pub fn new(body: R) -> Self {
        LogReader {
            body,
            line: Vec::new(),
            last: None,
        }
    }

    /// The next line, `None` at the end of the body. A last line without its newline
    /// is a line too (a body cut by `limitBytes`, or a container's partial last write).
    ///
    /// # Errors
    ///
    /// The body's read error.
    pub async fn next(&mut self) -> std::io::Result<Option<LogLine>> {
        self.line.clear();
        let mut ended = false;
        loop {
            let chunk = self.body.fill_buf().await?;
            if chunk.is_empty() {
                ended = true;
                break;
            }
            let (taken, newline) = match memchr::memchr(b'\n', chunk) {
                Some(at) => (at + 1, true),
                None => (chunk.len(), false),
            };
            let room = MAX_LINE.saturating_sub(self.line.len());
            let content = if newline { taken - 1 } else { taken };
            self.line.extend_from_slice(&chunk[..content.min(room)]);
            self.body.consume_unpin(taken);
            if newline {
                break;
            }
        }
        if ended && self.line.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.parse()))
    }

    fn parse(&mut self) -> LogLine {
        let raw = String::from_utf8_lossy(&self.line);
        let stamped = raw.split_once(' ').and_then(|(time, text)| {
            let timestamp = DateTime::parse_from_rfc3339(time).ok()?;
            Some((timestamp.with_timezone(&Utc), text))
        });
        let line = match stamped {
            Some((timestamp, text)) => LogLine {
                timestamp,
                text: text.trim_end_matches('\r').to_owned(),
            },
            // Not what `timestamps=true` writes: kept whole, at the last line's time.
            None => LogLine {
                timestamp: self.last.unwrap_or_else(Utc::now),
                text: raw.trim_end_matches('\r').to_owned(),
            },
        };
        self.last = Some(line.timestamp);
        line
    }
}

/// Where a container's log was left, so that a stream opened again (live lines after
/// history, or after a restart) starts exactly after it.
///
/// A log opened again from the second of the last line read repeats the lines of that
/// second up to it. They are skipped up to the line equal to the last one read; a newer
/// line seen first means the last one is not there (a restarted container's new log)
/// and nothing is skipped from it on. Skipping to the line itself, not by time, keeps
/// the lines a runtime stamped slightly out of order after it.
#[derive(Debug, Clone, Default)]
pub(super) struct Resume {
    after: Option<LogLine>,
}

impl Resume {
    /// Remembers `line` as the last one delivered.
    pub(super) fn delivered(&mut self, line: &LogLine) {
        self.after = Some(line.clone());
    }

    /// The whole second of the last line delivered: where to open the log again.
    pub(super) fn since(&self) -> Option<DateTime<Utc>> {
        let last = self.after.as_ref()?;
        DateTime::from_timestamp(last.timestamp.timestamp(), 0)
    }

    /// Starts skipping: lines of a log opened again from [`Resume::since`].
    pub(super) fn reopened(&self) -> Skip {
        Skip {
            until: self.after.clone(),
            missed: false,
        }
    }
}

/// The skipping of one reopened log; see [`Resume`].
pub(super) struct Skip {
    until: Option<LogLine>,
    missed: bool,
}

impl Skip {
    /// Whether `line` is new.
    pub(super) fn keep(&mut self, line: &LogLine) -> bool {
        let Some(until) = &self.until else {
            return true;
        };
        if line.timestamp > until.timestamp {
            self.until = None;
            self.missed = true;
            return true;
        }
        if line == until {
            self.until = None;
        }
        false
    }

    /// Once: whether the line just kept came first without the last line delivered
    /// being found before it: the log was another run's (the container restarted in
    /// between), and the rest of the run delivered from is in its previous log.
    pub(super) fn missed_last(&mut self) -> bool {
        std::mem::take(&mut self.missed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(body: &[u8]) -> Vec<LogLine> {
        let mut reader = LogReader::new(body);
        futures_util::FutureExt::now_or_never(async {
            let mut out = Vec::new();
            while let Some(line) = reader.next().await.unwrap() {
                out.push(line);
            }
            out
        })
        .unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn reads_stamped_lines_and_a_partial_last_one() {
        let got = lines(b"2024-05-01T10:00:00.123456789Z hello world\n2024-05-01T10:00:01Z \n2024-05-01T10:00:02.5Z last");
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].timestamp, at("2024-05-01T10:00:00.123456789Z"));
        assert_eq!(got[0].text, "hello world");
        assert_eq!(got[1].text, "");
        assert_eq!(got[2].timestamp, at("2024-05-01T10:00:02.5Z"));
        assert_eq!(got[2].text, "last");
    }

    #[test]
    fn a_line_without_time_keeps_the_last_time_and_bad_bytes_are_replaced() {
        let got = lines(b"2024-05-01T10:00:00Z a\nno time here\n2024-05-01T10:00:01Z \xff\n");
        assert_eq!(got[1].timestamp, at("2024-05-01T10:00:00Z"));
        assert_eq!(got[1].text, "no time here");
        assert_eq!(got[2].text, "\u{fffd}");
    }

    #[test]
    fn a_long_line_is_cut_and_the_next_one_is_whole() {
        let mut body = b"2024-05-01T10:00:00Z ".to_vec();
        body.extend(std::iter::repeat_n(b'x', MAX_LINE * 2));
        body.extend_from_slice(b"\n2024-05-01T10:00:01Z next\n");
        let got = lines(&body);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].text.len(), MAX_LINE - "2024-05-01T10:00:00Z ".len());
        assert_eq!(got[1].text, "next");
    }

    #[test]
    fn a_reopened_log_skips_to_the_last_line_delivered() {
        let l = |t: &str, s: &str| LogLine {
            timestamp: at(t),
            text: s.into(),
        };
        let mut resume = Resume::default();
        resume.delivered(&l("2024-05-01T10:00:05.5Z", "b"));
        assert_eq!(resume.since(), Some(at("2024-05-01T10:00:05Z")));
        let mut skip = resume.reopened();
        assert!(!skip.keep(&l("2024-05-01T10:00:05.1Z", "a")));
        assert!(!skip.keep(&l("2024-05-01T10:00:05.5Z", "b")));
        // Stamped before the last line but written after it: new.
        assert!(skip.keep(&l("2024-05-01T10:00:05.4Z", "c")));
        assert!(!skip.missed_last());
        // A restarted container's log: newer than the last line, which is not there.
        let mut skip = resume.reopened();
        assert!(skip.keep(&l("2024-05-01T10:00:06Z", "new")));
        assert!(skip.missed_last());
        assert!(!skip.missed_last());
        assert!(Resume::default()
            .reopened()
            .keep(&l("2024-05-01T10:00:00Z", "x")));
    }
}
