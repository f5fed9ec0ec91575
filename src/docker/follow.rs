//! Follow: every running container from where its history ended, replicas that start
//! while the stream is open, and a daemon that cuts connections or goes away.

use std::pin::Pin;
use std::sync::Arc;

use bytes::BytesMut;
use chrono::{DateTime, Utc};
use futures_core::Stream;
use futures_util::stream::{SelectAll, StreamExt};
use tokio_util::codec::Decoder;

use super::api::StartEvent;
use super::engine::{ApiError, ByteStream, DockerApi};
use super::frames::Line;
use super::outbox::Outbox;
use super::query::{Broken, Part, Query, Tracked};
use crate::codec::NdjsonDecoder;
use crate::{Error, Event};

/// How often in a row a running container's stream may end, or the event stream break,
/// and be opened again before the response gives up as broken.
const MAX_REOPENS: u32 = 3;

/// Subscribes to the start events of the function's containers, from `since` if given.
pub(super) async fn subscribe(
    api: &dyn DockerApi,
    labels: &[String],
    since: Option<DateTime<Utc>>,
) -> Result<Events, Error> {
    let bytes = api.start_events(labels, since).await?;
    Ok(Events {
        bytes,
        decoder: NdjsonDecoder::default(),
        buf: BytesMut::new(),
    })
}

pub(super) struct Events {
    bytes: ByteStream,
    decoder: NdjsonDecoder<StartEvent>,
    buf: BytesMut,
}

impl Events {
    /// The ID of the next container that started; `None` when the stream ends.
    async fn next_start(&mut self) -> Option<Result<String, Error>> {
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(event)) => {
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
                Ok(None) => {}
            }
            match self.bytes.next().await? {
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

/// What the live phase follows: the containers' streams and the start events.
pub(super) struct Following {
    query: Arc<Query>,
    /// Every container of the query; indexes into it name a container in [`Live`].
    tracked: Vec<Tracked>,
    live: SelectAll<LiveStream>,
    events: Option<Events>,
    /// Resubscriptions in a row, reset by an event.
    resubscribes: u32,
}

impl Following {
    /// Follows every running container of `tracked` from where its history ended.
    pub(super) fn start(query: Arc<Query>, tracked: Vec<Tracked>, events: Option<Events>) -> Self {
        let mut following = Following {
            query,
            tracked,
            live: SelectAll::new(),
            events,
            resubscribes: 0,
        };
        for i in 0..following.tracked.len() {
            if following.tracked[i].container.running {
                following.attach(i);
            }
        }
        following
    }

    /// Opens container `i`'s follow stream from its cursor (or the request's `since`).
    fn attach(&mut self, i: usize) {
        let tracked = &mut self.tracked[i];
        tracked.attached = true;
        let query = Arc::clone(&self.query);
        let container = tracked.container.clone();
        let cursor = tracked.cursor;
        let opened = async move {
            match query.open(&container, Part::Follow(cursor)).await {
                Ok(lines) => Some(lines),
                Err(e) => {
                    let e = Error::from(e);
                    tracing::debug!(error = %e.chain(), container = %container.name, "cannot follow a container");
                    None
                }
            }
        };
        let lines = futures_util::stream::once(opened).flat_map(move |lines| {
            futures_util::stream::unfold(lines, move |lines| async move {
                let mut lines = lines?;
                match lines.next().await {
                    Some(Ok(line)) => Some((Live::Line(i, line), Some(lines))),
                    Some(Err(Broken::Bad(e))) => Some((Live::Failed(e), None)),
                    Some(Err(Broken::Cut(e))) => {
                        tracing::debug!(error = %e.chain(), "a container's follow stream broke off");
                        None
                    }
                    None => None,
                }
            })
        });
        self.live.push(Box::pin(
            lines.chain(futures_util::stream::iter([Live::Ended(i)])),
        ));
    }

    /// Sends live lines until the reader leaves; an error means the daemon is gone.
    pub(super) async fn run(&mut self, out: &mut Outbox) -> Result<(), Error> {
        loop {
            // Lines that are ready join the batch; the batch goes before any wait.
            let ready = match self.live.is_empty() {
                true => None,
                false => futures_util::FutureExt::now_or_never(self.live.next()),
            };
            let item = match ready {
                Some(item) => item,
                None => {
                    if !out.flush().await {
                        return Ok(());
                    }
                    tokio::select! {
                        started = next_start(&mut self.events) => {
                            match started {
                                Some(Ok(id)) => {
                                    self.resubscribes = 0;
                                    self.started(&id).await;
                                }
                                Some(Err(e)) => {
                                    tracing::debug!(error = %e.chain(), "Docker's event stream broke off");
                                    self.resubscribe().await?;
                                }
                                None => self.resubscribe().await?,
                            }
                            continue;
                        }
                        item = self.live.next(), if !self.live.is_empty() => item,
                        _ = out.tx.closed() => return Ok(()),
                    }
                }
            };
            match item {
                Some(Live::Line(i, line)) => {
                    let tracked = &mut self.tracked[i];
                    tracked.reopens = 0;
                    tracked.sent(line.timestamp);
                    let message = self.query.message(&tracked.container, line);
                    if !out.push(Ok(Event::Message(message))).await {
                        return Ok(());
                    }
                }
                Some(Live::Ended(i)) => self.ended(i).await?,
                Some(Live::Failed(e)) => return Err(e),
                None => {}
            }
        }
    }

    /// Container `i`'s stream ended: asks the daemon why. A container that stopped or was
    /// removed ends its part quietly; one still running had its connection cut, and is
    /// followed again from its cursor, so no line is lost or repeated. A daemon that does
    /// not answer is an error.
    async fn ended(&mut self, i: usize) -> Result<(), Error> {
        self.tracked[i].attached = false;
        let container = match self.query.inspect(&self.tracked[i].container.id).await {
            Ok(c) => c,
            Err(ApiError::Gone(_)) => return Ok(()), // removed
            Err(ApiError::Failed(e)) => return Err(e),
        };
        if !container.running {
            return Ok(());
        }
        let tracked = &mut self.tracked[i];
        tracked.reopens += 1;
        if tracked.reopens > MAX_REOPENS {
            return Err(Error::unavailable(format!(
                "the Docker daemon ended the log stream of the running container {} {MAX_REOPENS} times in a row",
                container.name
            )));
        }
        tracing::debug!(container = %container.name, "following a running container again from where its stream broke off");
        tracked.container = container;
        self.attach(i);
        Ok(())
    }

    /// The event stream ended or broke off: subscribes again, replaying from the first
    /// subscription so that no start is missed (starts already attached are ignored). A
    /// daemon that does not answer is an error.
    async fn resubscribe(&mut self) -> Result<(), Error> {
        self.events = None;
        self.resubscribes += 1;
        if self.resubscribes > MAX_REOPENS {
            return Err(Error::unavailable(format!(
                "the Docker daemon ended its event stream {MAX_REOPENS} times in a row"
            )));
        }
        let query = &self.query;
        let events = subscribe(&*query.api, &query.labels, Some(query.subscribed_at)).await?;
        self.events = Some(events);
        Ok(())
    }

    /// Follows a container that has just started, unless it is already followed, is in
    /// another namespace, or is not the instance asked for.
    async fn started(&mut self, id: &str) {
        let known = self.tracked.iter().position(|t| t.container.id == id);
        if known.is_some_and(|i| self.tracked[i].attached) {
            return;
        }
        let container = match self.query.inspect(id).await {
            Ok(c) => c,
            Err(e) => {
                let e = Error::from(e);
                tracing::debug!(error = %e.chain(), "a started container could not be inspected");
                return;
            }
        };
        if !self
            .query
            .wants(&container.namespace, &container.id, &container.name)
        {
            return;
        }
        tracing::debug!(container = %container.name, "following a container that started");
        let i = match known {
            Some(i) => {
                self.tracked[i].container = container;
                i
            }
            None => {
                self.tracked.push(Tracked::new(container));
                self.tracked.len() - 1
            }
        };
        self.attach(i);
    }
}

/// Waits for the next start event, or for ever once there is no event stream.
async fn next_start(events: &mut Option<Events>) -> Option<Result<String, Error>> {
    match events {
        Some(events) => events.next_start().await,
        None => std::future::pending().await,
    }
}
