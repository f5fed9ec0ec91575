//! Events on their way from a query's task to the response, and the stream the response
//! reads them from.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::task::AbortOnDropHandle;

use super::frames::Line;
use super::query::{Broken, Lines};
use crate::{Error, Event, LogStream};

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

pin_project_lite::pin_project! {
    /// The receiving end of a query's task. Dropping it aborts the task, and so closes
    /// every connection the task holds.
    struct TaskStream<S> {
        #[pin]
        events: S,
        _task: AbortOnDropHandle<()>,
    }
}

impl<S: Stream> Stream for TaskStream<S> {
    type Item = S::Item;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.project().events.poll_next(cx)
    }
}

/// The events `task` sends through `rx`, one by one, as the response reads them.
pub(super) fn task_stream(
    rx: mpsc::Receiver<Batch>,
    task: tokio::task::JoinHandle<()>,
) -> LogStream {
    let events = ReceiverStream::new(rx).flat_map(futures_util::stream::iter);
    Box::pin(TaskStream {
        events,
        _task: AbortOnDropHandle::new(task),
    })
}
