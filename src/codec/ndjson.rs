//! NDJSON of [`Message`]: the encoder that writes Go's exact bytes, and a decoder that
//! reads what any OpenFaaS provider writes.

use std::marker::PhantomData;

use bytes::{BufMut, BytesMut};
use chrono::{DateTime, Datelike, Utc};
use serde::de::DeserializeOwned;
use tokio_util::codec::{Decoder, Encoder};

use super::timestamp::put_second_on;
use super::Rfc3339;
use crate::{Message, OutputStream, SharedStr};

/// An [`Encoder`] of [`Message`] as newline-delimited JSON, byte for byte as Go's
/// `json.NewEncoder(w).Encode(msg)` writes a `faas-provider/logs.Message`: the fields in
/// Go's order, the timestamp as [`Rfc3339`] writes it, and Go's escapes (`<`, `>` and
/// `&` as `\u003c`, `\u003e`, `\u0026`; U+2028 and U+2029; control characters), so a
/// client that compares bytes with a Go provider's sees no difference.
///
/// [`encode_message`] does the same into a buffer of your own.
///
/// ```
/// use bytes::BytesMut;
/// use chrono::{TimeZone, Utc};
/// use faas_logs::codec::NdjsonEncoder;
/// use faas_logs::Message;
/// use tokio_util::codec::Encoder;
///
/// let at = Utc.with_ymd_and_hms(2019, 11, 10, 23, 0, 0).unwrap();
/// let message = Message::new("hello", at, "<ready>")
///     .with_namespace("openfaas-fn")
///     .with_instance("hello-1");
/// let mut buf = BytesMut::new();
/// NdjsonEncoder.encode(&message, &mut buf).unwrap();
/// assert_eq!(
///     &buf[..],
///     br#"{"name":"hello","namespace":"openfaas-fn","instance":"hello-1","timestamp":"2019-11-10T23:00:00Z","text":"\u003cready\u003e"}
/// "#,
/// );
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NdjsonEncoder;

impl Encoder<&Message> for NdjsonEncoder {
    type Error = std::io::Error;

    fn encode(&mut self, message: &Message, buf: &mut BytesMut) -> Result<(), std::io::Error> {
        encode_message(message, buf);
        Ok(())
    }
}

impl Encoder<Message> for NdjsonEncoder {
    type Error = std::io::Error;

    fn encode(&mut self, message: Message, buf: &mut BytesMut) -> Result<(), std::io::Error> {
        encode_message(&message, buf);
        Ok(())
    }
}

/// Appends `message` to `buf` as one JSON line, byte for byte as Go's `json.Encoder`
/// writes a `logs.Message` (see [`Message`] for the fields, and [`NdjsonEncoder`] for the
/// escapes).
///
/// Written by hand rather than through serde: this is the hot path of every response, and
/// serde_json's generic struct writer costs about twice as much per short line.
pub fn encode_message(message: &Message, buf: &mut BytesMut) {
    let text_len =
        message.name.len() + message.namespace.len() + message.instance.len() + message.text.len();
    buf.reserve(text_len + 96);
    put_names(message, buf);
    buf.extend_from_slice(Rfc3339::new(&message.timestamp).as_str().as_bytes());
    put_text_and_end(message, buf);
}

/// A line up to its timestamp's text: `{"name":…,"namespace":…,"instance":…,"timestamp":"`.
// Inlined: `encode_message` is every response's hot path, and is kept one function.
#[inline(always)]
fn put_names(message: &Message, buf: &mut BytesMut) {
    buf.extend_from_slice(b"{\"name\":");
    put_json_str(buf, &message.name);
    buf.extend_from_slice(b",\"namespace\":");
    put_json_str(buf, &message.namespace);
    buf.extend_from_slice(b",\"instance\":");
    put_json_str(buf, &message.instance);
    buf.extend_from_slice(b",\"timestamp\":\"");
}

/// A line from the end of its timestamp: the text, the optional `stream` field and the
/// line's end.
#[inline(always)]
fn put_text_and_end(message: &Message, buf: &mut BytesMut) {
    buf.extend_from_slice(b"\",\"text\":");
    put_json_str(buf, &message.text);
    match message.stream {
        None => {}
        Some(OutputStream::Stdout) => buf.extend_from_slice(b",\"stream\":\"stdout\""),
        Some(OutputStream::Stderr) => buf.extend_from_slice(b",\"stream\":\"stderr\""),
    }
    if let Some(details) = &message.details {
        put_details(details, buf);
    }
    buf.extend_from_slice(b"}\n");
}

/// A structured record's extra keys, each only when set, in [`Message`]'s order.
#[cold]
fn put_details(details: &crate::Details, buf: &mut BytesMut) {
    let strings = [
        (&b",\"severity\":"[..], &details.severity),
        (b",\"trace_id\":", &details.trace_id),
        (b",\"span_id\":", &details.span_id),
    ];
    for (key, value) in strings {
        if let Some(value) = value {
            buf.extend_from_slice(key);
            put_json_str(buf, value);
        }
    }
    if !details.attributes.is_empty() {
        buf.extend_from_slice(b",\"attributes\":");
        let writer = bytes::BufMut::writer(&mut *buf);
        let mut serializer = serde_json::Serializer::with_formatter(writer, HtmlSafe);
        // Writing to memory cannot fail, and a JSON map always serializes.
        let _ = serde::Serialize::serialize(&details.attributes, &mut serializer);
    }
}

/// serde_json's compact JSON with Go's HTML-safe escapes (`<`, `>`, `&`, U+2028 and
/// U+2029 as `\u` escapes), so that a line's every string is escaped alike.
struct HtmlSafe;

impl serde_json::ser::Formatter for HtmlSafe {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut rest = fragment;
        while let Some(at) = rest.find(['<', '>', '&', '\u{2028}', '\u{2029}']) {
            writer.write_all(&rest.as_bytes()[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            write!(writer, "\\u{:04x}", u32::from(c))?;
            rest = &rest[at + c.len_utf8()..];
        }
        writer.write_all(rest.as_bytes())
    }
}

/// [`encode_message`] for the lines of one response: the same bytes, with what a run of
/// lines shares kept encoded between them. The name, namespace and instance of the last
/// line are kept as one encoded prefix, and the timestamp's date, hour and minute as
/// text; a dump of one function then escapes only each line's text.
#[derive(Default)]
pub(crate) struct LineEncoder {
    /// The last line's name, namespace and instance.
    names: Option<(SharedStr, SharedStr, SharedStr)>,
    /// `{"name":…,"namespace":…,"instance":…,"timestamp":"` for `names`.
    prefix: BytesMut,
    /// The minute since the epoch that `minute_text` writes.
    minute: Option<i64>,
    /// `YYYY-MM-DDTHH:MM:` of `minute`.
    minute_text: [u8; 17],
}

impl LineEncoder {
    /// Appends `message` to `buf`, exactly as [`encode_message`] would.
    pub(crate) fn encode(&mut self, message: &Message, buf: &mut BytesMut) {
        let same_names = self
            .names
            .as_ref()
            .is_some_and(|(name, namespace, instance)| {
                *name == message.name
                    && *namespace == message.namespace
                    && *instance == message.instance
            });
        if !same_names {
            self.prefix.clear();
            put_names(message, &mut self.prefix);
            self.names = Some((
                message.name.clone(),
                message.namespace.clone(),
                message.instance.clone(),
            ));
        }
        buf.reserve(self.prefix.len() + message.text.len() + 64);
        buf.extend_from_slice(&self.prefix);
        self.put_timestamp(&message.timestamp, buf);
        put_text_and_end(message, buf);
    }

    /// The timestamp as [`Rfc3339`] writes it, its minute from the last line's when the
    /// two share it.
    fn put_timestamp(&mut self, at: &DateTime<Utc>, buf: &mut BytesMut) {
        let seconds = at.timestamp();
        let nanos = at.timestamp_subsec_nanos();
        let minute = seconds.div_euclid(60);
        if nanos >= 1_000_000_000 {
            // A leap second: rare, and written by the general path.
            buf.extend_from_slice(Rfc3339::new(at).as_str().as_bytes());
            return;
        }
        if self.minute != Some(minute) {
            let text = Rfc3339::new(at);
            if !(0..=9999).contains(&at.year()) {
                // A year Go refuses, written as chrono writes it.
                buf.extend_from_slice(text.as_str().as_bytes());
                return;
            }
            self.minute_text
                .copy_from_slice(&text.as_str().as_bytes()[..17]);
            self.minute = Some(minute);
        }
        let mut text = [0u8; 30];
        text[..17].copy_from_slice(&self.minute_text);
        let len = put_second_on(&mut text, seconds.rem_euclid(60) as u32, nanos);
        buf.extend_from_slice(&text[..len]);
    }
}

/// What Go's encoder (Go 1.22 and later) does with each byte: 0 copy it; `u` write
/// `\u00XX` (so `<`, `>` and `&` become `\u003c` and so on, Go's HTML-safe default); 0xE2
/// may start U+2028 or U+2029, which Go also escapes; any other letter is the short
/// escape `\X`.
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = b'u';
        i += 1;
    }
    table[0x08] = b'b';
    table[0x0c] = b'f';
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table[b'<' as usize] = b'u';
    table[b'>' as usize] = b'u';
    table[b'&' as usize] = b'u';
    table[0xE2] = 0xE2;
    table
};

/// Whether none of `bytes` may need escaping (below 0x20, `"`, `\\`, `<`, `>`, `&`, or
/// 0xE2, which may start U+2028 or U+2029). Written without an early exit so that the
/// compiler turns it into vector compares.
fn plain(bytes: &[u8]) -> bool {
    !bytes.iter().fold(false, |any, &b| {
        any | (b < 0x20)
            | (b == b'"')
            | (b == b'\\')
            | (b == b'<')
            | (b == b'>')
            | (b == b'&')
            | (b == 0xE2)
    })
}

fn put_json_str(buf: &mut BytesMut, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    const PLAIN_BLOCK: usize = 32;
    let bytes = text.as_bytes();
    buf.put_u8(b'"');
    if plain(bytes) {
        buf.extend_from_slice(bytes);
        buf.put_u8(b'"');
        return;
    }
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Skip plain stretches a block at a time; most text has nothing to escape.
        if i % PLAIN_BLOCK == 0
            && bytes.len() - i >= PLAIN_BLOCK
            && plain(&bytes[i..i + PLAIN_BLOCK])
        {
            i += PLAIN_BLOCK;
            continue;
        }
        let b = bytes[i];
        let escape = ESCAPE[b as usize];
        if escape == 0 {
            i += 1;
            continue;
        }
        if escape == 0xE2 {
            // U+2028 and U+2029 are E2 80 A8 and E2 80 A9.
            if bytes.get(i + 1) == Some(&0x80) && matches!(bytes.get(i + 2), Some(0xA8 | 0xA9)) {
                buf.extend_from_slice(&bytes[start..i]);
                buf.extend_from_slice(if bytes[i + 2] == 0xA8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 3;
                start = i;
            } else {
                i += 1;
            }
            continue;
        }
        buf.extend_from_slice(&bytes[start..i]);
        if escape == b'u' {
            buf.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xF) as usize],
            ]);
        } else {
            buf.extend_from_slice(&[b'\\', escape]);
        }
        i += 1;
        start = i;
    }
    buf.extend_from_slice(&bytes[start..]);
    buf.put_u8(b'"');
}

/// The longest line [`NdjsonDecoder::default`] accepts: 1 MiB.
pub const DEFAULT_MAX_JSON_LINE: usize = 1 << 20;

/// A [`Decoder`] of newline-delimited JSON: one `T` (a [`Message`] unless said otherwise)
/// per line, for [`FramedRead`](tokio_util::codec::FramedRead) over a response body or a
/// pushed stream.
///
/// - Memory stays bounded by `max_line`: a longer line is an error, never a larger buffer.
/// - Blank lines (and a `\r` before a newline) are skipped.
/// - Each call consumes the line it reports on, so after an error about one line
///   ([`NdjsonError::Invalid`], [`NdjsonError::LineTooLong`]) decoding may go on with the
///   next; `FramedRead` stops at the first error, a caller that calls `decode` itself
///   need not.
/// - At the end of the stream, a last line without its newline is
///   [`NdjsonError::Truncated`]: every encoder of this format ends each line with one, so
///   a line cut off is a stream broken mid-way, never a clean end.
///
/// ```
/// use bytes::BytesMut;
/// use faas_logs::codec::{NdjsonDecoder, NdjsonError};
/// use tokio_util::codec::Decoder;
///
/// let mut decoder: NdjsonDecoder = NdjsonDecoder::default();
/// let mut buf = BytesMut::from(&br#"{"name":"hello","text":"ready"}
/// {"name":"hello","te"#[..]);
/// let first = decoder.decode(&mut buf).unwrap().unwrap();
/// assert_eq!((first.name.as_str(), first.text.as_str()), ("hello", "ready"));
/// assert!(decoder.decode(&mut buf).unwrap().is_none()); // waits for the rest
/// let cut = decoder.decode_eof(&mut buf).unwrap_err();
/// assert!(matches!(cut, NdjsonError::Truncated { line: 2 }));
/// ```
#[derive(Debug)]
pub struct NdjsonDecoder<T = Message> {
    max_line: usize,
    /// Lines consumed so far, for error messages.
    line: usize,
    /// How far the buffer has been searched for a newline already.
    searched: usize,
    /// Dropping the rest of a line already reported as too long.
    skipping: bool,
    item: PhantomData<fn() -> T>,
}

impl<T> NdjsonDecoder<T> {
    /// A decoder that accepts lines of up to `max_line` bytes (at least 1).
    #[must_use]
    pub fn new(max_line: usize) -> Self {
        NdjsonDecoder {
            max_line: max_line.max(1),
            line: 0,
            searched: 0,
            skipping: false,
            item: PhantomData,
        }
    }

    /// How many lines have been consumed, blank ones included.
    #[must_use]
    pub fn lines_read(&self) -> usize {
        self.line
    }
}

impl<T> Default for NdjsonDecoder<T> {
    /// A decoder for lines of up to [`DEFAULT_MAX_JSON_LINE`] bytes.
    fn default() -> Self {
        NdjsonDecoder::new(DEFAULT_MAX_JSON_LINE)
    }
}

/// Why [`NdjsonDecoder`] refused its input. Line numbers count from 1.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NdjsonError {
    /// A line is longer than the decoder accepts.
    #[error("line {line} is longer than {limit} bytes")]
    LineTooLong {
        /// Its line number.
        line: usize,
        /// The longest line accepted, in bytes.
        limit: usize,
    },
    /// A line is not JSON of the expected shape.
    #[error("line {line} is not a log message: {source}")]
    Invalid {
        /// Its line number.
        line: usize,
        /// What the JSON parser found.
        #[source]
        source: serde_json::Error,
    },
    /// The stream ended inside a line: it was cut off.
    #[error("the stream ended inside line {line}, before its newline")]
    Truncated {
        /// The line number of the unfinished line.
        line: usize,
    },
    /// Reading the underlying stream failed.
    #[error("reading the stream failed")]
    Io(#[from] std::io::Error),
}

impl<T> NdjsonDecoder<T> {
    /// The next line that is neither blank nor too long, without its newline and
    /// unparsed, for a reader that checks lines its own way (and reports with
    /// [`NdjsonDecoder::invalid`]).
    #[cfg(feature = "client")]
    pub(crate) fn decode_raw(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<bytes::Bytes>, NdjsonError> {
        Ok(self.next_line(buf)?.map(|mut line| {
            line.truncate(line.len() - 1);
            line.freeze()
        }))
    }

    /// As [`NdjsonDecoder::decode_raw`], at the end of the stream.
    #[cfg(feature = "client")]
    pub(crate) fn decode_raw_eof(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<bytes::Bytes>, NdjsonError> {
        if let Some(line) = self.decode_raw(buf)? {
            return Ok(Some(line));
        }
        self.end(buf)?;
        Ok(None)
    }

    /// The error for the line last returned, which did not parse.
    #[cfg(feature = "client")]
    pub(crate) fn invalid(&self, source: serde_json::Error) -> NdjsonError {
        NdjsonError::Invalid {
            line: self.line,
            source,
        }
    }

    /// The next line that is neither blank nor too long, with its newline.
    fn next_line(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, NdjsonError> {
        loop {
            let newline = memchr::memchr(b'\n', &buf[self.searched..]);
            let Some(at) = newline.map(|i| self.searched + i) else {
                if self.skipping {
                    buf.clear();
                    self.searched = 0;
                } else if buf.len() > self.max_line {
                    buf.clear();
                    self.searched = 0;
                    self.skipping = true;
                    return Err(NdjsonError::LineTooLong {
                        line: self.line + 1,
                        limit: self.max_line,
                    });
                } else {
                    self.searched = buf.len();
                }
                return Ok(None);
            };
            let line = buf.split_to(at + 1);
            self.searched = 0;
            self.line += 1;
            if std::mem::take(&mut self.skipping) {
                continue; // the end of a line already refused
            }
            if at > self.max_line {
                return Err(NdjsonError::LineTooLong {
                    line: self.line,
                    limit: self.max_line,
                });
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some(line));
        }
    }

    /// What is left at the end of the stream: nothing, or a line cut off.
    fn end(&mut self, buf: &mut BytesMut) -> Result<(), NdjsonError> {
        let rest = buf.split();
        self.searched = 0;
        if std::mem::take(&mut self.skipping) || rest.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        Err(NdjsonError::Truncated {
            line: self.line + 1,
        })
    }
}

impl<T: DeserializeOwned> Decoder for NdjsonDecoder<T> {
    type Item = T;
    type Error = NdjsonError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<T>, NdjsonError> {
        let Some(line) = self.next_line(buf)? else {
            return Ok(None);
        };
        serde_json::from_slice(&line)
            .map(Some)
            .map_err(|source| NdjsonError::Invalid {
                line: self.line,
                source,
            })
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<T>, NdjsonError> {
        if let Some(item) = self.decode(buf)? {
            return Ok(Some(item));
        }
        self.end(buf)?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines whose names change now and then, and whose timestamps cross minutes, years
    /// before 1970 and after 9999, and leap seconds: the caching encoder writes what
    /// `encode_message` writes, line after line.
    #[test]
    fn the_line_encoder_writes_what_encode_message_writes() {
        use chrono::{TimeZone, Timelike};
        let names = ["f", "g<b>", "\u{2028}"];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut encoder = LineEncoder::default();
        let mut at = Utc.with_ymd_and_hms(1969, 12, 31, 23, 58, 0).unwrap();
        for i in 0..20_000u64 {
            let r = next();
            at += chrono::Duration::nanoseconds((r % 9_000_000_000) as i64);
            let mut when = at;
            match i % 997 {
                0 => when = Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap(),
                1 => when = Utc.with_ymd_and_hms(-1, 12, 31, 23, 59, 59).unwrap(),
                2 => {
                    when = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
                        .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
                        .unwrap()
                        .and_utc();
                }
                3 => when = when.with_nanosecond(0).unwrap(),
                _ => {}
            }
            let name = names[(r >> 40) as usize % 3];
            let mut m = Message::new(name, when, format!("line {i} \"{r}\""))
                .with_namespace(names[(r >> 44) as usize % 2])
                .with_instance(if r % 5 == 0 { "" } else { "i-1" });
            m.stream = [None, Some(OutputStream::Stdout), Some(OutputStream::Stderr)]
                [(r >> 50) as usize % 3];
            let (mut want, mut got) = (BytesMut::new(), BytesMut::new());
            encode_message(&m, &mut want);
            encoder.encode(&m, &mut got);
            assert_eq!(got, want, "line {i}");
        }
    }
    use chrono::{TimeZone, Utc};

    fn line(i: usize) -> Message {
        Message::new(
            "f",
            Utc.timestamp_opt(1_700_000_000 + i as i64, 0).unwrap(),
            format!("line {i}"),
        )
        .with_instance("f-1")
    }

    #[test]
    fn the_plain_test_agrees_with_the_table_for_every_byte() {
        for b in 0..=255u8 {
            for pos in [0, 7, 31] {
                let mut bytes = [b'a'; 32];
                bytes[pos] = b;
                assert_eq!(
                    plain(&bytes),
                    ESCAPE[b as usize] == 0,
                    "byte {b:#x} at {pos}"
                );
            }
        }
    }

    #[test]
    fn escapes_anywhere_in_long_text_are_found() {
        // An escape in every position of a text longer than a few blocks.
        for pos in 0..100 {
            let mut text: Vec<char> = "x".repeat(100).chars().collect();
            text[pos] = '"';
            let text: String = text.into_iter().collect();
            let mut buf = BytesMut::new();
            put_json_str(&mut buf, &text);
            let back: String = serde_json::from_slice(&buf).unwrap();
            assert_eq!(back, text);
            assert_eq!(buf.len(), text.len() + 3, "at {pos}");
        }
    }

    #[test]
    fn lines_are_go_encoder_bytes() {
        let mut m = line(0);
        m.text = "<a href=\"x\">&\u{2028}\u{2029}\u{8}\u{c}\u{1}\u{7f}\n\r\t\\é\u{e2}".into();
        let mut buf = BytesMut::new();
        encode_message(&m, &mut buf);
        let want = concat!(
            r#"{"name":"f","namespace":"","instance":"f-1","timestamp":"2023-11-14T22:13:20Z","#,
            r#""text":"\u003ca href=\"x\"\u003e\u0026\u2028\u2029\b\f\u0001"#,
            "\u{7f}",
            r#"\n\r\t\\éâ"}"#,
            "\n"
        );
        let got = std::str::from_utf8(&buf).unwrap();
        assert_eq!(got, want);
        // And whatever we write, a JSON decoder reads back to the same message.
        let back: Message = serde_json::from_str(got.trim_end()).unwrap();
        assert_eq!(back, m);
    }

    fn decode_all(chunks: &[&[u8]], max: usize) -> Vec<Result<Message, String>> {
        let mut decoder: NdjsonDecoder = NdjsonDecoder::new(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(m)) => out.push(Ok(m)),
                    Ok(None) => break,
                    Err(e) => out.push(Err(e.to_string())),
                }
            }
        }
        loop {
            match decoder.decode_eof(&mut buf) {
                Ok(Some(m)) => out.push(Ok(m)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn what_the_encoder_writes_the_decoder_reads_back_in_any_chunking() {
        let mut bytes = BytesMut::new();
        let messages: Vec<Message> = (0..50)
            .map(|i| line(i).with_text(format!("<{i}>\u{2028}\"\\é")))
            .collect();
        for m in &messages {
            NdjsonEncoder.encode(m, &mut bytes).unwrap();
        }
        for size in [1, 7, 64, bytes.len()] {
            let chunks: Vec<&[u8]> = bytes.chunks(size).collect();
            let got: Vec<Message> = decode_all(&chunks, 1024)
                .into_iter()
                .map(|r| r.unwrap())
                .collect();
            assert_eq!(got, messages, "chunks of {size}");
        }
    }

    #[test]
    fn bad_lines_are_errors_with_their_number_and_decoding_goes_on() {
        let long = format!("{{\"text\":\"{}\"}}\n", "x".repeat(100));
        let input = format!("{{\"text\":\"a\"}}\r\n\nnot json\n{long}{{\"text\":\"b\"}}\n");
        let got = decode_all(&[input.as_bytes()], 64);
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].as_ref().unwrap().text, "a");
        assert!(got[1]
            .as_ref()
            .unwrap_err()
            .starts_with("line 3 is not a log message"));
        assert_eq!(
            got[2].as_ref().unwrap_err(),
            "line 4 is longer than 64 bytes"
        );
        assert_eq!(got[3].as_ref().unwrap().text, "b");
    }

    #[test]
    fn a_long_line_is_refused_before_its_newline_arrives_and_its_rest_is_skipped() {
        let x = "x".repeat(40);
        let got = decode_all(
            &[
                br#"{"text":""#,
                x.as_bytes(),
                x.as_bytes(),
                b"\"}\n{\"text\":\"ok\"}\n",
            ],
            64,
        );
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0].as_ref().unwrap_err(),
            "line 1 is longer than 64 bytes"
        );
        assert_eq!(got[1].as_ref().unwrap().text, "ok");
    }

    #[cfg(feature = "client")]
    #[test]
    fn decode_raw_hands_back_each_line_as_it_came() {
        let mut decoder: NdjsonDecoder = NdjsonDecoder::new(64);
        let mut buf = BytesMut::from(&b"{\"text\" : \"a\"}\n\n{\"text\":\"b\"}\n{\"te"[..]);
        let first = decoder.decode_raw(&mut buf).unwrap().unwrap();
        assert_eq!(&first[..], &b"{\"text\" : \"a\"}"[..]);
        let second = decoder.decode_raw(&mut buf).unwrap().unwrap();
        assert_eq!(&second[..], &b"{\"text\":\"b\"}"[..]);
        assert!(matches!(
            decoder.decode_raw_eof(&mut buf),
            Err(NdjsonError::Truncated { line: 4 })
        ));
    }

    #[test]
    fn a_stream_cut_inside_a_line_is_truncated_and_a_clean_end_is_not() {
        let got = decode_all(&[b"{\"text\":\"a\"}\n{\"text\":"], 64);
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[1].as_ref().unwrap_err(),
            "the stream ended inside line 2, before its newline"
        );
        let got = decode_all(&[b"{\"text\":\"a\"}\n\n  "], 64);
        assert_eq!(got.len(), 1);
        assert!(got[0].is_ok());
    }
}
