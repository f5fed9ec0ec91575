//! A query as one ephemeral pull consumer: where it starts (`since`, `tail`), where
//! history ends, the lines it is told it lost, and its deletion when the reader leaves.

use std::collections::{HashMap, VecDeque};

use async_nats::jetstream;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use futures_util::StreamExt;

use super::{line_number, subject, unavailable, JetStreamConfig};
use crate::{Error, Event, LogStream, Message, Request};

/// How far before `since` a consumer starts: a writer's clock may run ahead of the
/// server's, and the server stamps a line when it arrives. The handler drops what is
/// older than `since` by the line's own timestamp.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::seconds(5);

/// Messages asked for at once by a reader.
const BATCH: usize = 1_000;

/// A `tail` reads at most this many messages (or a quarter more than the tail, for a
/// larger one); the handler keeps the newest.
const TAIL_READ: u64 = 1_000;

/// Probes (short-lived consumers) a `tail` may spend finding where it starts.
const TAIL_PROBES: u32 = 40;

/// Instances whose line numbers a reader learns when it starts; lines lost from
/// further instances' history are not counted (their later losses are).
const NUMBERED_INSTANCES: usize = 1_000;

/// Attempts at creating a consumer whose creation times out.
const CREATE_ATTEMPTS: u32 = 3;

type Stream = jetstream::stream::Stream;
type CreateKind = jetstream::stream::ConsumerErrorKind;

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
    let subjects = subjects_of(&stream, &filter).await?;
    if subjects.is_empty() {
        return Err(Error::not_found(format!(
            "no logs for function {:?} in namespace {namespace:?}",
            request.name
        )));
    }
    let deliver = match (request.tail, request.since) {
        (Some(tail), _) => DeliverPolicy::ByStartSequence {
            start_sequence: tail_start(&stream, &filter, tail as u64, &state, &subjects).await?,
        },
        (None, Some(since)) => DeliverPolicy::ByStartTime {
            start_time: since.checked_sub_signed(CLOCK_SKEW).unwrap_or(since),
        },
        (None, None) => DeliverPolicy::All,
    };
    let consumer = Consumer::create(&stream, &filter, deliver).await?;
    let start = consumer.inner.cached_info().delivered.stream_sequence + 1;
    let numbers = Numbers::learn(&stream, &subjects, start, state.last_sequence).await?;
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
        queued: VecDeque::new(),
        messages,
        numbers,
        stream,
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

/// The subjects of `filter` that hold messages, with how many each holds.
async fn subjects_of(stream: &Stream, filter: &str) -> Result<Vec<(String, u64)>, Error> {
    let cannot = |e| unavailable("the log stream's subjects cannot be read", e);
    let subjects = stream.info_with_subjects(filter).await.map_err(cannot)?;
    subjects
        .map(|s| {
            s.map(|(subject, count)| (subject, count as u64))
                .map_err(cannot)
        })
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// The sequence from which a reader gets at least the last `tail` messages of `filter`
/// that exist now, and at most about [`TAIL_READ`]: found from the pending counts of
/// short-lived consumers (probes), by interpolation with a bisection every third
/// probe, so that no message is read to find it.
async fn tail_start(
    stream: &Stream,
    filter: &str,
    tail: u64,
    state: &jetstream::stream::State,
    subjects: &[(String, u64)],
) -> Result<u64, Error> {
    let end = state.last_sequence + 1;
    if tail == 0 {
        return Ok(end);
    }
    let first = state.first_sequence.max(1);
    let total: u64 = subjects.iter().map(|(_, n)| n).sum();
    if total <= tail {
        return Ok(first);
    }
    let allowance = TAIL_READ.saturating_sub(tail).max(tail / 4);
    // Lines written since the query began count from every sequence: take them off, so
    // that only history counts toward the tail. They are counted after each probe, so
    // that a line written meanwhile can only make the start earlier.
    let history_from = |sequence| async move {
        let from = count_from(stream, filter, sequence).await?;
        let after = count_from(stream, filter, end).await?;
        Ok::<u64, Error>(from.saturating_sub(after))
    };
    // From `low` on there are at least `tail` lines; from `high` on fewer.
    let (mut low, mut at_low) = (first, total);
    let (mut high, mut at_high) = (end, 0u64);
    for probe in 0..TAIL_PROBES {
        if at_low - tail <= allowance || high - low <= 1 {
            break;
        }
        let guess = if probe % 3 == 2 {
            low + (high - low) / 2
        } else {
            let wanted = tail + allowance / 2;
            let share = (at_low - wanted) as f64 / (at_low - at_high).max(1) as f64;
            low + ((high - low) as f64 * share) as u64
        }
        .clamp(low + 1, high - 1);
        let lines = history_from(guess).await?;
        if lines >= tail {
            (low, at_low) = (guess, lines);
        } else {
            (high, at_high) = (guess, lines);
        }
    }
    Ok(low)
}

/// How many messages of `filter` the stream holds from `sequence` on.
async fn count_from(stream: &Stream, filter: &str, sequence: u64) -> Result<u64, Error> {
    let deliver = DeliverPolicy::ByStartSequence {
        start_sequence: sequence,
    };
    let consumer = Consumer::create(stream, filter, deliver).await?;
    Ok(consumer.inner.cached_info().num_pending)
}

/// An ephemeral consumer, deleted when dropped.
struct Consumer {
    inner: jetstream::consumer::Consumer<pull::Config>,
    stream: Stream,
}

impl Consumer {
    async fn create(
        stream: &Stream,
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
        // While a server of a cluster is down, the cluster still places some consumers
        // on it, and their creation times out: another attempt lands elsewhere.
        let mut attempt = 1;
        let inner = loop {
            match stream.create_consumer(config.clone()).await {
                Ok(inner) => break inner,
                Err(e) if attempt < CREATE_ATTEMPTS && e.kind() == CreateKind::TimedOut => {
                    tracing::debug!(attempt, "creating a reader timed out; trying again");
                    attempt += 1;
                }
                Err(e) => {
                    return Err(unavailable(
                        "a reader of the log stream cannot be created",
                        e,
                    ))
                }
            }
        };
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

/// The line number ([`numbered`](super::numbered)) each instance's next line should carry, so that a
/// jump in it shows lines this reader never got.
///
/// Writers number each instance's lines 1, 2, 3... A jump means lines between were
/// either removed by retention before this reader got to them (a gap to report) or never
/// stored (a write that failed after its number was given); retention removes an
/// instance's oldest lines first, so it was retention only if the stream holds none of
/// the instance's lines from before the one that jumped.
struct Numbers {
    /// Per subject: the next number expected, or `None` when not known yet (the number
    /// of the first line seen is then taken as it is).
    next: HashMap<String, Option<u64>>,
}

impl Numbers {
    /// The numbers expected next on each subject when reading starts at `start`: that of
    /// the subject's first line from `start` on, or (none, or reading from the end) one
    /// after its last line's. A subject that appears later starts at 1.
    async fn learn(
        stream: &Stream,
        subjects: &[(String, u64)],
        start: u64,
        last: u64,
    ) -> Result<Numbers, Error> {
        let number_of = |m: &jetstream::message::StreamMessage| line_number(&m.payload);
        let learnt: Vec<(String, Option<u64>)> =
            futures_util::stream::iter(subjects.iter().take(NUMBERED_INSTANCES).cloned())
                .map(|(subject, _)| {
                    let stream = stream.clone();
                    async move {
                        let cannot = |e| unavailable("the log stream's lines cannot be read", e);
                        if start <= last {
                            match stream
                                .get_first_raw_message_by_subject(&subject, start)
                                .await
                            {
                                Ok(m) => return Ok((subject, number_of(&m))),
                                Err(e) if e.kind() == LastKind::NoMessageFound => {}
                                Err(e) => return Err(cannot(e)),
                            }
                        }
                        match stream.get_last_raw_message_by_subject(&subject).await {
                            Ok(m) => Ok((subject, number_of(&m).map(|n| n + 1))),
                            Err(e) if e.kind() == LastKind::NoMessageFound => {
                                Ok((subject, Some(1)))
                            }
                            Err(e) => Err(cannot(e)),
                        }
                    }
                })
                .buffer_unordered(16)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<_, _>>()?;
        let mut next: HashMap<String, Option<u64>> = learnt.into_iter().collect();
        for (subject, _) in subjects.iter().skip(NUMBERED_INSTANCES) {
            next.insert(subject.clone(), None);
        }
        Ok(Numbers { next })
    }

    /// How many lines before this one (numbered `number`, at `sequence` on `subject`)
    /// were removed before this reader got them.
    async fn lost_before(
        &mut self,
        stream: &Stream,
        subject: &str,
        number: u64,
        sequence: u64,
    ) -> u64 {
        let expected = match self.next.get_mut(subject) {
            Some(next) => {
                let expected = next.unwrap_or(number);
                *next = Some(expected.max(number + 1));
                expected
            }
            None => {
                // An instance that appeared after the reading began.
                self.next.insert(subject.to_owned(), Some(number + 1));
                1
            }
        };
        if number <= expected {
            // In order; or lines of a second writer of the same instance: nothing lost.
            return 0;
        }
        // A jump: lost to retention only if nothing of this instance older remains.
        match stream.get_first_raw_message_by_subject(subject, 1).await {
            Ok(first) if first.sequence < sequence => 0,
            Ok(_) => number - expected,
            Err(e) if e.kind() == LastKind::NoMessageFound => number - expected,
            Err(e) => {
                tracing::debug!(error = %e, %subject, "a jump in line numbers could not be checked");
                0
            }
        }
    }
}

type LastKind = jetstream::stream::LastRawMessageErrorKind;

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
    /// Events due before the next message is read (a gap, the history mark).
    queued: VecDeque<Event>,
    messages: pull::Stream,
    numbers: Numbers,
    stream: Stream,
    done: bool,
    _consumer: Consumer,
}

impl Reading {
    async fn next(&mut self) -> Option<Result<Event, Error>> {
        if let Some(event) = self.queued.pop_front() {
            return Some(Ok(event));
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
            let lost = match line_number(&message.payload) {
                Some(number) => {
                    self.numbers
                        .lost_before(&self.stream, &message.subject, number, sequence)
                        .await
                }
                None => 0,
            };
            if let Phase::History { last } = self.phase {
                if sequence > last {
                    // The first line written after the query began: history ended before it.
                    self.phase = Phase::Live;
                    self.done = !self.follow;
                    if self.follow {
                        self.queue_line(lost, decoded);
                    }
                    return Some(Ok(Event::HistoryEnd));
                }
                if pending == 0 {
                    self.phase = Phase::MarkDue;
                }
            }
            self.queue_line(lost, decoded);
            return self.queued.pop_front().map(Ok);
        }
    }

    /// Queues a line, and before it the gap of `lost` lines if there is one.
    fn queue_line(&mut self, lost: u64, line: Message) {
        if lost > 0 {
            tracing::debug!(lost, function = %line.name, "a log reader fell behind the stream's retention");
            self.queued.push_back(Event::Gap {
                lost,
                timestamp: line.timestamp,
            });
        }
        self.queued.push_back(Event::Message(line));
    }
}
