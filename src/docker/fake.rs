//! A Docker engine in memory, for unit tests of the follow, replica and reconnect
//! logic: containers with logs, follow streams the test writes to and breaks, start
//! events, and faults.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::api::{Inspect, InspectConfig, InspectState, Summary};
use super::engine::{ApiError, ByteStream, DockerApi, LogOptions};
use crate::Error;

type Sender = mpsc::UnboundedSender<Result<Bytes, Error>>;

/// The label every fake container's function name is under.
pub(super) const LABEL: &str = "com.openfaas.function";

#[derive(Default)]
pub(super) struct FakeDocker {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    containers: Vec<Container>,
    /// Open follow streams, by container id.
    follows: HashMap<String, Vec<Sender>>,
    /// Open event streams, and every start so far (replayed to a new subscription).
    events: Vec<Sender>,
    starts: Vec<(DateTime<Utc>, String)>,
    /// Every `logs` call: the container and its options.
    log_calls: Vec<(String, LogOptions)>,
    subscriptions: Vec<Option<DateTime<Utc>>>,
    /// Faults: inspecting fails; follow streams end as soon as they open.
    inspect_fails: bool,
    follows_end_at_once: bool,
}

struct Container {
    id: String,
    function: String,
    running: bool,
    log: Vec<(DateTime<Utc>, String)>,
}

/// One line of a container without a terminal, as the daemon frames it.
fn frame(at: DateTime<Utc>, text: &str) -> Bytes {
    let payload = format!(
        "{} {text}\n",
        at.to_rfc3339_opts(SecondsFormat::Nanos, true)
    );
    let mut out = BytesMut::with_capacity(8 + payload.len());
    out.put_slice(&[1, 0, 0, 0]);
    out.put_u32(u32::try_from(payload.len()).expect("a short line"));
    out.put_slice(payload.as_bytes());
    out.freeze()
}

/// A start event of `id`, as the daemon writes it on the event stream.
fn start_event(id: &str) -> Bytes {
    Bytes::from(serde_json::json!({ "Actor": { "ID": id } }).to_string() + "\n")
}

fn stream_of(rx: mpsc::UnboundedReceiver<Result<Bytes, Error>>) -> ByteStream {
    Box::pin(UnboundedReceiverStream::new(rx))
}

impl FakeDocker {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("the fake's lock")
    }

    /// A running container `id` of `function`, with no log yet.
    pub(super) fn add(&self, id: &str, function: &str) {
        self.state().containers.push(Container {
            id: id.to_owned(),
            function: function.to_owned(),
            running: true,
            log: Vec::new(),
        });
    }

    /// Appends a line to `id`'s log, and sends it to every open follow of it.
    pub(super) fn write(&self, id: &str, at: DateTime<Utc>, text: &str) {
        let mut state = self.state();
        let container = state.containers.iter_mut().find(|c| c.id == id);
        container
            .expect("a known container")
            .log
            .push((at, text.to_owned()));
        for follow in state.follows.get(id).into_iter().flatten() {
            let _ = follow.send(Ok(frame(at, text)));
        }
    }

    /// Breaks every open follow of `id` off, as a lost connection does.
    pub(super) fn break_follows(&self, id: &str) {
        for follow in self.state().follows.remove(id).into_iter().flatten() {
            let _ = follow.send(Err(Error::unavailable("the fake's stream broke off")));
        }
    }

    /// Announces that `id` started, to every event stream.
    pub(super) fn start(&self, id: &str) {
        let mut state = self.state();
        state.starts.push((Utc::now(), id.to_owned()));
        state
            .events
            .retain(|events| events.send(Ok(start_event(id))).is_ok());
    }

    /// Ends every event stream, as a daemon restarting its event service does.
    pub(super) fn end_events(&self) {
        self.state().events.clear();
    }

    pub(super) fn fail_inspect(&self) {
        self.state().inspect_fails = true;
    }

    pub(super) fn end_follows_at_once(&self) {
        self.state().follows_end_at_once = true;
    }

    pub(super) fn log_calls(&self) -> Vec<(String, LogOptions)> {
        self.state().log_calls.clone()
    }

    pub(super) fn subscriptions(&self) -> Vec<Option<DateTime<Utc>>> {
        self.state().subscriptions.clone()
    }
}

fn gone(id: &str) -> ApiError {
    ApiError::Gone(Error::not_found(format!("No such container: {id}")))
}

#[async_trait::async_trait]
impl DockerApi for FakeDocker {
    async fn list(&self, labels: &[String]) -> Result<Vec<Summary>, ApiError> {
        let state = self.state();
        let listed = state.containers.iter().filter(|c| {
            labels
                .iter()
                .all(|l| *l == LABEL || *l == format!("{LABEL}={}", c.function))
        });
        Ok(listed
            .map(|c| Summary {
                id: c.id.clone(),
                names: vec![format!("/{}", c.id)],
                labels: Some(HashMap::from([(LABEL.to_owned(), c.function.clone())])),
            })
            .collect())
    }

    async fn inspect(&self, id: &str) -> Result<Inspect, ApiError> {
        let state = self.state();
        if state.inspect_fails {
            return Err(ApiError::Failed(Error::unavailable(
                "the fake daemon is down",
            )));
        }
        let c = state
            .containers
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| gone(id))?;
        Ok(Inspect {
            name: format!("/{}", c.id),
            config: InspectConfig {
                tty: false,
                labels: Some(HashMap::from([(LABEL.to_owned(), c.function.clone())])),
            },
            state: InspectState { running: c.running },
        })
    }

    async fn logs(&self, id: &str, options: LogOptions) -> Result<ByteStream, ApiError> {
        let mut state = self.state();
        state.log_calls.push((id.to_owned(), options));
        let c = state
            .containers
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| gone(id))?;
        // The daemon's `since` keeps lines at or after it; `tail` the newest of those.
        let lines: Vec<_> = c
            .log
            .iter()
            .filter(|(at, _)| options.since.is_none_or(|since| *at >= since))
            .collect();
        let from = options.tail.map_or(0, |n| lines.len().saturating_sub(n));
        let history: Vec<Result<Bytes, Error>> = lines[from..]
            .iter()
            .map(|(at, text)| Ok(frame(*at, text)))
            .collect();
        if !options.follow || state.follows_end_at_once || !c.running {
            return Ok(Box::pin(futures_util::stream::iter(history)));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        for chunk in history {
            let _ = tx.send(chunk);
        }
        state.follows.entry(id.to_owned()).or_default().push(tx);
        Ok(stream_of(rx))
    }

    async fn start_events(
        &self,
        _labels: &[String],
        since: Option<DateTime<Utc>>,
    ) -> Result<ByteStream, ApiError> {
        let mut state = self.state();
        state.subscriptions.push(since);
        let (tx, rx) = mpsc::unbounded_channel();
        for (at, id) in &state.starts {
            if since.is_some_and(|since| *at >= since) {
                let _ = tx.send(Ok(start_event(id)));
            }
        }
        state.events.push(tx);
        Ok(stream_of(rx))
    }
}
