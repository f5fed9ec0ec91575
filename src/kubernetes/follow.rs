//! A follow: history, then every pod's log as it grows, with a watch on the function's
//! pods that starts reading the pods that come and lets go of those that end.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::lines::{LogReader, Resume};
use super::pods::{FunctionPod, PodState};
use super::{api_error, broken_log, history, since_time, Query};
use crate::{Error, Event, SharedStr};

/// The watch of a function's pods.
pub(super) type PodWatch = BoxStream<'static, Result<watcher::Event<Pod>, watcher::Error>>;

/// The pods of the watch's first list, which history reads.
pub(super) async fn initial_list(query: &Query, watch: &mut PodWatch) -> Result<Vec<Pod>, Error> {
    let mut pods = Vec::new();
    loop {
        match watch.next().await {
            Some(Ok(watcher::Event::Init)) => pods.clear(),
            Some(Ok(watcher::Event::InitApply(pod))) => pods.push(pod),
            Some(Ok(watcher::Event::InitDone)) => return Ok(pods),
            Some(Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_))) => {}
            Some(Err(e)) => return Err(watch_error(query, e)),
            None => {
                return Err(Error::unavailable(
                    "the watch of pods ended before its list",
                ))
            }
        }
    }
}

/// An error of the pod watch as a sentence.
fn watch_error(query: &Query, e: watcher::Error) -> Error {
    match e {
        watcher::Error::InitialListFailed(e) => api_error(e, "list", "pods", &query.namespace),
        watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => {
            api_error(e, "watch", "pods", &query.namespace)
        }
        watcher::Error::WatchError(status) => {
            api_error(kube::Error::Api(status), "watch", "pods", &query.namespace)
        }
        other => Error::other(format!("the watch of pods failed: {other}")),
    }
}

/// The follow's task: history, its end, then live lines until the response goes.
pub(super) async fn run(
    query: Arc<Query>,
    pods: Vec<FunctionPod>,
    watch: PodWatch,
    tx: mpsc::Sender<Result<Event, Error>>,
) {
    let mut tasks = JoinSet::new();
    let resumes = match history(&query, &pods, &tx, &mut tasks).await {
        Ok(resumes) => resumes,
        Err(e) => {
            let _ = tx.send(Err(e)).await;
            return;
        }
    };
    if tx.is_closed() || tx.send(Ok(Event::HistoryEnd)).await.is_err() {
        return;
    }
    let (lines_tx, lines) = mpsc::channel(1024);
    let mut live = Live {
        query,
        tx,
        tasks,
        pods: HashMap::new(),
        relisted: None,
        lines_tx,
        lines,
    };
    for (pod, resume) in pods.into_iter().zip(resumes) {
        live.attach(pod, resume);
    }
    live.run(watch).await;
}

/// The live part of a follow.
struct Live {
    query: Arc<Query>,
    tx: mpsc::Sender<Result<Event, Error>>,
    /// One reader per pod.
    tasks: JoinSet<()>,
    /// Each pod's state, by uid, for its reader.
    pods: HashMap<String, watch::Sender<PodState>>,
    /// The pods a new list of the watch has shown so far (after a 410 Gone).
    relisted: Option<HashSet<String>>,
    lines_tx: mpsc::Sender<Result<Event, Error>>,
    lines: mpsc::Receiver<Result<Event, Error>>,
}

impl Live {
    async fn run(mut self, mut watch: PodWatch) {
        loop {
            tokio::select! {
                biased;
                () = self.tx.closed() => return,
                Some(item) = self.lines.recv() => {
                    let failed = item.is_err();
                    if self.tx.send(item).await.is_err() || failed {
                        return;
                    }
                }
                Some(Err(e)) = self.tasks.join_next() => {
                    if e.is_panic() {
                        let _ = self.tx.send(Err(Error::other("a pod's log reader failed unexpectedly"))).await;
                        return;
                    }
                }
                event = watch.next() => {
                    if let Err(e) = self.on_watch(event) {
                        let _ = self.tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        }
    }

    /// Follows what the watch says of the function's pods.
    fn on_watch(
        &mut self,
        event: Option<Result<watcher::Event<Pod>, watcher::Error>>,
    ) -> Result<(), Error> {
        match event {
            Some(Ok(watcher::Event::Apply(pod))) => self.seen(&pod)?,
            Some(Ok(watcher::Event::Delete(pod))) => {
                let uid = pod.metadata.uid.unwrap_or_default();
                if let Some(state) = self.pods.remove(&uid) {
                    state.send_modify(|s| s.gone = true);
                }
            }
            // The watch expired and is listed again: pods missing from the new list
            // ended in between.
            Some(Ok(watcher::Event::Init)) => self.relisted = Some(HashSet::new()),
            Some(Ok(watcher::Event::InitApply(pod))) => {
                if let Some(listed) = &mut self.relisted {
                    listed.insert(pod.metadata.uid.clone().unwrap_or_default());
                }
                self.seen(&pod)?;
            }
            Some(Ok(watcher::Event::InitDone)) => {
                if let Some(listed) = self.relisted.take() {
                    self.pods.retain(|uid, state| {
                        let kept = listed.contains(uid);
                        if !kept {
                            state.send_modify(|s| s.gone = true);
                        }
                        kept
                    });
                }
            }
            // 410 Gone: the watcher lists again by itself. Lines come from each pod's
            // own read, which goes on; the new list brings the pods started meanwhile.
            Some(Err(watcher::Error::WatchError(status))) if status.code == 410 => {
                tracing::debug!(function = %self.query.function, "the pod watch expired: listing again");
            }
            Some(Err(e)) => return Err(watch_error(&self.query, e)),
            None => return Err(Error::unavailable("the watch of pods ended")),
        }
        Ok(())
    }

    /// A pod as the watch shows it now: news for its reader, or a new reader.
    fn seen(&mut self, pod: &Pod) -> Result<(), Error> {
        if !self.query.wants(pod) {
            return Ok(());
        }
        let pod = FunctionPod::of(pod, &self.query.function)?;
        match self.pods.get(&pod.uid) {
            Some(state) => {
                state.send_replace(pod.state);
            }
            // Started during the follow: every line of it is new.
            None => self.attach(pod, Resume::default()),
        }
        Ok(())
    }

    /// Starts reading `pod`'s log live from `resume`.
    fn attach(&mut self, pod: FunctionPod, resume: Resume) {
        let (state_tx, state) = watch::channel(pod.state);
        self.pods.insert(pod.uid.clone(), state_tx);
        let reader = PodReader {
            query: Arc::clone(&self.query),
            instance: pod.name.as_str().into(),
            pod,
            state,
            resume,
            out: self.lines_tx.clone(),
        };
        self.tasks.spawn(reader.run());
    }
}

/// Reads one pod's log live: each run of its container, to the pod's end.
struct PodReader {
    query: Arc<Query>,
    pod: FunctionPod,
    instance: SharedStr,
    state: watch::Receiver<PodState>,
    resume: Resume,
    out: mpsc::Sender<Result<Event, Error>>,
}

impl PodReader {
    async fn run(mut self) {
        // The restart count of the last run read to its end.
        let mut read: Option<i32> = None;
        loop {
            let run = loop {
                let state = *self.state.borrow_and_update();
                if state.gone {
                    return;
                }
                if state.started && read.is_none_or(|r| state.restarts > r) {
                    break state.restarts;
                }
                if self.state.changed().await.is_err() {
                    return;
                }
            };
            match self.follow_run().await {
                Ok(Outcome::Read) => read = Some(run),
                Ok(Outcome::NotThere) => {
                    if self.state.changed().await.is_err() {
                        return;
                    }
                }
                Ok(Outcome::Stop) => return,
                Err(e) => {
                    let _ = self.out.send(Err(e)).await;
                    return;
                }
            }
        }
    }

    /// Follows the container's current log to its end.
    async fn follow_run(&mut self) -> Result<Outcome, Error> {
        let mut params = self.query.log_params(&self.pod.container);
        params.follow = true;
        if let Some(since) = self.resume.since().or(self.query.since) {
            params.since_time = since_time(since);
        }
        let body = match self.query.pods.log_stream(&self.pod.name, &params).await {
            Ok(body) => body,
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(Outcome::Stop),
            Err(kube::Error::Api(status)) if status.code == 400 => {
                tracing::debug!(pod = %self.pod.name, "no log yet: {}", status.message);
                return Ok(Outcome::NotThere);
            }
            Err(e) => return Err(api_error(e, "get", "pods/log", &self.query.namespace)),
        };
        let mut skip = self.resume.reopened();
        let mut reader = LogReader::new(body);
        let _streaming = crate::meter::Open::new(crate::meter::KUBERNETES_LOG_STREAMS);
        loop {
            let line = tokio::select! {
                biased;
                () = self.out.closed() => return Ok(Outcome::Stop),
                line = reader.next() => line,
            };
            match line {
                Ok(Some(line)) => {
                    if !skip.keep(&line) {
                        continue;
                    }
                    if skip.missed_last() && self.previous_rest().await? == Outcome::Stop {
                        return Ok(Outcome::Stop);
                    }
                    self.resume.delivered(&line);
                    let message = self.query.message(&self.instance, line);
                    if self.out.send(Ok(Event::Message(message))).await.is_err() {
                        return Ok(Outcome::Stop);
                    }
                }
                Ok(None) => return Ok(Outcome::Read),
                Err(e) => return Err(broken_log(&self.pod.name, &e)),
            }
        }
    }

    /// The lines after the last one delivered in the container's previous log: a
    /// container that restarted between two reads left the rest of its run there.
    async fn previous_rest(&mut self) -> Result<Outcome, Error> {
        let mut params = self.query.log_params(&self.pod.container);
        params.previous = true;
        params.since_time = self.resume.since().and_then(since_time);
        let body = match self.query.pods.log_stream(&self.pod.name, &params).await {
            Ok(body) => body,
            // No previous log (never restarted, or the pod is gone): nothing to add.
            Err(kube::Error::Api(status)) if matches!(status.code, 400 | 404) => {
                return Ok(Outcome::Read)
            }
            Err(e) => return Err(api_error(e, "get", "pods/log", &self.query.namespace)),
        };
        let mut skip = self.resume.reopened();
        let mut reader = LogReader::new(body);
        let _streaming = crate::meter::Open::new(crate::meter::KUBERNETES_LOG_STREAMS);
        while let Some(line) = reader
            .next()
            .await
            .map_err(|e| broken_log(&self.pod.name, &e))?
        {
            if !skip.keep(&line) {
                continue;
            }
            self.resume.delivered(&line);
            let message = self.query.message(&self.instance, line);
            if self.out.send(Ok(Event::Message(message))).await.is_err() {
                return Ok(Outcome::Stop);
            }
        }
        Ok(Outcome::Read)
    }
}

/// How one follow of a container's log ended.
#[derive(PartialEq, Eq)]
enum Outcome {
    /// At the log's end: the container stopped, or the pod went.
    Read,
    /// There was no log yet (a container not started): wait for the pod to change.
    NotThere,
    /// The pod is gone, or the response.
    Stop,
}
