//! The Docker Engine API as the backend uses it: the JSON it answers with, and the forms
//! of its query parameters.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::SharedStr;

/// A time as the API's `since` takes it, to the nanosecond: `seconds.nanoseconds`.
pub(super) fn api_time(t: DateTime<Utc>) -> String {
    format!("{}.{:09}", t.timestamp(), t.timestamp_subsec_nanos())
}

/// `filters=` for the API: a JSON map of lists, percent-encoded.
pub(super) fn filters(pairs: &[(&str, &[String])]) -> String {
    let map: HashMap<&str, &[String]> = pairs.iter().copied().collect();
    let json = serde_json::to_string(&map).unwrap_or_default();
    form_urlencoded::byte_serialize(json.as_bytes()).collect()
}

/// Where a container's namespace comes from: its label, or the provider's default.
pub(super) struct Namespaces {
    pub(super) label: String,
    pub(super) default: String,
}

impl Namespaces {
    pub(super) fn of(&self, labels: Option<&HashMap<String, String>>) -> SharedStr {
        labels
            .and_then(|labels| labels.get(&self.label))
            .filter(|ns| !ns.is_empty())
            .unwrap_or(&self.default)
            .as_str()
            .into()
    }
}

/// A container of the function, as the logs need it.
#[derive(Debug, Clone)]
pub(super) struct Container {
    pub(super) id: String,
    /// Shared by every message of the container.
    pub(super) name: SharedStr,
    pub(super) namespace: SharedStr,
    pub(super) running: bool,
    pub(super) tty: bool,
}

#[derive(Deserialize)]
pub(super) struct Summary {
    #[serde(rename = "Id")]
    pub(super) id: String,
    #[serde(rename = "Names", default)]
    pub(super) names: Vec<String>,
    #[serde(rename = "Labels", default)]
    pub(super) labels: Option<HashMap<String, String>>,
}

#[derive(Deserialize)]
pub(super) struct Inspect {
    #[serde(rename = "Name", default)]
    pub(super) name: String,
    #[serde(rename = "Config")]
    pub(super) config: InspectConfig,
    #[serde(rename = "State")]
    pub(super) state: InspectState,
}

#[derive(Deserialize)]
pub(super) struct InspectConfig {
    #[serde(rename = "Tty", default)]
    pub(super) tty: bool,
    #[serde(rename = "Labels", default)]
    pub(super) labels: Option<HashMap<String, String>>,
}

#[derive(Deserialize)]
pub(super) struct InspectState {
    #[serde(rename = "Running", default)]
    pub(super) running: bool,
}

#[derive(Deserialize)]
pub(super) struct StartEvent {
    /// Older API versions name the container here...
    #[serde(default)]
    pub(super) id: String,
    /// ...newer ones only here.
    #[serde(rename = "Actor", default)]
    pub(super) actor: Option<Actor>,
}

#[derive(Deserialize)]
pub(super) struct Actor {
    #[serde(rename = "ID", default)]
    pub(super) id: String,
}
