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

/// `filters=` for the API: a JSON map of lists, percent-encoded. Built as a JSON value,
/// whose text cannot fail: an empty `filters=` would list every container.
pub(super) fn filters(pairs: &[(&str, &[String])]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .map(|(key, values)| ((*key).to_owned(), serde_json::Value::from(values.to_vec())))
        .collect();
    let json = serde_json::Value::Object(map).to_string();
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

#[cfg(test)]
mod filter_tests {
    use super::*;

    #[test]
    fn filters_are_a_percent_encoded_json_map_of_lists() {
        let labels = ["faas_function=fig.let".to_owned(), "x=y".to_owned()];
        let encoded = filters(&[("label", &labels[..])]);
        let json: String = form_urlencoded::parse(format!("f={encoded}").as_bytes())
            .next()
            .unwrap()
            .1
            .into_owned();
        assert_eq!(json, r#"{"label":["faas_function=fig.let","x=y"]}"#);
    }
}
