//! Storing a batch: each line published in order, with an id that makes a retry store it
//! once and its number on its subject that lets a reader count lines lost to retention;
//! then the batch's own acknowledgements awaited together, within one deadline.
//!
//! Nothing here is shared between batches but the connection and the per-subject
//! numbers: a batch's outcomes are exactly its own lines'.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, ErrorCode};
use bytes::BytesMut;
use std::task::Poll;

use futures_util::StreamExt;

use super::{line_number, numbered, subject, unavailable, JetStreamConfig};
use crate::{Batch, Error, Message};

/// Acknowledgements one batch awaits at once, at most; the connection's own bound
/// ([`IN_FLIGHT`]) holds across batches.
const BATCH_IN_FLIGHT: usize = 1024;

/// Acknowledgements awaited at once on a connection, at most; past it a publish waits.
pub(super) const IN_FLIGHT: usize = 4096;

/// Lines numbered and sent under one hold of the numbers' lock.
const SEND_CHUNK: usize = 64;

/// The outcome of a line sent, awaiting its acknowledgement, or why it was not sent.
type Sent = (usize, Result<(String, PublishAckFuture), Error>);

/// Why a line after one that could not be sent was not sent either.
const NOT_SENT: &str = "not sent: JetStream was unavailable for an earlier line of this batch";

/// Subjects whose next number a writer remembers; past it they are all forgotten and
/// read again from the stream when next written.
const REMEMBERED_SUBJECTS: usize = 1 << 16;

pub(super) struct Writer {
    /// For the stream's API (reading numbers and subjects); it reconnects by itself.
    context: jetstream::Context,
    config: Arc<JetStreamConfig>,
    servers: Vec<String>,
    /// The connection lines are published on, made anew after it is lost.
    publisher: tokio::sync::Mutex<Connection>,
    /// The last number given on each subject. Held while a line is numbered and sent,
    /// so that numbers reach the stream in order on every subject.
    numbers: tokio::sync::Mutex<HashMap<String, Numbered>>,
    /// The stream's subjects as last read, to tell a subject the stream does not take
    /// from a stream without a leader.
    subjects: Mutex<Subjects>,
}

struct Subjects {
    patterns: Vec<String>,
    read_at: Instant,
}

/// The connection lines are published on. It never reconnects by itself: lines it had
/// not delivered when it was lost are then never sent later, after lines of the same
/// batch sent meanwhile, which would store an instance's lines out of order. The next
/// batch makes a new connection instead, and a batch sends all its lines on one.
#[derive(Clone)]
struct Publisher {
    client: async_nats::Client,
    context: jetstream::Context,
}

impl Publisher {
    fn usable(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }
}

/// The current publisher, or when and why making one last failed.
#[derive(Default)]
struct Connection {
    current: Option<Publisher>,
    failed: Option<(Instant, String)>,
    /// The server tried last (an index into the servers).
    next_server: usize,
}

/// How long a failed connection attempt stands for the batches that follow it, so that
/// they fail at once rather than each wait for a server that is not there.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);

/// The last number given on a subject, and when.
struct Numbered {
    last: u64,
    at: Instant,
}

impl Numbered {
    /// Whether the number should be read from the stream again before the next line:
    /// after a pause longer than any acknowledgement takes, the stream's last line is
    /// this writer's last stored line (and a subject that retention emptied meanwhile
    /// starts again at 1, which a reader that starts now expects).
    fn stale(&self, config: &JetStreamConfig) -> bool {
        self.at.elapsed() > (config.store_timeout * 2).max(Duration::from_secs(10))
    }
}

/// A line ready to publish.
struct Prepared {
    subject: String,
    /// The line's JSON without its closing brace: its number goes last.
    payload: BytesMut,
    id: String,
}

impl Writer {
    pub(super) fn new(
        context: jetstream::Context,
        config: Arc<JetStreamConfig>,
        servers: Vec<String>,
        subjects: Vec<String>,
    ) -> Self {
        Writer {
            context,
            config,
            servers,
            publisher: tokio::sync::Mutex::default(),
            numbers: tokio::sync::Mutex::default(),
            subjects: Mutex::new(Subjects {
                patterns: subjects,
                read_at: Instant::now(),
            }),
        }
    }

    /// Stores `batch`; one outcome per message, each its own.
    pub(super) async fn store(&self, batch: Batch) -> Vec<Result<(), Error>> {
        let count = batch.messages.len();
        if count == 0 {
            return Vec::new();
        }
        let mut outcomes: Vec<Option<Result<(), Error>>> = (0..count).map(|_| None).collect();
        let prepared = self.prepare(batch);
        let deadline = self.config.store_timeout;
        let settled = tokio::time::timeout(deadline, self.settle(prepared, &mut outcomes)).await;
        if settled.is_err() {
            tracing::warn!(
                unsettled = outcomes.iter().filter(|o| o.is_none()).count(),
                "log lines not acknowledged by JetStream in time"
            );
        }
        outcomes
            .into_iter()
            .map(|outcome| {
                outcome.unwrap_or_else(|| {
                    Err(Error::unavailable(format!(
                        "JetStream did not acknowledge the line within {} s; it may still be stored: send it again with the same id (see the README)",
                        deadline.as_secs_f64()
                    )))
                })
            })
            .collect()
    }

    /// Each message's subject, payload and id.
    fn prepare(&self, batch: Batch) -> Vec<Prepared> {
        let config = &self.config;
        let mut ids = Ids::new(batch.id.as_deref());
        batch
            .messages
            .into_iter()
            .map(|mut message| {
                if message.namespace.is_empty() {
                    message.namespace = config.default_namespace.as_str().into();
                }
                let subject = subject::subject(
                    &config.prefix,
                    &message.namespace,
                    &message.name,
                    &message.instance,
                );
                let id = ids.next(&message);
                let mut payload = BytesMut::with_capacity(message.text.len() + 192);
                crate::codec::encode_message(&message, &mut payload);
                payload.truncate(payload.len() - 2); // the newline and the closing brace
                Prepared {
                    subject,
                    payload,
                    id,
                }
            })
            .collect()
    }

    /// Publishes the lines in order and fills in each one's outcome as its
    /// acknowledgement comes. After a line found JetStream unavailable, the rest are not
    /// sent.
    async fn settle(&self, prepared: Vec<Prepared>, outcomes: &mut [Option<Result<(), Error>>]) {
        let down = AtomicBool::new(false);
        let ready = async {
            let publisher = self.publisher().await?;
            self.learn_numbers(&prepared).await?;
            Ok::<_, Error>(publisher)
        };
        let publisher = match ready.await {
            Ok(publisher) => publisher,
            Err(e) => {
                for outcome in outcomes.iter_mut() {
                    *outcome = Some(Err(Error::unavailable(e.to_string())));
                }
                return;
            }
        };
        // The first line alone, and only then the rest: a stream that gets a leader while
        // a batch is sent would otherwise refuse its first lines (no responders) and
        // store the next ones, out of order. A batch that begins stored goes on; one
        // that begins refused stops.
        let mut rest = prepared;
        let first: Vec<Prepared> = rest.drain(..rest.len().min(1)).collect();
        for (part, offset) in [(first, 0), (rest, 1)] {
            let acks = self.acknowledgements(&publisher, part, &down);
            let mut acks = std::pin::pin!(acks);
            while let Some((i, outcome)) = acks.next().await {
                if matches!(outcome, Err(Error::Unavailable { .. })) {
                    down.store(true, Ordering::Relaxed);
                }
                outcomes[offset + i] = Some(outcome);
            }
        }
    }

    /// Each line's outcome as its acknowledgement comes: the lines published one after
    /// the other, their acknowledgements awaited together. Outcomes are looked at before
    /// more lines are sent, so that one found unavailable stops the rest at once.
    fn acknowledgements<'a>(
        &'a self,
        publisher: &'a Publisher,
        prepared: Vec<Prepared>,
        down: &'a AtomicBool,
    ) -> impl futures_util::Stream<Item = (usize, Result<(), Error>)> + Send + 'a {
        let mut lines = prepared.into_iter().enumerate();
        let chunks = std::iter::from_fn(move || {
            let chunk: Vec<_> = lines.by_ref().take(SEND_CHUNK).collect();
            (!chunk.is_empty()).then_some(chunk)
        });
        let mut sending = Box::pin(
            futures_util::stream::iter(chunks)
                .then(move |chunk| self.send(publisher, chunk, down))
                .flat_map(futures_util::stream::iter),
        );
        let mut acks = futures_util::stream::FuturesUnordered::new();
        let mut all_sent = false;
        futures_util::stream::poll_fn(move |cx| loop {
            if let Poll::Ready(Some(outcome)) = acks.poll_next_unpin(cx) {
                return Poll::Ready(Some(outcome));
            }
            if all_sent {
                return if acks.is_empty() {
                    Poll::Ready(None)
                } else {
                    Poll::Pending
                };
            }
            if acks.len() >= BATCH_IN_FLIGHT {
                return Poll::Pending;
            }
            match sending.poll_next_unpin(cx) {
                Poll::Ready(Some((i, sent))) => acks.push(self.outcome(i, sent)),
                Poll::Ready(None) => all_sent = true,
                Poll::Pending => return Poll::Pending,
            }
        })
    }

    /// What became of line `i`, once acknowledged (or not sent).
    async fn outcome(
        &self,
        i: usize,
        sent: Result<(String, PublishAckFuture), Error>,
    ) -> (usize, Result<(), Error>) {
        let outcome = match sent {
            Ok((subject, ack)) => self.acknowledged(&subject, ack).await,
            Err(e) => Err(e),
        };
        (i, outcome)
    }

    /// The connection to publish on: the current one while it is connected, else a new
    /// one.
    async fn publisher(&self) -> Result<Publisher, Error> {
        let mut connection = self.publisher.lock().await;
        if let Some(publisher) = connection.current.as_ref().filter(|p| p.usable()) {
            return Ok(publisher.clone());
        }
        if let Some((at, why)) = &connection.failed {
            if at.elapsed() < RECONNECT_PAUSE {
                return Err(Error::unavailable(why.clone()));
            }
        }
        // One server at a time, from the one after the last tried: a client given them
        // all would, without reconnects, try only one.
        let mut last_error = None;
        let mut client = None;
        for _ in 0..self.servers.len() {
            connection.next_server = (connection.next_server + 1) % self.servers.len();
            let server = self.servers[connection.next_server].as_str();
            let options = super::connect_options(&self.config).max_reconnects(1);
            match options.connect(server).await {
                Ok(connected) => {
                    client = Some(connected);
                    break;
                }
                Err(e) => {
                    last_error = Some(unavailable("cannot connect to NATS to store lines", e))
                }
            }
        }
        let Some(client) = client else {
            let e =
                last_error.unwrap_or_else(|| Error::unavailable("no NATS server is configured"));
            connection.failed = Some((Instant::now(), e.to_string()));
            return Err(e);
        };
        let context = super::context(&self.config, client.clone());
        let publisher = Publisher { client, context };
        connection.current = Some(publisher.clone());
        connection.failed = None;
        Ok(publisher)
    }

    /// Reads from the stream the last number of each subject of `prepared` that this
    /// writer has not numbered yet.
    async fn learn_numbers(&self, prepared: &[Prepared]) -> Result<(), Error> {
        let mut unknown: Vec<String> = {
            let numbers = self.numbers.lock().await;
            prepared
                .iter()
                .filter(|p| {
                    numbers
                        .get(&p.subject)
                        .is_none_or(|n| n.stale(&self.config))
                })
                .map(|p| p.subject.clone())
                .collect()
        };
        if unknown.is_empty() {
            return Ok(());
        }
        unknown.sort_unstable();
        unknown.dedup();
        let stream = self
            .context
            .get_stream_no_info(&self.config.stream)
            .await
            .map_err(|e| unavailable("the log stream cannot be reached", e))?;
        let learnt: Vec<(String, u64)> = futures_util::stream::iter(unknown)
            .map(move |subject| {
                let stream = stream.clone();
                async move {
                    let last = stream.get_last_raw_message_by_subject(&subject).await;
                    let number = match last {
                        Ok(message) => line_number(&message.payload).unwrap_or(0),
                        Err(e) if e.kind() == LastKind::NoMessageFound => 0,
                        Err(e) => {
                            return Err(unavailable(
                                "the log stream's last line of an instance cannot be read",
                                e,
                            ))
                        }
                    };
                    Ok((subject, number))
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        let mut numbers = self.numbers.lock().await;
        if numbers.len() + learnt.len() > REMEMBERED_SUBJECTS {
            numbers.clear();
        }
        for (subject, last) in learnt {
            let learnt = Numbered {
                last,
                at: Instant::now(),
            };
            match numbers.get_mut(&subject) {
                // Another batch numbered it meanwhile.
                Some(numbered) if !numbered.stale(&self.config) => {}
                Some(numbered) => *numbered = learnt,
                None => {
                    numbers.insert(subject, learnt);
                }
            }
        }
        Ok(())
    }

    /// Numbers a few lines and sends them, in order; their acknowledgements are still to
    /// come.
    async fn send(
        &self,
        publisher: &Publisher,
        chunk: Vec<(usize, Prepared)>,
        down: &AtomicBool,
    ) -> Vec<Sent> {
        let mut sent = Vec::with_capacity(chunk.len());
        let mut failed = Vec::new();
        // After a line that could not be sent for want of JetStream, the rest are not
        // sent; a line too large for NATS stops only itself.
        let mut stop = false;
        {
            let mut numbers = self.numbers.lock().await;
            for (i, line) in chunk {
                if stop || down.load(Ordering::Relaxed) || !publisher.usable() {
                    sent.push((i, Err(Error::unavailable(NOT_SENT))));
                    continue;
                }
                // A subject forgotten since learn_numbers (the map was full) starts a new
                // count, which a reader takes for a writer that restarted: no gap is
                // claimed.
                let numbered_so_far = numbers.entry(line.subject.clone()).or_insert(Numbered {
                    last: 0,
                    at: Instant::now(),
                });
                numbered_so_far.last += 1;
                numbered_so_far.at = Instant::now();
                let number = &mut numbered_so_far.last;
                let publish = PublishMessage::build()
                    .payload(numbered(line.payload, *number))
                    .message_id(&line.id);
                match publisher
                    .context
                    .send_publish(line.subject.clone(), publish)
                    .await
                {
                    Ok(ack) => sent.push((i, Ok((line.subject, ack)))),
                    Err(e) => {
                        // Never sent: the number is free again (the lock is still held).
                        *number -= 1;
                        stop = e.kind() != PublishErrorKind::MaxPayloadExceeded;
                        failed.push((sent.len(), line.subject, e));
                        sent.push((i, Err(Error::unavailable(NOT_SENT))));
                    }
                }
            }
        }
        // Why, found out of the lock (it may ask the server).
        for (at, subject, e) in failed {
            sent[at].1 = Err(self.refusal(&subject, e).await);
        }
        sent
    }

    /// What became of a sent line.
    async fn acknowledged(&self, subject: &str, ack: PublishAckFuture) -> Result<(), Error> {
        let _awaited = crate::meter::Open::new(crate::meter::NATS_ACKS_AWAITED);
        match ack.await {
            Ok(ack) if ack.stream == self.config.stream => Ok(()),
            Ok(ack) => Err(Error::invalid(
                "subject",
                format!(
                    "the line went to the stream {} (which takes {subject}), not to {}: this provider cannot read it",
                    ack.stream, self.config.stream
                ),
            )),
            Err(e) => Err(self.refusal(subject, e).await),
        }
    }

    /// Why a line was not stored: [`Error::InvalidRequest`] when the line itself is the
    /// reason, [`Error::Unavailable`] when JetStream could not take it now.
    async fn refusal(&self, subject: &str, e: jetstream::context::PublishError) -> Error {
        let timeout = self.config.timeout.as_secs_f64();
        match e.kind() {
            PublishErrorKind::StreamNotFound => {
                if self.stream_takes(subject).await {
                    Error::unavailable(format!(
                        "the log stream {} has no leader to take lines right now (a leader election, or too few of its servers are up)",
                        self.config.stream
                    ))
                } else {
                    Error::invalid(
                        "subject",
                        format!(
                            "the log stream {} does not take the subject {subject} (its subjects: {})",
                            self.config.stream,
                            self.patterns().join(", ")
                        ),
                    )
                }
            }
            PublishErrorKind::MaxPayloadExceeded => {
                Error::invalid("text", format!("the line is too large for NATS: {e}"))
            }
            PublishErrorKind::TimedOut => Error::unavailable(format!(
                "JetStream did not acknowledge the line within {timeout} s; it may still be stored: send it again with the same id (see the README)"
            )),
            PublishErrorKind::BrokenPipe => Error::unavailable(
                "the connection to NATS was lost before the line was acknowledged; it may still be stored: send it again with the same id (see the README)",
            ),
            _ => match api_error_code(&e) {
                Some(code)
                    if code == ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM
                        || code == ErrorCode::STREAM_HEADER_EXCEEDS_MAXIMUM =>
                {
                    Error::invalid("text", format!("the log stream refused the line: {e}"))
                }
                _ => unavailable("JetStream could not store the line", e),
            },
        }
    }

    /// Whether the stream's subjects cover `subject`, from what was last read of them
    /// (read again, at most once a second, when they do not).
    async fn stream_takes(&self, subject: &str) -> bool {
        if subject::covered(&self.patterns(), subject) {
            return true;
        }
        let stale = {
            let mut subjects = self.subjects.lock().unwrap_or_else(|p| p.into_inner());
            let stale = subjects.read_at.elapsed() > Duration::from_secs(1);
            if stale {
                subjects.read_at = Instant::now();
            }
            stale
        };
        if !stale {
            return false;
        }
        match self.context.get_stream(&self.config.stream).await {
            Ok(stream) => {
                let patterns = stream.cached_info().config.subjects.clone();
                let takes = subject::covered(&patterns, subject);
                self.subjects
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .patterns = patterns;
                takes
            }
            // The stream cannot be read either: not a question of the subject.
            Err(_) => true,
        }
    }

    fn patterns(&self) -> Vec<String> {
        self.subjects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .patterns
            .clone()
    }
}

type LastKind = jetstream::stream::LastRawMessageErrorKind;

/// The JetStream API error code of a refusal, when the server sent one.
fn api_error_code(e: &jetstream::context::PublishError) -> Option<ErrorCode> {
    let source = std::error::Error::source(e)?;
    source
        .downcast_ref::<jetstream::Error>()
        .map(jetstream::Error::error_code)
}

/// The `Nats-Msg-Id` of each line of a batch: JetStream stores a line whose id it has
/// seen within the stream's duplicate window only once, so a client that sends a batch
/// again after a timeout or a 503 does not store its lines twice.
///
/// With a batch id, a line's id is a digest of the batch id, its place in the batch and
/// its content but not its timestamp (which the server may have filled in); without
/// one, of its content and timestamp, and how many identical lines came before it in
/// the batch (two equal lines of one push are two lines).
struct Ids<'a> {
    batch: Option<&'a str>,
    index: u64,
    seen: HashMap<[u8; 16], u64>,
}

impl<'a> Ids<'a> {
    fn new(batch: Option<&'a str>) -> Self {
        Ids {
            batch,
            index: 0,
            seen: HashMap::new(),
        }
    }

    fn next(&mut self, m: &Message) -> String {
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        for field in [
            b"faas-logs line id 1".as_slice(),
            m.namespace.as_bytes(),
            m.name.as_bytes(),
            m.instance.as_bytes(),
            m.text.as_bytes(),
        ] {
            add_field(&mut digest, field);
        }
        let repeat = match self.batch {
            Some(batch) => {
                add_field(&mut digest, batch.as_bytes());
                add_field(&mut digest, &self.index.to_le_bytes());
                0
            }
            None => {
                let nanos = m.timestamp.timestamp_nanos_opt().unwrap_or_default();
                add_field(&mut digest, &nanos.to_le_bytes());
                let content = first_16(digest.clone().finish().as_ref());
                let repeat = self.seen.entry(content).or_default();
                *repeat += 1;
                *repeat - 1
            }
        };
        self.index += 1;
        add_field(&mut digest, &repeat.to_le_bytes());
        hex(&first_16(digest.finish().as_ref()))
    }
}

/// One field of a digest, its length first so that fields cannot run into each other.
fn add_field(digest: &mut ring::digest::Context, bytes: &[u8]) {
    digest.update(&(bytes.len() as u64).to_le_bytes());
    digest.update(bytes);
}

fn first_16(bytes: &[u8]) -> [u8; 16] {
    let mut out = [0; 16];
    out.copy_from_slice(&bytes[..16]);
    out
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn line(text: &str, nanos: u32) -> Message {
        Message::new("f", Utc.timestamp_opt(1_700_000_000, nanos).unwrap(), text)
            .with_namespace("ns")
            .with_instance("f-1")
    }

    #[test]
    fn ids_repeat_for_a_resent_batch_and_differ_between_lines() {
        let batch = [line("a", 1), line("a", 1), line("b", 1), line("a", 2)];
        let ids = |key: Option<&str>| {
            let mut ids = Ids::new(key);
            batch.iter().map(|m| ids.next(m)).collect::<Vec<_>>()
        };
        let plain = ids(None);
        assert_eq!(plain, ids(None), "the same lines, the same ids");
        let distinct: std::collections::HashSet<_> = plain.iter().collect();
        assert_eq!(
            distinct.len(),
            4,
            "two equal lines are two lines: {plain:?}"
        );
        let keyed = ids(Some("push-1"));
        assert_eq!(keyed, ids(Some("push-1")));
        assert_ne!(keyed, ids(Some("push-2")));
        assert!(keyed.iter().all(|id| !plain.contains(id)));
        // With a batch id the timestamp does not count: a server's "now" may differ.
        let mut a = Ids::new(Some("k"));
        let mut b = Ids::new(Some("k"));
        assert_eq!(a.next(&line("x", 1)), b.next(&line("x", 999)));
        assert!(plain.iter().all(|id| id.len() == 32));
    }
}
