//! A query as one ephemeral pull consumer: where it starts (`since`, `tail`), where
//! history ends, and its deletion when the reader leaves.

use async_nats::jetstream;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use futures_util::StreamExt;

use super::{subject, unavailable, JetStreamConfig};
use crate::{Error, Event, LogStream, Message, Request};

/// How far before `since` a consumer starts: a writer's clock may run ahead of the
/// server's, and the server stamps a line when it arrives. The handler drops what is
/// older than `since` by the line's own timestamp.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::seconds(5);

/// Messages asked for at once by a reader.
const BATCH: usize = 1_000;

pub(super) async fn query(
    context: &jetstream::Context,
    config: &JetStreamConfig,
    request: Request,
) -> Result<LogStream, Error> {
    let namespace = if request.namespace.is_empty() {
        config.default_namespace.as_str()
    } else {
        request.namespace.as_str()
    };
    let filter = subject::filter(&config.prefix, namespace, &request.name, &request.instance);
    let stream = context.get_stream(&config.stream).await.map_err(|e| {
        unavailable(
            &format!("the log stream {} cannot be read", config.stream),
            e,
        )
    })?;
    // The stream's state as it was read just now: everything up to its last sequence is
    // history.
    let state = stream.cached_info().state.clone();
    if !has_subjects(&stream, &filter).await? {
        return Err(Error::not_found(format!(
            "no logs for function {:?} in namespace {namespace:?}",
            request.name
        )));
    }
    let deliver = match (request.tail, request.since) {
        (Some(tail), _) => DeliverPolicy::ByStartSequence {
            start_sequence: tail_start(&stream, &filter, tail, &state).await?,
        },
        (None, Some(since)) => DeliverPolicy::ByStartTime {
            start_time: since.checked_sub_signed(CLOCK_SKEW).unwrap_or(since),
        },
        (None, None) => DeliverPolicy::All,
    };
    let consumer = Consumer::create(&stream, &filter, deliver).await?;
    let messages = consumer
        .inner
        .stream()
        .max_messages_per_batch(BATCH)
        // A reader whose server is lost finds out within a few seconds.
        .heartbeat(std::time::Duration::from_secs(1))
        .expires(std::time::Duration::from_secs(5))
        .messages()
        .await
        .map_err(|e| unavailable("the log stream cannot be followed", e))?;
    let phase = if consumer.inner.cached_info().num_pending == 0 {
        Phase::MarkDue
    } else {
        Phase::History {
            last: state.last_sequence,
        }
    };
    let reading = Reading {
        phase,
        delivered: 0,
        follow: request.follow,
        queued: None,
        messages,
        done: false,
        _consumer: consumer,
    };
    Ok(Box::pin(futures_util::stream::unfold(
        reading,
        |mut r| async move {
            let event = r.next().await?;
            Some((event, r))
        },
    )))
}

/// Whether any message of the stream is on a subject of `filter`.
async fn has_subjects(stream: &jetstream::stream::Stream, filter: &str) -> Result<bool, Error> {
    let mut subjects = stream
        .info_with_subjects(filter)
        .await
        .map_err(|e| unavailable("the log stream's subjects cannot be read", e))?;
    match subjects.next().await {
        None => Ok(false),
        Some(Ok(_)) => Ok(true),
        Some(Err(e)) => Err(unavailable("the log stream's subjects cannot be read", e)),
    }
}

/// The sequence where the last `tail` messages of `filter` begin: the highest sequence
/// from which at least `tail` of them remain, found by a binary search on the pending
/// count of short-lived consumers; no message is read.
async fn tail_start(
    stream: &jetstream::stream::Stream,
    filter: &str,
    tail: usize,
    state: &jetstream::stream::State,
) -> Result<u64, Error> {
    let tail = tail as u64;
    if tail == 0 {
        return Ok(state.last_sequence + 1);
    }
    let (mut low, mut high) = (state.first_sequence.max(1), state.last_sequence.max(1));
    if count_from(stream, filter, low).await? <= tail {
        return Ok(low);
    }
    // count_from(low) > tail; find the highest sequence with count_from >= tail.
    while low < high {
        let middle = low + (high - low).div_ceil(2);
        if count_from(stream, filter, middle).await? >= tail {
            low = middle;
        } else {
            high = middle - 1;
        }
    }
    Ok(low)
}

/// How many messages of `filter` the stream holds from `sequence` on.
async fn count_from(
    stream: &jetstream::stream::Stream,
    filter: &str,
    sequence: u64,
) -> Result<u64, Error> {
    let deliver = DeliverPolicy::ByStartSequence {
        start_sequence: sequence,
    };
    let consumer = Consumer::create(stream, filter, deliver).await?;
    Ok(consumer.inner.cached_info().num_pending)
}

/// An ephemeral consumer, deleted when dropped.
struct Consumer {
    inner: jetstream::consumer::Consumer<pull::Config>,
    stream: jetstream::stream::Stream,
}

impl Consumer {
    async fn create(
        stream: &jetstream::stream::Stream,
        filter: &str,
        deliver_policy: DeliverPolicy,
    ) -> Result<Consumer, Error> {
        let config = pull::Config {
            deliver_policy,
            filter_subject: filter.to_owned(),
            ack_policy: AckPolicy::None,
            memory_storage: true,
            // The server removes it by itself if this provider dies without deleting it.
            inactive_threshold: std::time::Duration::from_secs(30),
            ..Default::default()
        };
        let inner = stream
            .create_consumer(config)
            .await
            .map_err(|e| unavailable("a reader of the log stream cannot be created", e))?;
        Ok(Consumer {
            inner,
            stream: stream.clone(),
        })
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let name = self.inner.cached_info().name.clone();
        let stream = self.stream.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = stream.delete_consumer(&name).await {
                    tracing::debug!(error = %e, consumer = %name, "deleting a reader failed; the server drops it when idle");
                }
            });
        }
    }
}

/// Where a query is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading history: the messages up to this sequence existed when the query began.
    History { last: u64 },
    /// History is all delivered; the mark goes next.
    MarkDue,
    /// Past history.
    Live,
}

/// The events of one query.
struct Reading {
    phase: Phase,
    /// The consumer's sequence of the last message delivered: the next must follow it.
    delivered: u64,
    follow: bool,
    /// A message held back to send the history mark before it.
    queued: Option<Message>,
    messages: pull::Stream,
    done: bool,
    _consumer: Consumer,
}

impl Reading {
    async fn next(&mut self) -> Option<Result<Event, Error>> {
        if let Some(message) = self.queued.take() {
            return Some(Ok(Event::Message(message)));
        }
        loop {
            if self.done {
                return None;
            }
            if self.phase == Phase::MarkDue {
                self.phase = Phase::Live;
                self.done = !self.follow;
                return Some(Ok(Event::HistoryEnd));
            }
            let message = match self.messages.next().await {
                Some(Ok(message)) => message,
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(unavailable("reading the log stream failed", e)));
                }
                None => {
                    self.done = true;
                    return None;
                }
            };
            let (sequence, pending, delivery) = match message.info() {
                Ok(info) => (info.stream_sequence, info.pending, info.consumer_sequence),
                Err(e) => {
                    tracing::warn!(error = %e, "a message without JetStream metadata was skipped");
                    continue;
                }
            };
            // Lines the server sent while the connection to it was being lost never
            // arrive, and this consumer does not send them again: say so, so that the
            // reader resumes from its last line rather than skip them unknowingly.
            if self.delivered != 0 && delivery != self.delivered + 1 {
                self.done = true;
                return Some(Err(Error::unavailable(format!(
                    "lines {} to {} of this read were lost with a connection to NATS; read again from the last line",
                    self.delivered + 1,
                    delivery.saturating_sub(1)
                ))));
            }
            self.delivered = delivery;
            let decoded = match serde_json::from_slice::<Message>(&message.payload) {
                Ok(decoded) => decoded,
                Err(e) => {
                    tracing::warn!(error = %e, subject = %message.subject, "an unreadable log line was skipped");
                    continue;
                }
            };
            if let Phase::History { last } = self.phase {
                if sequence > last {
                    // The first line written after the query began: history ended before it.
                    self.phase = Phase::Live;
                    self.done = !self.follow;
                    self.queued = self.follow.then_some(decoded);
                    return Some(Ok(Event::HistoryEnd));
                }
                if pending == 0 {
                    self.phase = Phase::MarkDue;
                }
            }
            return Some(Ok(Event::Message(decoded)));
        }
    }
}
