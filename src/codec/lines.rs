//! Line framing: a byte stream (a process's output, a TTY) cut into lines of bounded
//! length, and the one rule for line endings.

use std::fmt::Write;

use bytes::BytesMut;
use tokio_util::codec::Decoder;

/// The default longest line [`LineCodec`] keeps whole: 64 KiB.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// A [`Decoder`] that cuts a byte stream into lines of at most `max_line` bytes, for
/// [`FramedRead`](tokio_util::codec::FramedRead) over a process's output.
///
/// A line longer than that is kept up to the limit (cut at a character boundary) and ends
/// with the marker ` [faas-logs: line cut at N bytes]`; the rest of it, up to its newline,
/// is dropped, so memory stays bounded by `max_line` whatever the stream. Line endings
/// follow the crate's one rule (one `\n`, then one `\r`, removed); invalid UTF-8 becomes
/// U+FFFD; an unfinished last line is a line.
///
/// ```
/// use bytes::BytesMut;
/// use faas_logs::codec::LineCodec;
/// use tokio_util::codec::Decoder;
///
/// let mut codec = LineCodec::new(5);
/// let mut buf = BytesMut::from(&b"one\r\nabcdefgh\nlast"[..]);
/// assert_eq!(codec.decode(&mut buf).unwrap().as_deref(), Some("one"));
/// assert_eq!(
///     codec.decode(&mut buf).unwrap().as_deref(),
///     Some("abcde [faas-logs: line cut at 5 bytes]"),
/// );
/// assert_eq!(codec.decode(&mut buf).unwrap(), None); // "last" may go on
/// assert_eq!(codec.decode_eof(&mut buf).unwrap().as_deref(), Some("last"));
/// ```
#[derive(Debug, Clone)]
pub struct LineCodec {
    max_line: usize,
    /// Dropping the rest of an over-long line, until its newline.
    cutting: bool,
    /// How far the buffer has been searched for a newline already.
    searched: usize,
}

impl LineCodec {
    /// A codec that keeps lines of up to `max_line` bytes (at least 1).
    #[must_use]
    pub fn new(max_line: usize) -> Self {
        LineCodec {
            max_line: max_line.max(1),
            cutting: false,
            searched: 0,
        }
    }

    /// The longest line kept whole, in bytes.
    #[must_use]
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// The first `max_line` bytes of `line`, cut at a character boundary, with the marker.
    fn cut(&self, line: &[u8]) -> String {
        let kept = &line[..self.max_line];
        // End at a character boundary rather than leave half a character behind.
        let end = match std::str::from_utf8(kept) {
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            _ => kept.len(),
        };
        line_text(kept[..end].to_vec(), Some(self.max_line))
    }
}

impl Default for LineCodec {
    /// A codec for lines of up to [`DEFAULT_MAX_LINE`] bytes.
    fn default() -> Self {
        LineCodec::new(DEFAULT_MAX_LINE)
    }
}

impl Decoder for LineCodec {
    type Item = String;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<String>, std::io::Error> {
        loop {
            let newline = buf[self.searched..].iter().position(|&b| b == b'\n');
            let Some(at) = newline.map(|i| self.searched + i) else {
                if self.cutting {
                    buf.clear();
                    self.searched = 0;
                    return Ok(None);
                }
                if buf.len() > self.max_line {
                    let text = self.cut(buf);
                    buf.clear();
                    self.searched = 0;
                    self.cutting = true;
                    return Ok(Some(text));
                }
                self.searched = buf.len();
                return Ok(None);
            };
            let line = buf.split_to(at + 1);
            self.searched = 0;
            if std::mem::take(&mut self.cutting) {
                continue; // the end of a line already sent cut
            }
            if at > self.max_line {
                return Ok(Some(self.cut(&line)));
            }
            return Ok(Some(line_text(line.to_vec(), None)));
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<String>, std::io::Error> {
        if let Some(line) = self.decode(buf)? {
            return Ok(Some(line));
        }
        let rest = buf.split();
        self.searched = 0;
        if std::mem::take(&mut self.cutting) || rest.is_empty() {
            return Ok(None);
        }
        Ok(Some(line_text(rest.to_vec(), None)))
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

/// The one rule for line endings, applied to every text from every path in (the handler,
/// captured output, pushes, Docker): a message's text is one line, so one trailing `\n`
/// is removed, then one trailing `\r` (of a `\r\n`, or left by a terminal).
pub(crate) fn trim_line_end(text: &mut String) {
    if text.ends_with('\n') {
        text.pop();
    }
    if text.ends_with('\r') {
        text.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<String> {
        let mut out = Vec::new();
        let mut codec = LineCodec::new(max);
        let mut buf = BytesMut::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(line) = codec.decode(&mut buf).unwrap() {
                out.push(line);
            }
        }
        while let Some(line) = codec.decode_eof(&mut buf).unwrap() {
            out.push(line);
        }
        assert!(buf.is_empty());
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
        // The same line whole in one chunk, and one cut at the very end of the stream.
        let got = split(5, &[b"abcdefghij\nok\n"]);
        assert_eq!(got, ["abcde [faas-logs: line cut at 5 bytes]", "ok"]);
        let got = split(5, &[b"ok\nabcdefgh"]);
        assert_eq!(got, ["ok", "abcde [faas-logs: line cut at 5 bytes]"]);
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

    #[test]
    fn a_line_fed_a_byte_at_a_time_comes_out_whole() {
        let text = "x".repeat(1000);
        let bytes: Vec<&[u8]> = text.as_bytes().chunks(1).collect();
        let mut chunks = bytes.clone();
        chunks.push(b"\n");
        assert_eq!(split(2000, &chunks), [text]);
    }
}
