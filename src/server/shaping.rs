//! The contract enforced over any backend stream: `since` and `instance` filters, `tail`
//! over history in timestamp order, and the switch from history to live (or to the end,
//! without follow).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_core::Stream;
use tokio::time::Sleep;

use crate::codec::trim_line_end;
use crate::ordered::TimeOrdered;
use crate::request::Filter;
use crate::{Capabilities, Error, Event, LogStream, Message, Request, SharedStr};

/// Wraps a backend stream so that it yields exactly what the request asked for.
pub(crate) struct Shaped {
    backend: Option<LogStream>,
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
    quiet: Option<Pin<Box<Sleep>>>,
    /// False for a backend that always marks where history ends: then its mark is
    /// trusted and nothing is guessed from timestamps or pauses.
    guess_history_end: bool,
    /// Items this stream may still take before it yields the thread (see [`SLICE`]).
    budget: u32,
    /// Whether the last `Pending` was a yield for the budget, not a backend with nothing
    /// ready.
    yielded: bool,
}

/// The most items (backend items and held history alike) a response takes before it
/// yields its worker thread. A backend that is always ready would otherwise keep one
/// thread busy until its stream ends: other requests would wait, and the deadline would
/// go unnoticed. Smaller slices let other requests in sooner and cost a scan more
/// yields; BENCHMARKS.md ("Against a hostile backend") has the trade measured.
const SLICE: u32 = 1024;

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

impl Shaped {
    pub(crate) fn new(
        backend: LogStream,
        request: &Request,
        default_namespace: &SharedStr,
        arrived: DateTime<Utc>,
        quiet_period: Duration,
        capabilities: Capabilities,
    ) -> Self {
        let mut filter = Filter::new(request);
        if capabilities.selects_instance {
            filter.instance = None;
        }
        let namespace = if request.namespace.is_empty() {
            default_namespace.clone()
        } else {
            request.namespace.as_str().into()
        };
        Shaped {
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
            quiet: None,
            guess_history_end: !capabilities.marks_history_end,
            budget: SLICE,
            yielded: false,
        }
    }

    /// Whether history is over: the response has nothing more to hold back.
    pub(crate) fn history_over(&self) -> bool {
        !matches!(self.phase, Phase::History)
    }

    /// Whether the last `Pending` was a yield for the time slice (the stream has more
    /// ready and has already asked to be polled again); clears the flag.
    pub(crate) fn take_yielded(&mut self) -> bool {
        std::mem::take(&mut self.yielded)
    }

    /// Stops reading the backend (the deadline or a shutdown came): what is held in
    /// memory is still yielded, then the stream ends. Returns whether history was
    /// complete; when it was not, the caller must not present the end as clean.
    pub(crate) fn stop(&mut self) -> bool {
        self.backend = None;
        if matches!(self.phase, Phase::History) {
            self.end_history(None);
            return false;
        }
        true
    }

    fn end_history(&mut self, first_live: Option<Message>) {
        self.quiet = None;
        let first_live = first_live.filter(|_| self.follow);
        self.phase = Phase::Draining {
            held: self.history.take_sorted(),
            first_live,
        };
    }

    /// In a follow request with a tail, a marker-less backend's history also ends when the
    /// stream has been quiet for a while; returns whether that time has come.
    fn quiet_elapsed(&mut self, cx: &mut Context<'_>) -> bool {
        if !(self.guess_history_end && self.follow && self.history.tail.is_some()) {
            return false;
        }
        let period = self.quiet_period;
        let timer = self
            .quiet
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(period)));
        timer.as_mut().poll(cx).is_ready()
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
        if self.checks_function
            && (m.name != *self.name || !(m.namespace.is_empty() || m.namespace == *self.namespace))
        {
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
    type Item = Result<Message, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.budget == 0 {
                this.budget = SLICE;
                this.yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            this.budget -= 1;
            match &mut this.phase {
                Phase::Done => return Poll::Ready(None),
                Phase::Draining { held, first_live } => {
                    if let Some(m) = held.next().or_else(|| first_live.take()) {
                        return Poll::Ready(Some(Ok(m)));
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
            match backend.as_mut().poll_next(cx) {
                Poll::Pending => {
                    if in_history && this.quiet_elapsed(cx) {
                        this.end_history(None);
                        continue;
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
                Poll::Ready(Some(Ok(Event::HistoryEnd))) => {
                    if in_history {
                        this.end_history(None);
                    }
                }
                Poll::Ready(Some(Ok(Event::Message(m)))) => {
                    this.quiet = None;
                    if let Some(m) = this.on_message(m) {
                        return Poll::Ready(Some(Ok(m)));
                    }
                }
                Poll::Ready(Some(Ok(Event::Gap { lost, timestamp }))) => {
                    this.quiet = None;
                    let line = this.gap_line(lost, timestamp);
                    if let Some(m) = this.place(line) {
                        return Poll::Ready(Some(Ok(m)));
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

    #[test]
    fn tail_holds_at_most_tail_messages_however_long_the_history() {
        // 200,000 messages, shuffled in blocks of 8, then a stream that stays open: the
        // history never ends by itself, so the heap can be looked at while it fills.
        let total = 200_000i64;
        let history = futures_util::stream::iter(0..total).map(|i| {
            let second = i ^ 7; // reorders each block of 8
            Ok(Event::Message(message(second, "a")))
        });
        let backend = history.chain(futures_util::stream::pending());
        let request = Request {
            tail: Some(5),
            ..Request::new("f")
        };
        let mut shaped = Shaped::new(
            Box::pin(backend),
            &request,
            &"openfaas-fn".into(),
            Utc::now(),
            Duration::from_secs(1),
            Capabilities::NONE.with_marks_history_end(),
        );
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        // Each poll takes one time slice of the history and yields.
        let slices = total as usize / SLICE as usize + 2;
        for _ in 0..slices {
            assert!(Pin::new(&mut shaped).poll_next(&mut cx).is_pending());
            assert!(!shaped.history_over());
            assert!(shaped.history.heap.len() <= 5);
        }
        assert_eq!(shaped.history.heap.len(), 5);
        assert!(!shaped.stop(), "history was not complete");
        let mut got = Vec::new();
        while let Poll::Ready(Some(m)) = Pin::new(&mut shaped).poll_next(&mut cx) {
            got.push(m.unwrap());
        }
        let seconds: Vec<i64> = got
            .iter()
            .map(|m| m.timestamp.timestamp() - 1_700_000_000)
            .collect();
        assert_eq!(seconds, (total - 5..total).collect::<Vec<_>>());
        assert!(got.iter().all(|m| !m.text.ends_with('\n')));
    }
}
