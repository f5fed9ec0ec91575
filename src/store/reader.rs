//! [`StoreReader`]: one query's position in a function's ring.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use chrono::Utc;
use futures_core::Stream;

use super::{lock, Ring, RingState};
use crate::request::Filter;
use crate::{Error, Event, Message, SharedStr};

/// How many lines one reader copies out of a ring per lock (each one made a message again,
/// a few tens of nanoseconds): bounds both the lock's hold time and the reader's memory.
const READ_BATCH: usize = 128;

/// How many stored lines one reader looks at per lock, matching or not.
const SCAN_LIMIT: u64 = 4096;

/// A reader of one function's ring: history from where the query started, then
/// [`Event::HistoryEnd`], then (with follow) every message appended after the query.
pub struct StoreReader {
    pub(super) ring: Arc<Ring>,
    pub(super) id: u64,
    /// Whether lines the ring holds encoded are read as such ([`StoreReader::read_encoded`]).
    pub(super) encoded: bool,
    /// History already copied and sorted, for a ring holding out-of-order lines.
    pub(super) sorted_history: std::vec::IntoIter<Message>,
    /// Sequence number of the next message to read.
    pub(super) next: u64,
    /// Where history ends, until the mark has been sent.
    pub(super) history_end: Option<u64>,
    pub(super) follow: bool,
    pub(super) filter: Filter,
    pub(super) batch: VecDeque<Read>,
}

/// One item a reader gives the handler.
pub(crate) enum Read {
    Event(Event),
    /// Lines as the ring holds them encoded, one or more in a row: a response sends
    /// these bytes as they are.
    Encoded(Bytes),
}

impl Read {
    fn into_event(self) -> Event {
        match self {
            Read::Event(event) => event,
            Read::Encoded(_) => unreachable!("encoded lines are only read by the handler"),
        }
    }
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
    /// This reader for the handler: lines the ring holds encoded (the newest lines of a
    /// followed function) come as [`Read::Encoded`], to be sent as they are.
    pub(crate) fn read_encoded(mut self) -> Self {
        self.encoded = true;
        self
    }

    /// The function this reader reads: its namespace and name.
    pub(crate) fn function(&self) -> (&SharedStr, &SharedStr) {
        (&self.ring.namespace, &self.ring.name)
    }

    /// The next item, as [`Stream::poll_next`] gives it but with encoded lines as they
    /// are (see [`StoreReader::read_encoded`]).
    pub(crate) fn poll_read(&mut self, cx: &Context<'_>) -> Poll<Option<Result<Read, Error>>> {
        loop {
            if let Some(read) = self.batch.pop_front() {
                return Poll::Ready(Some(Ok(read)));
            }
            if let Some(m) = self.sorted_history.next() {
                return Poll::Ready(Some(Ok(Read::Event(Event::Message(m)))));
            }
            if !self.refill(cx) {
                return Poll::Ready(None);
            }
            if self.batch.is_empty() {
                return Poll::Pending;
            }
        }
    }

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
            let gap = self.gap(lost, &state);
            self.batch.push_back(Read::Event(gap));
        }
        let limit = self.history_end.unwrap_or_else(|| state.end());
        let span = limit.saturating_sub(self.next).min(SCAN_LIMIT) as usize;
        let offset = (self.next - state.first) as usize;
        let encoded_from = if self.encoded {
            state.encoded_from()
        } else {
            u64::MAX
        };
        let mut copied = 0;
        let mut scanned = 0;
        // Encoded lines in a row are copied into one buffer: one item for the handler,
        // and no count on each line's shared bytes.
        let mut lines = BytesMut::new();
        for m in state.messages.range(offset..offset + span) {
            let seq = self.next + scanned;
            scanned += 1;
            if self.filter.wants(&m.timestamp, &m.instance) {
                match seq.checked_sub(encoded_from) {
                    Some(i) => lines.extend_from_slice(&state.encoded[i as usize]),
                    None => {
                        if !lines.is_empty() {
                            self.batch.push_back(Read::Encoded(lines.split().freeze()));
                        }
                        let m = m.message(&self.ring.name, &self.ring.namespace);
                        self.batch.push_back(Read::Event(Event::Message(m)));
                    }
                }
                copied += 1;
                if copied == READ_BATCH {
                    break;
                }
            }
        }
        if !lines.is_empty() {
            self.batch.push_back(Read::Encoded(lines.freeze()));
        }
        self.next += scanned;
        if !self.batch.is_empty() {
            return true;
        }
        if self.next < limit {
            // A long run of lines this reader filters out: yield, then scan on.
            cx.waker().wake_by_ref();
            return true;
        }
        if self.history_end.take().is_some() {
            self.batch.push_back(Read::Event(Event::HistoryEnd));
            return true;
        }
        // Following and up to date: the next append wakes this task.
        state.waiting.insert(self.id, cx.waker().clone());
        true
    }

    /// The gap of `lost` lines this reader fell into, placed at the oldest line left.
    fn gap(&self, lost: u64, state: &RingState) -> Event {
        let oldest = state.messages.front();
        tracing::warn!(
            lost,
            function = &*self.ring.name,
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
        self.poll_read(cx)
            .map(|read| read.map(|read| read.map(Read::into_event)))
    }
}

impl Drop for StoreReader {
    fn drop(&mut self) {
        if self.follow {
            self.ring.followers.fetch_sub(1, Ordering::Relaxed);
        }
        lock(&self.ring.state).waiting.remove(&self.id);
    }
}
