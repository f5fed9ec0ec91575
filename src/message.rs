//! [`Message`]: one log line, wire-compatible with Go's `faas-provider/logs.Message`.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};

use serde::de::{self, Deserializer};
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

use crate::codec::Rfc3339;
use crate::SharedStr;

/// One log line of one function instance.
///
/// It serializes exactly as Go's `faas-provider/logs.Message` does: the fields `name`,
/// `namespace`, `instance`, `timestamp` and `text`, in that order, every one present, with
/// the timestamp in UTC RFC 3339 with nanoseconds and trailing zeros trimmed
/// (`2023-07-04T16:32:22.223912519Z`, `2019-11-10T23:00:00Z`), and then `stream` only
/// when it is set, and the keys of its [`Details`] only when it has some (a structured
/// record's `severity`, `trace_id`, `span_id` and `attributes`; Go decoders, and so
/// `faas-cli`, ignore them). It deserializes whatever
/// Go writes: any offset, any fraction, missing fields as Go's zero values, and unknown
/// fields ignored.
///
/// Build one with [`Message::new`] and the `with_*` setters: the struct is
/// `#[non_exhaustive]`, so that a field (a request id, say) can be added without breaking
/// code that builds messages. Its fields stay public to read and to change.
///
/// The name, namespace and instance are [`SharedStr`]: every line of an instance carries
/// the same three, so a copy of a message (each reader of a store makes one per line)
/// shares them instead of allocating them again. Build the lines of one instance from
/// one `SharedStr` each (`Message::new(name.clone(), ..)`) to share them from the start.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use faas_logs::Message;
///
/// let at = Utc.with_ymd_and_hms(2019, 11, 10, 23, 0, 0).unwrap();
/// let message = Message::new("hello", at, "Forking - node index.js")
///     .with_namespace("openfaas-fn")
///     .with_instance("hello-1");
/// assert_eq!(
///     serde_json::to_string(&message).unwrap(),
///     r#"{"name":"hello","namespace":"openfaas-fn","instance":"hello-1","timestamp":"2019-11-10T23:00:00Z","text":"Forking - node index.js"}"#,
/// );
/// assert_eq!(
///     message.to_string(),
///     "2019-11-10 23:00:00 +0000 UTC hello (openfaas-fn hello-1) Forking - node index.js",
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Message {
    /// The function's name.
    pub name: SharedStr,
    /// The function's namespace; empty when the provider has none.
    pub namespace: SharedStr,
    /// The instance (container, pod, process) that wrote the line.
    pub instance: SharedStr,
    /// When the line was written.
    pub timestamp: DateTime<Utc>,
    /// The line itself, without its trailing newline.
    pub text: String,
    /// Which output the line was written to, where the backend knows. Serialized as an
    /// extra `"stream"` field only when set, which Go decoders ignore.
    pub stream: Option<OutputStream>,
    /// What a structured record (an OpenTelemetry log record, say) says beyond its text:
    /// its severity, its trace and span, its attributes. Boxed: nearly every line has none.
    pub details: Option<Box<Details>>,
}

/// What a structured log record says beyond its text, carried by a [`Message`] as extra
/// keys of its JSON line: `severity` (the record's level as its source wrote it, `ERROR`,
/// `info`), `trace_id` and `span_id` (lowercase hex), and `attributes` (a JSON object).
/// Each key is written only when set, and a reader that does not know them (Go's
/// decoder, `faas-cli`) ignores them.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use faas_logs::{Details, Message};
///
/// let at = Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap();
/// let mut details = Details::default();
/// details.severity = Some("ERROR".into());
/// details.attributes.insert("http.status".into(), 500.into());
/// let message = Message::new("billing", at, "payment failed").with_details(details);
/// assert_eq!(
///     serde_json::to_string(&message).unwrap(),
///     r#"{"name":"billing","namespace":"","instance":"","timestamp":"2024-03-01T12:00:00Z","text":"payment failed","severity":"ERROR","attributes":{"http.status":500}}"#,
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Details {
    /// The record's level as its source named it (`ERROR`, `Warning`, `info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// The trace the record was written in, 32 lowercase hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The span the record was written in, 16 lowercase hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    /// The record's attributes, as JSON. Keys starting with `$serde_json::private::` are
    /// serde_json's own tokens, which it does not read back as written: this crate's
    /// inputs store them with an underscore before them.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

impl Details {
    /// Whether it says nothing (a message then carries none).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.severity.is_none()
            && self.trace_id.is_none()
            && self.span_id.is_none()
            && self.attributes.is_empty()
    }

    /// About the size of the details as a JSON object (strings and keys exactly, numbers
    /// at most), counted without writing it: what a store counts against its limits.
    pub(crate) fn json_len(&self) -> usize {
        fn value(v: &serde_json::Value) -> usize {
            match v {
                serde_json::Value::Null | serde_json::Value::Bool(_) => 5,
                serde_json::Value::Number(_) => 20,
                serde_json::Value::String(s) => s.len() + 2,
                serde_json::Value::Array(a) => 2 + a.iter().map(|v| value(v) + 1).sum::<usize>(),
                serde_json::Value::Object(m) => map(m),
            }
        }
        fn map(m: &serde_json::Map<String, serde_json::Value>) -> usize {
            2 + m.iter().map(|(k, v)| k.len() + 4 + value(v)).sum::<usize>()
        }
        let text = |key: usize, s: &Option<String>| s.as_ref().map_or(0, |s| key + 6 + s.len());
        2 + text(8, &self.severity)
            + text(8, &self.trace_id)
            + text(7, &self.span_id)
            + if self.attributes.is_empty() {
                0
            } else {
                14 + map(&self.attributes)
            }
    }

    /// Read from a message's line: each key only when it has the right type, so that
    /// a line of some other tool's with a key of the same name still reads.
    pub(crate) fn read(
        severity: Option<serde_json::Value>,
        trace_id: Option<serde_json::Value>,
        span_id: Option<serde_json::Value>,
        attributes: Option<serde_json::Value>,
    ) -> Option<Box<Details>> {
        let text = |v: Option<serde_json::Value>| match v {
            Some(serde_json::Value::String(s)) => Some(s),
            _ => None,
        };
        let details = Details {
            severity: text(severity),
            trace_id: text(trace_id),
            span_id: text(span_id),
            attributes: match attributes {
                Some(serde_json::Value::Object(map)) => map,
                _ => serde_json::Map::new(),
            },
        };
        (!details.is_empty()).then(|| Box::new(details))
    }
}

/// A message as it lies in its JSON line, its strings borrowed where they need no
/// unescaping: a reader that only checks lines (or wants the timestamp) allocates
/// nothing. [`Message`] deserializes through it, so a line reads as one exactly when it
/// reads as the other.
#[derive(Deserialize)]
pub(crate) struct MessageRef<'a> {
    #[serde(borrow, default)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    namespace: Cow<'a, str>,
    #[serde(borrow, default)]
    instance: Cow<'a, str>,
    #[serde(default = "go_zero_time", deserialize_with = "deserialize_timestamp")]
    pub(crate) timestamp: DateTime<Utc>,
    #[serde(borrow, default)]
    text: Cow<'a, str>,
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

impl From<MessageRef<'_>> for Message {
    fn from(m: MessageRef<'_>) -> Self {
        Message {
            name: SharedStr::from(&*m.name),
            namespace: SharedStr::from(&*m.namespace),
            instance: SharedStr::from(&*m.instance),
            timestamp: m.timestamp,
            text: m.text.into_owned(),
            stream: m.stream,
            details: Details::read(m.severity, m.trace_id, m.span_id, m.attributes),
        }
    }
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        MessageRef::deserialize(deserializer).map(Message::from)
    }
}

impl Message {
    /// A line of function `name`, written at `timestamp`; namespace and instance empty
    /// (a store or handler reads an empty namespace as its default), stream unknown.
    #[must_use]
    pub fn new(
        name: impl Into<SharedStr>,
        timestamp: DateTime<Utc>,
        text: impl Into<String>,
    ) -> Self {
        Message {
            name: name.into(),
            namespace: SharedStr::default(),
            instance: SharedStr::default(),
            timestamp,
            text: text.into(),
            stream: None,
            details: None,
        }
    }

    /// The same line with `name` as its function.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<SharedStr>) -> Self {
        self.name = name.into();
        self
    }

    /// The same line in `namespace`.
    #[must_use]
    pub fn with_namespace(mut self, namespace: impl Into<SharedStr>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The same line from `instance`.
    #[must_use]
    pub fn with_instance(mut self, instance: impl Into<SharedStr>) -> Self {
        self.instance = instance.into();
        self
    }

    /// The same line written at `timestamp`.
    #[must_use]
    pub fn with_timestamp(mut self, timestamp: DateTime<Utc>) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// The same message with `text`.
    #[must_use]
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = text.into();
        self
    }

    /// The same line, written to `stream`.
    #[must_use]
    pub fn with_stream(mut self, stream: OutputStream) -> Self {
        self.stream = Some(stream);
        self
    }

    /// The same line with `details` (none when they are empty).
    #[must_use]
    pub fn with_details(mut self, details: Details) -> Self {
        self.details = (!details.is_empty()).then(|| Box::new(details));
        self
    }
}

/// The output a line was written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
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
            name: SharedStr::default(),
            namespace: SharedStr::default(),
            instance: SharedStr::default(),
            timestamp: go_zero_time(),
            text: String::new(),
            stream: None,
            details: None,
        }
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let details = self.details.as_deref();
        let fields = 5
            + usize::from(self.stream.is_some())
            + details.map_or(0, |d| {
                usize::from(d.severity.is_some())
                    + usize::from(d.trace_id.is_some())
                    + usize::from(d.span_id.is_some())
                    + usize::from(!d.attributes.is_empty())
            });
        let mut s = serializer.serialize_struct("Message", fields)?;
        s.serialize_field("name", &self.name)?;
        s.serialize_field("namespace", &self.namespace)?;
        s.serialize_field("instance", &self.instance)?;
        s.serialize_field("timestamp", Rfc3339::new(&self.timestamp).as_str())?;
        s.serialize_field("text", &self.text)?;
        if let Some(stream) = &self.stream {
            s.serialize_field("stream", stream)?;
        }
        if let Some(d) = details {
            if let Some(severity) = &d.severity {
                s.serialize_field("severity", severity)?;
            }
            if let Some(trace_id) = &d.trace_id {
                s.serialize_field("trace_id", trace_id)?;
            }
            if let Some(span_id) = &d.span_id {
                s.serialize_field("span_id", span_id)?;
            }
            if !d.attributes.is_empty() {
                s.serialize_field("attributes", &d.attributes)?;
            }
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
    // A visitor reads the text where it lies, without copying it into a String.
    struct Timestamp;
    impl<'de> de::Visitor<'de> for Timestamp {
        type Value = DateTime<Utc>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an RFC 3339 timestamp")
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            crate::codec::parse_rfc3339(text)
                .map_err(|e| E::custom(format!("timestamp {text:?} is not RFC 3339: {e}")))
        }
        // Go leaves a time.Time untouched on `null`, so it stays the zero time.
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(go_zero_time())
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(go_zero_time())
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(self)
        }
    }
    d.deserialize_option(Timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn the_counted_size_of_details_is_about_their_json() {
        let mut details = Details {
            severity: Some("WARN".into()),
            trace_id: Some("5b8efff798038103d269b633813fc60c".into()),
            ..Details::default()
        };
        let attributes = serde_json::json!({
            "code.file.path": "/home/app/handler.py",
            "code.line.number": 42,
            "ok": true,
            "tags": ["a", "b", null],
            "nested": {"x": 1.5},
        });
        details.attributes = attributes.as_object().unwrap().clone();
        let written = serde_json::to_string(&details).unwrap().len();
        let counted = details.json_len();
        assert!(
            counted >= written && counted <= written + 100,
            "{counted} vs {written}"
        );
        let line = Message::new("f", go_zero_time(), "t").with_details(details.clone());
        let back: Message = serde_json::from_str(&serde_json::to_string(&line).unwrap()).unwrap();
        assert_eq!(back.details.as_deref(), Some(&details));
        assert_eq!(
            Message::new("f", go_zero_time(), "t")
                .with_details(Details::default())
                .details,
            None
        );
    }

    #[test]
    fn go_zero_time_round_trips() {
        let m: Message = serde_json::from_str("{}").unwrap();
        assert_eq!(Rfc3339::new(&m.timestamp).as_str(), "0001-01-01T00:00:00Z");
        let m: Message = serde_json::from_str(r#"{"timestamp":null}"#).unwrap();
        assert_eq!(m.timestamp, go_zero_time());
    }
}
