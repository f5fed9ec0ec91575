//! [`DockerRequester`]: functions that run as Docker containers, their logs read from the
//! Docker Engine API.
//!
//! Unix only: the daemon is reached over its Unix socket, or `tcp://` in plain HTTP;
//! Windows' named pipes are not spoken, and the feature does not build there (nor do
//! `serve` and `cli`, which bring it).

#[cfg(not(unix))]
compile_error!(
    "faas-logs' docker feature (also brought by serve and cli) needs a Unix target: it \
     speaks to the Docker daemon over its Unix socket"
);

mod api;
mod client;
mod engine;
#[cfg(test)]
mod fake;
mod follow;
pub mod frames;
mod history;
mod outbox;
mod query;
#[cfg(test)]
mod tests;

use std::fmt::Write;
use std::sync::Arc;

use chrono::Utc;
use futures_core::Stream;
use futures_util::stream::StreamExt;
use tokio::sync::mpsc;

use self::api::{Container, Namespaces, Summary};
use self::client::{Client, Host};
use self::engine::{ApiError, DockerApi};
use self::follow::{subscribe, Events, Following};
use self::history::merge_history;
use self::outbox::{task_stream, Outbox, OUTBOX_BATCHES};
use self::query::{Lines, Part, Query, Tracked};
use crate::{Capabilities, Error, Event, FunctionName, LogStream, Request, Requester};

/// The socket a local Docker daemon listens on.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// Reads function logs from Docker.
///
/// A function's instances are the containers that carry its label (by default
/// `com.openfaas.function=<name>`) in the request's namespace: a container's namespace is
/// its namespace label (`com.openfaas.namespace`), or the provider's default namespace
/// (`openfaas-fn` unless [`DockerRequester::with_default_namespace`] says otherwise) when it has
/// none; a request without a namespace means the default one, as faas-netes and faasd
/// do. Every message carries its container's namespace. An instance is named by its
/// container name; `instance` in a request selects by that name or by a container ID
/// prefix.
///
/// - History: each container's log, `since` to the nanosecond and `tail` passed to Docker,
///   put in timestamp order (Docker's log file can hold a stderr line before an older
///   stdout line; a window of 256 lines per container puts them back) and merged across
///   containers by timestamp (the handler keeps the newest `tail`).
/// - Lines: stdout and stderr (recorded in [`Message::stream`](crate::Message::stream)), TTY containers, the
///   16 KiB pieces of long lines joined into one message (up to 1 MiB), invalid UTF-8
///   replaced. A daemon error inside the stream aborts the response.
/// - Follow: every running container, from exactly where its history ended; replicas
///   that start while the stream is open are attached from their first line (Docker's
///   events are watched from before the containers are listed); a container that stops
///   ends only its own part. A stream that breaks off is not taken for a removal: the
///   daemon is asked, a container still running is followed again from its last line
///   (nothing lost or repeated), the start events are subscribed to again, and a daemon
///   that does not answer aborts the response. Dropping the stream closes every
///   connection to the daemon.
/// - Errors: an unreachable daemon is a 503; no container for the function (or the
///   instance) is a 404.
///
/// ```no_run
/// # async fn run() -> Result<(), faas_logs::Error> {
/// use std::time::Duration;
/// use faas_logs::docker::DockerRequester;
/// use faas_logs::server::LogHandler;
///
/// let docker = DockerRequester::from_env()?.with_function_label("com.openfaas.function");
/// let handler = LogHandler::new(docker, Duration::from_secs(30));
/// # Ok(()) }
/// ```
pub struct DockerRequester {
    api: Arc<dyn DockerApi>,
    host: String,
    function_label: String,
    namespace_label: String,
    default_namespace: String,
}

impl std::fmt::Debug for DockerRequester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerRequester")
            .field("host", &self.host)
            .field("function_label", &self.function_label)
            .field("namespace_label", &self.namespace_label)
            .field("default_namespace", &self.default_namespace)
            .finish()
    }
}

impl DockerRequester {
    /// A requester for the daemon named by `DOCKER_HOST`, or the local socket when it is
    /// unset or empty.
    pub fn from_env() -> Result<Self, Error> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_DOCKER_HOST.to_owned());
        Self::with_host(&host)
    }

    /// A requester for the daemon at `host`: `unix:///path` or `tcp://host:port`.
    pub fn with_host(host: &str) -> Result<Self, Error> {
        let host = Host::parse(host)?;
        let name = host.to_string();
        Ok(Self::over(Arc::new(Client::new(host)), name))
    }

    /// A requester over any implementation of the engine's API: the HTTP client, or the
    /// unit tests' fake engine.
    fn over(api: Arc<dyn DockerApi>, host: String) -> Self {
        DockerRequester {
            api,
            host,
            function_label: "com.openfaas.function".into(),
            namespace_label: "com.openfaas.namespace".into(),
            default_namespace: "openfaas-fn".into(),
        }
    }

    /// The label key whose value is the function's name.
    #[must_use]
    pub fn with_function_label(mut self, key: impl Into<String>) -> Self {
        self.function_label = key.into();
        self
    }

    /// The label key whose value is the function's namespace.
    #[must_use]
    pub fn with_namespace_label(mut self, key: impl Into<String>) -> Self {
        self.namespace_label = key.into();
        self
    }

    /// The namespace of containers without a namespace label, and of requests that name
    /// none (default `openfaas-fn`).
    #[must_use]
    pub fn with_default_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.default_namespace = namespace.into();
        self
    }

    /// The daemon's address, as `unix://...` or `tcp://...`.
    #[must_use]
    pub fn host(&self) -> String {
        self.host.clone()
    }

    /// The daemon's filter: the function label. The namespace is checked on each
    /// container, because a container without a namespace label is in the default one.
    fn labels(&self, request: &Request) -> Vec<String> {
        vec![format!("{}={}", self.function_label, request.name)]
    }

    fn describe(&self, request: &Request) -> String {
        let mut what = format!(
            "no container found for function {:?} (label {}={}) in namespace {:?}",
            request.name, self.function_label, request.name, request.namespace
        );
        if !request.instance.is_empty() {
            let _ = write!(what, " with the name or ID prefix {:?}", request.instance);
        }
        what
    }
}

#[async_trait::async_trait]
impl Requester for DockerRequester {
    async fn query(&self, mut request: Request) -> Result<LogStream, Error> {
        if request.namespace.is_empty() {
            request.namespace.clone_from(&self.default_namespace);
        }
        let labels = self.labels(&request);
        // Subscribe to starts before listing, so that no replica falls in between.
        let subscribed_at = Utc::now();
        let events = if request.follow {
            Some(subscribe(&*self.api, &labels, None).await?)
        } else {
            None
        };
        let summaries: Vec<Summary> = self.api.list(&labels).await?;
        let query = Arc::new(Query {
            api: Arc::clone(&self.api),
            name: request.name.as_str().into(),
            request,
            namespaces: Namespaces {
                label: self.namespace_label.clone(),
                default: self.default_namespace.clone(),
            },
            labels,
            subscribed_at,
        });
        // The replicas are inspected, then opened, several at a time: a function with many
        // replicas does not wait for 2N requests in series before its first line.
        let wanted = summaries.into_iter().filter(|s| {
            let name = s
                .names
                .first()
                .map(|n| n.trim_start_matches('/'))
                .unwrap_or("");
            query.wants(&query.namespaces.of(s.labels.as_ref()), &s.id, name)
        });
        let inspected = futures_util::stream::iter(wanted)
            .map(|s| {
                let query = Arc::clone(&query);
                async move { query.inspect(&s.id).await }
            })
            .buffered(CONCURRENT_REQUESTS);
        let containers: Vec<Container> = still_there(inspected).await?;
        if containers.is_empty() {
            return Err(Error::not_found(self.describe(&query.request)));
        }
        // Open every history now, so that a daemon that refuses (a log driver that cannot
        // be read, say) is answered with a status rather than a broken stream.
        let histories = if query.request.tail == Some(0) {
            Vec::new()
        } else {
            let opened = futures_util::stream::iter(containers.clone().into_iter().enumerate())
                .map(|(i, c)| {
                    let query = Arc::clone(&query);
                    async move { query.open(&c, Part::History).await.map(|lines| (i, lines)) }
                })
                .buffered(CONCURRENT_REQUESTS);
            still_there(opened).await?
        };
        let (tx, rx) = mpsc::channel(OUTBOX_BATCHES);
        let outbox = Outbox {
            tx,
            batch: Vec::new(),
        };
        let task = tokio::spawn(stream_logs(query, containers, histories, events, outbox));
        Ok(task_stream(rx, task))
    }

    /// Instances are selected by container name or ID prefix, and history ends with the
    /// mark; `tail` is applied per container, so the handler still keeps the newest.
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
            .with_selects_instance()
            .with_marks_history_end()
    }

    fn default_namespace(&self) -> Option<String> {
        Some(self.default_namespace.clone())
    }

    /// Every function with a container, running or stopped, by its labels.
    async fn functions(&self) -> Result<Option<Vec<FunctionName>>, Error> {
        let summaries = self
            .api
            .list(std::slice::from_ref(&self.function_label))
            .await?;
        let namespaces = Namespaces {
            label: self.namespace_label.clone(),
            default: self.default_namespace.clone(),
        };
        let mut names: Vec<FunctionName> = summaries
            .iter()
            .filter_map(|s| {
                let labels = s.labels.as_ref()?;
                let name = labels.get(&self.function_label).filter(|n| !n.is_empty())?;
                Some(FunctionName::new(
                    &*namespaces.of(Some(labels)),
                    name.as_str(),
                ))
            })
            .collect();
        names.sort();
        names.dedup();
        Ok(Some(names))
    }
}

/// How many requests to the daemon one query has in flight while it starts.
const CONCURRENT_REQUESTS: usize = 8;

/// The answers of a stream of requests about containers, in order, less the containers
/// removed since the listing (404); any other error is the query's.
async fn still_there<T>(answers: impl Stream<Item = Result<T, ApiError>>) -> Result<Vec<T>, Error> {
    let mut kept = Vec::new();
    let mut answers = std::pin::pin!(answers);
    while let Some(answer) = answers.next().await {
        match answer {
            Ok(item) => kept.push(item),
            Err(ApiError::Gone(_)) => {}
            Err(ApiError::Failed(e)) => return Err(e),
        }
    }
    Ok(kept)
}

/// The task behind a query: history merged by time, the mark, then live lines.
async fn stream_logs(
    query: Arc<Query>,
    containers: Vec<Container>,
    histories: Vec<(usize, Lines)>,
    events: Option<Events>,
    mut out: Outbox,
) {
    let mut tracked: Vec<Tracked> = containers.into_iter().map(Tracked::new).collect();
    match merge_history(&query, &mut tracked, histories, &mut out).await {
        Ok(true) => {}
        Ok(false) => return, // the reader left
        Err(e) => {
            out.push(Err(e)).await;
            out.flush().await;
            return;
        }
    }
    if !out.push(Ok(Event::HistoryEnd)).await || !query.request.follow {
        out.flush().await;
        return;
    }
    let mut following = Following::start(query, tracked, events);
    if let Err(e) = following.run(&mut out).await {
        tracing::warn!(error = %e.chain(), "lost the Docker daemon during a follow");
        out.push(Err(e)).await;
        out.flush().await;
    }
}
