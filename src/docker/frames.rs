//! Docker's log streams as lines: [`tokio_util::codec`] decoders for the multiplexed
//! framing of non-TTY containers ([`Multiplexed`]) and the raw stream of TTY containers
//! ([`Raw`]), both read with `timestamps=1`, joining the 16 KiB pieces that the json-file
//! and local drivers split long lines into.
//!
//! The backend reads container logs with them; they are public for providers that read
//! `GET /containers/{id}/logs` themselves.
//!
//! ```
//! use bytes::BytesMut;
//! use faas_logs::docker::frames::Multiplexed;
//! use faas_logs::OutputStream;
//! use tokio_util::codec::Decoder;
//!
//! // One stderr frame: type 2, three zero bytes, the payload's length big-endian.
//! let payload = b"2024-03-01T12:00:00.123456789Z disk full\n";
//! let mut buf = BytesMut::from(&[2, 0, 0, 0, 0, 0, 0, payload.len() as u8][..]);
//! buf.extend_from_slice(payload);
//! let line = Multiplexed::new().decode(&mut buf).unwrap().unwrap();
//! assert_eq!((line.stream, line.text.as_str()), (OutputStream::Stderr, "disk full"));
//! ```

use std::collections::VecDeque;

use bytes::{Buf, BytesMut};
use chrono::{DateTime, Utc};
use tokio_util::codec::Decoder;

use crate::codec::line_text;
use crate::OutputStream;

/// The size of the pieces Docker's log drivers cut a long line into.
const PIECE: usize = 16 * 1024;

/// The longest line kept whole after joining pieces; the rest is dropped with the marker
/// ` [faas-logs: line cut at N bytes]`.
pub const MAX_JOINED: usize = 1 << 20;

/// A frame larger than this is taken for a corrupt stream rather than allocated.
const MAX_FRAME: usize = 16 << 20;

/// One complete log line of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Line {
    /// The daemon's timestamp of the line (of its first piece, for a joined line); now,
    /// for an entry that has none.
    pub timestamp: DateTime<Utc>,
    /// The output it was written to; always stdout for a TTY.
    pub stream: OutputStream,
    /// The text: line ending removed, invalid UTF-8 replaced by U+FFFD.
    pub text: String,
}

/// Why a Docker log stream was refused. Lines decoded before it are good.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Bytes that are not Docker's framing: the stream is corrupt.
    #[error("malformed Docker log stream: {0}")]
    Malformed(String),
    /// The daemon wrote an error into the stream (its type-3 frame).
    #[error("the Docker daemon reported an error in the log stream: {0}")]
    Daemon(String),
    /// Reading the stream failed.
    #[error("reading the Docker log stream failed")]
    Io(#[from] std::io::Error),
}

/// Splits `TIMESTAMP SP rest`; `None` when the prefix is not an RFC 3339 time.
fn split_timestamp(bytes: &[u8]) -> Option<(DateTime<Utc>, &[u8])> {
    let space = bytes.iter().take(40).position(|&b| b == b' ')?;
    let stamp = &bytes[..space];
    let ts = match docker_timestamp(stamp) {
        Some(ts) => ts,
        None => {
            let text = std::str::from_utf8(stamp).ok()?;
            DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc)
        }
    };
    Some((ts, &bytes[space + 1..]))
}

/// The daemon's own form, `2006-01-02T15:04:05.000000000Z` (always nine digits, always
/// UTC), read directly: it comes once per line. Anything else is left to chrono.
fn docker_timestamp(s: &[u8]) -> Option<DateTime<Utc>> {
    if s.len() != 30
        || s[4] != b'-'
        || s[7] != b'-'
        || s[10] != b'T'
        || s[13] != b':'
        || s[16] != b':'
        || s[19] != b'.'
        || s[29] != b'Z'
    {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        s[range].iter().try_fold(0u32, |n, &b| {
            b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
        })
    };
    let date =
        chrono::NaiveDate::from_ymd_opt(number(0..4)? as i32, number(5..7)?, number(8..10)?)?;
    let time = chrono::NaiveTime::from_hms_nano_opt(
        number(11..13)?,
        number(14..16)?,
        number(17..19)?,
        number(20..29)?,
    )?;
    Some(date.and_time(time).and_utc())
}

/// A line being put together from pieces.
struct Partial {
    timestamp: DateTime<Utc>,
    bytes: Vec<u8>,
    cut: bool,
}

impl Partial {
    fn new(timestamp: DateTime<Utc>) -> Self {
        Partial {
            timestamp,
            bytes: Vec::new(),
            cut: false,
        }
    }

    fn extend(&mut self, more: &[u8]) {
        let room = MAX_JOINED.saturating_sub(self.bytes.len());
        if more.len() > room {
            self.cut = true;
        }
        self.bytes.extend_from_slice(&more[..more.len().min(room)]);
    }

    fn into_line(self, stream: OutputStream) -> Line {
        let text = line_text(self.bytes, self.cut.then_some(MAX_JOINED));
        Line {
            timestamp: self.timestamp,
            stream,
            text,
        }
    }
}

/// Lines of one output of a multiplexed stream, one frame (one log entry) at a time.
struct FramedLines {
    stream: OutputStream,
    partial: Option<Partial>,
}

impl FramedLines {
    fn frame(&mut self, payload: &[u8], out: &mut VecDeque<Line>) {
        let (timestamp, content) = match split_timestamp(payload) {
            Some(split) => split,
            None => {
                tracing::debug!("a Docker log entry without a timestamp");
                let ts = self.partial.as_ref().map_or_else(Utc::now, |p| p.timestamp);
                (ts, payload)
            }
        };
        let mut segments = content.split(|&b| b == b'\n').peekable();
        while let Some(segment) = segments.next() {
            let last = segments.peek().is_none();
            if last && segment.is_empty() {
                break; // the entry ended with its newline
            }
            let partial = self.partial.get_or_insert_with(|| Partial::new(timestamp));
            partial.extend(segment);
            if !last {
                if let Some(done) = self.partial.take() {
                    out.push_back(done.into_line(self.stream));
                }
            }
        }
    }

    fn finish(&mut self, out: &mut VecDeque<Line>) {
        if let Some(partial) = self.partial.take() {
            out.push_back(partial.into_line(self.stream));
        }
    }
}

/// A [`Decoder`] of a non-TTY container's multiplexed stream: 8-byte headers (type, three
/// zero bytes, big-endian length) and payloads. It never splits on newlines (a length
/// byte can be one); a daemon error frame or a malformed header is a [`FrameError`], and
/// so is a stream that ends inside a frame.
pub struct Multiplexed {
    stdout: FramedLines,
    stderr: FramedLines,
    /// Lines decoded and not yet returned (a payload can hold several).
    ready: VecDeque<Line>,
    /// Set once the end of the stream flushed the unfinished lines.
    finished: bool,
}

impl std::fmt::Debug for Multiplexed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Multiplexed").finish_non_exhaustive()
    }
}

impl Default for Multiplexed {
    fn default() -> Self {
        Multiplexed::new()
    }
}

impl Multiplexed {
    /// A decoder at the start of a stream.
    #[must_use]
    pub fn new() -> Self {
        let output = |stream| FramedLines {
            stream,
            partial: None,
        };
        Multiplexed {
            stdout: output(OutputStream::Stdout),
            stderr: output(OutputStream::Stderr),
            ready: VecDeque::new(),
            finished: false,
        }
    }

    /// Takes one frame off `buf`, if a whole one is there; returns whether it did.
    fn frame(&mut self, buf: &mut BytesMut) -> Result<bool, FrameError> {
        if buf.len() < 8 {
            return Ok(false);
        }
        let header = &buf[..8];
        if header[1..4] != [0, 0, 0] {
            return Err(FrameError::Malformed(
                "a frame header's padding is not zero".into(),
            ));
        }
        let kind = header[0];
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if len > MAX_FRAME {
            return Err(FrameError::Malformed(format!("a frame of {len} bytes")));
        }
        if buf.len() < 8 + len {
            buf.reserve(8 + len - buf.len());
            return Ok(false);
        }
        buf.advance(8);
        let payload = buf.split_to(len);
        match kind {
            0 | 1 => self.stdout.frame(&payload, &mut self.ready),
            2 => self.stderr.frame(&payload, &mut self.ready),
            3 => {
                let text = String::from_utf8_lossy(&payload);
                return Err(FrameError::Daemon(text.trim_end().to_owned()));
            }
            other => {
                return Err(FrameError::Malformed(format!(
                    "unknown stream type {other}"
                )))
            }
        }
        Ok(true)
    }
}

impl Decoder for Multiplexed {
    type Item = Line;
    type Error = FrameError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, FrameError> {
        loop {
            if let Some(line) = self.ready.pop_front() {
                return Ok(Some(line));
            }
            if !self.frame(buf)? {
                return Ok(None);
            }
        }
    }

    /// What is left of a line is a line; half a frame is an error, after those lines.
    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, FrameError> {
        if let Some(line) = self.decode(buf)? {
            return Ok(Some(line));
        }
        if !std::mem::replace(&mut self.finished, true) {
            self.stdout.finish(&mut self.ready);
            self.stderr.finish(&mut self.ready);
        }
        if let Some(line) = self.ready.pop_front() {
            return Ok(Some(line));
        }
        if buf.is_empty() {
            return Ok(None);
        }
        let left = buf.len();
        buf.clear();
        Err(FrameError::Malformed(format!(
            "the stream ended inside a frame ({left} bytes left)"
        )))
    }
}

/// A [`Decoder`] of a TTY container's raw stream: `TIMESTAMP SP text\r\n` entries back
/// to back. A line longer than 16 KiB arrives as pieces of exactly 16 KiB, each behind
/// its own timestamp; those timestamps are recognised only at those exact offsets. Any
/// bytes are lines: it never fails.
pub struct Raw {
    partial: Option<Partial>,
    /// Bytes of the current piece; `None` once a piece boundary turned out not to be one.
    piece: Option<usize>,
}

impl std::fmt::Debug for Raw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Raw").finish_non_exhaustive()
    }
}

impl Default for Raw {
    fn default() -> Self {
        Raw::new()
    }
}

impl Raw {
    /// A decoder at the start of a stream.
    #[must_use]
    pub fn new() -> Self {
        Raw {
            partial: None,
            piece: Some(0),
        }
    }
}

impl Decoder for Raw {
    type Item = Line;
    type Error = FrameError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, FrameError> {
        loop {
            let Some(partial) = self.partial.as_mut() else {
                // At the start of an entry: its timestamp first.
                let Some(space) = buf.iter().take(40).position(|&b| b == b' ') else {
                    if buf.len() < 40 {
                        return Ok(None); // wait for the rest of the timestamp
                    }
                    self.partial = Some(Partial::new(Utc::now()));
                    continue;
                };
                let ts = split_timestamp(buf).map(|(ts, _)| ts);
                if ts.is_some() {
                    buf.advance(space + 1);
                }
                self.partial = Some(Partial::new(ts.unwrap_or_else(Utc::now)));
                self.piece = Some(0);
                continue;
            };
            let room = match self.piece {
                Some(n) if n < PIECE => PIECE - n,
                Some(_) => {
                    // At a piece boundary: another timestamp here means the line goes on.
                    match buf.iter().take(40).position(|&b| b == b' ') {
                        None if buf.len() < 40 => return Ok(None),
                        Some(space) if split_timestamp(buf).is_some() => {
                            buf.advance(space + 1);
                            self.piece = Some(0);
                        }
                        _ => self.piece = None,
                    }
                    continue;
                }
                None => usize::MAX,
            };
            let window = &buf[..buf.len().min(room)];
            if let Some(i) = window.iter().position(|&b| b == b'\n') {
                partial.extend(&buf[..i]);
                buf.advance(i + 1);
                if let Some(done) = self.partial.take() {
                    return Ok(Some(done.into_line(OutputStream::Stdout)));
                }
                continue;
            }
            let n = window.len();
            if n == 0 {
                return Ok(None);
            }
            partial.extend(&buf[..n]);
            buf.advance(n);
            if let Some(piece) = self.piece.as_mut() {
                *piece += n;
            }
        }
    }

    /// What is left is the last line.
    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, FrameError> {
        if let Some(line) = self.decode(buf)? {
            return Ok(Some(line));
        }
        if !buf.is_empty() {
            let rest = buf.split();
            let partial = self.partial.get_or_insert_with(|| Partial::new(Utc::now()));
            partial.extend(&rest);
        }
        Ok(self
            .partial
            .take()
            .map(|partial| partial.into_line(OutputStream::Stdout)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds a decoder as a reader would: bytes in, lines out.
    struct Feed<D> {
        decoder: D,
        buf: BytesMut,
    }

    impl<D: Decoder<Item = Line, Error = FrameError>> Feed<D> {
        fn push(&mut self, bytes: &[u8], out: &mut Vec<Line>) -> Result<(), FrameError> {
            self.buf.extend_from_slice(bytes);
            while let Some(line) = self.decoder.decode(&mut self.buf)? {
                out.push(line);
            }
            Ok(())
        }

        fn finish(&mut self, out: &mut Vec<Line>) -> Result<(), FrameError> {
            while let Some(line) = self.decoder.decode_eof(&mut self.buf)? {
                out.push(line);
            }
            Ok(())
        }
    }

    fn feed<D>(decoder: D) -> Feed<D> {
        Feed {
            decoder,
            buf: BytesMut::new(),
        }
    }

    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![kind, 0, 0, 0];
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    const TS: &str = "2024-03-01T12:00:00.123456789Z";

    fn texts(lines: &[Line]) -> Vec<&str> {
        lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn frames_are_parsed_by_length_even_when_a_length_byte_is_a_newline() {
        let mut stream = frame(1, format!("{TS} abcdefghi\n").as_bytes());
        // 266 = 0x010a bytes: the length's last byte is b'\n'.
        let newline_byte = frame(
            2,
            format!("{TS} {}\n", "e".repeat(266 - TS.len() - 2)).as_bytes(),
        );
        assert_eq!(newline_byte[7], b'\n');
        stream.extend_from_slice(&newline_byte);
        let long = format!("{TS} {}\n", "y".repeat(0x0a0a - TS.len() - 2));
        let newline_len = frame(1, long.as_bytes());
        assert_eq!(&newline_len[6..8], b"\n\n");
        stream.extend_from_slice(&newline_len);
        // Fed one byte at a time, so that every boundary is crossed.
        let mut demux = feed(Multiplexed::new());
        let mut out = Vec::new();
        for b in &stream {
            demux.push(std::slice::from_ref(b), &mut out).unwrap();
        }
        demux.finish(&mut out).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].text, "abcdefghi");
        assert_eq!(out[1].stream, OutputStream::Stderr);
        assert_eq!(out[1].text.len(), 266 - TS.len() - 2);
        assert_eq!(out[2].text.len(), 0x0a0a - TS.len() - 2);
        assert_eq!(out[0].timestamp.timestamp_subsec_nanos(), 123_456_789);
    }

    #[test]
    fn the_daemons_timestamps_read_fast_agree_with_chrono() {
        for text in [
            TS,
            "1999-12-31T23:59:59.000000000Z",
            "2024-02-29T00:00:00.999999999Z",
        ] {
            let fast = docker_timestamp(text.as_bytes()).unwrap();
            assert_eq!(fast, DateTime::parse_from_rfc3339(text).unwrap());
        }
        // Not the daemon's exact form: left to chrono (offsets, short fractions) or refused.
        for text in [
            "2024-03-01T12:00:00.5Z",
            "2024-03-01T14:00:00.000000000+02:00",
            "2024-02-30T00:00:00.000000000Z",
            "2024-03-01T12:00:00.00000000xZ",
        ] {
            assert!(docker_timestamp(text.as_bytes()).is_none(), "{text}");
        }
        let (ts, rest) = split_timestamp(b"2024-03-01T14:00:00.5+02:00 hi").unwrap();
        assert_eq!(
            (ts.to_rfc3339(), rest),
            ("2024-03-01T12:00:00.500+00:00".to_owned(), &b"hi"[..])
        );
    }

    #[test]
    fn pieces_of_a_long_line_are_joined_under_the_first_timestamp() {
        let later = "2024-03-01T12:00:01Z";
        let mut stream = frame(1, format!("{TS} {}", "a".repeat(PIECE)).as_bytes());
        stream.extend(frame(2, format!("{TS} interleaved\n").as_bytes()));
        stream.extend(frame(
            1,
            format!("{later} {}", "b".repeat(PIECE)).as_bytes(),
        ));
        stream.extend(frame(1, format!("{later} tail\r\n").as_bytes()));
        let mut demux = feed(Multiplexed::new());
        let mut out = Vec::new();
        demux.push(&stream, &mut out).unwrap();
        demux.finish(&mut out).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].text, "interleaved");
        let joined = &out[1];
        assert_eq!(joined.text.len(), 2 * PIECE + 4);
        assert!(joined.text.ends_with("bbtail"));
        assert_eq!(joined.timestamp, DateTime::parse_from_rfc3339(TS).unwrap());
    }

    #[test]
    fn an_error_frame_is_an_error_never_text() {
        let mut stream = frame(1, format!("{TS} fine\n").as_bytes());
        stream.extend(frame(3, b"log driver failed\n"));
        let mut out = Vec::new();
        let e = feed(Multiplexed::new())
            .push(&stream, &mut out)
            .unwrap_err();
        assert_eq!(texts(&out), ["fine"]);
        assert!(e.to_string().ends_with("log driver failed"), "{e}");
    }

    #[test]
    fn malformed_streams_are_errors_not_panics() {
        let mut out = Vec::new();
        assert!(feed(Multiplexed::new())
            .push(&[1, 9, 0, 0, 0, 0, 0, 1, b'x'], &mut out)
            .is_err());
        assert!(feed(Multiplexed::new())
            .push(&[7, 0, 0, 0, 0, 0, 0, 1, b'x'], &mut out)
            .is_err());
        assert!(feed(Multiplexed::new())
            .push(&[1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff], &mut out)
            .is_err());
        let mut demux = feed(Multiplexed::new());
        demux
            .push(&[1, 0, 0, 0, 0, 0, 0, 9, b'x'], &mut out)
            .unwrap();
        assert!(demux.finish(&mut out).is_err());
        // Any bytes at all: no panic.
        let mut seed = 7u32;
        for _ in 0..2_000 {
            let junk: Vec<u8> = (0..64)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (seed >> 16) as u8 % 4
                })
                .collect();
            let _ = feed(Multiplexed::new()).push(&junk, &mut out);
            let mut raw = feed(Raw::new());
            raw.push(&junk, &mut out).unwrap();
            raw.finish(&mut out).unwrap();
        }
    }

    #[test]
    fn tty_entries_split_on_newlines_and_pieces_rejoin_at_exact_offsets() {
        let piece = "c".repeat(PIECE);
        let stream = format!(
            "{TS} one\r\n{TS} {piece}{TS} {piece}{TS} end\r\n{TS} has {TS} inside\r\n{TS} last"
        );
        for chunk in [1, 7, 4096, stream.len()] {
            let mut raw = feed(Raw::new());
            let mut out = Vec::new();
            for part in stream.as_bytes().chunks(chunk) {
                raw.push(part, &mut out).unwrap();
            }
            raw.finish(&mut out).unwrap();
            assert_eq!(out.len(), 4, "chunk {chunk}");
            assert_eq!(out[0].text, "one");
            assert_eq!(out[1].text, format!("{piece}{piece}end"));
            assert_eq!(out[2].text, format!("has {TS} inside"));
            assert_eq!(out[3].text, "last");
        }
    }

    #[test]
    fn joined_lines_are_bounded() {
        let mut demux = feed(Multiplexed::new());
        let mut out = Vec::new();
        for _ in 0..(MAX_JOINED / PIECE + 2) {
            demux
                .push(
                    &frame(1, format!("{TS} {}", "z".repeat(PIECE)).as_bytes()),
                    &mut out,
                )
                .unwrap();
        }
        demux
            .push(&frame(1, format!("{TS} end\n").as_bytes()), &mut out)
            .unwrap();
        assert_eq!(out.len(), 1);
        assert!(out[0]
            .text
            .ends_with(&format!(" [faas-logs: line cut at {MAX_JOINED} bytes]")));
    }
}
