//! [`Message`]: one log line, wire-compatible with Go's `faas-provider/logs.Message`.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Timelike, Utc};
use serde::de::{self, Deserializer};
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

/// One log line of one function instance.
///
/// It serializes exactly as Go's `faas-provider/logs.Message` does: the fields `name`,
/// `namespace`, `instance`, `timestamp` and `text`, in that order, every one present, with
/// the timestamp in UTC RFC 3339 with nanoseconds and trailing zeros trimmed
/// (`2023-07-04T16:32:22.223912519Z`, `2019-11-10T23:00:00Z`), and then `stream` only
/// when it is set. It deserializes whatever
/// Go writes: any offset, any fraction, missing fields as Go's zero values, and unknown
/// fields ignored.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use faas_logs::Message;
///
/// let message = Message {
///     name: "hello".into(),
///     namespace: "openfaas-fn".into(),
///     instance: "hello-1".into(),
///     timestamp: Utc.with_ymd_and_hms(2019, 11, 10, 23, 0, 0).unwrap(),
///     text: "Forking - node index.js".into(),
///     stream: None,
/// };
/// assert_eq!(
///     serde_json::to_string(&message).unwrap(),
///     r#"{"name":"hello","namespace":"openfaas-fn","instance":"hello-1","timestamp":"2019-11-10T23:00:00Z","text":"Forking - node index.js"}"#,
/// );
/// assert_eq!(
///     message.to_string(),
///     "2019-11-10 23:00:00 +0000 UTC hello (openfaas-fn hello-1) Forking - node index.js",
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Message {
    /// The function's name.
    #[serde(default)]
    pub name: String,
    /// The function's namespace; empty when the provider has none.
    #[serde(default)]
    pub namespace: String,
    /// The instance (container, pod, process) that wrote the line.
    #[serde(default)]
    pub instance: String,
    /// When the line was written.
    #[serde(default = "go_zero_time", deserialize_with = "deserialize_timestamp")]
    pub timestamp: DateTime<Utc>,
    /// The line itself, without its trailing newline.
    #[serde(default)]
    pub text: String,
    /// Which output the line was written to, where the backend knows. Serialized as an
    /// extra `"stream"` field only when set, which Go decoders ignore.
    #[serde(default)]
    pub stream: Option<OutputStream>,
}

/// The output a line was written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    /// Standard output (and a TTY's merged output).
    Stdout,
    /// Standard error.
    Stderr,
}

/// Go's zero values: empty strings and the time `0001-01-01T00:00:00Z`, so that
/// `Message { text, ..Default::default() }` reads as Go's `logs.Message{Text: text}`.
impl Default for Message {
    fn default() -> Self {
        Message {
            name: String::new(),
            namespace: String::new(),
            instance: String::new(),
            timestamp: go_zero_time(),
            text: String::new(),
            stream: None,
        }
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields = 5 + usize::from(self.stream.is_some());
        let mut s = serializer.serialize_struct("Message", fields)?;
        s.serialize_field("name", &self.name)?;
        s.serialize_field("namespace", &self.namespace)?;
        s.serialize_field("instance", &self.instance)?;
        s.serialize_field("timestamp", Rfc3339::new(&self.timestamp).as_str())?;
        s.serialize_field("text", &self.text)?;
        if let Some(stream) = &self.stream {
            s.serialize_field("stream", stream)?;
        }
        s.end()
    }
}

/// Prints the line as Go's `Message.String()` does:
/// `2019-11-10 23:00:00.5 +0000 UTC name (namespace instance) text`.
impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stamp = Rfc3339::new(&self.timestamp);
        let stamp = stamp.as_str();
        // Go's Time.String() is the RFC 3339 text with a space for the `T` and
        // `+0000 UTC` for the `Z`; our formatter falls back to chrono outside years 0-9999.
        match stamp.strip_suffix('Z') {
            Some(body) if body.as_bytes().get(10) == Some(&b'T') => {
                write!(f, "{} {} +0000 UTC", &body[..10], &body[11..])?
            }
            _ => f.write_str(stamp)?,
        }
        write!(f, " {} (", self.name)?;
        if !self.namespace.is_empty() {
            write!(f, "{} ", self.namespace)?;
        }
        write!(f, "{}) {}", self.instance, self.text)
    }
}

/// Go's zero `time.Time`, which Go decoders use for a missing timestamp.
fn go_zero_time() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(1, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn deserialize_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    // Go leaves a time.Time untouched on `null`, so it stays the zero time.
    let text: Option<std::borrow::Cow<'de, str>> = Option::deserialize(d)?;
    match text {
        None => Ok(go_zero_time()),
        Some(text) => DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| de::Error::custom(format!("timestamp {text:?} is not RFC 3339: {e}"))),
    }
}

/// A timestamp written as Go's `time.Time` marshals it in UTC, without allocating.
///
/// Chrono's own serde path costs about twice as much per short line, so the hot encoder
/// uses this instead.
pub(crate) struct Rfc3339 {
    buf: [u8; 40],
    len: usize,
}

impl Rfc3339 {
    pub(crate) fn new(ts: &DateTime<Utc>) -> Self {
        let mut out = Rfc3339 {
            buf: [0; 40],
            len: 0,
        };
        let date = ts.date_naive();
        let year = date.year();
        if !(0..=9999).contains(&year) {
            // Go refuses these years; chrono's text is the sensible answer.
            let text = ts.to_rfc3339_opts(SecondsFormat::AutoSi, true);
            let n = text.len().min(out.buf.len());
            out.buf[..n].copy_from_slice(&text.as_bytes()[..n]);
            out.len = n;
            return out;
        }
        let time = ts.time();
        let mut nanos = time.nanosecond();
        let mut second = time.second();
        if nanos >= 1_000_000_000 {
            // chrono's leap second: write it as second 60, as RFC 3339 allows.
            nanos -= 1_000_000_000;
            second = 60;
        }
        let b = &mut out.buf;
        put4(b, 0, year as u32);
        b[4] = b'-';
        put2(b, 5, date.month());
        b[7] = b'-';
        put2(b, 8, date.day());
        b[10] = b'T';
        put2(b, 11, time.hour());
        b[13] = b':';
        put2(b, 14, time.minute());
        b[16] = b':';
        put2(b, 17, second);
        let mut len = 19;
        if nanos != 0 {
            b[19] = b'.';
            let mut digits = 9;
            while nanos % 10 == 0 {
                nanos /= 10;
                digits -= 1;
            }
            for i in (0..digits).rev() {
                b[20 + i] = b'0' + (nanos % 10) as u8;
                nanos /= 10;
            }
            len = 20 + digits;
        }
        b[len] = b'Z';
        out.len = len + 1;
        out
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII digits and punctuation, or chrono's own (valid UTF-8) text, are written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

fn put2(b: &mut [u8], at: usize, v: u32) {
    b[at] = b'0' + (v / 10 % 10) as u8;
    b[at + 1] = b'0' + (v % 10) as u8;
}

fn put4(b: &mut [u8], at: usize, v: u32) {
    put2(b, at, v / 100);
    put2(b, at + 2, v % 100);
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
    use chrono::TimeZone;

    #[test]
    fn a_leap_second_is_second_60() {
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .unwrap()
            .and_utc();
        assert_eq!(stamp(leap), "2016-12-31T23:59:60.5Z");
    }

    fn stamp(ts: DateTime<Utc>) -> String {
        Rfc3339::new(&ts).as_str().to_owned()
    }

    #[test]
    fn timestamp_trims_trailing_zeros_like_go() {
        let base = Utc.with_ymd_and_hms(2023, 7, 4, 16, 32, 22).unwrap();
        let cases = [
            (0, "2023-07-04T16:32:22Z"),
            (223_912_519, "2023-07-04T16:32:22.223912519Z"),
            (120_000_000, "2023-07-04T16:32:22.12Z"),
            (1, "2023-07-04T16:32:22.000000001Z"),
            (100_000, "2023-07-04T16:32:22.0001Z"),
        ];
        for (nanos, want) in cases {
            let ts = base + chrono::Duration::nanoseconds(nanos);
            assert_eq!(stamp(ts), want);
        }
    }

    #[test]
    fn timestamp_matches_chrono_over_many_instants() {
        // Compare with chrono's parser: our text must parse back to the same instant.
        let mut t = Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap();
        let step = chrono::Duration::seconds(86_400 * 37 + 3_661)
            + chrono::Duration::nanoseconds(7_654_321);
        while t.year() < 9999 {
            let text = stamp(t);
            let back = DateTime::parse_from_rfc3339(&text)
                .unwrap()
                .with_timezone(&Utc);
            assert_eq!(back, t, "{text}");
            t += step;
        }
    }

    #[test]
    fn out_of_range_years_do_not_panic() {
        let far = DateTime::<Utc>::MAX_UTC;
        assert!(stamp(far).ends_with('Z'));
        assert!(stamp(DateTime::<Utc>::MIN_UTC).len() > 10);
    }

    #[test]
    fn go_zero_time_round_trips() {
        let m: Message = serde_json::from_str("{}").unwrap();
        assert_eq!(stamp(m.timestamp), "0001-01-01T00:00:00Z");
        let m: Message = serde_json::from_str(r#"{"timestamp":null}"#).unwrap();
        assert_eq!(m.timestamp, go_zero_time());
    }
}
