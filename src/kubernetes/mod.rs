//! [`KubernetesRequester`]: the logs of functions that run as Kubernetes pods, as
//! faas-netes deploys them, read through the API server's pod log subresource.
//!
//! It finds a function's pods as faas-netes does (the label `faas_function=<name>`, in
//! the request's namespace, `openfaas-fn` by default) and reads the log of the
//! container named like the function (or the pod's only container), with timestamps.
//! Where faas-netes' endpoint falls short, it keeps the contract:
//!
//! | | faas-netes | `KubernetesRequester` |
//! |---|---|---|
//! | `tail=N` with 3 replicas | up to 3×N lines, interleaved, unsorted | the newest N across the replicas, in time order |
//! | no `since` or no `tail` | the last five minutes | the whole history (every replica's merged by time) |
//! | `namespace` | empty | filled |
//! | no pods (scaled to zero) | an error | 200 and no lines; a follow waits for a pod |
//! | a function that does not exist | an error | 404 |
//! | pods started during a follow | followed | followed, from their first line |
//! | pods that end during a follow | ignored | their last lines delivered |
//! | a container restarted during a follow | its stream ends | its new log followed |
//! | the watch expires (410 Gone) | - | listed again, no line lost or repeated |
//! | an RBAC refusal | the API's error | names the verb and resource to grant |
//! | the API server fails during a follow | - | the response is aborted: the client sees it broken, not ended |
//!
//! With [`KubernetesRequester::with_previous`], the history also holds the log of a
//! restarted container's previous run, its instance marked `<pod> (previous)`.
//!
//! ```no_run
//! use std::time::Duration;
//! use faas_logs::kubernetes::KubernetesRequester;
//! use faas_logs::server::LogHandler;
//!
//! # async fn run() -> Result<(), faas_logs::Error> {
//! // A kubeconfig ($KUBECONFIG or ~/.kube/config), else the pod's service account.
//! let requester = KubernetesRequester::infer().await?;
//! let handler = LogHandler::new(requester, Duration::from_secs(60));
//! # Ok(()) }
//! ```

mod follow;
mod lines;
mod pods;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use kube::runtime::watcher;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use lines::Resume;
pub use lines::{LogLine, LogReader};
use pods::FunctionPod;

use crate::ordered::TimeOrdered;
use crate::requester::{Capabilities, FunctionName};
use crate::{Error, Event, LogStream, Message, Request, Requester, SharedStr};

pub use kube::Client;

/// The label faas-netes puts on a function's Deployment and pods.
pub const FUNCTION_LABEL: &str = "faas_function";

/// Reads function logs from pods through the Kubernetes API. See the [module](self).
///
/// It needs, in each namespace it answers for: `list` and `watch` on `pods`, `get` on
/// `pods/log`, and `list` on `deployments` (group `apps`); across namespaces, `list` on
/// `deployments` for the function list (without it, the list is the default
/// namespace's).
#[derive(Clone)]
pub struct KubernetesRequester {
    client: Client,
    label: String,
    default_namespace: String,
    previous: bool,
}

impl std::fmt::Debug for KubernetesRequester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesRequester")
            .field("label", &self.label)
            .field("default_namespace", &self.default_namespace)
            .field("previous", &self.previous)
            .finish_non_exhaustive()
    }
}

impl KubernetesRequester {
    /// Reads through `client`, with faas-netes' label and the namespace `openfaas-fn`.
    #[must_use]
    pub fn new(client: Client) -> Self {
        KubernetesRequester {
            client,
            label: FUNCTION_LABEL.to_owned(),
            default_namespace: "openfaas-fn".to_owned(),
            previous: false,
        }
    }

    /// A client configured as `kubectl` would be: the kubeconfig in `$KUBECONFIG` or
    /// `~/.kube/config`, else the service account of the pod it runs in.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when neither gives a configuration.
    pub async fn infer() -> Result<Self, Error> {
        let client = Client::try_default().await.map_err(|e| {
            Error::unavailable(format!(
                "no Kubernetes configuration: neither a kubeconfig nor a pod's service account was found ({e})"
            ))
        })?;
        Ok(Self::new(client))
    }

    /// The label whose value names a pod's (and Deployment's) function.
    #[must_use]
    pub fn with_function_label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// The namespace of requests that name none.
    #[must_use]
    pub fn with_default_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.default_namespace = namespace.into();
        self
    }

    /// Whether history also holds the previous run's log of restarted containers
    /// (`previous=true`), with the instance `<pod> (previous)`.
    #[must_use]
    pub fn with_previous(mut self, previous: bool) -> Self {
        self.previous = previous;
        self
    }
}

/// What the handler can leave to this requester: it marks history's end, and selects
/// the instance (by pod name, which also keeps the `(previous)` lines of that pod).
const CAPABILITIES: Capabilities = Capabilities::NONE
    .with_marks_history_end()
    .with_selects_instance();

#[async_trait::async_trait]
impl Requester for KubernetesRequester {
    async fn query(&self, request: Request) -> Result<LogStream, Error> {
        let namespace = if request.namespace.is_empty() {
            self.default_namespace.clone()
        } else {
            request.namespace.clone()
        };
        let query = Arc::new(Query {
            pods: Api::namespaced(self.client.clone(), &namespace),
            selector: format!("{}={}", self.label, request.name),
            function: request.name.clone(),
            name: request.name.as_str().into(),
            namespace: namespace.as_str().into(),
            instance: Some(request.instance.clone()).filter(|i| !i.is_empty()),
            since: request.since,
            tail: request.tail,
            follow: request.follow,
            previous: self.previous,
        });
        let (tx, mut rx) = mpsc::channel(1024);
        if request.follow {
            let config = watcher::Config::default().labels(&query.selector);
            let mut watch = watcher(query.pods.clone(), config).boxed();
            let listed = follow::initial_list(&query, &mut watch).await?;
            let pods = self.function_pods(&query, &listed).await?;
            let watching = crate::meter::Open::new(crate::meter::KUBERNETES_WATCHES);
            tokio::spawn(async move {
                let _watching = watching;
                follow::run(query, pods, watch, tx).await;
            });
        } else {
            let listed = query
                .pods
                .list(&ListParams::default().labels(&query.selector))
                .await
                .map_err(|e| api_error(e, "list", "pods", &query.namespace))?;
            let pods = self.function_pods(&query, &listed.items).await?;
            tokio::spawn(async move {
                let mut tasks = JoinSet::new();
                if let Err(e) = history(&query, &pods, &tx, &mut tasks).await {
                    let _ = tx.send(Err(e)).await;
                } else {
                    let _ = tx.send(Ok(Event::HistoryEnd)).await;
                }
            });
        }
        Ok(Box::pin(futures_util::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
        })))
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    /// The values of the function label on Deployments, in every namespace; in the
    /// default namespace alone when listing across namespaces is not allowed.
    async fn functions(&self) -> Result<Option<Vec<FunctionName>>, Error> {
        let params = ListParams::default().labels(&self.label);
        let all: Api<Deployment> = Api::all(self.client.clone());
        let listed = match all.list(&params).await {
            Ok(list) => list,
            Err(kube::Error::Api(status)) if status.code == 403 => {
                let here: Api<Deployment> =
                    Api::namespaced(self.client.clone(), &self.default_namespace);
                here.list(&params).await.map_err(|e| {
                    api_error(e, "list", "deployments.apps", &self.default_namespace)
                })?
            }
            Err(e) => return Err(api_error(e, "list", "deployments.apps", "(all)")),
        };
        let valid = |s: &str| crate::request::valid_name("name", s.into(), "").is_ok();
        let mut names: Vec<FunctionName> = listed
            .items
            .iter()
            .filter_map(|d| {
                let name = d.metadata.labels.as_ref()?.get(&self.label)?;
                let namespace = d.metadata.namespace.as_deref().unwrap_or_default();
                (valid(name) && !name.is_empty()).then(|| FunctionName::new(namespace, name))
            })
            .collect();
        names.sort();
        names.dedup();
        Ok(Some(names))
    }

    fn default_namespace(&self) -> Option<String> {
        Some(self.default_namespace.clone())
    }
}

impl KubernetesRequester {
    /// The pods to read, of those listed: the instance's alone when one is named. A
    /// function with no pods exists when a Deployment carries its label; else 404.
    async fn function_pods(
        &self,
        query: &Query,
        listed: &[Pod],
    ) -> Result<Vec<FunctionPod>, Error> {
        if listed.is_empty() {
            let deployments: Api<Deployment> =
                Api::namespaced(self.client.clone(), &query.namespace);
            let found = deployments
                .list(&ListParams::default().labels(&query.selector).limit(1))
                .await
                .map_err(|e| api_error(e, "list", "deployments.apps", &query.namespace))?;
            if found.items.is_empty() {
                return Err(Error::not_found(format!(
                    "no function {} in namespace {}: no pod or Deployment has the label {}",
                    query.function, query.namespace, query.selector
                )));
            }
        }
        let mut pods = Vec::new();
        for pod in listed {
            if query.wants(pod) {
                pods.push(FunctionPod::of(pod, &query.function)?);
            }
        }
        if let (Some(instance), true) = (&query.instance, pods.is_empty() && !listed.is_empty()) {
            return Err(Error::not_found(format!(
                "function {} in namespace {} has no pod {instance}",
                query.function, query.namespace
            )));
        }
        Ok(pods)
    }
}

/// One request, as every part of its read needs it.
struct Query {
    pods: Api<Pod>,
    selector: String,
    function: String,
    name: SharedStr,
    namespace: SharedStr,
    instance: Option<String>,
    since: Option<DateTime<Utc>>,
    tail: Option<usize>,
    follow: bool,
    previous: bool,
}

impl Query {
    /// Whether `pod` is one this request reads (the instance asked for, or any).
    fn wants(&self, pod: &Pod) -> bool {
        match &self.instance {
            Some(instance) => pod.metadata.name.as_deref() == Some(instance.as_str()),
            None => true,
        }
    }

    fn message(&self, instance: &SharedStr, line: LogLine) -> Message {
        Message::new(self.name.clone(), line.timestamp, line.text)
            .with_namespace(self.namespace.clone())
            .with_instance(instance.clone())
    }

    /// The log parameters every read shares.
    fn log_params(&self, container: &str) -> LogParams {
        LogParams {
            container: Some(container.to_owned()),
            timestamps: true,
            ..LogParams::default()
        }
    }
}

/// `since` to its whole second, which the API takes (the handler drops what is older).
fn since_time(since: DateTime<Utc>) -> Option<k8s_openapi::jiff::Timestamp> {
    k8s_openapi::jiff::Timestamp::from_second(since.timestamp()).ok()
}

/// How many lines each history reader may read ahead of the merge.
const HISTORY_BATCH: usize = 256;

/// One log read in history: a pod's container, this run's or the previous one's.
struct Source {
    instance: SharedStr,
    /// Its index in the pods, for the current run's log (whose end live lines follow).
    pod: Option<usize>,
    lines: mpsc::Receiver<Result<LogLine, Error>>,
}

/// Sends the history of `pods`, merged by time; returns where each pod's log was left.
/// Every pod's log is read at once, by tasks in `tasks`.
async fn history(
    query: &Arc<Query>,
    pods: &[FunctionPod],
    tx: &mpsc::Sender<Result<Event, Error>>,
    tasks: &mut JoinSet<()>,
) -> Result<Vec<Resume>, Error> {
    let mut sources = Vec::new();
    let mut resumes = vec![Resume::default(); pods.len()];
    // `tail=0` sends no history, but a follow still needs where each log is now: its
    // newest line, read and not sent.
    let cursors_only = query.tail == Some(0);
    if cursors_only && !query.follow {
        return Ok(resumes);
    }
    for (index, pod) in pods.iter().enumerate() {
        let mut params = query.log_params(&pod.container);
        let tail = if cursors_only { Some(1) } else { query.tail };
        params.tail_lines = tail.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        params.since_time = query.since.and_then(since_time);
        let runs = if query.previous && pod.state.restarts > 0 && !cursors_only {
            vec![false, true]
        } else {
            vec![false]
        };
        for previous in runs {
            let (lines_tx, lines) = mpsc::channel(HISTORY_BATCH);
            let instance: SharedStr = if previous {
                format!("{} (previous)", pod.name).as_str().into()
            } else {
                pod.name.as_str().into()
            };
            let params = LogParams {
                previous,
                ..params.clone()
            };
            tasks.spawn(read_history(
                Arc::clone(query),
                pod.name.clone(),
                params,
                lines_tx,
            ));
            sources.push(Source {
                instance,
                pod: (!previous).then_some(index),
                lines,
            });
        }
    }
    // The oldest head line of every source, merged: each source is in time order.
    let mut heads = BinaryHeap::new();
    for (k, source) in sources.iter_mut().enumerate() {
        if let Some(line) = source.lines.recv().await.transpose()? {
            heads.push(Reverse(TimeOrdered::new(line.timestamp, k as u64, line)));
        }
    }
    while let Some(Reverse(head)) = heads.pop() {
        let (_, k) = head.key();
        let k = k as usize;
        let line = head.item;
        let source = &mut sources[k];
        if let Some(pod) = source.pod {
            resumes[pod].delivered(&line);
        }
        if !cursors_only {
            let message = query.message(&source.instance, line);
            if tx.send(Ok(Event::Message(message))).await.is_err() {
                return Ok(resumes);
            }
        }
        if let Some(line) = source.lines.recv().await.transpose()? {
            heads.push(Reverse(TimeOrdered::new(line.timestamp, k as u64, line)));
        }
    }
    Ok(resumes)
}

/// Reads one log to its end into `lines`. A log that is not there (a container not yet
/// started, a pod just deleted, no previous run) is an empty one.
async fn read_history(
    query: Arc<Query>,
    pod: String,
    params: LogParams,
    lines: mpsc::Sender<Result<LogLine, Error>>,
) {
    let body = match query.pods.log_stream(&pod, &params).await {
        Ok(body) => body,
        Err(kube::Error::Api(status)) if matches!(status.code, 400 | 404) => {
            tracing::debug!(pod, "no log to read: {}", status.message);
            return;
        }
        Err(e) => {
            let _ = lines
                .send(Err(api_error(e, "get", "pods/log", &query.namespace)))
                .await;
            return;
        }
    };
    let mut reader = LogReader::new(body);
    let _streaming = crate::meter::Open::new(crate::meter::KUBERNETES_LOG_STREAMS);
    loop {
        let line = match reader.next().await {
            Ok(Some(line)) => Ok(line),
            Ok(None) => return,
            Err(e) => Err(broken_log(&pod, &e)),
        };
        let failed = line.is_err();
        if lines.send(line).await.is_err() || failed {
            return;
        }
    }
}

/// A log body that broke off: the response is aborted, so the reader sees it broken.
fn broken_log(pod: &str, e: &std::io::Error) -> Error {
    Error::unavailable(format!("the log of pod {pod} broke off: {e}"))
}

/// An error of the Kubernetes API, as a sentence that says what to do.
fn api_error(e: kube::Error, verb: &str, resource: &str, namespace: &str) -> Error {
    let message = match &e {
        kube::Error::Api(status) if status.code == 403 => format!(
            "Kubernetes refused to {verb} {resource} in namespace {namespace}: grant the provider's \
             service account the verb \"{verb}\" on \"{resource}\" there (RBAC). The API said: {}",
            status.message
        ),
        kube::Error::Api(status) if status.code == 404 => {
            return Error::not_found(format!(
                "Kubernetes found no {resource} to {verb} in namespace {namespace}: {}",
                status.message
            ))
        }
        kube::Error::Api(status) => format!(
            "Kubernetes answered {} to {verb} {resource} in namespace {namespace}: {}",
            status.code, status.message
        ),
        _ => {
            return Error::unavailable(format!(
                "the Kubernetes API server cannot be reached to {verb} {resource}: {}",
                Error::describe(&e)
            ))
            .with_source(e)
        }
    };
    Error::other(message).with_source(e)
}
