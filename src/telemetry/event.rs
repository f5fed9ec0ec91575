//! One telemetry event of either dialect, read on its own: Lambda's `{time, type, record}`
//! and FunctionGraph's flat objects, with the stray spaces of FunctionGraph's examples
//! trimmed from keys and values and type names matched in any case.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Who wrote a log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Function,
    Extension,
}

/// The phase of the platform events that fold into one invocation record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Init,
    Invoke,
    Restore,
}

impl Phase {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Phase::Init => "init",
            Phase::Invoke => "invoke",
            Phase::Restore => "restore",
        }
    }
}

/// What a report measured; every figure optional (Lambda Managed Instances send only the
/// duration, FunctionGraph names them differently).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Metrics {
    pub(crate) duration_ms: Option<f64>,
    pub(crate) billed_duration_ms: Option<f64>,
    pub(crate) memory_size_mb: Option<f64>,
    pub(crate) max_memory_used_mb: Option<f64>,
    pub(crate) init_duration_ms: Option<f64>,
    pub(crate) pod: Option<String>,
}

/// One event, whichever platform sent it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Telemetry {
    /// Log output of the function or an extension: a string of one or more lines, or a
    /// structured (JSON log format) record.
    Log {
        source: Source,
        time: Option<DateTime<Utc>>,
        record: Value,
    },
    Start {
        phase: Phase,
        request_id: String,
        time: Option<DateTime<Utc>>,
        detail: Option<String>,
        /// The execution environment's id, where the platform names it.
        instance: Option<String>,
    },
    Done {
        phase: Phase,
        request_id: String,
        time: Option<DateTime<Utc>>,
        status: Option<String>,
        error_type: Option<String>,
        duration_ms: Option<f64>,
    },
    Report {
        phase: Phase,
        request_id: String,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
        status: Option<String>,
        error_type: Option<String>,
        metrics: Metrics,
    },
    LogsDropped {
        time: Option<DateTime<Utc>>,
        records: u64,
        bytes: u64,
        reason: String,
    },
    /// A platform event shown as one line and nothing more (an extension's state, the
    /// subscription, a fault).
    Notice {
        time: Option<DateTime<Utc>>,
        text: String,
    },
    /// A type nobody knows yet: shown, never dropped.
    Unknown {
        time: Option<DateTime<Utc>>,
        kind: String,
        json: String,
    },
}

/// Reads a Lambda log event of the exact documented form (`time`, `type` `function` or
/// `extension`, a string `record`) straight from its text: the common case, which skips
/// building a JSON tree. `None` for anything else, which [`parse`] reads.
pub(crate) fn quick(raw: &RawValue) -> Option<Telemetry> {
    #[derive(Deserialize)]
    struct Quick<'a> {
        #[serde(borrow)]
        time: Cow<'a, str>,
        #[serde(rename = "type", borrow)]
        kind: Cow<'a, str>,
        #[serde(borrow)]
        record: &'a RawValue,
    }
    let event: Quick<'_> = serde_json::from_str(raw.get()).ok()?;
    let source = match &*event.kind {
        "function" => Source::Function,
        "extension" => Source::Extension,
        _ => return None,
    };
    let record: String = serde_json::from_str(event.record.get()).ok()?;
    let time = DateTime::parse_from_rfc3339(&event.time).ok()?;
    Some(Telemetry::Log {
        source,
        time: Some(time.with_timezone(&Utc)),
        record: Value::String(record),
    })
}

/// Reads one event; the error says why it was refused.
pub(crate) fn parse(mut event: Value) -> Result<Telemetry, String> {
    let Some(object) = event.as_object() else {
        return Err(format!(
            "an event is a JSON object, not {}",
            kind_of(&event)
        ));
    };
    // Lambda: {time, type, record}, the fields in the record. FunctionGraph: flat, the
    // fields beside the name.
    let (kind, time, lambda) = if let Some(kind) = string(object, "type")? {
        (kind, read_time(object, "time")?, true)
    } else if let Some(kind) = string(object, "name")? {
        (kind, read_time(object, "startTime")?, false)
    } else {
        return Err(
            "neither a Lambda event (time, type, record) nor a FunctionGraph event (name, startTime)"
                .into(),
        );
    };
    let kind = kind.to_ascii_lowercase();
    if kind == "function" || kind == "extension" {
        // The hot path: the log is moved out, not copied.
        let keys: &[&str] = if lambda {
            &["record"]
        } else {
            &["logs", "record"]
        };
        let record = match &mut event {
            Value::Object(object) => keys.iter().find_map(|key| take(object, key)),
            _ => None,
        };
        return log(&kind, time, record);
    }
    let record = match (lambda, event.as_object()) {
        (true, Some(object)) => field(object, "record").unwrap_or(&Value::Null),
        _ => &event,
    };
    read(&kind, time, record, &event)
}

fn log(
    kind: &str,
    time: Option<DateTime<Utc>>,
    record: Option<Value>,
) -> Result<Telemetry, String> {
    let source = if kind == "function" {
        Source::Function
    } else {
        Source::Extension
    };
    match record {
        Some(record @ (Value::String(_) | Value::Object(_))) => Ok(Telemetry::Log {
            source,
            time,
            record,
        }),
        Some(other) => Err(format!(
            "a {kind} log record is a string or an object, not {}",
            kind_of(&other)
        )),
        None => Err(format!("a {kind} event without its log")),
    }
}

/// The platform events read into records and lines; any other is kept as it came.
const KNOWN_PLATFORM_EVENTS: [&str; 14] = [
    "platform.initstart",
    "platform.start",
    "platform.restorestart",
    "platform.initruntimedone",
    "platform.runtimedone",
    "platform.restoreruntimedone",
    "platform.end",
    "platform.initreport",
    "platform.report",
    "platform.restorereport",
    "platform.logsdropped",
    "platform.extension",
    "platform.telemetrysubscription",
    "platform.logssubscription",
];

fn read(
    kind: &str,
    time: Option<DateTime<Utc>>,
    record: &Value,
    event: &Value,
) -> Result<Telemetry, String> {
    let phase = |name: &str| match name {
        "init" => Phase::Init,
        "restore" => Phase::Restore,
        _ => Phase::Invoke,
    };
    let fields = record.as_object();
    let known = kind.starts_with("platform.")
        && !matches!(kind, "platform.fault")
        && KNOWN_PLATFORM_EVENTS.contains(&kind);
    if known && fields.is_none() {
        return Err(format!(
            "a {kind} record is an object, not {}",
            kind_of(record)
        ));
    }
    let get = |key: &str| fields.and_then(|f| field(f, key));
    let text = |key: &str| fields.map_or(Ok(None), |f| string(f, key));
    // An invocation's events name it; the init and restore phases have none to name.
    let request_id = |phase: Phase| -> Result<String, String> {
        let id = text("requestId")?.or(text("traceId")?).unwrap_or_default();
        if id.is_empty() && phase == Phase::Invoke {
            return Err(format!("a {kind} event without its requestId"));
        }
        Ok(id)
    };
    let status = || -> Result<Option<String>, String> {
        Ok(text("status")?.map(|s| s.to_ascii_lowercase()))
    };
    match kind {
        "platform.initstart" | "platform.start" | "platform.restorestart" => {
            let phase = phase(&kind["platform.".len()..kind.len() - "start".len()]);
            let detail = match phase {
                Phase::Invoke => text("version")?.map(|v| format!("Version: {v}")),
                _ => text("runtimeVersion")?.map(|v| format!("Runtime Version: {v}")),
            };
            Ok(Telemetry::Start {
                phase,
                request_id: request_id(phase)?,
                time,
                detail,
                instance: text("instanceId")?,
            })
        }
        "platform.initruntimedone"
        | "platform.runtimedone"
        | "platform.restoreruntimedone"
        | "platform.end" => {
            let phase = match kind {
                "platform.initruntimedone" => Phase::Init,
                "platform.restoreruntimedone" => Phase::Restore,
                _ => Phase::Invoke,
            };
            let duration_ms = match get("metrics") {
                Some(Value::Object(m)) => number(m, "durationMs")?,
                _ => None,
            };
            Ok(Telemetry::Done {
                phase,
                request_id: request_id(phase)?,
                time,
                status: status()?,
                error_type: text("errorType")?,
                duration_ms,
            })
        }
        "platform.initreport" | "platform.report" | "platform.restorereport" => {
            let phase = match kind {
                "platform.initreport" => Phase::Init,
                "platform.restorereport" => Phase::Restore,
                _ => Phase::Invoke,
            };
            let metrics = match get("metrics").or(get("reportMetrics")) {
                None | Some(Value::Null) => Metrics::default(),
                Some(Value::Object(m)) => metrics(m)?,
                Some(other) => {
                    return Err(format!("metrics are an object, not {}", kind_of(other)))
                }
            };
            let end = match fields {
                Some(f) => read_time(f, "endTime")?,
                None => None,
            };
            Ok(Telemetry::Report {
                phase,
                request_id: request_id(phase)?,
                start: time,
                end,
                status: status()?,
                error_type: text("errorType")?,
                metrics,
            })
        }
        "platform.logsdropped" => Ok(Telemetry::LogsDropped {
            time,
            records: fields
                .map_or(Ok(None), |f| number(f, "droppedRecords"))?
                .unwrap_or(0.0) as u64,
            bytes: fields
                .map_or(Ok(None), |f| number(f, "droppedBytes"))?
                .unwrap_or(0.0) as u64,
            reason: text("reason")?.unwrap_or_default(),
        }),
        "platform.extension" => Ok(Telemetry::Notice {
            time,
            text: format!(
                "EXTENSION Name: {} State: {} Events: {}",
                text("name")?.unwrap_or_default(),
                text("state")?.unwrap_or_default(),
                list(get("events"))
            ),
        }),
        "platform.telemetrysubscription" | "platform.logssubscription" => Ok(Telemetry::Notice {
            time,
            text: format!(
                "TELEMETRY Name: {} State: {} Types: {}",
                text("name")?.unwrap_or_default(),
                text("state")?.unwrap_or_default(),
                list(get("types"))
            ),
        }),
        "platform.fault" => Ok(Telemetry::Notice {
            time,
            text: match record {
                Value::String(s) => s.trim().to_owned(),
                other => other.to_string(),
            },
        }),
        _ => Ok(Telemetry::Unknown {
            time,
            kind: kind.to_owned(),
            json: event.to_string(),
        }),
    }
}

fn metrics(m: &Map<String, Value>) -> Result<Metrics, String> {
    Ok(Metrics {
        duration_ms: number(m, "durationMs")?,
        // Lambda: billedDurationMs; FunctionGraph: billingDurationMS.
        billed_duration_ms: number(m, "billedDurationMs")?.or(number(m, "billingDurationMs")?),
        memory_size_mb: number(m, "memorySizeMB")?.or(number(m, "memorySize")?),
        max_memory_used_mb: number(m, "maxMemoryUsedMB")?.or(number(m, "memoryUsed")?),
        init_duration_ms: number(m, "initDurationMs")?,
        pod: string(m, "podName")?,
    })
}

/// The value of `key`: exactly, else by a key that matches once trimmed, in any case.
fn field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// Removes and returns the value of `key`, found as [`field`] finds it.
fn take(object: &mut Map<String, Value>, key: &str) -> Option<Value> {
    if let Some(value) = object.remove(key) {
        return Some(value);
    }
    let found = object
        .keys()
        .find(|k| k.trim().eq_ignore_ascii_case(key))
        .cloned()?;
    object.remove(&found)
}

/// A string field, trimmed; `None` when absent, null or empty; an error for another type.
fn string(object: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match field(object, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let s = s.trim();
            Ok((!s.is_empty()).then(|| s.to_owned()))
        }
        Some(other) => Err(format!("{key} is a string, not {}", kind_of(other))),
    }
}

/// A number field (a numeric string is read too); an error for another type.
fn number(object: &Map<String, Value>, key: &str) -> Result<Option<f64>, String> {
    match field(object, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(Some)
            .ok_or_else(|| format!("{key} is a number, not {s:?}")),
        Some(other) => Err(format!("{key} is a number, not {}", kind_of(other))),
    }
}

/// A time field (ISO 8601 / RFC 3339, trimmed); an error when it does not read.
fn read_time(object: &Map<String, Value>, key: &str) -> Result<Option<DateTime<Utc>>, String> {
    match string(object, key)? {
        None => Ok(None),
        Some(t) => DateTime::parse_from_rfc3339(&t)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| format!("{key} {t:?} is not an ISO 8601 time: {e}")),
    }
}

/// A list of names as CloudWatch prints them: `[INVOKE, SHUTDOWN]`.
fn list(value: Option<&Value>) -> String {
    let items: Vec<String> = match value {
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.trim().to_owned(),
                other => other.to_string(),
            })
            .collect(),
        _ => Vec::new(),
    };
    format!("[{}]", items.join(", "))
}

/// What a JSON value is, for messages: `a number`, `an array`...
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
