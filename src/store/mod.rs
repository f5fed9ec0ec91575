//! [`LogStore`]: the embedded default backend, an in-memory ring of messages per function
//! that any number of followers read without slowing the writers.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::task::Waker;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};

#[cfg(feature = "disk")]
mod disk;
mod ingest;
mod invocations;
mod line;
pub(crate) mod reader;
mod table;

#[cfg(feature = "disk")]
pub use disk::{Damage, DiskConfig, DiskReader, DiskStore, Fsync, Recovery};
pub use ingest::{
    ingest_ndjson, Capture, IngestReport, NotStored, RejectedLine, MAX_LISTED_REJECTIONS,
};
pub use invocations::Invocation;
pub use reader::StoreReader;

use self::invocations::Invocations;
use self::line::{RecentInstances, StoredLine};
use self::table::Table;

use crate::codec::{encode_message, trim_line_end};
use crate::request::Filter;
use crate::{Capabilities, Error, FunctionName, LogStream, Message, Request, Requester, SharedStr};

/// What a store's readers do themselves: history ends with the mark, and `tail`, `since`
/// and `instance` are answered from the ring exactly.
pub(crate) const CAPABILITIES: Capabilities = Capabilities::NONE
    .with_marks_history_end()
    .with_applies_tail();

/// How many of a followed function's newest lines are also kept encoded, ready for its
/// followers: one encoding per line for all of them, instead of one per follower.
const ENCODED_WINDOW: usize = 1024;

/// The bounds of a [`LogStore`].
///
/// Not `#[non_exhaustive]`, on purpose: it is built with a struct literal,
/// `StoreLimits { max_messages: 1000, ..StoreLimits::default() }`, which that attribute
/// would forbid; a new field comes with a new major version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// The most messages kept per function (default 10,000).
    pub max_messages: usize,
    /// The most bytes kept per function, counting each line's text and instance name plus
    /// a fixed 72 bytes (default 16 MiB). That is about what a line costs in memory: the
    /// function's name and namespace are held once per function, not per line, and an
    /// instance's name once for the lines that share it.
    pub max_bytes: usize,
    /// The most functions the store keeps; an append for a new function beyond it is
    /// refused (default 1,024).
    pub max_functions: usize,
    /// The most invocation records kept per function (default 10,000); see
    /// [`LogStore::record_invocation`].
    pub max_invocations: usize,
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
            max_invocations: 10_000,
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
#[non_exhaustive]
pub struct RingStats {
    /// Messages held.
    pub messages: usize,
    /// Bytes held, as counted against [`StoreLimits::max_bytes`].
    pub bytes: usize,
    /// Messages appended since the function's ring was created, evicted ones included.
    pub appended: u64,
}

/// What a whole store holds, from [`LogStore::totals`] (and `DiskStore::totals`): the
/// figures `faas-logs serve` reports at `GET /metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreTotals {
    /// Functions known.
    pub functions: usize,
    /// Lines held.
    pub lines: u64,
    /// Bytes held, as counted against the store's byte limits.
    pub bytes: u64,
    /// Lines gone since the store was opened (the disk store: since the functions'
    /// first lines), to make room or by age.
    pub evicted: u64,
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
///   is answered from a sorted copy of the ring's history instead: the same answer, in
///   timestamp order, at the cost of one pass over the ring (made under its lock).
/// - **Follow.** A reader is a position in the function's sequence of appends: history
///   ends at the position the query saw, live messages follow from there, so nothing is
///   lost or repeated at the switch however fast writers append.
/// - **Followers.** Any number at once. Readers copy out of the ring under a short lock and
///   never block writers for longer; writers never wait for readers. While a function
///   has followers, its newest lines are also kept encoded, once for all of them (see
///   [`Requester::store_reader`]).
/// - **Memory.** A line costs its text plus about 80 bytes: the ring keeps its timestamp,
///   instance (shared by the lines of that instance), text and stream, and the
///   function's name and namespace once.
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
/// use faas_logs::store::LogStore;
/// use faas_logs::Message;
///
/// let store = LogStore::new();
/// // No namespace: the store's default one.
/// store.append(Message::new("hello", Utc::now(), "ready").with_instance("hello-1")).unwrap();
/// assert_eq!(store.stats("", "hello").unwrap().messages, 1);
/// ```
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// Each function's ring.
    functions: Table<Ring>,
    limits: StoreLimits,
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
            .field(
                "default_namespace",
                &self.inner.functions.default_namespace(),
            )
            .finish_non_exhaustive()
    }
}

impl Default for LogStore {
    fn default() -> Self {
        LogStore::new()
    }
}

/// The settings of a new [`LogStore`], from [`LogStore::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct LogStoreBuilder {
    limits: StoreLimits,
    default_namespace: String,
}

impl LogStoreBuilder {
    /// The store's bounds (default [`StoreLimits::default`]; each at least 1).
    pub fn limits(mut self, limits: StoreLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The namespace that messages and requests with an empty namespace belong to
    /// (default `openfaas-fn`).
    pub fn default_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.default_namespace = namespace.into();
        self
    }

    /// The store.
    #[must_use]
    pub fn build(self) -> LogStore {
        LogStore::build(self.limits, self.default_namespace)
    }
}

/// One function's messages.
struct Ring {
    state: Mutex<RingState>,
    /// The function's invocation records, beside its lines.
    invocations: Mutex<Invocations>,
    /// Its namespace, given to messages that name none: one shared string per ring, so
    /// that appends to different functions do not all count references on one.
    namespace: SharedStr,
    name: SharedStr,
    /// Readers that follow the function. While there are any, an append also encodes
    /// the line for them (see [`ENCODED_WINDOW`]).
    followers: AtomicUsize,
}

struct RingState {
    messages: VecDeque<StoredLine>,
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
    /// The instances of the last lines, which new lines share.
    instances: RecentInstances,
    /// The newest lines as they go on the wire (the last is the newest message's), kept
    /// while the function has followers; at most [`ENCODED_WINDOW`].
    encoded: VecDeque<Bytes>,
}

impl RingState {
    fn end(&self) -> u64 {
        self.first + self.messages.len() as u64
    }

    /// Evicts the oldest message.
    fn pop_oldest(&mut self, total_bytes: &AtomicUsize) {
        if let Some(old) = self.messages.pop_front() {
            self.stamps.pop_front();
            let size = old.bytes();
            self.bytes -= size;
            total_bytes.fetch_sub(size, Ordering::Relaxed);
            self.first += 1;
            // The window never holds more lines than the ring: a small ring's memory.
            if self.encoded.len() > self.messages.len() {
                self.encoded.pop_front();
            }
        }
    }

    /// Sequence number of the oldest line held encoded.
    fn encoded_from(&self) -> u64 {
        self.end() - self.encoded.len() as u64
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
            if instance.is_empty() || *self.messages[start].instance == *instance {
                found += 1;
            }
        }
        if found < tail {
            start = from;
        }
        self.first + start as u64
    }
}

/// Makes room for one more in `deque`: doubling, as a `VecDeque` does, but never past
/// `max`, the most it will hold, so that a full ring carries no unused slots.
fn grow_within<T>(deque: &mut VecDeque<T>, max: usize) {
    if deque.len() == deque.capacity() {
        let more = deque.capacity().max(8).min(max.saturating_sub(deque.len()));
        deque.reserve_exact(more.max(1));
    }
}

/// `m` as a response sends it: the line end trimmed, as the handler does.
fn wire_line(m: &Message) -> Bytes {
    let mut buf = BytesMut::new();
    if m.text.ends_with(['\n', '\r']) {
        let mut trimmed = m.clone();
        trim_line_end(&mut trimmed.text);
        encode_message(&trimmed, &mut buf);
    } else {
        encode_message(m, &mut buf);
    }
    buf.freeze()
}

impl LogStore {
    /// A store with the default [`StoreLimits`] and default namespace `openfaas-fn`.
    #[must_use]
    pub fn new() -> Self {
        LogStore::with_limits(StoreLimits::default())
    }

    /// A store with the given limits (each at least 1) and default namespace
    /// `openfaas-fn`.
    #[must_use]
    pub fn with_limits(limits: StoreLimits) -> Self {
        LogStore::builder().limits(limits).build()
    }

    /// Settings for a new store, to change before [`LogStoreBuilder::build`]: a store's
    /// settings are fixed once it exists, because its clones share it.
    ///
    /// ```
    /// use faas_logs::store::{LogStore, StoreLimits};
    ///
    /// let store = LogStore::builder()
    ///     .limits(StoreLimits { max_messages: 1_000, ..StoreLimits::default() })
    ///     .default_namespace("fn")
    ///     .build();
    /// assert_eq!(store.default_namespace(), "fn");
    /// ```
    pub fn builder() -> LogStoreBuilder {
        LogStoreBuilder {
            limits: StoreLimits::default(),
            default_namespace: "openfaas-fn".into(),
        }
    }

    /// Every function the store holds a ring for (registered, or written to), sorted by
    /// namespace and name.
    ///
    /// ```
    /// let store = faas_logs::store::LogStore::new();
    /// store.register("", "hello").unwrap();
    /// let names = store.function_names();
    /// assert_eq!((names[0].namespace.as_str(), names[0].name.as_str()), ("openfaas-fn", "hello"));
    /// ```
    #[must_use]
    pub fn function_names(&self) -> Vec<FunctionName> {
        self.inner.functions.names()
    }

    /// The namespace that messages and requests with an empty namespace belong to.
    #[must_use]
    pub fn default_namespace(&self) -> &str {
        self.inner.functions.default_namespace()
    }

    fn build(limits: StoreLimits, default_namespace: String) -> Self {
        let limits = StoreLimits {
            max_messages: limits.max_messages.max(1),
            max_bytes: limits.max_bytes.max(1),
            max_functions: limits.max_functions.max(1),
            max_invocations: limits.max_invocations.max(1),
            max_total_bytes: limits.max_total_bytes.max(1),
        };
        LogStore {
            inner: Arc::new(Inner {
                functions: Table::new(default_namespace, limits.max_functions, HashMap::new()),
                limits,
                next_reader: AtomicU64::new(0),
                total_bytes: AtomicUsize::new(0),
                next_stamp: AtomicU64::new(0),
                shedding: Mutex::new(()),
            }),
        }
    }

    /// The store's limits.
    #[must_use]
    pub fn limits(&self) -> StoreLimits {
        self.inner.limits
    }

    fn ring(&self, namespace: &str, name: &str) -> Option<Arc<Ring>> {
        self.inner.functions.get(namespace, name)
    }

    /// Makes a function known, with an empty ring, so that a query for it follows its
    /// first lines instead of answering 404. Appending does this by itself.
    pub fn register(&self, namespace: &str, name: &str) -> Result<(), Error> {
        self.ring_or_create(namespace, name).map(drop)
    }

    fn ring_or_create(&self, namespace: &str, name: &str) -> Result<Arc<Ring>, Error> {
        self.inner
            .functions
            .get_or_make(namespace, name, |namespace, name| {
                Ok(Ring {
                    state: Mutex::new(RingState {
                        messages: VecDeque::new(),
                        stamps: VecDeque::new(),
                        first: 0,
                        bytes: 0,
                        disorder: None,
                        waiting: HashMap::new(),
                        instances: RecentInstances::default(),
                        encoded: VecDeque::new(),
                    }),
                    namespace: namespace.into(),
                    name: name.into(),
                    followers: AtomicUsize::new(0),
                    invocations: Mutex::default(),
                })
            })
    }

    /// Appends one message to its function's ring (an empty namespace is the store's
    /// default), evicting the oldest lines if the ring is full, and wakes its followers.
    ///
    /// Fails only when the message would create a function beyond
    /// [`StoreLimits::max_functions`]; nothing stored is touched then.
    pub fn append(&self, mut message: Message) -> Result<(), Error> {
        let ring = self.ring_or_create(&message.namespace, &message.name)?;
        if message.namespace.is_empty() {
            message.namespace = ring.namespace.clone();
        }
        // Encoded before the lock is taken, so that followers are not kept waiting.
        let encoded = (ring.followers.load(Ordering::Relaxed) > 0).then(|| wire_line(&message));
        let mut line = StoredLine::new(message);
        let limits = &self.inner.limits;
        let waiting = {
            let mut state = lock(&ring.state);
            // Room first, so that a full ring's storage never grows past its limit.
            while state.messages.len() >= limits.max_messages {
                state.pop_oldest(&self.inner.total_bytes);
            }
            line.instance = state.instances.share(line.instance);
            let size = line.bytes();
            if state
                .messages
                .back()
                .is_some_and(|last| line.timestamp < last.timestamp)
            {
                state.disorder = Some(state.end());
            }
            grow_within(&mut state.messages, limits.max_messages);
            state.messages.push_back(line);
            let stamp = self.inner.next_stamp.fetch_add(1, Ordering::Relaxed);
            grow_within(&mut state.stamps, limits.max_messages);
            state.stamps.push_back(stamp);
            match encoded {
                Some(line) => {
                    state.encoded.push_back(line);
                    if state.encoded.len() > ENCODED_WINDOW {
                        state.encoded.pop_front();
                    }
                }
                // The window holds the newest lines without a hole, or nothing.
                None => state.encoded.clear(),
            }
            state.bytes += size;
            self.inner.total_bytes.fetch_add(size, Ordering::Relaxed);
            while state.bytes > limits.max_bytes && state.messages.len() > 1 {
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
        let rings = self.inner.functions.all();
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
    #[must_use]
    pub fn total_bytes(&self) -> usize {
        self.inner.total_bytes.load(Ordering::Relaxed)
    }

    /// What the whole store holds: each ring is looked at in turn, so call it when asked
    /// (a scrape), not per line.
    #[must_use]
    pub fn totals(&self) -> StoreTotals {
        let rings = self.inner.functions.all();
        let mut totals = StoreTotals {
            functions: rings.len(),
            bytes: self.total_bytes() as u64,
            ..StoreTotals::default()
        };
        for ring in rings {
            let state = lock(&ring.state);
            totals.lines += state.messages.len() as u64;
            totals.evicted += state.first;
        }
        totals
    }

    /// What a function's ring holds, or `None` for a function the store does not know.
    #[must_use]
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
                self.inner.functions.namespace(&request.namespace)
            )));
        };
        let filter = Filter::new(request);
        let (next, history_end, mut unsorted) = {
            let state = lock(&ring.state);
            let end = state.end();
            if state.sorted() {
                let start = state.start_for(request.since, request.tail, &request.instance);
                (start, end, Vec::new())
            } else {
                // Lines were appended out of time order: sort a copy of the history (at
                // most one ring's) rather than answer in append order. Rare, and the one
                // time a reader copies more than a batch under the lock.
                let copy = state
                    .messages
                    .iter()
                    .filter(|line| filter.wants(&line.timestamp, &line.instance))
                    .map(|line| line.message(&ring.name, &ring.namespace))
                    .collect();
                (end, end, copy)
            }
        };
        unsorted.sort_by_key(|m| m.timestamp);
        if let Some(tail) = request.tail {
            unsorted.drain(..unsorted.len().saturating_sub(tail));
        }
        if request.follow {
            ring.followers.fetch_add(1, Ordering::Relaxed);
        }
        Ok(StoreReader {
            ring,
            id: self.inner.next_reader.fetch_add(1, Ordering::Relaxed),
            encoded: false,
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

    /// History ends with the mark, and `tail`, `since` and `instance` are answered from
    /// the ring exactly.
    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    async fn functions(&self) -> Result<Option<Vec<FunctionName>>, Error> {
        Ok(Some(self.function_names()))
    }

    fn default_namespace(&self) -> Option<String> {
        Some(LogStore::default_namespace(self).to_owned())
    }

    fn store_reader(&self, request: &Request) -> Option<Result<StoreReader, Error>> {
        Some(self.read(request))
    }
}

/// The store's locks (and the telemetry listener's) guard plain data that every critical
/// section leaves consistent, so a panic elsewhere (a poisoned lock) is no reason to stop
/// serving logs.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}
