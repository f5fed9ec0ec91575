//! Events on their way from a query's task to the response, and the stream the response
//! reads them from.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio::sync::mpsc;

use super::frames::Line;
use super::query::{Broken, Lines};
use crate::{Error, Event};

pub(super) type Batch = Vec<Result<Event, Error>>;

/// The most events in one batch, and the most batches between the task and the response:
/// at most about a thousand lines are in flight whatever the client's speed.
const OUTBOX_BATCH: usize = 256;
pub(super) const OUTBOX_BATCHES: usize = 4;

/// Events on their way from a query's task to the response, in batches: one channel
/// operation (and at most one wake-up) per batch rather than per line. A batch goes when
/// it is full or the task is about to wait, so a live line is never held back.
pub(super) struct Outbox {
    pub(super) tx: mpsc::Sender<Batch>,
    pub(super) batch: Batch,
}

impl Outbox {
    /// Queues an event; false once the reader has left.
    pub(super) async fn push(&mut self, event: Result<Event, Error>) -> bool {
        self.batch.push(event);
        if self.batch.len() >= OUTBOX_BATCH {
            return self.flush().await;
        }
        true
    }

    /// Sends what is queued; false once the reader has left.
    pub(super) async fn flush(&mut self) -> bool {
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
pub(super) async fn next_line(lines: &mut Lines, out: &mut Outbox) -> Option<Result<Line, Broken>> {
    // Dropping a pending `next` loses nothing: it waits only for the next chunk.
    if let Some(ready) = futures_util::FutureExt::now_or_never(lines.next()) {
        return ready;
    }
    out.flush().await;
    lines.next().await
}

/// The receiving end of a query's task; dropping it ends the task and so every
/// connection the task holds.
pub(super) struct TaskStream {
    pub(super) rx: mpsc::Receiver<Batch>,
    pub(super) ready: std::vec::IntoIter<Result<Event, Error>>,
    pub(super) task: tokio::task::JoinHandle<()>,
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
