//! An emulated Kubernetes API server, written from the documented API, holding what the
//! log requester and `kubectl` read: discovery (`/api`, `/apis`, their resource lists,
//! `/version`), pods (get, list, watch with `resourceVersion`, a 410 Gone `ERROR` event
//! for a version older than the last compaction, `timeoutSeconds`), the pod log
//! subresource (`container`, `follow`, `tailLines`, `sinceTime`, `sinceSeconds`,
//! `timestamps`, `previous`, `limitBytes`, kubelet's 400s for a container that is not
//! there yet), deployments (list), label selectors, and errors as `Status` objects with
//! Kubernetes' own messages (403 Forbidden from RBAC rules the test sets, 404, 400, 401).
//!
//! Tests change the cluster through its methods: pods that start, write, restart, end
//! and are deleted; an expiry of every watch; refusals.

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::SinkExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{json, Value};
use tokio::sync::watch;

type Body = BoxBody<Bytes, Infallible>;

/// One run of a container: the lines it wrote, and whether it has ended.
#[derive(Default, Clone)]
struct Run {
    lines: Vec<(DateTime<Utc>, String)>,
    ended: bool,
}

#[derive(Clone)]
struct Container {
    name: String,
    /// Every run, the current one last; the current one has not started while `waiting`.
    runs: Vec<Run>,
    waiting: bool,
}

#[derive(Clone)]
struct Pod {
    namespace: String,
    name: String,
    uid: String,
    labels: BTreeMap<String, String>,
    containers: Vec<Container>,
    resource_version: u64,
    created: DateTime<Utc>,
    deleted: bool,
}

struct WatchEvent {
    resource_version: u64,
    kind: &'static str,
    namespace: String,
    labels: BTreeMap<String, String>,
    object: Value,
}

#[derive(Default)]
struct Cluster {
    resource_version: u64,
    pods: Vec<Pod>,
    /// (namespace, name, labels).
    deployments: Vec<(String, String, BTreeMap<String, String>)>,
    events: Vec<WatchEvent>,
    /// Watches from versions older than this get 410 Gone.
    compacted: u64,
    /// Bumped to end every open watch.
    watch_generation: u64,
    /// `VERB RESOURCE NAMESPACE` refused (`*` as the namespace: a request across all).
    forbidden: HashSet<String>,
    /// A bearer token every request must carry, when set.
    token: Option<String>,
    requests: Vec<String>,
    uids: u64,
}

/// The emulated API server on a 127.0.0.1 port.
#[derive(Clone)]
pub(crate) struct Emulator {
    pub(crate) addr: SocketAddr,
    cluster: Arc<Mutex<Cluster>>,
    /// Bumped on every change, for the follows and watches that wait for one.
    changed: Arc<watch::Sender<u64>>,
    /// While true, log requests with `follow=true` wait before they are answered.
    hold_follows: Arc<watch::Sender<bool>>,
    /// Set when the server is killed.
    down: Arc<watch::Sender<bool>>,
    /// How long every log request waits before it is answered (a kubelet's round trip).
    log_delay: Arc<watch::Sender<std::time::Duration>>,
}

impl Emulator {
    /// Serves plain HTTP on a fresh port.
    pub(crate) async fn start() -> Emulator {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let emulator = Emulator::unbound(listener.local_addr().unwrap());
        let served = emulator.clone();
        let mut down = emulator.down.subscribe();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = down.wait_for(|down| *down) => return,
                };
                let Ok((tcp, _)) = accepted else {
                    continue;
                };
                tokio::spawn(served.clone().connection(TokioIo::new(tcp)));
            }
        });
        emulator
    }

    /// The server dies: its port is closed and every open connection is cut, in the
    /// middle of whatever body it was sending.
    pub(crate) fn kill(&self) {
        self.down.send_replace(true);
    }

    /// An emulator for `addr`, whose connections the caller accepts (over TLS, say)
    /// and hands to [`Emulator::connection`].
    pub(crate) fn unbound(addr: SocketAddr) -> Emulator {
        Emulator {
            addr,
            cluster: Arc::default(),
            changed: Arc::new(watch::channel(0).0),
            hold_follows: Arc::new(watch::channel(false).0),
            down: Arc::new(watch::channel(false).0),
            log_delay: Arc::new(watch::channel(std::time::Duration::ZERO).0),
        }
    }

    /// Serves one connection.
    pub(crate) async fn connection<I>(self, io: I)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let self_down = self.down.subscribe();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let emulator = self.clone();
            async move {
                let query = req.uri().query().unwrap_or_default();
                let delay = *emulator.log_delay.borrow();
                if req.uri().path().ends_with("/log") && !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                if req.uri().path().ends_with("/log") && query.contains("follow=true") {
                    // Held follows wait here, before the log is looked at.
                    let mut held = emulator.hold_follows.subscribe();
                    let _ = held.wait_for(|held| !held).await;
                }
                Ok::<_, Infallible>(emulator.answer(&req))
            }
        });
        let mut down = self_down;
        let builder = auto::Builder::new(TokioExecutor::new());
        tokio::select! {
            _ = builder.serve_connection(io, service) => {}
            _ = down.wait_for(|down| *down) => {}
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig for this server, written to `dir`; its path.
    pub(crate) fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: emulated\n  cluster:\n    server: {}\n\
             contexts:\n- name: emulated\n  context:\n    cluster: emulated\n    user: tester\n    namespace: openfaas-fn\n\
             current-context: emulated\nusers:\n- name: tester\n  user:\n    token: emulated-token\n",
            self.url()
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Holds log requests with `follow=true` (before they read the log) until released
    /// with `false`: what happens meanwhile happens between a reader's history and its
    /// follow.
    pub(crate) fn hold_follows(&self, held: bool) {
        self.hold_follows.send_replace(held);
    }

    /// Every log request waits `delay` before it is answered, as one through the API
    /// server to a node's kubelet does.
    #[allow(dead_code)] // the bench uses it
    pub(crate) fn set_log_delay(&self, delay: std::time::Duration) {
        self.log_delay.send_replace(delay);
    }

    /// Every request must carry `Authorization: Bearer <token>`.
    pub(crate) fn require_token(&self, token: &str) {
        self.cluster.lock().unwrap().token = Some(token.to_owned());
    }

    /// Every request so far, as `PATH?QUERY`.
    pub(crate) fn requests(&self) -> Vec<String> {
        self.cluster.lock().unwrap().requests.clone()
    }

    /// Refuses `verb` on `resource` (`pods`, `pods/log`, `deployments`) in `namespace`
    /// (`*`: requests across all namespaces), as RBAC would.
    pub(crate) fn forbid(&self, verb: &str, resource: &str, namespace: &str) {
        self.cluster
            .lock()
            .unwrap()
            .forbidden
            .insert(format!("{verb} {resource} {namespace}"));
    }

    /// A Deployment of function `name`, labelled as faas-netes labels it.
    pub(crate) fn add_deployment(&self, namespace: &str, name: &str) {
        let labels = BTreeMap::from([("faas_function".to_owned(), name.to_owned())]);
        self.cluster.lock().unwrap().deployments.push((
            namespace.to_owned(),
            name.to_owned(),
            labels,
        ));
    }

    /// A running pod `pod` of `function`, with one container named like the function.
    pub(crate) fn add_pod(&self, namespace: &str, function: &str, pod: &str) {
        self.add_pod_with(
            namespace,
            pod,
            &[("faas_function", function)],
            &[function],
            true,
        );
    }

    /// A pod with these labels and containers, running or waiting to start.
    pub(crate) fn add_pod_with(
        &self,
        namespace: &str,
        pod: &str,
        labels: &[(&str, &str)],
        containers: &[&str],
        running: bool,
    ) {
        self.change(|cluster| {
            cluster.uids += 1;
            let created = Utc::now();
            let pod = Pod {
                namespace: namespace.to_owned(),
                name: pod.to_owned(),
                uid: format!("00000000-0000-4000-8000-{:012}", cluster.uids),
                labels: labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                containers: containers
                    .iter()
                    .map(|name| Container {
                        name: (*name).to_owned(),
                        runs: vec![Run::default()],
                        waiting: !running,
                    })
                    .collect(),
                resource_version: 0,
                created,
                deleted: false,
            };
            cluster.pods.push(pod);
            let at = cluster.pods.len() - 1;
            cluster.record(at, "ADDED");
        });
    }

    /// Appends lines to the current run of the pod's container, stamped now (each
    /// after the last).
    pub(crate) fn write(&self, namespace: &str, pod: &str, container: &str, texts: &[&str]) {
        let now = Utc::now();
        self.write_at(
            namespace,
            pod,
            container,
            texts.iter().map(|t| (now, (*t).to_owned())).collect(),
        );
    }

    /// Appends lines with these times (kept after the run's last line).
    pub(crate) fn write_at(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        lines: Vec<(DateTime<Utc>, String)>,
    ) {
        let mut cluster = self.cluster.lock().unwrap();
        let at = cluster
            .find(namespace, pod)
            .expect("a live pod to write to");
        let run = cluster.pods[at]
            .containers
            .iter_mut()
            .find(|c| c.name == container)
            .expect("the container")
            .runs
            .last_mut()
            .unwrap();
        for (time, text) in lines {
            let floor = run
                .lines
                .last()
                .map(|(t, _)| *t + chrono::Duration::nanoseconds(1));
            let time = floor.map_or(time, |f| f.max(time));
            run.lines.push((time, text));
        }
        drop(cluster);
        self.changed.send_modify(|n| *n += 1);
    }

    /// A container that was waiting starts.
    pub(crate) fn start_pod(&self, namespace: &str, pod: &str) {
        self.update(namespace, pod, |p| {
            for c in &mut p.containers {
                c.waiting = false;
            }
        });
    }

    /// The container's current run ends and a new one starts (its restart count grows).
    pub(crate) fn restart(&self, namespace: &str, pod: &str, container: &str) {
        self.update(namespace, pod, |p| {
            let c = p
                .containers
                .iter_mut()
                .find(|c| c.name == container)
                .unwrap();
            c.runs.last_mut().unwrap().ended = true;
            c.runs.push(Run::default());
        });
    }

    /// The pod is deleted: its containers' runs end (their follows end once their
    /// lines are sent) and watches see it go.
    pub(crate) fn delete_pod(&self, namespace: &str, pod: &str) {
        self.change(|cluster| {
            let at = cluster.find(namespace, pod).expect("a live pod to delete");
            for c in &mut cluster.pods[at].containers {
                c.runs.last_mut().unwrap().ended = true;
            }
            cluster.pods[at].deleted = true;
            cluster.record(at, "DELETED");
        });
    }

    /// Every open watch ends, and the versions they saw are compacted away (as if other
    /// objects changed meanwhile): a watch resumed from one gets 410 Gone.
    pub(crate) fn expire_watches(&self) {
        self.change(|cluster| {
            cluster.resource_version += 1;
            cluster.compacted = cluster.resource_version;
            cluster.watch_generation += 1;
        });
    }

    fn update(&self, namespace: &str, pod: &str, f: impl FnOnce(&mut Pod)) {
        self.change(|cluster| {
            let at = cluster.find(namespace, pod).expect("a live pod");
            f(&mut cluster.pods[at]);
            cluster.record(at, "MODIFIED");
        });
    }

    fn change(&self, f: impl FnOnce(&mut Cluster)) {
        f(&mut self.cluster.lock().unwrap());
        self.changed.send_modify(|n| *n += 1);
    }

    fn answer(&self, req: &Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_owned();
        let query: BTreeMap<String, String> =
            form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let mut cluster = self.cluster.lock().unwrap();
        cluster
            .requests
            .push(format!("{path}?{}", req.uri().query().unwrap_or_default()));
        if let Some(token) = &cluster.token {
            let sent = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            if sent != Some(&format!("Bearer {token}")) {
                return status(401, "Unauthorized", "Unauthorized", json!({}));
            }
        }
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let watching = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
        match parts.as_slice() {
            ["version"] => ok(
                json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0", "platform": "linux/amd64"}),
            ),
            ["api"] => ok(json!({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": self.addr.to_string()}],
            })),
            ["apis"] => ok(json!({
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [{
                    "name": "apps",
                    "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                    "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
                }],
            })),
            ["api", "v1"] => ok(json!({
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": "v1",
                "resources": [
                    {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
                     "verbs": ["get", "list", "watch"], "shortNames": ["po"], "categories": ["all"]},
                    {"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]},
                ],
            })),
            ["apis", "apps", "v1"] => ok(json!({
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": "apps/v1",
                "resources": [
                    {"name": "deployments", "singularName": "deployment", "namespaced": true,
                     "kind": "Deployment", "verbs": ["get", "list"], "shortNames": ["deploy"], "categories": ["all"]},
                ],
            })),
            ["api", "v1", "pods"] => self.pods(&cluster, None, &query, watching),
            ["api", "v1", "namespaces", ns, "pods"] => {
                self.pods(&cluster, Some(ns), &query, watching)
            }
            ["api", "v1", "namespaces", ns, "pods", name] => {
                if let Some(refused) = cluster.refuse("get", "pods", Some(ns), Some(name)) {
                    return refused;
                }
                match cluster.find(ns, name) {
                    Some(at) => ok(cluster.pods[at].json()),
                    None => not_found("pods", name),
                }
            }
            ["api", "v1", "namespaces", ns, "pods", name, "log"] => {
                self.log(&cluster, ns, name, &query)
            }
            ["apis", "apps", "v1", "deployments"] => deployments(&cluster, None, &query),
            ["apis", "apps", "v1", "namespaces", ns, "deployments"] => {
                deployments(&cluster, Some(ns), &query)
            }
            _ => status(
                404,
                "NotFound",
                "the server could not find the requested resource",
                json!({}),
            ),
        }
    }

    fn pods(
        &self,
        cluster: &Cluster,
        namespace: Option<&str>,
        query: &BTreeMap<String, String>,
        watching: bool,
    ) -> Response<Body> {
        let verb = if watching { "watch" } else { "list" };
        if let Some(refused) = cluster.refuse(verb, "pods", namespace, None) {
            return refused;
        }
        let selector = Selector::parse(query.get("labelSelector").map_or("", String::as_str));
        let matches = |ns: &str, labels: &BTreeMap<String, String>| {
            namespace.is_none_or(|n| n == ns) && selector.matches(labels)
        };
        if !watching {
            let items: Vec<Value> = cluster
                .pods
                .iter()
                .filter(|p| !p.deleted && matches(&p.namespace, &p.labels))
                .map(Pod::json)
                .collect();
            return ok(json!({
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": cluster.resource_version.to_string()},
                "items": items,
            }));
        }
        // A watch: the events after the version asked for, then live ones.
        let from = query.get("resourceVersion").map_or("", String::as_str);
        let mut first = Vec::new();
        let mut after = cluster.resource_version;
        match from {
            "" | "0" => {
                for pod in cluster.pods.iter().filter(|p| !p.deleted) {
                    if matches(&pod.namespace, &pod.labels) {
                        first.push(json!({"type": "ADDED", "object": pod.json()}));
                    }
                }
            }
            version => {
                let Ok(version) = version.parse::<u64>() else {
                    return status(400, "BadRequest", "invalid resource version", json!({}));
                };
                if version < cluster.compacted {
                    let gone = status_object(
                        410,
                        "Expired",
                        &format!(
                            "too old resource version: {version} ({})",
                            cluster.compacted
                        ),
                        json!({}),
                    );
                    let body = format!("{}\n", json!({"type": "ERROR", "object": gone}));
                    return response(
                        200,
                        "application/json",
                        Full::new(Bytes::from(body)).boxed(),
                    );
                }
                after = version;
            }
        }
        let timeout = query
            .get("timeoutSeconds")
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(1800);
        let generation = cluster.watch_generation;
        // Subscribed under the cluster's lock: no change after `after` goes unnoticed.
        let mut changed = self.changed.subscribe();
        let namespace = namespace.map(str::to_owned);
        let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(64);
        let emulator = self.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(timeout);
            for event in first {
                if tx
                    .send(Ok(Frame::data(Bytes::from(format!("{event}\n")))))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            loop {
                let (events, ended) = {
                    let cluster = emulator.cluster.lock().unwrap();
                    let events: Vec<String> = cluster
                        .events
                        .iter()
                        .filter(|e| e.resource_version > after)
                        .filter(|e| {
                            namespace.as_deref().is_none_or(|n| n == e.namespace)
                                && selector.matches(&e.labels)
                        })
                        .map(|e| format!("{}\n", json!({"type": e.kind, "object": e.object})))
                        .collect();
                    after = cluster.resource_version;
                    (events, cluster.watch_generation != generation)
                };
                for event in events {
                    if tx.send(Ok(Frame::data(Bytes::from(event)))).await.is_err() {
                        return;
                    }
                }
                if ended {
                    return;
                }
                tokio::select! {
                    _ = changed.changed() => {}
                    () = tokio::time::sleep_until(deadline) => return,
                }
            }
        });
        response(200, "application/json", StreamBody::new(rx).boxed())
    }

    fn log(
        &self,
        cluster: &Cluster,
        namespace: &str,
        name: &str,
        query: &BTreeMap<String, String>,
    ) -> Response<Body> {
        if let Some(refused) = cluster.refuse("get", "pods/log", Some(namespace), Some(name)) {
            return refused;
        }
        let Some(at) = cluster.find(namespace, name) else {
            return not_found("pods", name);
        };
        let pod = &cluster.pods[at];
        let container = match query.get("container") {
            Some(c) => c.clone(),
            None if pod.containers.len() == 1 => pod.containers[0].name.clone(),
            None => {
                let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
                return bad_request(&format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    names.join(" ")
                ));
            }
        };
        let Some(index) = pod.containers.iter().position(|c| c.name == container) else {
            return bad_request(&format!(
                "container {container} is not valid for pod {name}"
            ));
        };
        let c = &pod.containers[index];
        let flag = |key: &str| matches!(query.get(key).map(String::as_str), Some("true" | "1"));
        let previous = flag("previous");
        let run = if previous {
            match c.runs.len().checked_sub(2) {
                Some(n) => n,
                None => {
                    return bad_request(&format!(
                        "previous terminated container \"{container}\" in pod \"{name}\" not found"
                    ))
                }
            }
        } else {
            if c.waiting {
                return bad_request(&format!(
                    "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
                ));
            }
            c.runs.len() - 1
        };
        let since = if let Some(text) = query.get("sinceTime") {
            match DateTime::parse_from_rfc3339(text) {
                Ok(t) => Some(t.to_utc()),
                Err(_) => return bad_request(&format!("invalid sinceTime {text:?}")),
            }
        } else {
            query
                .get("sinceSeconds")
                .and_then(|s| s.parse::<i64>().ok())
                .map(|s| Utc::now() - chrono::Duration::seconds(s))
        };
        let tail = query.get("tailLines").and_then(|s| s.parse::<usize>().ok());
        let limit = query
            .get("limitBytes")
            .and_then(|s| s.parse::<usize>().ok());
        let stamps = flag("timestamps");
        let follow = flag("follow") && !previous;
        let format = move |(t, text): &(DateTime<Utc>, String)| {
            if stamps {
                format!("{} {text}\n", t.to_rfc3339_opts(SecondsFormat::Nanos, true))
            } else {
                format!("{text}\n")
            }
        };
        let lines = &c.runs[run].lines;
        let kept: Vec<usize> = (0..lines.len())
            .filter(|&i| since.is_none_or(|s| lines[i].0 >= s))
            .collect();
        let kept = match tail {
            Some(n) => &kept[kept.len().saturating_sub(n)..],
            None => &kept[..],
        };
        let mut body = String::new();
        for &i in kept {
            body.push_str(&format(&lines[i]));
        }
        let cut = move |body: &mut String, sent: usize| -> bool {
            match limit {
                Some(limit) if sent + body.len() >= limit => {
                    let mut end = limit - sent;
                    while !body.is_char_boundary(end) {
                        end -= 1;
                    }
                    body.truncate(end);
                    true
                }
                _ => false,
            }
        };
        let full = cut(&mut body, 0);
        if !follow || full {
            return response(200, "text/plain", Full::new(Bytes::from(body)).boxed());
        }
        // Follow: what is there, then each new line of this run until it ends.
        let mut next = lines.len();
        let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(64);
        let emulator = self.clone();
        let uid = pod.uid.clone();
        let mut sent = body.len();
        let mut changed = self.changed.subscribe();
        tokio::spawn(async move {
            if tx.send(Ok(Frame::data(Bytes::from(body)))).await.is_err() {
                return;
            }
            loop {
                let (mut chunk, ended) = {
                    let cluster = emulator.cluster.lock().unwrap();
                    let Some(pod) = cluster.pods.iter().find(|p| p.uid == uid) else {
                        return;
                    };
                    let run = &pod.containers[index].runs[run];
                    let chunk: String = run.lines[next..].iter().map(&format).collect();
                    next = run.lines.len();
                    (chunk, run.ended || pod.deleted)
                };
                let full = cut(&mut chunk, sent);
                sent += chunk.len();
                if !chunk.is_empty() && tx.send(Ok(Frame::data(Bytes::from(chunk)))).await.is_err()
                {
                    return;
                }
                if ended || full {
                    return;
                }
                if changed.changed().await.is_err() {
                    return;
                }
            }
        });
        response(200, "text/plain", StreamBody::new(rx).boxed())
    }
}

impl Cluster {
    fn find(&self, namespace: &str, name: &str) -> Option<usize> {
        self.pods
            .iter()
            .position(|p| !p.deleted && p.namespace == namespace && p.name == name)
    }

    /// A new resource version for pod `at`, and its watch event.
    fn record(&mut self, at: usize, kind: &'static str) {
        self.resource_version += 1;
        let pod = &mut self.pods[at];
        pod.resource_version = self.resource_version;
        let event = WatchEvent {
            resource_version: self.resource_version,
            kind,
            namespace: pod.namespace.clone(),
            labels: pod.labels.clone(),
            object: pod.json(),
        };
        self.events.push(event);
    }

    /// RBAC's answer, when this request is refused.
    fn refuse(
        &self,
        verb: &str,
        resource: &str,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> Option<Response<Body>> {
        let scope = namespace.unwrap_or("*");
        if !self
            .forbidden
            .contains(&format!("{verb} {resource} {scope}"))
        {
            return None;
        }
        let (plural, group, sub) = match resource.split_once('/') {
            Some((plural, sub)) => (plural, "", Some(sub)),
            None if resource == "deployments" => (resource, "apps", None),
            None => (resource, "", None),
        };
        let qualified = if group.is_empty() {
            plural.to_owned()
        } else {
            format!("{plural}.{group}")
        };
        let subject = match name {
            Some(name) => format!("{qualified} \"{name}\""),
            None => qualified,
        };
        let resource_named = match sub {
            Some(sub) => format!("{plural}/{sub}"),
            None => plural.to_owned(),
        };
        let place = match namespace {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_owned(),
        };
        let message = format!(
            "{subject} is forbidden: User \"system:serviceaccount:openfaas:faas-logs\" cannot {verb} resource \"{resource_named}\" in API group \"{group}\" {place}"
        );
        let mut details = json!({"kind": plural});
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        if let Some(name) = name {
            details["name"] = json!(name);
        }
        Some(status(403, "Forbidden", &message, details))
    }
}

impl Pod {
    fn json(&self) -> Value {
        let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        let statuses: Vec<Value> = self
            .containers
            .iter()
            .map(|c| {
                let current = c.runs.last().unwrap();
                let state = if c.waiting {
                    json!({"waiting": {"reason": "ContainerCreating"}})
                } else if current.ended || self.deleted {
                    json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": time(self.created), "finishedAt": time(Utc::now())}})
                } else {
                    json!({"running": {"startedAt": time(self.created)}})
                };
                json!({
                    "name": c.name,
                    "ready": !c.waiting && !current.ended,
                    "started": !c.waiting,
                    "restartCount": c.runs.len() - 1,
                    "image": format!("ghcr.io/openfaas/{}:latest", c.name),
                    "imageID": "",
                    "state": state,
                })
            })
            .collect();
        let running = self.containers.iter().any(|c| !c.waiting);
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "uid": self.uid,
                "resourceVersion": self.resource_version.to_string(),
                "creationTimestamp": time(self.created),
                "labels": self.labels,
            },
            "spec": {
                "containers": self.containers.iter().map(|c| json!({"name": c.name, "image": format!("ghcr.io/openfaas/{}:latest", c.name)})).collect::<Vec<_>>(),
            },
            "status": {
                "phase": if running { "Running" } else { "Pending" },
                "containerStatuses": statuses,
            },
        })
    }
}

fn deployments(
    cluster: &Cluster,
    namespace: Option<&str>,
    query: &BTreeMap<String, String>,
) -> Response<Body> {
    if let Some(refused) = cluster.refuse("list", "deployments", namespace, None) {
        return refused;
    }
    let selector = Selector::parse(query.get("labelSelector").map_or("", String::as_str));
    let items: Vec<Value> = cluster
        .deployments
        .iter()
        .filter(|(ns, _, labels)| namespace.is_none_or(|n| n == ns) && selector.matches(labels))
        .map(|(ns, name, labels)| {
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": ns, "labels": labels, "resourceVersion": "1"},
                "spec": {"selector": {"matchLabels": {"faas_function": name}}, "template": {"spec": {"containers": [{"name": name}]}}},
            })
        })
        .collect();
    ok(json!({
        "kind": "DeploymentList",
        "apiVersion": "apps/v1",
        "metadata": {"resourceVersion": cluster.resource_version.to_string()},
        "items": items,
    }))
}

/// A label selector: `k=v`, `k==v`, `k!=v`, `k` and `!k`, joined by commas.
#[derive(Clone)]
struct Selector(Vec<(String, Option<String>, bool)>);

impl Selector {
    fn parse(text: &str) -> Selector {
        let terms = text
            .split(',')
            .filter(|t| !t.is_empty())
            .map(|term| {
                if let Some((k, v)) = term.split_once("!=") {
                    (k.to_owned(), Some(v.to_owned()), false)
                } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('='))
                {
                    (k.to_owned(), Some(v.to_owned()), true)
                } else if let Some(k) = term.strip_prefix('!') {
                    (k.to_owned(), None, false)
                } else {
                    (term.to_owned(), None, true)
                }
            })
            .collect();
        Selector(terms)
    }

    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|(key, value, equal)| match value {
            Some(v) => (labels.get(key) == Some(v)) == *equal,
            None => labels.contains_key(key) == *equal,
        })
    }
}

fn ok(value: Value) -> Response<Body> {
    response(
        200,
        "application/json",
        Full::new(Bytes::from(value.to_string())).boxed(),
    )
}

fn response(code: u16, content_type: &str, body: Body) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", content_type)
        .body(body)
        .unwrap()
}

fn status_object(code: u16, reason: &str, message: &str, details: Value) -> Value {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if details.as_object().is_some_and(|d| !d.is_empty()) {
        status["details"] = details;
    }
    status
}

fn status(code: u16, reason: &str, message: &str, details: Value) -> Response<Body> {
    let body = status_object(code, reason, message, details).to_string();
    response(
        code,
        "application/json",
        Full::new(Bytes::from(body)).boxed(),
    )
}

fn not_found(resource: &str, name: &str) -> Response<Body> {
    status(
        404,
        "NotFound",
        &format!("{resource} \"{name}\" not found"),
        json!({"name": name, "kind": resource}),
    )
}

fn bad_request(message: &str) -> Response<Body> {
    status(400, "BadRequest", message, json!({}))
}
