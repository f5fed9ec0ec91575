//! [`StoreReader`]: one query's position in a function's ring.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use chrono::Utc;
use futures_core::Stream;

use super::{lock, Ring, RingState};
use crate::request::Filter;
use crate::{Error, Event, Message};

/// How much one reader copies out of a ring per lock: bounds both the lock's hold time and
/// the reader's memory.
const READ_BATCH: usize = 256;

/// How many stored lines one reader looks at per lock, matching or not.
const SCAN_LIMIT: u64 = 4096;

/// A reader of one function's ring: history from where the query started, then
/// [`Event::HistoryEnd`], then (with follow) every message appended after the query.
pub struct StoreReader {
    pub(super) ring: Arc<Ring>,
    pub(super) id: u64,
    /// History already copied and sorted, for a ring holding out-of-order lines.
    pub(super) sorted_history: std::vec::IntoIter<Arc<Message>>,
    /// Sequence number of the next message to read.
    pub(super) next: u64,
    /// Where history ends, until the mark has been sent.
    pub(super) history_end: Option<u64>,
    pub(super) follow: bool,
    pub(super) filter: Filter,
    pub(super) batch: VecDeque<Event>,
}

impl std::fmt::Debug for StoreReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreReader")
            .field("next", &self.next)
            .field("history_end", &self.history_end)
            .field("follow", &self.follow)
            .finish_non_exhaustive()
    }
}

impl StoreReader {
    /// Copies the next batch out of the ring; registers the task's waker when there is
    /// nothing to read. Returns false once the reader has nothing more to give.
    fn refill(&mut self, cx: &Context<'_>) -> bool {
        if self.history_end.is_none() && !self.follow {
            return false;
        }
        let mut state = lock(&self.ring.state);
        if self.next < state.first {
            let lost = state.first - self.next;
            self.next = state.first;
            self.batch.push_back(Self::gap(lost, &state));
        }
        let limit = self.history_end.unwrap_or_else(|| state.end());
        let span = limit.saturating_sub(self.next).min(SCAN_LIMIT) as usize;
        let offset = (self.next - state.first) as usize;
        let mut copied = Vec::new();
        let mut scanned = 0;
        for m in state.messages.range(offset..offset + span) {
            scanned += 1;
            if self.filter.wanted(m) {
                copied.push(Arc::clone(m));
                if copied.len() == READ_BATCH {
                    break;
                }
            }
        }
        self.next += scanned;
        if !copied.is_empty() {
            drop(state);
            let messages = copied
                .into_iter()
                .map(|m| Event::Message(Message::clone(&m)));
            self.batch.extend(messages);
            return true;
        }
        if !self.batch.is_empty() {
            return true;
        }
        if self.next < limit {
            // A long run of lines this reader filters out: yield, then scan on.
            cx.waker().wake_by_ref();
            return true;
        }
        if self.history_end.take().is_some() {
            self.batch.push_back(Event::HistoryEnd);
            return true;
        }
        // Following and up to date: the next append wakes this task.
        state.waiting.insert(self.id, cx.waker().clone());
        true
    }

    /// The gap of `lost` lines this reader fell into, placed at the oldest line left.
    fn gap(lost: u64, state: &RingState) -> Event {
        let oldest = state.messages.front();
        tracing::warn!(
            lost,
            function = oldest.map_or("", |m| &*m.name),
            "a log reader fell behind the store"
        );
        Event::Gap {
            lost,
            timestamp: oldest.map_or_else(Utc::now, |m| m.timestamp),
        }
    }
}

impl Stream for StoreReader {
    type Item = Result<Event, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(event) = self.batch.pop_front() {
                return Poll::Ready(Some(Ok(event)));
            }
            if let Some(m) = self.sorted_history.next() {
                return Poll::Ready(Some(Ok(Event::Message(Message::clone(&m)))));
            }
            if !self.refill(cx) {
                return Poll::Ready(None);
            }
            if self.batch.is_empty() {
                return Poll::Pending;
            }
        }
    }
}

impl Drop for StoreReader {
    fn drop(&mut self) {
        lock(&self.ring.state).waiting.remove(&self.id);
    }
}
