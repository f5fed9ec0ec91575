//! [`LogStore`]: the embedded default backend, an in-memory ring of messages per function
//! that any number of followers read without slowing the writers.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::task::{Context, Poll, Waker};

use chrono::{DateTime, Utc};
use futures_core::Stream;

use crate::semantics::Filter;
use crate::{Error, Event, LogStream, Message, Request, Requester};

/// How much one reader copies out of a ring per lock: bounds both the lock's hold time and
/// the reader's memory.
const READ_BATCH: usize = 256;

/// How many stored lines one reader looks at per lock, matching or not.
const SCAN_LIMIT: u64 = 4096;

/// Fixed cost counted per stored message on top of its text, for the byte limit.
const MESSAGE_OVERHEAD: usize = std::mem::size_of::<Message>() + 16;

/// The bounds of a [`LogStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// The most messages kept per function (default 10,000).
    pub max_messages: usize,
    /// The most bytes kept per function, counting each message's strings plus a fixed
    /// overhead of about 120 bytes (default 16 MiB).
    pub max_bytes: usize,
    /// The most functions the store keeps; an append for a new function beyond it is
    /// refused (default 1,024).
    pub max_functions: usize,
    /// The most bytes kept in the whole store, counted as for `max_bytes` (default an
    /// eighth of the machine's memory, or of the cgroup's limit when that is lower;
    /// 1 GiB where neither can be read). Past it, the oldest lines of the whole store are
    /// evicted, whichever functions they belong to, until it holds 1/64 less.
    pub max_total_bytes: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_messages: 10_000,
            max_bytes: 16 << 20,
            max_functions: 1024,
            max_total_bytes: default_total_bytes(),
        }
    }
}

/// An eighth of the memory this process may use: the machine's, or its cgroup's limit.
fn default_total_bytes() -> usize {
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            let kib = info.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
            let kib: u64 = kib.trim().trim_end_matches("kB").trim().parse().ok()?;
            Some(kib * 1024)
        });
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|max| max.trim().parse::<u64>().ok());
    let memory = match (machine, cgroup) {
        (Some(m), Some(c)) => m.min(c),
        (m, c) => m.or(c).unwrap_or(8 << 30),
    };
    usize::try_from(memory / 8).unwrap_or(usize::MAX)
}

/// What a function's ring holds now, from [`LogStore::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingStats {
    /// Messages held.
    pub messages: usize,
    /// Bytes held, as counted against [`StoreLimits::max_bytes`].
    pub bytes: usize,
    /// Messages appended since the function's ring was created, evicted ones included.
    pub appended: u64,
}

/// An in-memory log store: a bounded ring of messages per function, which implements
/// [`Requester`] natively.
///
/// - **Bounds.** Each function (namespace and name) keeps at most
///   [`StoreLimits::max_messages`] messages and [`StoreLimits::max_bytes`] bytes; when a
///   ring is full, appending evicts the oldest lines. The whole store keeps at most
///   [`StoreLimits::max_total_bytes`] (an eighth of memory by default); past it, the
///   oldest lines of the whole store go first, whichever function wrote them. That is
///   the documented behaviour, not a loss.
/// - **Queries.** `tail` and `since` are answered from the ring's end and by binary search,
///   so a query costs about what it returns, not the ring; `instance` is filtered in the
///   store. Should lines be appended out of timestamp order (pushed logs can be), history
///   is answered from a sorted copy of the ring's pointers instead: the same answer, in
///   timestamp order, at the cost of one pass over the ring.
/// - **Follow.** A reader is a position in the function's sequence of appends: history
///   ends at the position the query saw, live messages follow from there, so nothing is
///   lost or repeated at the switch however fast writers append.
/// - **Followers.** Any number at once. Readers copy out of the ring under a short lock and
///   never block writers for longer; writers never wait for readers.
/// - **Lagging readers.** A reader that falls further behind than the ring holds (a slow
///   client) is never left with a silent gap: it receives one message in place of the
///   evicted lines, from the instance it asked for (or none), whose text reads
///   `[faas-logs] 1234 lines lost here: this reader fell behind the store`, and then
///   continues with the oldest line still held.
///
/// Clones share the same store.
///
/// ```
/// use chrono::Utc;
/// use faas_logs::{LogStore, Message};
///
/// let store = LogStore::new();
/// store.append(Message {
///     name: "hello".into(),
///     namespace: String::new(), // the store's default namespace
///     instance: "hello-1".into(),
///     timestamp: Utc::now(),
///     text: "ready".into(),
///     stream: None,
/// }).unwrap();
/// assert_eq!(store.stats("", "hello").unwrap().messages, 1);
/// ```
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// namespace -> name -> ring; nested so that appends look up without allocating.
    functions: RwLock<HashMap<String, HashMap<String, Arc<Ring>>>>,
    limits: StoreLimits,
    default_namespace: String,
    next_reader: AtomicU64,
    /// Bytes held by every ring together, against [`StoreLimits::max_total_bytes`].
    total_bytes: AtomicUsize,
    /// The next append's place in the order of appends across the whole store.
    next_stamp: AtomicU64,
    /// Held by the one append that evicts store-wide; the others go on appending.
    shedding: Mutex<()>,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("limits", &self.inner.limits)
            .field("default_namespace", &self.inner.default_namespace)
            .finish_non_exhaustive()
    }
}

impl Default for LogStore {
    fn default() -> Self {
        LogStore::new()
    }
}

/// One function's messages.
struct Ring {
    state: Mutex<RingState>,
}

struct RingState {
    messages: VecDeque<Arc<Message>>,
    /// Each message's place in the store-wide order of appends, beside `messages`.
    stamps: VecDeque<u64>,
    /// Sequence number of `messages[0]`; the next append gets `first + len`.
    first: u64,
    bytes: usize,
    /// The last append whose timestamp went backwards; while it is held, the ring is not
    /// sorted by time and binary search is off.
    disorder: Option<u64>,
    /// Readers waiting for the next append, by reader id.
    waiting: HashMap<u64, Waker>,
}

impl RingState {
    fn end(&self) -> u64 {
        self.first + self.messages.len() as u64
    }

    /// Evicts the oldest message.
    fn pop_oldest(&mut self, total_bytes: &AtomicUsize) {
        if let Some(old) = self.messages.pop_front() {
            self.stamps.pop_front();
            let size = message_bytes(&old);
            self.bytes -= size;
            total_bytes.fetch_sub(size, Ordering::Relaxed);
            self.first += 1;
        }
    }

    fn sorted(&self) -> bool {
        self.disorder.is_none_or(|seq| seq < self.first)
    }

    /// In a ring sorted by time, the sequence number a query starts reading at: the first
    /// message not older than `since`, and no earlier than the `tail`-th newest match.
    fn start_for(&self, since: Option<DateTime<Utc>>, tail: Option<usize>, instance: &str) -> u64 {
        let from = since.map_or(0, |since| {
            self.messages.partition_point(|m| m.timestamp < since)
        });
        let Some(tail) = tail else {
            return self.first + from as u64;
        };
        let mut start = self.messages.len();
        let mut found = 0;
        while start > from && found < tail {
            start -= 1;
            if instance.is_empty() || self.messages[start].instance == instance {
                found += 1;
            }
        }
        if found < tail {
            start = from;
        }
        self.first + start as u64
    }
}

fn message_bytes(m: &Message) -> usize {
    MESSAGE_OVERHEAD + m.name.len() + m.namespace.len() + m.instance.len() + m.text.len()
}

impl LogStore {
    /// A store with the default [`StoreLimits`] and default namespace `openfaas-fn`.
    pub fn new() -> Self {
        LogStore::with_limits(StoreLimits::default())
    }

    /// A store with the given limits (each at least 1).
    pub fn with_limits(limits: StoreLimits) -> Self {
        LogStore::build(limits, "openfaas-fn".into())
    }

    /// The same store settings with another default namespace: the one that messages and
    /// requests with an empty namespace belong to.
    #[must_use]
    pub fn with_default_namespace(self, namespace: impl Into<String>) -> Self {
        LogStore::build(self.inner.limits, namespace.into())
    }

    fn build(limits: StoreLimits, default_namespace: String) -> Self {
        let limits = StoreLimits {
            max_messages: limits.max_messages.max(1),
            max_bytes: limits.max_bytes.max(1),
            max_functions: limits.max_functions.max(1),
            max_total_bytes: limits.max_total_bytes.max(1),
        };
        LogStore {
            inner: Arc::new(Inner {
                functions: RwLock::new(HashMap::new()),
                limits,
                default_namespace,
                next_reader: AtomicU64::new(0),
                total_bytes: AtomicUsize::new(0),
                next_stamp: AtomicU64::new(0),
                shedding: Mutex::new(()),
            }),
        }
    }

    /// The store's limits.
    pub fn limits(&self) -> StoreLimits {
        self.inner.limits
    }

    fn namespace<'a>(&'a self, namespace: &'a str) -> &'a str {
        if namespace.is_empty() {
            &self.inner.default_namespace
        } else {
            namespace
        }
    }

    fn ring(&self, namespace: &str, name: &str) -> Option<Arc<Ring>> {
        let functions = read(&self.inner.functions);
        functions.get(self.namespace(namespace))?.get(name).cloned()
    }

    /// Makes a function known, with an empty ring, so that a query for it follows its
    /// first lines instead of answering 404. Appending does this by itself.
    pub fn register(&self, namespace: &str, name: &str) -> Result<(), Error> {
        self.ring_or_create(namespace, name).map(drop)
    }

    fn ring_or_create(&self, namespace: &str, name: &str) -> Result<Arc<Ring>, Error> {
        if let Some(ring) = self.ring(namespace, name) {
            return Ok(ring);
        }
        let namespace = self.namespace(namespace).to_owned();
        let mut functions = write(&self.inner.functions);
        if let Some(ring) = functions.get(&namespace).and_then(|n| n.get(name)) {
            return Ok(Arc::clone(ring));
        }
        let count: usize = functions.values().map(HashMap::len).sum();
        if count >= self.inner.limits.max_functions {
            return Err(Error::other(format!(
                "the log store already holds its limit of {} functions; {namespace}/{name} was refused",
                self.inner.limits.max_functions
            )));
        }
        let ring = Arc::new(Ring {
            state: Mutex::new(RingState {
                messages: VecDeque::new(),
                stamps: VecDeque::new(),
                first: 0,
                bytes: 0,
                disorder: None,
                waiting: HashMap::new(),
            }),
        });
        functions
            .entry(namespace)
            .or_default()
            .insert(name.to_owned(), Arc::clone(&ring));
        Ok(ring)
    }

    /// Appends one message to its function's ring (an empty namespace is the store's
    /// default), evicting the oldest lines if the ring is full, and wakes its followers.
    ///
    /// Fails only when the message would create a function beyond
    /// [`StoreLimits::max_functions`]; nothing stored is touched then.
    pub fn append(&self, mut message: Message) -> Result<(), Error> {
        if message.namespace.is_empty() {
            message.namespace.clone_from(&self.inner.default_namespace);
        }
        let ring = self.ring_or_create(&message.namespace, &message.name)?;
        let limits = &self.inner.limits;
        let waiting = {
            let mut state = lock(&ring.state);
            let size = message_bytes(&message);
            if state
                .messages
                .back()
                .is_some_and(|last| message.timestamp < last.timestamp)
            {
                state.disorder = Some(state.end());
            }
            state.messages.push_back(Arc::new(message));
            let stamp = self.inner.next_stamp.fetch_add(1, Ordering::Relaxed);
            state.stamps.push_back(stamp);
            state.bytes += size;
            self.inner.total_bytes.fetch_add(size, Ordering::Relaxed);
            while state.messages.len() > limits.max_messages
                || (state.bytes > limits.max_bytes && state.messages.len() > 1)
            {
                state.pop_oldest(&self.inner.total_bytes);
            }
            if state.waiting.is_empty() {
                None
            } else {
                Some(std::mem::take(&mut state.waiting))
            }
        };
        if self.inner.total_bytes.load(Ordering::Relaxed) > limits.max_total_bytes {
            self.shed_oldest();
        }
        // Wake outside the lock, so a follower that runs at once does not contend.
        for (_, waker) in waiting.into_iter().flatten() {
            waker.wake();
        }
        Ok(())
    }

    /// Evicts the store's oldest lines, whichever rings hold them, until the store holds
    /// 1/64 less than [`StoreLimits::max_total_bytes`]. Rings are visited oldest first,
    /// each emptied of the lines older than the next ring's oldest.
    fn shed_oldest(&self) {
        let Ok(_shedding) = self.inner.shedding.try_lock() else {
            return; // another append is at it
        };
        let limit = self.inner.limits.max_total_bytes;
        let target = limit - limit / 64;
        let rings: Vec<Arc<Ring>> = read(&self.inner.functions)
            .values()
            .flat_map(|names| names.values().cloned())
            .collect();
        let mut oldest: BinaryHeap<Reverse<(u64, usize)>> = rings
            .iter()
            .enumerate()
            .filter_map(|(i, ring)| Some(Reverse((*lock(&ring.state).stamps.front()?, i))))
            .collect();
        let total = &self.inner.total_bytes;
        let mut evicted = 0u64;
        while total.load(Ordering::Relaxed) > target {
            let Some(Reverse((_, i))) = oldest.pop() else {
                break;
            };
            let next = oldest.peek().map_or(u64::MAX, |Reverse((stamp, _))| *stamp);
            let mut state = lock(&rings[i].state);
            while total.load(Ordering::Relaxed) > target
                && state.stamps.front().is_some_and(|&stamp| stamp <= next)
            {
                state.pop_oldest(total);
                evicted += 1;
            }
            if let Some(&stamp) = state.stamps.front() {
                oldest.push(Reverse((stamp, i)));
            }
        }
        tracing::debug!(evicted, limit, "the log store evicted its oldest lines");
    }

    /// Bytes held by the whole store, as counted against
    /// [`StoreLimits::max_total_bytes`].
    pub fn total_bytes(&self) -> usize {
        self.inner.total_bytes.load(Ordering::Relaxed)
    }

    /// What a function's ring holds, or `None` for a function the store does not know.
    pub fn stats(&self, namespace: &str, name: &str) -> Option<RingStats> {
        let ring = self.ring(namespace, name)?;
        let state = lock(&ring.state);
        Some(RingStats {
            messages: state.messages.len(),
            bytes: state.bytes,
            appended: state.end(),
        })
    }

    /// Starts a reader over a function's ring, as [`Requester::query`] does, but returns
    /// the store's own stream type.
    pub fn read(&self, request: &Request) -> Result<StoreReader, Error> {
        let Some(ring) = self.ring(&request.namespace, &request.name) else {
            return Err(Error::not_found(format!(
                "no logs for function {:?} in namespace {:?}",
                request.name,
                self.namespace(&request.namespace)
            )));
        };
        let filter = Filter::new(request, true);
        let (next, history_end, mut unsorted) = {
            let state = lock(&ring.state);
            let end = state.end();
            if state.sorted() {
                let start = state.start_for(request.since, request.tail, &request.instance);
                (start, end, Vec::new())
            } else {
                // Lines were appended out of time order: sort a copy of the history (at
                // most one ring of pointers) rather than answer in append order.
                let copy = state
                    .messages
                    .iter()
                    .filter(|m| filter.wanted(m))
                    .cloned()
                    .collect();
                (end, end, copy)
            }
        };
        unsorted.sort_by_key(|m| m.timestamp);
        if let Some(tail) = request.tail {
            unsorted.drain(..unsorted.len().saturating_sub(tail));
        }
        Ok(StoreReader {
            ring,
            id: self.inner.next_reader.fetch_add(1, Ordering::Relaxed),
            sorted_history: unsorted.into_iter(),
            next,
            history_end: Some(history_end),
            follow: request.follow,
            filter,
            batch: VecDeque::new(),
        })
    }
}

#[async_trait::async_trait]
impl Requester for LogStore {
    async fn query(&self, request: Request) -> Result<LogStream, Error> {
        Ok(Box::pin(self.read(&request)?))
    }

    fn marks_history_end(&self) -> bool {
        true
    }
}

/// A reader of one function's ring: history from where the query started, then
/// [`Event::HistoryEnd`], then (with follow) every message appended after the query.
pub struct StoreReader {
    ring: Arc<Ring>,
    id: u64,
    /// History already copied and sorted, for a ring holding out-of-order lines.
    sorted_history: std::vec::IntoIter<Arc<Message>>,
    /// Sequence number of the next message to read.
    next: u64,
    /// Where history ends, until the mark has been sent.
    history_end: Option<u64>,
    follow: bool,
    filter: Filter,
    batch: VecDeque<Event>,
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
            self.batch
                .push_back(Event::Message(self.gap_notice(lost, &state)));
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

    fn gap_notice(&self, lost: u64, state: &RingState) -> Message {
        let (name, namespace, timestamp) = match state.messages.front() {
            Some(m) => (m.name.clone(), m.namespace.clone(), m.timestamp),
            None => (String::new(), String::new(), Utc::now()),
        };
        tracing::warn!(lost, function = %name, "a log reader fell behind the store");
        Message {
            name,
            namespace,
            instance: self.filter.instance.clone().unwrap_or_default(),
            timestamp: self
                .filter
                .since
                .map_or(timestamp, |since| timestamp.max(since)),
            text: format!("[faas-logs] {lost} lines lost here: this reader fell behind the store"),
            stream: None,
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

/// The store's locks guard plain data that every critical section leaves consistent, so a
/// panic elsewhere (a poisoned lock) is no reason to stop serving logs.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}
