//! [`LogSink`]: the write side every ingest path shares, so that captured processes,
//! pushed NDJSON and telemetry can write to any store.

use crate::{async_trait, Error, Message};

/// Where log lines are written. [`LogStore`](crate::store::LogStore) keeps them in
/// memory; `nats::JetStreamLogs` (feature `nats`) publishes them to JetStream.
///
/// A line is stored once [`LogSink::flush`] has returned `Ok` after it was written: a
/// sink may send lines on at once and confirm them in batches.
#[async_trait]
pub trait LogSink: Send + Sync {
    /// Takes one message; an empty namespace is the sink's default. An error refuses
    /// this message only.
    async fn write(&self, message: Message) -> Result<(), Error>;

    /// Waits until every message written so far is stored, or says what was not.
    async fn flush(&self) -> Result<(), Error> {
        Ok(())
    }
}

#[async_trait]
impl LogSink for crate::store::LogStore {
    async fn write(&self, message: Message) -> Result<(), Error> {
        self.append(message)
    }
}
