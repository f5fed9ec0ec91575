//! [`DockerRequester`]: functions that run as Docker containers, their logs read from the
//! Docker Engine API.

mod client;
mod frames;

use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use chrono::{DateTime, Utc};
use futures_core::Stream;
use futures_util::stream::{SelectAll, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;

use self::client::{Client, Host};
use self::frames::{Line, Multiplexed, Raw};
use crate::{Error, Event, LogStream, Message, Request, Requester};

/// For the benches: lines of a multiplexed stream read in `chunk`-byte pieces.
pub(crate) fn demux_count(stream: &[u8], chunk: usize) -> usize {
    let mut demux = Multiplexed::new();
    let mut out = Vec::with_capacity(1024);
    let mut lines = 0;
    for piece in stream.chunks(chunk.max(1)) {
        if demux.push(piece, &mut out).is_err() {
            break;
        }
        lines += out.len();
        out.clear();
    }
    let _ = demux.finish(&mut out);
    lines + out.len()
}

/// For the fuzz targets: `(stderr, text)` of each line of a multiplexed stream read in
/// `chunk`-byte pieces, and whether the stream was refused.
#[cfg(fuzzing)]
pub(crate) fn fuzz_demux(stream: &[u8], chunk: usize) -> (Vec<(bool, String)>, bool) {
    let mut demux = Multiplexed::new();
    let mut out = Vec::new();
    let refused = stream
        .chunks(chunk.max(1))
        .try_for_each(|piece| demux.push(piece, &mut out))
        .and_then(|()| demux.finish(&mut out))
        .is_err();
    let lines = out
        .into_iter()
        .map(|l| (l.stream == crate::OutputStream::Stderr, l.text))
        .collect();
    (lines, refused)
}

/// For the fuzz targets: the texts of a TTY stream read in `chunk`-byte pieces.
#[cfg(fuzzing)]
pub(crate) fn fuzz_raw(stream: &[u8], chunk: usize) -> Vec<String> {
    let mut raw = Raw::new();
    let mut out = Vec::new();
    for piece in stream.chunks(chunk.max(1)) {
        raw.push(piece, &mut out);
    }
    raw.finish(&mut out);
    out.into_iter().map(|l| l.text).collect()
}

/// The socket a local Docker daemon listens on.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// Reads function logs from Docker.
///
/// A function's instances are the containers that carry its label (by default
/// `com.openfaas.function=<name>`) in the request's namespace: a container's namespace is
/// its namespace label (`com.openfaas.namespace`), or the provider's default namespace
/// (`openfaas-fn` unless [`DockerRequester::default_namespace`] says otherwise) when it has
/// none; a request without a namespace means the default one, as faas-netes and faasd
/// do. Every message carries its container's namespace. An instance is named by its
/// container name; `instance` in a request selects by that name or by a container ID
/// prefix.
///
/// - History: each container's log, `since` to the nanosecond and `tail` passed to Docker,
///   put in timestamp order (Docker's log file can hold a stderr line before an older
///   stdout line; a window of 256 lines per container puts them back) and merged across
///   containers by timestamp (the handler keeps the newest `tail`).
/// - Lines: stdout and stderr (recorded in [`Message::stream`]), TTY containers, the
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
/// use faas_logs::{DockerRequester, LogHandler};
///
/// let docker = DockerRequester::from_env()?.function_label("com.openfaas.function");
/// let handler = LogHandler::new(docker, Duration::from_secs(30));
/// # Ok(()) }
/// ```
pub struct DockerRequester {
    client: Arc<Client>,
    function_label: String,
    namespace_label: String,
    default_namespace: String,
}

impl std::fmt::Debug for DockerRequester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerRequester")
            .field("host", &self.client.host.to_string())
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
        Ok(DockerRequester {
            client: Arc::new(Client::new(Host::parse(host)?)),
            function_label: "com.openfaas.function".into(),
            namespace_label: "com.openfaas.namespace".into(),
            default_namespace: "openfaas-fn".into(),
        })
    }

    /// The label key whose value is the function's name.
    #[must_use]
    pub fn function_label(mut self, key: impl Into<String>) -> Self {
        self.function_label = key.into();
        self
    }

    /// The label key whose value is the function's namespace.
    #[must_use]
    pub fn namespace_label(mut self, key: impl Into<String>) -> Self {
        self.namespace_label = key.into();
        self
    }

    /// The namespace of containers without a namespace label, and of requests that name
    /// none (default `openfaas-fn`).
    #[must_use]
    pub fn default_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.default_namespace = namespace.into();
        self
    }

    /// The daemon's address, as `unix://...` or `tcp://...`.
    pub fn host(&self) -> String {
        self.client.host.to_string()
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

/// A time as the API's `since` takes it, to the nanosecond: `seconds.nanoseconds`.
fn api_time(t: DateTime<Utc>) -> String {
    format!("{}.{:09}", t.timestamp(), t.timestamp_subsec_nanos())
}

/// `filters=` for the API: a JSON map of lists, percent-encoded.
fn filters(pairs: &[(&str, &[String])]) -> String {
    let map: HashMap<&str, &[String]> = pairs.iter().copied().collect();
    let json = serde_json::to_string(&map).unwrap_or_default();
    form_urlencoded::byte_serialize(json.as_bytes()).collect()
}

/// Where a container's namespace comes from: its label, or the provider's default.
struct Namespaces {
    label: String,
    default: String,
}

impl Namespaces {
    fn of(&self, labels: Option<&HashMap<String, String>>) -> String {
        labels
            .and_then(|labels| labels.get(&self.label))
            .filter(|ns| !ns.is_empty())
            .unwrap_or(&self.default)
            .clone()
    }
}

/// A container of the function, as the logs need it.
#[derive(Debug, Clone)]
struct Container {
    id: String,
    name: String,
    namespace: String,
    running: bool,
    tty: bool,
}

#[derive(Deserialize)]
struct Summary {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Names", default)]
    names: Vec<String>,
    #[serde(rename = "Labels", default)]
    labels: Option<HashMap<String, String>>,
}

#[derive(Deserialize)]
struct Inspect {
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Config")]
    config: InspectConfig,
    #[serde(rename = "State")]
    state: InspectState,
}

#[derive(Deserialize)]
struct InspectConfig {
    #[serde(rename = "Tty", default)]
    tty: bool,
    #[serde(rename = "Labels", default)]
    labels: Option<HashMap<String, String>>,
}

#[derive(Deserialize)]
struct InspectState {
    #[serde(rename = "Running", default)]
    running: bool,
}

/// Where a container's lines have been read up to: the newest timestamp sent and how many
/// lines carried exactly that timestamp (Docker's `since` includes it).
#[derive(Debug, Clone, Copy)]
struct Cursor {
    last: DateTime<Utc>,
    at_last: usize,
}

impl Cursor {
    fn advance(cursor: &mut Option<Cursor>, ts: DateTime<Utc>) {
        match cursor {
            Some(c) if c.last == ts => c.at_last += 1,
            Some(c) if c.last > ts => {}
            _ => {
                *cursor = Some(Cursor {
                    last: ts,
                    at_last: 1,
                })
            }
        }
    }
}

/// What a query needs once the stream runs: shared by its task.
struct Query {
    client: Arc<Client>,
    prefix: String,
    /// With its namespace resolved: never empty.
    request: Request,
    namespaces: Namespaces,
    /// The daemon's label filter for the function's containers.
    labels: Vec<String>,
    /// When the start events were first subscribed to: a new subscription replays from
    /// there, so that no start falls into a gap.
    subscribed_at: DateTime<Utc>,
}

impl Query {
    async fn inspect(&self, id: &str) -> Result<Container, Error> {
        let info: Inspect = self
            .client
            .get_json(&format!("{}/containers/{id}/json", self.prefix))
            .await?;
        Ok(Container {
            id: id.to_owned(),
            name: info.name.trim_start_matches('/').to_owned(),
            namespace: self.namespaces.of(info.config.labels.as_ref()),
            running: info.state.running,
            tty: info.config.tty,
        })
    }

    /// Opens a container's log: `follow` from `cursor` (or the request's `since`), or
    /// history with the request's `tail`.
    async fn open(
        &self,
        container: &Container,
        follow: bool,
        cursor: Option<Cursor>,
    ) -> Result<Lines, Error> {
        let mut query = format!(
            "{}/containers/{}/logs?stdout=1&stderr=1&timestamps=1&follow={}",
            self.prefix,
            container.id,
            u8::from(follow)
        );
        let since = cursor.map(|c| c.last).or(self.request.since);
        if let Some(since) = since {
            query.push_str("&since=");
            query.push_str(&api_time(since));
        }
        match (follow, self.request.tail) {
            // Live lines only: history was already sent (or not wanted).
            (true, Some(0)) if cursor.is_none() => query.push_str("&tail=0"),
            (false, Some(n)) => {
                let _ = write!(query, "&tail={n}");
            }
            _ => query.push_str("&tail=all"),
        }
        let response = self.client.get(&query).await?.ok().await?;
        Ok(Lines {
            response,
            framing: if container.tty {
                Framing::Raw(Raw::new())
            } else {
                Framing::Multiplexed(Multiplexed::new())
            },
            ready: std::collections::VecDeque::new(),
            skip: cursor.map_or(0, |c| c.at_last),
            skip_at: cursor.map(|c| c.last),
            ended: false,
        })
    }

    /// Whether a container is one the request asks for: in its namespace, and the instance
    /// named (by container name or ID prefix), if any.
    fn wants(&self, namespace: &str, id: &str, name: &str) -> bool {
        let instance = &self.request.instance;
        namespace == self.request.namespace
            && (instance.is_empty() || name == instance || id.starts_with(instance.as_str()))
    }

    fn message(&self, container: &Container, line: Line) -> Message {
        Message {
            name: self.request.name.clone(),
            namespace: container.namespace.clone(),
            instance: container.name.clone(),
            timestamp: line.timestamp,
            text: line.text,
            stream: Some(line.stream),
        }
    }
}

enum Framing {
    Multiplexed(Multiplexed),
    Raw(Raw),
}

/// One container's log as lines.
struct Lines {
    response: client::Response,
    framing: Framing,
    ready: std::collections::VecDeque<Line>,
    /// Lines at `skip_at` still to drop: already sent before a re-attach.
    skip: usize,
    skip_at: Option<DateTime<Utc>>,
    ended: bool,
}

impl Lines {
    async fn next(&mut self) -> Option<Result<Line, Error>> {
        loop {
            if let Some(line) = self.ready.pop_front() {
                if self.skip > 0 && Some(line.timestamp) == self.skip_at {
                    self.skip -= 1;
                    continue;
                }
                self.skip = 0;
                return Some(Ok(line));
            }
            if self.ended {
                return None;
            }
            let mut out = Vec::new();
            let fed = match self.response.chunk().await {
                Some(Ok(bytes)) => match &mut self.framing {
                    Framing::Multiplexed(m) => m.push(&bytes, &mut out),
                    Framing::Raw(r) => {
                        r.push(&bytes, &mut out);
                        Ok(())
                    }
                },
                Some(Err(e)) => Err(e),
                None => {
                    self.ended = true;
                    match &mut self.framing {
                        Framing::Multiplexed(m) => m.finish(&mut out),
                        Framing::Raw(r) => {
                            r.finish(&mut out);
                            Ok(())
                        }
                    }
                }
            };
            self.ready.extend(out);
            if let Err(e) = fed {
                self.ended = true;
                self.ready.clear();
                return Some(Err(e));
            }
        }
    }
}

#[async_trait::async_trait]
impl Requester for DockerRequester {
    async fn query(&self, mut request: Request) -> Result<LogStream, Error> {
        if request.namespace.is_empty() {
            request.namespace.clone_from(&self.default_namespace);
        }
        let prefix = self.client.prefix().await?;
        let labels = self.labels(&request);
        // Subscribe to starts before listing, so that no replica falls in between.
        let subscribed_at = Utc::now();
        let events = if request.follow {
            Some(subscribe(&self.client, &prefix, &labels, None).await?)
        } else {
            None
        };
        let summaries: Vec<Summary> = self
            .client
            .get_json(&format!(
                "{prefix}/containers/json?all=1&filters={}",
                filters(&[("label", &labels)])
            ))
            .await?;
        let query = Arc::new(Query {
            client: Arc::clone(&self.client),
            prefix,
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
                    async move { query.open(&c, false, None).await.map(|lines| (i, lines)) }
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
        Ok(Box::pin(TaskStream {
            rx,
            ready: Vec::new().into_iter(),
            task,
        }))
    }

    fn selects_instance(&self) -> bool {
        true
    }

    fn marks_history_end(&self) -> bool {
        true
    }
}

/// How many requests to the daemon one query has in flight while it starts.
const CONCURRENT_REQUESTS: usize = 8;

/// The answers of a stream of requests about containers, in order, less the containers
/// removed since the listing (404); any other error is the query's.
async fn still_there<T>(answers: impl Stream<Item = Result<T, Error>>) -> Result<Vec<T>, Error> {
    let mut kept = Vec::new();
    let mut answers = std::pin::pin!(answers);
    while let Some(answer) = answers.next().await {
        match answer {
            Ok(item) => kept.push(item),
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(kept)
}

type Batch = Vec<Result<Event, Error>>;

/// The most events in one batch, and the most batches between the task and the response:
/// at most about a thousand lines are in flight whatever the client's speed.
const OUTBOX_BATCH: usize = 256;
const OUTBOX_BATCHES: usize = 4;

/// Events on their way from a query's task to the response, in batches: one channel
/// operation (and at most one wake-up) per batch rather than per line. A batch goes when
/// it is full or the task is about to wait, so a live line is never held back.
struct Outbox {
    tx: mpsc::Sender<Batch>,
    batch: Batch,
}

impl Outbox {
    /// Queues an event; false once the reader has left.
    async fn push(&mut self, event: Result<Event, Error>) -> bool {
        self.batch.push(event);
        if self.batch.len() >= OUTBOX_BATCH {
            return self.flush().await;
        }
        true
    }

    /// Sends what is queued; false once the reader has left.
    async fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return !self.tx.is_closed();
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(OUTBOX_BATCH));
        self.tx.send(batch).await.is_ok()
    }
}

/// The next line of `lines`; what is queued goes out first if the line is not ready, so
/// that the response encodes while the daemon produces (BENCHMARKS.md compares this with
/// holding history to full batches).
async fn next_line(lines: &mut Lines, out: &mut Outbox) -> Option<Result<Line, Error>> {
    // Dropping a pending `next` loses nothing: it waits only for the next chunk.
    if let Some(ready) = futures_util::FutureExt::now_or_never(lines.next()) {
        return ready;
    }
    out.flush().await;
    lines.next().await
}

/// The receiving end of a query's task; dropping it ends the task and so every
/// connection the task holds.
struct TaskStream {
    rx: mpsc::Receiver<Batch>,
    ready: std::vec::IntoIter<Result<Event, Error>>,
    task: tokio::task::JoinHandle<()>,
}

impl Stream for TaskStream {
    type Item = Result<Event, Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(event) = self.ready.next() {
                return Poll::Ready(Some(event));
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(batch)) => self.ready = batch.into_iter(),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for TaskStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Subscribes to the start events of the function's containers, from `since` if given.
async fn subscribe(
    client: &Client,
    prefix: &str,
    labels: &[String],
    since: Option<DateTime<Utc>>,
) -> Result<Events, Error> {
    let filter = filters(&[
        ("type", &["container".to_owned()]),
        ("event", &["start".to_owned()]),
        ("label", labels),
    ]);
    let mut path = format!("{prefix}/events?filters={filter}");
    if let Some(since) = since {
        path.push_str("&since=");
        path.push_str(&api_time(since));
    }
    let response = client.get(&path).await?.ok().await?;
    Ok(Events {
        response,
        buf: Vec::new(),
    })
}

/// The daemon's event stream: one JSON object per line.
struct Events {
    response: client::Response,
    buf: Vec<u8>,
}

#[derive(Deserialize)]
struct StartEvent {
    /// Older API versions name the container here...
    #[serde(default)]
    id: String,
    /// ...newer ones only here.
    #[serde(rename = "Actor", default)]
    actor: Option<Actor>,
}

#[derive(Deserialize)]
struct Actor {
    #[serde(rename = "ID", default)]
    id: String,
}

impl Events {
    /// The ID of the next container that started; `None` when the stream ends.
    async fn next_start(&mut self) -> Option<Result<String, Error>> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                match serde_json::from_slice::<StartEvent>(&line) {
                    Ok(event) => {
                        let id = event.actor.map(|a| a.id).filter(|id| !id.is_empty());
                        match id.or((!event.id.is_empty()).then_some(event.id)) {
                            Some(id) => return Some(Ok(id)),
                            None => continue,
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "an unreadable Docker event");
                        continue;
                    }
                }
            }
            match self.response.chunk().await? {
                Ok(bytes) => self.buf.extend_from_slice(&bytes),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// A line of one container in the live phase, or the end of that container's stream.
enum Live {
    Line(usize, Line),
    /// The stream ended or broke off: the container stopped, was removed, or the
    /// connection to the daemon went. Which one, only the daemon can tell.
    Ended(usize),
    /// The stream itself was bad (a daemon error frame, a malformed frame).
    Failed(Error),
}

type LiveStream = Pin<Box<dyn Stream<Item = Live> + Send>>;

/// A container's follow stream as [`Live`] items, ending with [`Live::Ended`].
fn follow(
    query: Arc<Query>,
    index: usize,
    container: Container,
    cursor: Option<Cursor>,
) -> LiveStream {
    let opened = async move {
        match query.open(&container, true, cursor).await {
            Ok(lines) => Some(lines),
            Err(e) => {
                tracing::debug!(error = %e.chain(), container = %container.name, "cannot follow a container");
                None
            }
        }
    };
    let lines = futures_util::stream::once(opened).flat_map(move |lines| {
        futures_util::stream::unfold(lines, move |lines| async move {
            let mut lines = lines?;
            match lines.next().await {
                Some(Ok(line)) => Some((Live::Line(index, line), Some(lines))),
                Some(Err(e @ Error::Other { .. })) => Some((Live::Failed(e), None)),
                Some(Err(e)) => {
                    tracing::debug!(error = %e.chain(), "a container's follow stream broke off");
                    None
                }
                None => None,
            }
        })
    });
    Box::pin(lines.chain(futures_util::stream::iter([Live::Ended(index)])))
}

/// How often in a row a running container's stream may end, or the event stream break,
/// and be opened again before the response gives up as broken.
const MAX_REOPENS: u32 = 3;

/// What the live loop follows: the containers' streams and the start events.
struct Following {
    live: SelectAll<LiveStream>,
    attached: HashSet<usize>,
    /// Reopens in a row per container, reset by a line.
    reopens: HashMap<usize, u32>,
    events: Option<Events>,
    /// Resubscriptions in a row, reset by an event.
    resubscribes: u32,
}

impl Following {
    /// Follows container `i` from `cursor` (or the request's `since`).
    fn follow(
        &mut self,
        query: &Arc<Query>,
        i: usize,
        container: Container,
        cursor: Option<Cursor>,
    ) {
        self.attached.insert(i);
        self.live
            .push(follow(Arc::clone(query), i, container, cursor));
    }
}

/// The task behind a query: history merged by time, the mark, then live lines.
async fn stream_logs(
    query: Arc<Query>,
    mut containers: Vec<Container>,
    histories: Vec<(usize, Lines)>,
    events: Option<Events>,
    mut out: Outbox,
) {
    let mut cursors: Vec<Option<Cursor>> = vec![None; containers.len()];
    match merge_history(&query, &containers, histories, &mut cursors, &mut out).await {
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
    let mut following = Following {
        live: SelectAll::new(),
        attached: HashSet::new(),
        reopens: HashMap::new(),
        events,
        resubscribes: 0,
    };
    for (i, c) in containers.iter().enumerate() {
        if c.running {
            following.follow(&query, i, c.clone(), cursors[i]);
        }
    }
    if let Err(e) = live_loop(
        &query,
        &mut containers,
        &mut cursors,
        &mut following,
        &mut out,
    )
    .await
    {
        tracing::warn!(error = %e.chain(), "lost the Docker daemon during a follow");
        out.push(Err(e)).await;
        out.flush().await;
    }
}

/// Sends live lines until the reader leaves; an error means the daemon is gone.
async fn live_loop(
    query: &Arc<Query>,
    containers: &mut Vec<Container>,
    cursors: &mut Vec<Option<Cursor>>,
    f: &mut Following,
    out: &mut Outbox,
) -> Result<(), Error> {
    loop {
        // Lines that are ready join the batch; the batch goes before any wait.
        let ready = match f.live.is_empty() {
            true => None,
            false => futures_util::FutureExt::now_or_never(f.live.next()),
        };
        let item = match ready {
            Some(item) => item,
            None => {
                if !out.flush().await {
                    return Ok(());
                }
                tokio::select! {
                    started = next_start(&mut f.events) => {
                        match started {
                            Some(Ok(id)) => {
                                f.resubscribes = 0;
                                attach(query, &id, containers, cursors, f).await;
                            }
                            Some(Err(e)) => {
                                tracing::debug!(error = %e.chain(), "Docker's event stream broke off");
                                resubscribe(query, f).await?;
                            }
                            None => resubscribe(query, f).await?,
                        }
                        continue;
                    }
                    item = f.live.next(), if !f.live.is_empty() => item,
                    _ = out.tx.closed() => return Ok(()),
                }
            }
        };
        match item {
            Some(Live::Line(i, line)) => {
                f.reopens.remove(&i);
                Cursor::advance(&mut cursors[i], line.timestamp);
                let message = query.message(&containers[i], line);
                if !out.push(Ok(Event::Message(message))).await {
                    return Ok(());
                }
            }
            Some(Live::Ended(i)) => ended(query, i, containers, cursors, f).await?,
            Some(Live::Failed(e)) => return Err(e),
            None => {}
        }
    }
}

/// A container's stream ended: asks the daemon why. A container that stopped or was
/// removed ends its part quietly; one still running had its connection cut, and is
/// followed again from its cursor, so no line is lost or repeated. A daemon that does not
/// answer is an error.
async fn ended(
    query: &Arc<Query>,
    i: usize,
    containers: &[Container],
    cursors: &[Option<Cursor>],
    f: &mut Following,
) -> Result<(), Error> {
    f.attached.remove(&i);
    let container = match query.inspect(&containers[i].id).await {
        Ok(c) => c,
        Err(Error::NotFound { .. }) => return Ok(()), // removed
        Err(e) => return Err(e),
    };
    if !container.running {
        return Ok(());
    }
    let reopens = f.reopens.entry(i).or_default();
    *reopens += 1;
    if *reopens > MAX_REOPENS {
        return Err(Error::unavailable(format!(
            "the Docker daemon ended the log stream of the running container {} {MAX_REOPENS} times in a row",
            container.name
        )));
    }
    tracing::debug!(container = %container.name, "following a running container again from where its stream broke off");
    f.follow(query, i, container, cursors[i]);
    Ok(())
}

/// The event stream ended or broke off: subscribes again, replaying from the first
/// subscription so that no start is missed (starts already attached are ignored). A
/// daemon that does not answer is an error.
async fn resubscribe(query: &Query, f: &mut Following) -> Result<(), Error> {
    f.events = None;
    f.resubscribes += 1;
    if f.resubscribes > MAX_REOPENS {
        return Err(Error::unavailable(format!(
            "the Docker daemon ended its event stream {MAX_REOPENS} times in a row"
        )));
    }
    let events = subscribe(
        &query.client,
        &query.prefix,
        &query.labels,
        Some(query.subscribed_at),
    )
    .await?;
    f.events = Some(events);
    Ok(())
}

/// Follows a container that has just started, unless it is already followed, is in
/// another namespace, or is not the instance asked for.
async fn attach(
    query: &Arc<Query>,
    id: &str,
    containers: &mut Vec<Container>,
    cursors: &mut Vec<Option<Cursor>>,
    f: &mut Following,
) {
    let known = containers.iter().position(|c| c.id == id);
    if known.is_some_and(|i| f.attached.contains(&i)) {
        return;
    }
    let container = match query.inspect(id).await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e.chain(), "a started container could not be inspected");
            return;
        }
    };
    if !query.wants(&container.namespace, &container.id, &container.name) {
        return;
    }
    let index = match known {
        Some(i) => i,
        None => {
            containers.push(container.clone());
            cursors.push(None);
            containers.len() - 1
        }
    };
    tracing::debug!(container = %container.name, "following a container that started");
    f.follow(query, index, container, cursors[index]);
}

/// Waits for the next start event, or for ever once there is no event stream.
async fn next_start(events: &mut Option<Events>) -> Option<Result<String, Error>> {
    match events {
        Some(events) => events.next_start().await,
        None => std::future::pending().await,
    }
}

/// How many lines of one container's history are held to put them in timestamp order.
const REORDER: usize = 256;

/// A container's history in timestamp order. Docker writes stdout and stderr to its log
/// in the order its two copiers get there, which can put a line before an older one; a
/// window of the next [`REORDER`] lines, taken oldest first, puts such lines back in order
/// in bounded memory.
struct Ordered {
    index: usize,
    lines: Lines,
    /// Sorted by timestamp, oldest first; lines nearly always arrive in order, so an
    /// insertion from the back costs one comparison.
    window: std::collections::VecDeque<Line>,
    done: bool,
}

impl Ordered {
    /// Reads until the window is full or the history ends.
    async fn fill(&mut self, out: &mut Outbox) -> Result<(), Error> {
        while !self.done && self.window.len() < REORDER {
            match next_line(&mut self.lines, out).await {
                Some(Ok(line)) => insert_in_order(&mut self.window, line),
                Some(Err(e)) => return Err(e),
                None => self.done = true,
            }
        }
        Ok(())
    }

    fn oldest(&self) -> Option<DateTime<Utc>> {
        self.window.front().map(|l| l.timestamp)
    }
}

/// Inserts after every line not newer than `line`: timestamp order, ties in arrival order.
fn insert_in_order(window: &mut std::collections::VecDeque<Line>, line: Line) {
    let at = window
        .iter()
        .rposition(|l| l.timestamp <= line.timestamp)
        .map_or(0, |i| i + 1);
    window.insert(at, line);
}

/// Sends every container's history merged by timestamp; false when the reader left.
async fn merge_history(
    query: &Query,
    containers: &[Container],
    sources: Vec<(usize, Lines)>,
    cursors: &mut [Option<Cursor>],
    out: &mut Outbox,
) -> Result<bool, Error> {
    let mut sources: Vec<Ordered> = sources
        .into_iter()
        .map(|(index, lines)| Ordered {
            index,
            lines,
            window: std::collections::VecDeque::with_capacity(REORDER),
            done: false,
        })
        .collect();
    for source in sources.iter_mut() {
        source.fill(out).await?;
    }
    loop {
        let oldest = sources
            .iter()
            .enumerate()
            .filter_map(|(k, s)| s.oldest().map(|ts| (ts, k)))
            .min();
        let Some((_, k)) = oldest else {
            return Ok(true);
        };
        let source = &mut sources[k];
        let Some(line) = source.window.pop_front() else {
            continue;
        };
        source.fill(out).await?;
        let i = source.index;
        Cursor::advance(&mut cursors[i], line.timestamp);
        let message = query.message(&containers[i], line);
        if !out.push(Ok(Event::Message(message))).await {
            return Ok(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OutputStream;

    #[test]
    fn the_window_orders_by_time_and_keeps_ties_in_arrival_order() {
        let base = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let mut window = std::collections::VecDeque::new();
        for (ms, text) in [(5, "a"), (9, "b"), (7, "c"), (9, "d"), (1, "e"), (7, "f")] {
            let line = Line {
                timestamp: base + chrono::Duration::milliseconds(ms),
                stream: OutputStream::Stdout,
                text: text.into(),
            };
            insert_in_order(&mut window, line);
        }
        let texts: Vec<&str> = window.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["e", "a", "c", "f", "b", "d"]);
    }
}
