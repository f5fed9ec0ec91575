//! [`LogSink`]: the write side every ingest path shares, so that captured processes,
//! pushed NDJSON and telemetry can write to any store.
//!
//! A writer hands a sink one [`Batch`] at a time and gets back one outcome per message
//! of that batch, and nothing of any other: a sink never carries a refusal from one
//! batch over to another, so concurrent writers each learn exactly what became of their
//! own lines.

use crate::{async_trait, Error, Message};

/// Messages written together (one push, one burst of captured output), with an optional
/// id that names the batch across retries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Batch {
    /// The messages, in the order they are to be stored.
    pub messages: Vec<Message>,
    /// Names this batch across retries (a client's `Idempotency-Key`). A sink that
    /// deduplicates (JetStream) stores each line of batches with the same id once;
    /// without one it recognises a line by its content (name, instance, timestamp,
    /// text).
    pub id: Option<String>,
    /// The messages (their places in `messages`) that named no time and were stamped
    /// when they arrived. A sink that orders lines as it writes them
    /// ([`DiskStore`](crate::store::DiskStore)) stamps these as it writes them instead,
    /// so that a function's server-stamped lines are in time order as stored, and a
    /// follower resumed from its last time misses none.
    pub stamped_on_arrival: Vec<usize>,
}

impl Batch {
    /// A batch of `messages` without an id.
    #[must_use]
    pub fn new(messages: Vec<Message>) -> Self {
        Batch {
            messages,
            id: None,
            stamped_on_arrival: Vec::new(),
        }
    }

    /// With the id that names it across retries.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
}

impl From<Vec<Message>> for Batch {
    fn from(messages: Vec<Message>) -> Self {
        Batch::new(messages)
    }
}

/// Where log lines are written. [`LogStore`](crate::store::LogStore) keeps them in
/// memory; `nats::JetStreamLogs` (feature `nats`) publishes them to JetStream.
///
/// [`LogSink::store`] returns once each message of the batch is stored or known not to
/// be: `Ok` means stored (a reader can read it, and a crash of the sink's servers within
/// its guarantees does not lose it). An error refuses that message only, and says why:
/// [`Error::InvalidRequest`] for a line the sink will never take (retrying cannot help),
/// [`Error::Unavailable`] for one it could not store now (retry later).
#[async_trait]
pub trait LogSink: Send + Sync {
    /// Stores `batch`, in order; one outcome per message, in the batch's order. An empty
    /// namespace is the sink's default.
    async fn store(&self, batch: Batch) -> Vec<Result<(), Error>>;

    /// Stores one message: [`LogSink::store`] with a batch of one.
    async fn write(&self, message: Message) -> Result<(), Error> {
        self.store(Batch::new(vec![message]))
            .await
            .pop()
            .unwrap_or_else(|| Err(Error::other("the sink answered for no message")))
    }
}

#[async_trait]
impl LogSink for crate::store::LogStore {
    async fn store(&self, batch: Batch) -> Vec<Result<(), Error>> {
        batch.messages.into_iter().map(|m| self.append(m)).collect()
    }
}

#[async_trait]
impl<S: LogSink + ?Sized> LogSink for std::sync::Arc<S> {
    async fn store(&self, batch: Batch) -> Vec<Result<(), Error>> {
        (**self).store(batch).await
    }
}
