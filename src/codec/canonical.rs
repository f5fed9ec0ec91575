//! A fast check of the one form nearly every provider writes (Go's encoder, and this
//! crate's): `{"name":S,"namespace":S,"instance":S,"timestamp":"T","text":S}`, with an
//! optional `,"stream":"stdout"` or `"stderr"` before the brace. A client that passes
//! lines on unchanged checks them with it in a fraction of what a full JSON parse costs;
//! any other form (other key order, spaces, extra fields) goes to the full parser, which
//! reads every form alike.

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use crate::{Message, OutputStream};

/// A JSON string as it lies in the line, quotes included, and whether it holds an
/// escape.
type RawString<'a> = (&'a [u8], bool);

/// A line in the canonical form, checked: its strings as they lie in the line (quotes
/// included), each with whether it holds an escape.
pub(crate) struct Canonical<'a> {
    pub(crate) timestamp: DateTime<Utc>,
    strings: [RawString<'a>; 4],
    stream: Option<OutputStream>,
}

/// `line` (without its newline) checked, if it is a message in the canonical form and
/// valid JSON; `None` when it is not in that form (it may still be a message: parse it
/// then).
pub(crate) fn canonical(line: &[u8]) -> Option<Canonical<'_>> {
    // JSON is UTF-8; checking the whole line at once is cheaper than string by string.
    std::str::from_utf8(line).ok()?;
    let rest = line.strip_prefix(b"{\"name\":")?;
    let (name, rest) = string(rest)?;
    let (namespace, rest) = string(rest.strip_prefix(b",\"namespace\":")?)?;
    let (instance, rest) = string(rest.strip_prefix(b",\"instance\":")?)?;
    let rest = rest.strip_prefix(b",\"timestamp\":\"")?;
    let end = rest.iter().position(|&b| b == b'"')?;
    let timestamp = super::parse_rfc3339(std::str::from_utf8(&rest[..end]).ok()?).ok()?;
    let (text, rest) = string(rest[end + 1..].strip_prefix(b",\"text\":")?)?;
    let stream = match rest {
        b"}" => None,
        b",\"stream\":\"stdout\"}" => Some(OutputStream::Stdout),
        b",\"stream\":\"stderr\"}" => Some(OutputStream::Stderr),
        _ => return None,
    };
    Some(Canonical {
        timestamp,
        strings: [name, namespace, instance, text],
        stream,
    })
}

impl Canonical<'_> {
    /// The message: strings without escapes taken as they lie, the others unescaped by
    /// the JSON parser.
    pub(crate) fn message(&self) -> Option<Message> {
        let [name, namespace, instance, body] = self.strings;
        let mut message = Message::new(&*unescaped(name)?, self.timestamp, unescaped(body)?)
            .with_namespace(&*unescaped(namespace)?)
            .with_instance(&*unescaped(instance)?);
        message.stream = self.stream;
        Some(message)
    }
}

/// A string of the line as text: as it lies when it holds no escape, else unescaped by
/// the JSON parser.
fn unescaped((raw, escaped): RawString<'_>) -> Option<Cow<'_, str>> {
    if escaped {
        serde_json::from_slice::<String>(raw).ok().map(Cow::Owned)
    } else {
        // Checked as UTF-8 with the whole line; the quotes are ASCII.
        std::str::from_utf8(&raw[1..raw.len() - 1])
            .ok()
            .map(Cow::Borrowed)
    }
}

/// The JSON string at the start of `s` (quotes included) with whether it holds an
/// escape, and what follows it.
fn string(s: &[u8]) -> Option<(RawString<'_>, &[u8])> {
    let mut i = 1;
    let mut escaped = false;
    if s.first() != Some(&b'"') {
        return None;
    }
    loop {
        i += plain_run(&s[i..]);
        match *s.get(i)? {
            b'"' => return Some(((&s[..=i], escaped), &s[i + 1..])),
            b'\\' => {
                escaped = true;
                i += match *s.get(i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => 2,
                    b'u' if s.get(i + 2..i + 6)?.iter().all(u8::is_ascii_hexdigit) => 6,
                    _ => return None,
                };
            }
            _ => return None, // a control character, which JSON does not allow raw
        }
    }
}

/// How many bytes at the start of `s` need no attention: not `"`, `\` or a control
/// character. memchr finds the next quote or backslash with SIMD; the run before it is
/// checked for control characters without an early exit, which the compiler vectorises.
fn plain_run(s: &[u8]) -> usize {
    let run = memchr::memchr2(b'"', b'\\', s).unwrap_or(s.len());
    let controls = s[..run].iter().fold(false, |seen, &b| seen | (b < 0x20));
    if controls {
        s[..run].iter().position(|&b| b < 0x20).unwrap_or(run)
    } else {
        run
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode_message;
    use crate::message::MessageRef;
    use bytes::BytesMut;

    /// What the full parser says: the message, if the line is one.
    fn parsed(line: &[u8]) -> Option<Message> {
        serde_json::from_slice::<MessageRef<'_>>(line)
            .ok()
            .map(Message::from)
    }

    fn canonical_timestamp(line: &[u8]) -> Option<DateTime<Utc>> {
        canonical(line).map(|c| c.timestamp)
    }

    #[test]
    fn every_line_the_encoder_writes_is_canonical() {
        let at = DateTime::parse_from_rfc3339("2024-03-01T12:00:00.123456789Z")
            .unwrap()
            .to_utc();
        let texts = [
            "",
            "plain",
            "say \"hi\"\\ \u{1}\u{7f} <>& \u{2028} ünï 🎉",
            &"x".repeat(1000),
        ];
        for text in texts {
            for stream in [None, Some(OutputStream::Stderr)] {
                let mut m = Message::new("f.n", at, text)
                    .with_instance("i-1")
                    .with_namespace("ns");
                m.stream = stream;
                let mut line = BytesMut::new();
                encode_message(&m, &mut line);
                let line = &line[..line.len() - 1];
                let read = canonical(line).and_then(|c| c.message());
                assert_eq!(read.as_ref(), Some(&m), "{}", String::from_utf8_lossy(line));
            }
        }
    }

    #[test]
    fn it_never_accepts_what_the_parser_refuses() {
        let good = br#"{"name":"f","namespace":"","instance":"i","timestamp":"2024-03-01T12:00:00Z","text":"abcdefghijklmnop"}"#;
        assert!(canonical_timestamp(good).is_some());
        // Every byte of a good line replaced by each troublesome byte, and every cut.
        for at in 0..good.len() {
            for b in [b'"', b'\\', b'\n', 0x01, 0x1f, b'}', b'u', 0xff, b' '] {
                let mut bad = good.to_vec();
                bad[at] = b;
                if let Some(c) = canonical(&bad) {
                    assert_eq!(
                        parsed(&bad),
                        c.message(),
                        "{}",
                        String::from_utf8_lossy(&bad)
                    );
                }
            }
            if canonical_timestamp(&good[..at]).is_some() {
                panic!(
                    "accepted a cut line: {}",
                    String::from_utf8_lossy(&good[..at])
                );
            }
        }
        for bad in [
            &br#"{"name":"f","namespace":"","instance":"i","timestamp":"2024-03-01T12:00:00Z","text":"\x"}"#[..],
            br#"{"name":"f","namespace":"","instance":"i","timestamp":"2024-03-01T12:00:00Z","text":"\u12g4"}"#,
            br#"{"name":"f","namespace":"","instance":"i","timestamp":"yesterday","text":""}"#,
            br#"{"name":"f","namespace":"","instance":"i","timestamp":"2024-03-01T12:00:00Z","text":""}x"#,
            br#"{"name":"f","namespace":"","instance":"i","timestamp":"2024-03-01T12:00:00Z","text":"","stream":"tty"}"#,
        ] {
            assert_eq!(canonical_timestamp(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        // Not canonical but a message: left to the parser.
        let spaced = br#"{"name": "f", "text": "hi"}"#;
        assert_eq!(canonical_timestamp(spaced), None);
        assert!(parsed(spaced).is_some());
    }
}
