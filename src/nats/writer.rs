//! Publishing with acknowledgements awaited in the background: a publish returns once
//! the message is sent, a task awaits the acks in order, and a flush waits for all of
//! them.

use std::sync::{Arc, Mutex};

use async_nats::jetstream;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::Error;

/// Acknowledgements awaited at once at most; past it a publish waits.
pub(super) const IN_FLIGHT: usize = 4096;

enum Pending {
    Ack(jetstream::context::PublishAckFuture),
    Flush(oneshot::Sender<()>),
}

/// Refusals since the last flush: how many, and the last reason.
#[derive(Default)]
struct Refused {
    count: u64,
    last: Option<String>,
}

pub(super) struct Writer {
    context: jetstream::Context,
    pending: mpsc::Sender<Pending>,
    refused: Arc<Mutex<Refused>>,
}

impl Writer {
    pub(super) fn new(context: jetstream::Context) -> Self {
        let (pending, mut acks) = mpsc::channel::<Pending>(IN_FLIGHT);
        let refused = Arc::new(Mutex::new(Refused::default()));
        let record = Arc::clone(&refused);
        tokio::spawn(async move {
            while let Some(item) = acks.recv().await {
                match item {
                    Pending::Ack(ack) => {
                        if let Err(e) = ack.await {
                            tracing::warn!(error = %e, "a published log line was not stored");
                            let mut refused = record.lock().unwrap_or_else(|p| p.into_inner());
                            refused.count += 1;
                            refused.last = Some(e.to_string());
                        }
                    }
                    Pending::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        Writer {
            context,
            pending,
            refused,
        }
    }

    pub(super) async fn publish(&self, subject: String, payload: Bytes) -> Result<(), Error> {
        let ack = self
            .context
            .publish(subject, payload)
            .await
            .map_err(|e| super::unavailable("publishing a log line failed", e))?;
        self.pending
            .send(Pending::Ack(ack))
            .await
            .map_err(|_| Error::other("the acknowledgement task has stopped"))
    }

    pub(super) async fn flush(&self) -> Result<(), Error> {
        let (done, flushed) = oneshot::channel();
        self.pending
            .send(Pending::Flush(done))
            .await
            .map_err(|_| Error::other("the acknowledgement task has stopped"))?;
        flushed
            .await
            .map_err(|_| Error::other("the acknowledgement task has stopped"))?;
        let refused = std::mem::take(&mut *self.refused.lock().unwrap_or_else(|p| p.into_inner()));
        match refused.last {
            None => Ok(()),
            Some(last) => Err(Error::unavailable(format!(
                "{} log lines were not stored; the last because: {last}",
                refused.count
            ))),
        }
    }
}
