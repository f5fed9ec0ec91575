//! The activation record as OpenWhisk (and DigitalOcean Functions) return it, in full
//! and as the summary row of a list.
//!
//! Every type keeps the fields it does not know in `extra`, so that a record read and
//! written back is the same JSON.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Declares a record type of the activations API once for its two forms: the fields
/// every form has (with their serde rules), the ones given, the catch-all `extra` map
/// (the keys no named field takes, written back last), and the methods they allow.
macro_rules! activation_record {
    ($(#[$meta:meta])* pub struct $record:ident { $($(#[$own:meta])* pub $field:ident: $type:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase")]
        #[non_exhaustive]
        pub struct $record {
            /// The namespace the activation is recorded in.
            pub namespace: String,
            /// The action's (or trigger's, rule's) name, without its package.
            pub name: String,
            /// The entity's version (`0.0.5`).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub version: Option<String>,
            /// Whether the entity is published.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub publish: Option<bool>,
            /// Its annotations.
            #[serde(default, skip_serializing_if = "Annotations::is_empty")]
            pub annotations: Annotations,
            /// 32 hexadecimal characters.
            pub activation_id: String,
            /// When it started, in milliseconds since the epoch.
            pub start: i64,
            /// When it ended, in milliseconds since the epoch; absent while it runs.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub end: Option<i64>,
            /// How long it ran, in milliseconds; absent while it runs.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub duration: Option<i64>,
            /// The activation that caused this one (in a sequence).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub cause: Option<String>,
            $($(#[$own])* pub $field: $type,)*
            /// Fields this crate does not know, kept as they came.
            #[serde(flatten)]
            pub extra: Map<String, Value>,
        }

        impl $record {
            /// When it started.
            #[must_use]
            pub fn started(&self) -> DateTime<Utc> {
                from_millis(self.start)
            }

            /// The entity as `wsk` names it within its namespace: `package/action`, or
            /// `action` outside a package (from the `path` annotation, else the
            /// record's name).
            #[must_use]
            pub fn entity(&self) -> &str {
                entity_of(&self.annotations, &self.name)
            }
        }
    };
}

activation_record! {
    /// A full activation record: `GET .../activations/{id}`, or a list with `docs=true`.
    ///
    /// ```
    /// let record: faas_logs::openwhisk::Activation = serde_json::from_str(r#"{
    ///     "activationId": "c15d4bacedfa4bab9d4bacedfa2bcbec", "namespace": "fn-1", "name": "hello",
    ///     "start": 1652454791577, "end": 1652454791582, "duration": 5,
    ///     "logs": ["2022-05-13T15:13:11.580825656Z stdout: Hello sammy"],
    ///     "annotations": [{"key": "kind", "value": "nodejs:14"}, {"key": "initTime", "value": 50}]
    /// }"#).unwrap();
    /// assert_eq!(record.annotations.kind(), Some("nodejs:14"));
    /// assert!(record.annotations.is_cold_start());
    /// ```
    pub struct Activation {
        /// Who invoked it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub subject: Option<String>,
        /// What it returned.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub response: Option<ActivationResponse>,
        /// Its log lines, `TIME STREAM: TEXT` (see [`parse_line`](super::parse_line)).
        /// Some deployments leave this empty and answer only at
        /// `.../activations/{id}/logs`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub logs: Option<Vec<String>>,
    }
}

activation_record! {
    /// The summary row a list returns without `docs=true`: no logs, no response, and a
    /// `statusCode` once the activation has ended.
    pub struct ActivationSummary {
        /// 0 to 3, see [`ActivationStatus::from_code`]; absent while it runs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub status_code: Option<u8>,
    }
}

/// What an activation returned: `response` in a record, and the answer of
/// `.../activations/{id}/result`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct ActivationResponse {
    /// The action's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The result's size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// `success`, `application error`, `action developer error` or `whisk internal error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Whether it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<bool>,
    /// Fields this crate does not know, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ActivationResponse {
    /// [`ActivationResponse::status`], read.
    #[must_use]
    pub fn status(&self) -> Option<ActivationStatus> {
        self.status.as_deref().map(ActivationStatus::from_text)
    }
}

/// How an activation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActivationStatus {
    /// `success` (status code 0).
    Success,
    /// `application error` (1): the action returned an error.
    ApplicationError,
    /// `action developer error` (2): the action failed to initialise or run.
    DeveloperError,
    /// `whisk internal error` (3).
    InternalError,
    /// A text or code this crate does not know.
    Unknown,
}

impl ActivationStatus {
    /// The status of a summary row's `statusCode`.
    #[must_use]
    pub fn from_code(code: u8) -> Self {
        match code {
            0 => Self::Success,
            1 => Self::ApplicationError,
            2 => Self::DeveloperError,
            3 => Self::InternalError,
            _ => Self::Unknown,
        }
    }

    /// The status of a response's `status` text.
    #[must_use]
    pub fn from_text(text: &str) -> Self {
        match text {
            "success" => Self::Success,
            "application error" => Self::ApplicationError,
            "action developer error" | "developer error" => Self::DeveloperError,
            "whisk internal error" | "internal error" => Self::InternalError,
            _ => Self::Unknown,
        }
    }

    /// As `wsk activation list` prints it: `success`, `application error`,
    /// `developer error`, `internal error`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::ApplicationError => "application error",
            Self::DeveloperError => "developer error",
            Self::InternalError => "internal error",
            Self::Unknown => "unknown",
        }
    }
}

/// One annotation, `{"key": ..., "value": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Annotation {
    /// Its key.
    pub key: String,
    /// Its value, any JSON.
    #[serde(default)]
    pub value: Value,
    /// Fields this crate does not know, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An activation's annotations, all kept in their order, with typed accessors for the
/// ones OpenWhisk and DigitalOcean document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Annotations(pub Vec<Annotation>);

impl Annotations {
    /// The value of `key`, if present.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|a| a.key == key).map(|a| &a.value)
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn text(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// `path`: the fully qualified entity, `namespace[/package]/action`.
    #[must_use]
    pub fn path(&self) -> Option<&str> {
        self.text("path")
    }

    /// `kind`: the runtime (`nodejs:14`).
    #[must_use]
    pub fn kind(&self) -> Option<&str> {
        self.text("kind")
    }

    /// `waitTime`: milliseconds the activation waited before it ran.
    #[must_use]
    pub fn wait_time(&self) -> Option<u64> {
        self.get("waitTime").and_then(Value::as_u64)
    }

    /// `initTime`: milliseconds spent initialising a new container; present only on a
    /// cold start.
    #[must_use]
    pub fn init_time(&self) -> Option<u64> {
        self.get("initTime").and_then(Value::as_u64)
    }

    /// Whether the activation started a container (it has an `initTime`).
    #[must_use]
    pub fn is_cold_start(&self) -> bool {
        self.get("initTime").is_some()
    }

    /// `limits`: the action's limits when it ran.
    #[must_use]
    pub fn limits(&self) -> Option<Limits> {
        self.get("limits")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// `timeout`: whether the activation hit its time limit.
    #[must_use]
    pub fn timeout(&self) -> Option<bool> {
        self.get("timeout").and_then(Value::as_bool)
    }

    /// `entry` (DigitalOcean): the entry point.
    #[must_use]
    pub fn entry(&self) -> Option<&str> {
        self.text("entry")
    }

    /// `gbs` (DigitalOcean): GB-seconds billed.
    #[must_use]
    pub fn gbs(&self) -> Option<f64> {
        self.get("gbs").and_then(Value::as_f64)
    }

    /// `user_id` (DigitalOcean).
    #[must_use]
    pub fn user_id(&self) -> Option<&str> {
        self.text("user_id")
    }

    /// `uuid` (DigitalOcean).
    #[must_use]
    pub fn uuid(&self) -> Option<&str> {
        self.text("uuid")
    }
}

/// The `limits` annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct Limits {
    /// Activations one container runs at once.
    #[serde(default)]
    pub concurrency: Option<u64>,
    /// The log limit, in MB.
    #[serde(default)]
    pub logs: Option<u64>,
    /// The memory limit, in MB.
    #[serde(default)]
    pub memory: Option<u64>,
    /// The time limit, in milliseconds.
    #[serde(default)]
    pub timeout: Option<u64>,
}

/// `{"logs": [...]}`, the answer of `.../activations/{id}/logs`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct LogsAnswer {
    #[serde(default)]
    pub(crate) logs: Vec<String>,
}

fn entity_of<'a>(annotations: &'a Annotations, name: &'a str) -> &'a str {
    // `path` is `namespace/[package/]action`; the namespace is the record's own field.
    match annotations.path().and_then(|p| p.split_once('/')) {
        Some((_, entity)) if !entity.is_empty() => entity,
        _ => name,
    }
}

pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}
