//! From OTLP log records to messages: the table in the [module documentation](super).

use std::fmt::Write as _;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use serde_json::{Map, Value};

use crate::{Details, Message, OutputStream, SharedStr};

/// The lowest severity number of `ERROR` in OpenTelemetry's log data model.
const SEVERITY_ERROR: i32 = 17;

/// The messages of one request, in its order, and the records that became none.
#[derive(Debug, Default)]
pub(crate) struct Mapped {
    pub(crate) messages: Vec<Message>,
    /// The messages (their places in `messages`) whose record named no time.
    pub(crate) stamped_on_arrival: Vec<usize>,
    /// Records refused, and why the first was.
    pub(crate) rejected: usize,
    pub(crate) first_rejection: Option<String>,
}

impl Mapped {
    fn reject(&mut self, why: String) {
        self.rejected += 1;
        self.first_rejection.get_or_insert(why);
    }
}

/// Maps records one at a time, as they are decoded: a function's lines in the default
/// namespace when its resource names none, texts of at most `max_text` bytes, stamped
/// `now` when they carry no time.
pub(crate) struct Mapper<'a> {
    pub(crate) mapped: Mapped,
    default_namespace: &'a SharedStr,
    max_text: usize,
    now: DateTime<Utc>,
}

impl<'a> Mapper<'a> {
    pub(crate) fn new(
        default_namespace: &'a SharedStr,
        max_text: usize,
        now: DateTime<Utc>,
        capacity: usize,
    ) -> Self {
        Mapper {
            mapped: Mapped {
                messages: Vec::with_capacity(capacity),
                ..Mapped::default()
            },
            default_namespace,
            max_text,
            now,
        }
    }

    /// Whose the records of a resource with `attributes` are.
    pub(crate) fn origin(&self, attributes: &[KeyValue]) -> Origin {
        Origin::of(attributes, self.default_namespace)
    }

    /// Maps one record of `who`'s.
    pub(crate) fn record(&mut self, who: &Origin, record: LogRecord) {
        let mapped = &mut self.mapped;
        let name = match &who.name {
            Ok(name) => name,
            Err(why) => return mapped.reject(why.clone()),
        };
        let time = [record.time_unix_nano, record.observed_time_unix_nano]
            .into_iter()
            .find(|t| *t != 0)
            .map(from_unix_nanos);
        let message = message(record, name, who, time.unwrap_or(self.now));
        if message.text.len() > self.max_text {
            mapped.reject(format!(
                "a log record of {} bytes is longer than the {} kept",
                message.text.len(),
                self.max_text
            ));
            return;
        }
        if time.is_none() {
            mapped.stamped_on_arrival.push(mapped.messages.len());
        }
        mapped.messages.push(message);
    }

    /// Maps every record of a decoded request.
    pub(crate) fn request(&mut self, request: ExportLogsServiceRequest) {
        for resource_logs in request.resource_logs {
            let attributes = resource_logs
                .resource
                .map(|r| r.attributes)
                .unwrap_or_default();
            let who = self.origin(&attributes);
            for scope_logs in resource_logs.scope_logs {
                for record in scope_logs.log_records {
                    self.record(&who, record);
                }
            }
        }
    }
}

/// Whose records a resource's are: the function, its namespace and the instance.
pub(crate) struct Origin {
    /// The function, or why its records are refused.
    name: Result<SharedStr, String>,
    namespace: SharedStr,
    instance: SharedStr,
}

impl Origin {
    fn of(attributes: &[KeyValue], default_namespace: &SharedStr) -> Origin {
        let text = |key: &str| {
            attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
                match kv.value.as_ref()?.value.as_ref()? {
                    any_value::Value::StringValue(s) if !s.is_empty() => Some(s.as_str()),
                    _ => None,
                }
            })
        };
        let first = |keys: &[&str]| keys.iter().find_map(|k| text(k));
        let valid = |param, value: &str| {
            crate::request::valid_name(param, value.into(), "")
                .map(SharedStr::from)
                .map_err(|e| format!("a log record's resource names an invalid {param}: {e}"))
        };
        let name = match first(&["faas.name", "service.name"]) {
            None => {
                Err("a log record whose resource has neither faas.name nor service.name".into())
            }
            Some(name) => valid("function", name),
        };
        let namespace = match first(&["faas.namespace", "service.namespace"]) {
            None => Ok(default_namespace.clone()),
            Some(namespace) => valid("namespace", namespace),
        };
        let (name, namespace) = match (name, namespace) {
            (Ok(name), Ok(namespace)) => (Ok(name), namespace),
            (Err(why), _) | (_, Err(why)) => (Err(why), SharedStr::default()),
        };
        // An instance only names where a line came from: one with other characters
        // (`host:8080`) is kept with them replaced, rather than its records refused.
        let instance = first(&["faas.instance", "service.instance.id", "host.name"])
            .map(|i| {
                i.chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                            c
                        } else {
                            '-'
                        }
                    })
                    .take(crate::request::MAX_NAME_LEN)
                    .collect::<String>()
            })
            .map(SharedStr::from)
            .unwrap_or_default();
        Origin {
            name,
            namespace,
            instance,
        }
    }
}

fn message(record: LogRecord, name: &SharedStr, who: &Origin, time: DateTime<Utc>) -> Message {
    let mut text = match record.body.and_then(|b| b.value) {
        None => String::new(),
        Some(any_value::Value::StringValue(s)) => s,
        Some(other) => json(other).to_string(),
    };
    // A line's end is the record's end, as everywhere else in the crate.
    crate::codec::trim_line_end(&mut text);
    let severity = severity(record.severity_number, &record.severity_text);
    let mut attributes: Map<String, Value> = record
        .attributes
        .into_iter()
        .map(|kv| {
            (
                key(kv.key),
                kv.value.and_then(|v| v.value).map_or(Value::Null, json),
            )
        })
        .collect();
    if !record.event_name.is_empty() {
        attributes.insert("event.name".into(), Value::String(record.event_name));
    }
    let mut details = Details {
        trace_id: hex_id(&record.trace_id, 16),
        span_id: hex_id(&record.span_id, 8),
        attributes,
        ..Details::default()
    };
    let mut message = Message::new(name.clone(), time, text)
        .with_namespace(who.namespace.clone())
        .with_instance(who.instance.clone());
    if let Some((severity, error)) = severity {
        message.stream = Some(if error {
            OutputStream::Stderr
        } else {
            OutputStream::Stdout
        });
        details.severity = Some(severity);
    }
    message.with_details(details)
}

/// The record's level as a text (its own, else the data model's short name for its
/// number), and whether it is `ERROR` or above; `None` when it has neither.
fn severity(number: i32, text: &str) -> Option<(String, bool)> {
    const NAMES: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    let named = if (1..=24).contains(&number) {
        let (range, step) = ((number - 1) / 4, (number - 1) % 4);
        let mut name = NAMES[range as usize].to_owned();
        if step > 0 {
            let _ = write!(name, "{}", step + 1);
        }
        Some(name)
    } else {
        None
    };
    let text = text.trim();
    if text.is_empty() {
        return named.map(|n| (n, number >= SEVERITY_ERROR));
    }
    // Without a number, the text's own word decides (`error`, `CRITICAL`).
    let error = if named.is_some() {
        number >= SEVERITY_ERROR
    } else {
        let upper = text.to_ascii_uppercase();
        ["ERR", "FATAL", "CRIT", "ALERT", "EMERG", "PANIC", "SEVERE"]
            .iter()
            .any(|word| upper.starts_with(word))
    };
    Some((text.to_owned(), error))
}

/// An id as lowercase hex, when it is one: `len` bytes, not all zero.
fn hex_id(bytes: &[u8], len: usize) -> Option<String> {
    if bytes.len() != len || bytes.iter().all(|b| *b == 0) {
        return None;
    }
    let mut hex = String::with_capacity(2 * len);
    for b in bytes {
        let _ = write!(hex, "{b:02x}");
    }
    Some(hex)
}

/// An OTLP value as plain JSON: maps as objects, arrays as arrays, bytes as base64,
/// numbers that JSON cannot hold (NaN, infinities) as their names.
fn json(value: any_value::Value) -> Value {
    match value {
        any_value::Value::StringValue(s) => Value::String(s),
        any_value::Value::BoolValue(b) => Value::Bool(b),
        any_value::Value::IntValue(i) => Value::from(i),
        any_value::Value::DoubleValue(d) => serde_json::Number::from_f64(d)
            .map_or_else(|| Value::String(d.to_string()), Value::Number),
        any_value::Value::ArrayValue(array) => {
            Value::Array(array.values.into_iter().map(any_json).collect())
        }
        any_value::Value::KvlistValue(list) => Value::Object(
            list.values
                .into_iter()
                .map(|kv| (key(kv.key), kv.value.map_or(Value::Null, any_json)))
                .collect(),
        ),
        any_value::Value::BytesValue(bytes) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        // An index into a profile's string table, which logs do not carry.
        any_value::Value::StringValueStrindex(index) => Value::from(index),
    }
}

/// A map key as stored: serde_json reads a map whose key is one of its private tokens
/// (`$serde_json::private::RawValue`) as something else than a map, so such a key is
/// kept with an underscore before it, and every reader of the line reads what was sent.
fn key(key: String) -> String {
    if key.starts_with("$serde_json::private::") {
        format!("_{key}")
    } else {
        key
    }
}

fn any_json(value: AnyValue) -> Value {
    value.value.map_or(Value::Null, json)
}

/// A time in nanoseconds since the epoch (which every `u64` is).
fn from_unix_nanos(nanos: u64) -> DateTime<Utc> {
    let secs = (nanos / 1_000_000_000) as i64;
    DateTime::from_timestamp(secs, (nanos % 1_000_000_000) as u32).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_are_named_as_the_data_model_names_them() {
        assert_eq!(severity(9, ""), Some(("INFO".into(), false)));
        assert_eq!(severity(10, ""), Some(("INFO2".into(), false)));
        assert_eq!(severity(17, ""), Some(("ERROR".into(), true)));
        assert_eq!(severity(24, ""), Some(("FATAL4".into(), true)));
        assert_eq!(severity(13, "Warning"), Some(("Warning".into(), false)));
        assert_eq!(severity(0, "critical"), Some(("critical".into(), true)));
        assert_eq!(severity(0, "info"), Some(("info".into(), false)));
        assert_eq!(severity(0, ""), None);
        assert_eq!(severity(99, ""), None);
    }

    #[test]
    fn ids_are_hex_unless_invalid() {
        assert_eq!(hex_id(&[0xab; 8], 8).as_deref(), Some("abababababababab"));
        assert_eq!(hex_id(&[0; 8], 8), None);
        assert_eq!(hex_id(&[1; 7], 8), None);
    }

    #[test]
    fn every_time_is_a_time() {
        assert_eq!(from_unix_nanos(u64::MAX).timestamp(), 18_446_744_073);
        assert_eq!(from_unix_nanos(1).timestamp_subsec_nanos(), 1);
    }
}
