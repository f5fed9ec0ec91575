//! The contract enforced over any backend stream: `since` and `instance` filters, `tail`
//! over history in timestamp order, and the switch from history to live (or to the end,
//! without follow).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_core::Stream;
use tokio::time::Sleep;

use crate::codec::trim_line_end;
use crate::ordered::TimeOrdered;
use crate::request::Filter;
use crate::store::reader::Read;
use crate::store::StoreReader;
use crate::{Capabilities, Error, Event, LogStream, Message, Request, SharedStr};

pin_project_lite::pin_project! {
    /// Wraps a backend stream so that it yields exactly what the request asked for.
    pub(crate) struct Shaped {
        contract: Contract,
        // In a follow request with a tail, a marker-less backend's history also ends
        // once the stream has been quiet this long; restarted by every message.
        #[pin]
        quiet: Option<Sleep>,
    }
}

/// What a response sends: a message to encode, or a line the store encoded already.
pub(crate) enum Line {
    Message(Message),
    Encoded(Bytes),
}

/// Where a response's lines come from.
pub(crate) enum Backend {
    /// A requester's stream.
    Stream(LogStream),
    /// A store's reader, whose lines may come encoded (see [`Requester::store_reader`](crate::Requester::store_reader)).
    Store(StoreReader),
}

impl Backend {
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Read, Error>>> {
        match self {
            Backend::Stream(stream) => stream
                .as_mut()
                .poll_next(cx)
                .map(|item| item.map(|item| item.map(Read::Event))),
            Backend::Store(reader) => reader.poll_read(cx),
        }
    }
}

/// What the request asked for, and where its stream stands.
struct Contract {
    backend: Option<Backend>,
    filter: Filter,
    /// Who the response is for: messages of another function are dropped (unless the
    /// backend selects the function itself), and a gap shows as a line of this one.
    name: SharedStr,
    /// The request's namespace, or the provider's default for a request without one.
    namespace: SharedStr,
    instance: String,
    checks_function: bool,
    follow: bool,
    arrived: DateTime<Utc>,
    phase: Phase,
    history: History,
    quiet_period: Duration,
    /// False for a backend that always marks where history ends: then its mark is
    /// trusted and nothing is guessed from timestamps or pauses.
    guess_history_end: bool,
    /// Items taken since a unit of the budget was last spent (see [`ITEMS_PER_UNIT`]).
    items_on_unit: u32,
    /// For a store's reader: whether its function is the one asked for (the check that
    /// each message gets, made once for lines that come encoded).
    store_matches: bool,
    /// The name and namespace of the last message found to be of this function.
    passed: Option<(SharedStr, SharedStr)>,
}

/// How many items one unit of tokio's cooperative budget pays for. A unit is sized for
/// an I/O operation, an item costs a fraction of a microsecond, and a yield for the
/// budget gives tokio's I/O driver a turn (a system call): one unit an item made a dump
/// 30% slower. With 32, a response yields every 4,096 items; BENCHMARKS.md ("The
/// response body on tokio's budget") has the trade measured.
const ITEMS_PER_UNIT: u32 = 32;

/// Counts an item taken on `unit` (the budget unit spent for it, if one was); returns
/// the new count.
fn took_item(unit: Option<&tokio::task::coop::RestoreOnPending>, items_on_unit: u32) -> u32 {
    if let Some(unit) = unit {
        unit.made_progress();
    }
    (items_on_unit + 1) % ITEMS_PER_UNIT
}

enum Phase {
    /// Reading history: held back when a tail is set, passed on otherwise.
    History,
    /// Sending the held history, then `first_live` if history ended on a live message.
    Draining {
        held: std::vec::IntoIter<Message>,
        first_live: Option<Message>,
    },
    Live,
    Done,
}

/// The newest `tail` history messages, or none held at all when there is no tail (or the
/// backend applies it itself).
struct History {
    tail: Option<usize>,
    heap: BinaryHeap<Reverse<Held>>,
    arrivals: u64,
}

/// A held message.
type Held = TimeOrdered<Message>;

impl History {
    /// Keeps `message` if it is among the newest `tail`; memory never exceeds `tail`.
    fn hold(&mut self, tail: usize, message: Message) {
        let held = Held::new(message.timestamp, self.arrivals, message);
        self.arrivals += 1;
        if self.heap.len() < tail {
            self.heap.push(Reverse(held));
        } else if let Some(mut oldest) = self.heap.peek_mut() {
            if held > oldest.0 {
                *oldest = Reverse(held);
            }
        }
    }

    fn take_sorted(&mut self) -> std::vec::IntoIter<Message> {
        let mut held = std::mem::take(&mut self.heap).into_vec();
        held.sort_unstable_by_key(|h| h.0.key());
        let messages: Vec<Message> = held.into_iter().map(|h| h.0.item).collect();
        messages.into_iter()
    }
}

/// After `Pending` from a [`Shaped`] stream: whether it only gave the thread back because
/// tokio's cooperative budget ran out, rather than having nothing ready. In that case
/// the task is polled again soon (this arranges it), and the caller may keep what it
/// holds for then instead of treating the pause as the end of a burst.
pub(crate) fn yielded_for_budget(cx: &mut Context<'_>) -> bool {
    tokio::task::coop::poll_proceed(cx).is_pending()
}

impl Shaped {
    pub(crate) fn new(
        backend: Backend,
        request: &Request,
        default_namespace: &SharedStr,
        arrived: DateTime<Utc>,
        quiet_period: Duration,
        capabilities: Capabilities,
    ) -> Self {
        // A store's reader is read as the store says it behaves, whatever a requester
        // wrapping it declares.
        let capabilities = match &backend {
            Backend::Store(_) => crate::store::CAPABILITIES,
            Backend::Stream(_) => capabilities,
        };
        let mut filter = Filter::new(request);
        if capabilities.selects_instance {
            filter.instance = None;
        }
        let namespace = if request.namespace.is_empty() {
            default_namespace.clone()
        } else {
            request.namespace.as_str().into()
        };
        let store_matches = match &backend {
            Backend::Store(reader) => {
                let (store_namespace, store_name) = reader.function();
                **store_name == *request.name && **store_namespace == *namespace
            }
            Backend::Stream(_) => false,
        };
        let contract = Contract {
            backend: Some(backend),
            filter,
            name: request.name.as_str().into(),
            namespace,
            instance: request.instance.clone(),
            checks_function: !capabilities.selects_function,
            follow: request.follow,
            arrived,
            phase: Phase::History,
            history: History {
                tail: request.tail.filter(|_| !capabilities.applies_tail),
                heap: BinaryHeap::new(),
                arrivals: 0,
            },
            quiet_period,
            guess_history_end: !capabilities.marks_history_end,
            items_on_unit: 0,
            store_matches,
            passed: None,
        };
        Shaped {
            contract,
            quiet: None,
        }
    }

    /// Whether history is over: the response has nothing more to hold back.
    pub(crate) fn history_over(&self) -> bool {
        !matches!(self.contract.phase, Phase::History)
    }

    /// Stops reading the backend (the deadline or a shutdown came): what is held in
    /// memory is still yielded, then the stream ends. Returns whether history was
    /// complete; when it was not, the caller must not present the end as clean.
    pub(crate) fn stop(self: Pin<&mut Self>) -> bool {
        let contract = self.project().contract;
        contract.backend = None;
        if matches!(contract.phase, Phase::History) {
            contract.end_history(None);
            return false;
        }
        true
    }
}

impl Contract {
    fn end_history(&mut self, first_live: Option<Message>) {
        let first_live = first_live.filter(|_| self.follow);
        self.phase = Phase::Draining {
            held: self.history.take_sorted(),
            first_live,
        };
    }

    /// Whether a pause in the backend can end history: in a follow request with a tail,
    /// from a backend that does not mark the end itself.
    fn ends_history_when_quiet(&self) -> bool {
        self.guess_history_end && self.follow && self.history.tail.is_some()
    }

    /// How a gap shows on the wire: a line of the function that says how many lines were
    /// lost, at the gap's place in time (never before `since`, so it is not filtered out).
    fn gap_line(&self, lost: u64, timestamp: DateTime<Utc>) -> Message {
        let timestamp = self.filter.since.map_or(timestamp, |s| timestamp.max(s));
        Message::new(
            self.name.clone(),
            timestamp,
            format!("[faas-logs] {lost} lines lost here: this reader fell behind the store"),
        )
        .with_namespace(self.namespace.clone())
        .with_instance(self.instance.clone())
    }

    /// Applies the filters to one backend message; returns a message to emit, if any.
    fn on_message(&mut self, mut m: Message) -> Option<Message> {
        if self.checks_function && !self.of_this_function(&m) {
            return None;
        }
        if m.namespace.is_empty() {
            m.namespace = self.namespace.clone();
        }
        if !self.filter.wanted(&m) {
            return None;
        }
        trim_line_end(&mut m.text);
        self.place(m)
    }

    /// Whether `m` is of the function asked for. A backend shares its names between
    /// lines, so the last names that passed are kept and recognised without reading them.
    fn of_this_function(&mut self, m: &Message) -> bool {
        if let Some((name, namespace)) = &self.passed {
            if name.is_same(&m.name) && namespace.is_same(&m.namespace) {
                return true;
            }
        }
        let ours =
            m.name == *self.name && (m.namespace.is_empty() || m.namespace == *self.namespace);
        if ours {
            self.passed = Some((m.name.clone(), m.namespace.clone()));
        }
        ours
    }

    /// A line a store's reader encoded: it passed the reader's filters, which are this
    /// request's. A store applies `tail` and marks where history ends, so nothing is
    /// held back or guessed from it.
    fn on_encoded(&self, line: Bytes) -> Option<Line> {
        if self.checks_function && !self.store_matches {
            return None;
        }
        debug_assert!(self.history.tail.is_none() && !self.guess_history_end);
        Some(Line::Encoded(line))
    }

    /// Applies the phase rules to a wanted message: held, passed on, or the end of history.
    fn place(&mut self, m: Message) -> Option<Message> {
        if !matches!(self.phase, Phase::History) {
            return Some(m);
        }
        if self.guess_history_end && m.timestamp >= self.arrived {
            self.end_history(Some(m));
            return None;
        }
        match self.history.tail {
            Some(tail) => {
                self.history.hold(tail, m);
                None
            }
            None => Some(m),
        }
    }
}

impl Stream for Shaped {
    type Item = Result<Line, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let projected = self.project();
        let this = projected.contract;
        let mut quiet = projected.quiet;
        loop {
            // Items (a backend's, held history's, or ones filtered away) spend tokio's
            // cooperative budget: a backend that is always ready would otherwise keep its
            // worker thread until its stream ends, so that other requests wait and the
            // deadline goes unnoticed. With no budget left this is `Pending`, and tokio
            // polls the task again once others had their turn.
            let unit = match this.items_on_unit {
                0 => Some(std::task::ready!(tokio::task::coop::poll_proceed(cx))),
                _ => None,
            };
            match &mut this.phase {
                Phase::Done => return Poll::Ready(None),
                Phase::Draining { held, first_live } => {
                    if let Some(m) = held.next().or_else(|| first_live.take()) {
                        this.items_on_unit = took_item(unit.as_ref(), this.items_on_unit);
                        return Poll::Ready(Some(Ok(Line::Message(m))));
                    }
                    this.phase = if this.follow && this.backend.is_some() {
                        Phase::Live
                    } else {
                        // Without follow, the rest of the backend's stream is not wanted.
                        this.backend = None;
                        Phase::Done
                    };
                    continue;
                }
                Phase::History | Phase::Live => {}
            }
            let Some(backend) = this.backend.as_mut() else {
                this.phase = Phase::Done;
                continue;
            };
            let in_history = matches!(this.phase, Phase::History);
            let next = backend.poll_read(cx);
            if next.is_ready() {
                this.items_on_unit = took_item(unit.as_ref(), this.items_on_unit);
            }
            match next {
                Poll::Pending => {
                    if !tokio::task::coop::has_budget_remaining() {
                        // The backend found the budget spent by this unit: it stays
                        // spent, so that the caller sees a yield, not a quiet backend.
                        if let Some(unit) = &unit {
                            unit.made_progress();
                        }
                    }
                    if in_history && this.ends_history_when_quiet() {
                        if quiet.is_none() {
                            quiet.set(Some(tokio::time::sleep(this.quiet_period)));
                        }
                        let elapsed = quiet
                            .as_mut()
                            .as_pin_mut()
                            .is_some_and(|timer| timer.poll(cx).is_ready());
                        if elapsed {
                            quiet.set(None);
                            this.end_history(None);
                            continue;
                        }
                    }
                    return Poll::Pending;
                }
                Poll::Ready(None) => {
                    this.backend = None;
                    if in_history {
                        this.end_history(None);
                    } else {
                        this.phase = Phase::Done;
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.backend = None;
                    this.phase = Phase::Done;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(Read::Event(Event::HistoryEnd)))) => {
                    if in_history {
                        this.end_history(None);
                    }
                }
                Poll::Ready(Some(Ok(Read::Event(Event::Message(m))))) => {
                    quiet.set(None);
                    if let Some(m) = this.on_message(m) {
                        return Poll::Ready(Some(Ok(Line::Message(m))));
                    }
                }
                Poll::Ready(Some(Ok(Read::Encoded(line)))) => {
                    quiet.set(None);
                    if let Some(line) = this.on_encoded(line) {
                        return Poll::Ready(Some(Ok(line)));
                    }
                }
                Poll::Ready(Some(Ok(Read::Event(Event::Gap { lost, timestamp })))) => {
                    quiet.set(None);
                    crate::meter::gap(lost);
                    let line = this.gap_line(lost, timestamp);
                    if let Some(m) = this.place(line) {
                        return Poll::Ready(Some(Ok(Line::Message(m))));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use futures_util::StreamExt;

    fn message(second: i64, instance: &str) -> Message {
        let at = Utc.timestamp_opt(1_700_000_000 + second, 0).unwrap();
        Message::new("f", at, format!("{instance} {second}\n")).with_instance(instance)
    }

    #[tokio::test]
    async fn tail_holds_at_most_tail_messages_however_long_the_history() {
        // 20,000 messages, shuffled in blocks of 8, then a stream that stays open: the
        // history never ends by itself, so the heap can be looked at while it fills.
        let total = 20_000i64;
        let history = futures_util::stream::iter(0..total).map(|i| {
            let second = i ^ 7; // reorders each block of 8
            Ok(Event::Message(message(second, "a")))
        });
        let backend = history.chain(futures_util::stream::pending());
        let request = Request {
            tail: Some(5),
            ..Request::new("f")
        };
        let mut shaped = Box::pin(Shaped::new(
            Backend::Stream(Box::pin(backend)),
            &request,
            &"openfaas-fn".into(),
            Utc::now(),
            Duration::from_secs(1),
            Capabilities::NONE.with_marks_history_end(),
        ));
        // Each poll takes what tokio's budget allows and yields; between polls the
        // task gets a fresh budget.
        let mut polls = 0;
        while shaped.contract.history.arrivals < total as u64 {
            let poll = std::future::poll_fn(|cx| Poll::Ready(shaped.as_mut().poll_next(cx))).await;
            assert!(poll.is_pending());
            assert!(!shaped.history_over());
            assert!(shaped.contract.history.heap.len() <= 5);
            tokio::task::yield_now().await;
            polls += 1;
            assert!(polls <= total, "the history is not read");
        }
        assert!(polls > 1, "a poll took the whole history without yielding");
        assert_eq!(shaped.contract.history.heap.len(), 5);
        assert!(!shaped.as_mut().stop(), "history was not complete");
        let mut got = Vec::new();
        while let Some(line) = shaped.next().await {
            match line.unwrap() {
                Line::Message(m) => got.push(m),
                Line::Encoded(_) => panic!("a stream's line came encoded"),
            }
        }
        let seconds: Vec<i64> = got
            .iter()
            .map(|m| m.timestamp.timestamp() - 1_700_000_000)
            .collect();
        assert_eq!(seconds, (total - 5..total).collect::<Vec<_>>());
        assert!(got.iter().all(|m| !m.text.ends_with('\n')));
    }
}
