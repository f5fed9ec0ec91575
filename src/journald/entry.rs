//! One journal entry as `journalctl --output=json` prints it, and the message it becomes.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::{Message, OutputStream, SharedStr};

/// Which journal fields name a line's function and instance.
///
/// The default reads what faasd's `collect` writes, what `faas-logs collect` writes and
/// what Docker's `journald` log driver writes with `--log-opt tag=<namespace>:<name>`:
/// the function from `SYSLOG_IDENTIFIER` (`<namespace>:<name>`), the instance from the
/// first of `CONTAINER_NAME` (Docker), `CONTAINER_ID` (`faas-logs collect`) and `_PID`
/// (faasd) that the entry has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalFields {
    /// The field whose value is `<namespace>:<name>`.
    pub function: String,
    /// The fields that name the instance, the first one present winning.
    pub instance: Vec<String>,
}

impl Default for JournalFields {
    fn default() -> Self {
        JournalFields {
            function: "SYSLOG_IDENTIFIER".to_owned(),
            instance: ["CONTAINER_NAME", "CONTAINER_ID", "_PID"]
                .map(str::to_owned)
                .to_vec(),
        }
    }
}

impl JournalFields {
    /// The fields `journalctl --output-fields` should print, beside the cursor and the
    /// time it always prints.
    pub(crate) fn output_fields(&self) -> String {
        let mut fields = vec!["MESSAGE", "PRIORITY", self.function.as_str()];
        fields.extend(self.instance.iter().map(String::as_str));
        fields.join(",")
    }
}

/// One entry of the journal, reduced to what a log line needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct JournalEntry {
    /// `__CURSOR`: where the entry is in the journal, to resume after it.
    pub cursor: String,
    /// `__REALTIME_TIMESTAMP`: when journald received it, in microseconds since the epoch.
    pub realtime_us: i64,
    /// `MESSAGE`, decoded as UTF-8 with invalid bytes replaced (journald prints a value
    /// that is not UTF-8 as an array of bytes).
    pub message: String,
    /// `PRIORITY`, 0 (emerg) to 7 (debug).
    pub priority: Option<u8>,
    /// The value of [`JournalFields::function`].
    pub function: Option<String>,
    /// The value of the first of [`JournalFields::instance`] that the entry has.
    pub instance: Option<String>,
}

/// Why a line of `journalctl`'s output is not an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryError(String);

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a journal entry that cannot be read: {}", self.0)
    }
}

impl std::error::Error for EntryError {}

impl JournalEntry {
    /// Reads one line of `journalctl --output=json`. Fields other than those named by
    /// `fields` (and `MESSAGE`, `PRIORITY`, `__CURSOR`, `__REALTIME_TIMESTAMP`) are skipped
    /// without being decoded.
    ///
    /// ```
    /// use faas_logs::journald::{JournalEntry, JournalFields};
    ///
    /// let line = br#"{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1700000000000001","MESSAGE":[99,97,102,233],"PRIORITY":"3","SYSLOG_IDENTIFIER":"openfaas-fn:figlet","_PID":"42"}"#;
    /// let entry = JournalEntry::from_json(line, &JournalFields::default()).unwrap();
    /// assert_eq!(entry.message, "caf\u{fffd}");
    /// assert_eq!(entry.priority, Some(3));
    /// assert_eq!(entry.instance.as_deref(), Some("42"));
    /// ```
    pub fn from_json(line: &[u8], fields: &JournalFields) -> Result<Self, EntryError> {
        let mut deserializer = serde_json::Deserializer::from_slice(line);
        let entry = EntrySeed { fields }
            .deserialize(&mut deserializer)
            .and_then(|entry| deserializer.end().map(|()| entry))
            .map_err(|e| EntryError(e.to_string()))?;
        Ok(entry)
    }

    /// The entry's time, or `None` when it is out of chrono's range.
    #[must_use]
    pub fn timestamp(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_micros(self.realtime_us)
    }

    /// The namespace and name in the function field's `<namespace>:<name>`, split at the
    /// first `:`.
    #[must_use]
    pub fn function_name(&self) -> Option<(&str, &str)> {
        self.function.as_deref()?.split_once(':')
    }

    /// Priorities 0 (emerg) to 3 (err) are stderr, as faasd's `collect` writes stderr at 3.
    #[must_use]
    pub fn stream(&self) -> Option<OutputStream> {
        self.priority.map(|p| {
            if p <= 3 {
                OutputStream::Stderr
            } else {
                OutputStream::Stdout
            }
        })
    }

    /// The log line: the names given (shared by every line of a query), this entry's time,
    /// instance, text and stream.
    #[must_use]
    pub fn into_message(self, name: &SharedStr, namespace: &SharedStr) -> Option<Message> {
        let timestamp = self.timestamp()?;
        let stream = self.stream();
        let mut message = Message::new(name.clone(), timestamp, self.message)
            .with_namespace(namespace.clone())
            .with_instance(self.instance.unwrap_or_default());
        message.stream = stream;
        Some(message)
    }
}

/// Decodes the entry's object, keeping only the fields asked for.
struct EntrySeed<'a> {
    fields: &'a JournalFields,
}

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = JournalEntry;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<JournalEntry, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = JournalEntry;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of journal fields")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JournalEntry, A::Error> {
        let mut entry = JournalEntry::default();
        let mut realtime = None;
        // The rank of the instance field kept so far: a field earlier in the list wins.
        let mut instance_rank = usize::MAX;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let key = key.as_ref();
            if key == "MESSAGE" {
                entry.message = map.next_value::<Value>()?.into_text();
            } else if key == "__CURSOR" {
                entry.cursor = map.next_value::<Value>()?.into_text();
            } else if key == "__REALTIME_TIMESTAMP" {
                let text = map.next_value::<Value>()?.into_text();
                realtime = Some(text.parse::<i64>().map_err(|_| {
                    de::Error::custom(format!("__REALTIME_TIMESTAMP {text:?} is not a number"))
                })?);
            } else if key == "PRIORITY" {
                entry.priority = map.next_value::<Value>()?.into_text().trim().parse().ok();
            } else if key == self.fields.function {
                entry.function = Some(map.next_value::<Value>()?.into_text());
            } else if let Some(rank) = self.fields.instance.iter().position(|f| f == key) {
                let value = map.next_value::<Value>()?.into_text();
                if rank < instance_rank {
                    instance_rank = rank;
                    entry.instance = Some(value);
                }
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        entry.realtime_us = realtime.ok_or_else(|| de::Error::custom("no __REALTIME_TIMESTAMP"))?;
        Ok(entry)
    }
}

/// A field's value: a string, an array of bytes (a value that is not UTF-8 or holds
/// control characters), `null` (too large to print without `--all`), or an array of
/// those when the entry has the field more than once (the first is kept).
enum Value {
    Text(String),
    Bytes(Vec<u8>),
    Null,
}

impl Value {
    fn into_text(self) -> String {
        match self {
            Value::Text(text) => text,
            Value::Bytes(bytes) => match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            },
            Value::Null => String::new(),
        }
    }
}

impl<'de> de::Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, an array of bytes, null, or an array of those")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Text(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Text(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Text(v.to_string()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut bytes = Vec::new();
        let mut first = None;
        while let Some(element) = seq.next_element::<Element>()? {
            match element {
                Element::Byte(b) if first.is_none() => bytes.push(b),
                Element::Value(v) if bytes.is_empty() && first.is_none() => first = Some(v),
                Element::Value(_) if first.is_some() => {}
                _ => return Err(de::Error::custom("an array mixing bytes and values")),
            }
        }
        Ok(first.unwrap_or(Value::Bytes(bytes)))
    }
}

/// An element of an array value: a byte, or one of several values of the field.
enum Element {
    Byte(u8),
    Value(Value),
}

impl<'de> de::Deserialize<'de> for Element {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Element, D::Error> {
        d.deserialize_any(ElementVisitor)
    }
}

struct ElementVisitor;

impl<'de> Visitor<'de> for ElementVisitor {
    type Value = Element;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte or a field value")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Element, E> {
        u8::try_from(v)
            .map(Element::Byte)
            .map_err(|_| E::custom(format!("{v} is not a byte")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Element, E> {
        Ok(Element::Value(Value::Text(v.to_owned())))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Element, E> {
        Ok(Element::Value(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Element, A::Error> {
        let mut bytes = Vec::new();
        while let Some(b) = seq.next_element::<u8>()? {
            bytes.push(b);
        }
        Ok(Element::Value(Value::Bytes(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<JournalEntry, EntryError> {
        JournalEntry::from_json(line.as_bytes(), &JournalFields::default())
    }

    #[test]
    fn reads_faasd_entries() {
        let e = parse(r#"{"__CURSOR":"c","__REALTIME_TIMESTAMP":"1796328271343498","SYSLOG_IDENTIFIER":"openfaas-fn:figlet","MESSAGE":"hi","_PID":"24110","PRIORITY":"6","_COMM":"cat"}"#).unwrap();
        assert_eq!(e.function_name(), Some(("openfaas-fn", "figlet")));
        assert_eq!(e.instance.as_deref(), Some("24110"));
        assert_eq!(e.stream(), Some(OutputStream::Stdout));
        assert_eq!(e.timestamp().unwrap().timestamp_micros(), 1796328271343498);
    }

    #[test]
    fn the_first_instance_field_wins_in_any_order() {
        let e = parse(r#"{"_PID":"1","CONTAINER_ID":"abc","__REALTIME_TIMESTAMP":"1","CONTAINER_NAME":"web-1"}"#).unwrap();
        assert_eq!(e.instance.as_deref(), Some("web-1"));
        let e = parse(r#"{"_PID":"1","CONTAINER_ID":"abc","__REALTIME_TIMESTAMP":"1"}"#).unwrap();
        assert_eq!(e.instance.as_deref(), Some("abc"));
    }

    #[test]
    fn repeated_fields_bytes_and_null() {
        let e = parse(r#"{"__REALTIME_TIMESTAMP":"1","MESSAGE":["one",[116,119,111]]}"#).unwrap();
        assert_eq!(e.message, "one");
        let e = parse(r#"{"__REALTIME_TIMESTAMP":"1","MESSAGE":[[255],"two"]}"#).unwrap();
        assert_eq!(e.message, "\u{fffd}");
        let e = parse(r#"{"__REALTIME_TIMESTAMP":"1","MESSAGE":null,"PRIORITY":"2"}"#).unwrap();
        assert_eq!(
            (e.message.as_str(), e.stream()),
            ("", Some(OutputStream::Stderr))
        );
    }

    #[test]
    fn refuses_what_is_not_an_entry() {
        for bad in [
            "",
            "[]",
            "{}",
            r#"{"__REALTIME_TIMESTAMP":"x"}"#,
            r#"{"__REALTIME_TIMESTAMP":"1","MESSAGE":[300]}"#,
            r#"{"__REALTIME_TIMESTAMP":"1","MESSAGE":[1,"a"]}"#,
            r#"{"__REALTIME_TIMESTAMP":"1"} x"#,
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
