//! The response body: newline-delimited JSON, coalesced into few large frames, ended by
//! the deadline, a shutdown or the stream itself.

use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::shaping::{yielded_for_budget, Line, Shaped};
use crate::codec::LineEncoder;
use crate::error::panicked;
use crate::{meter, Error};

/// Once the buffer holds this much, it is sent even if more messages are ready: large
/// enough that a bulk dump costs few writes, small enough to bound memory per response.
pub(crate) const FRAME_TARGET: usize = 128 * 1024;

/// Room past [`FRAME_TARGET`] for the line that fills a frame.
const FRAME_SLACK: usize = 16 * 1024;

/// The body of a `/system/logs` response.
///
/// It implements [`http_body::Body`] with `Data = Bytes`, so hyper and axum serve it as
/// it is. A streaming body encodes every message the backend has ready into one frame
/// (up to 128 KiB) and sends that frame the moment the backend has nothing more ready: a
/// bulk dump pays one write per frame, not per line, and a live line is never held back.
///
/// A backend error after the response has started ends the body with an error, so that
/// the server aborts the connection without the final chunk and the client sees an
/// incomplete response rather than a clean end.
pub struct LogBody {
    kind: Kind,
}

enum Kind {
    Once(Option<Bytes>),
    Streaming(Box<Streaming>),
}

struct Streaming {
    shared: Arc<Mutex<Shared>>,
    buf: FrameBuf,
    encoder: LineEncoder,
    deadline: Instant,
    /// Whether the server holds bytes it has not written: the head, or a full frame
    /// filled while the backend had more ready. Its writes spend the same cooperative
    /// budget as the body's reads, so the body pauses before reading more, with budget
    /// left for them.
    write_due: bool,
    /// Stops the backend at the deadline or a shutdown even while nothing polls the
    /// body: a client that stops reading blocks the server's writes, and with them the
    /// polling. Aborted when the body goes.
    stopper: Option<tokio::task::JoinHandle<()>>,
    /// Counts the body among the open follow streams while it lives.
    _following: Option<meter::Open>,
}

/// What the body and its stopper share.
struct Shared {
    shaped: Pin<Box<Shaped>>,
    state: State,
    /// The body's task, woken when the stopper stopped the backend (whose own wakers go
    /// with it).
    waker: Option<Waker>,
}

/// Where a streaming body stands. Every change is made by [`State::next`], but the last:
/// [`Shared::finish`].
enum State {
    /// Reading the backend: its history (held back when a tail is set), then live lines.
    Streaming,
    /// The deadline or a shutdown stopped the backend: the history held so far goes
    /// out, then the body ends cleanly if history was complete, or with `cut_short`.
    Draining { cut_short: Option<Error> },
    /// The backend failed: what is buffered goes out, the server is given one pause to
    /// write it, then the body ends with `error`.
    Failing { error: Error, paused: bool },
    /// Nothing more to send.
    Done,
}

/// What moves a body from one state to the next.
enum Happened {
    /// The deadline or a shutdown (`why`) stopped the backend; `complete` says whether
    /// its history was.
    Stopped { why: &'static str, complete: bool },
    /// The backend failed, or panicked.
    Failed(Error),
    /// The shaped stream has nothing more.
    Ended,
    /// A failing body paused, with budget left for the server to write what it holds.
    Paused,
}

impl State {
    /// Every transition, with the rule for how a body ends: cleanly when the backend
    /// ended, or was stopped after its history was complete (a follow stream at its
    /// deadline); with an error when the backend failed or history was cut short, so
    /// that an incomplete answer does not look finished.
    fn next(self, happened: Happened) -> State {
        match (self, happened) {
            (
                State::Streaming,
                Happened::Stopped {
                    why,
                    complete: true,
                },
            ) => {
                tracing::debug!("log stream ended by {why}");
                State::Draining { cut_short: None }
            }
            (
                State::Streaming,
                Happened::Stopped {
                    why,
                    complete: false,
                },
            ) => {
                let e = Error::unavailable(format!(
                    "the log backend had not finished its history when {why} came"
                ));
                meter::backend_failed(&e);
                tracing::warn!(error = %e, "sending the history held so far, then aborting the response");
                State::Draining { cut_short: Some(e) }
            }
            (State::Streaming | State::Draining { .. }, Happened::Failed(error)) => {
                tracing::error!(error = %error.chain(), "log backend failed mid-stream; aborting the response");
                meter::backend_failed(&error);
                State::Failing {
                    error,
                    paused: false,
                }
            }
            (State::Streaming | State::Draining { cut_short: None }, Happened::Ended) => {
                State::Done
            }
            (
                State::Draining {
                    cut_short: Some(error),
                },
                Happened::Ended,
            ) => State::Failing {
                error,
                paused: false,
            },
            (State::Failing { error, .. }, Happened::Paused) => State::Failing {
                error,
                paused: true,
            },
            // A stop after the end, say, changes nothing.
            (state, _) => state,
        }
    }

    /// Whether the backend's stream is still read.
    fn reads(&self) -> bool {
        matches!(self, State::Streaming | State::Draining { .. })
    }
}

/// The shared state, even if a panic poisoned its lock (the body catches a backend's
/// panic).
fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn advance(&mut self, happened: Happened) {
        self.state = std::mem::replace(&mut self.state, State::Done).next(happened);
    }

    /// Ends the body: returns the error a failing body hands to the server, if any.
    fn finish(&mut self) -> Option<Error> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Failing { error, .. } => Some(error),
            _ => None,
        }
    }

    /// At the deadline or a shutdown the backend is dropped; what the response holds
    /// (the newest `tail` of history) still goes out.
    fn stop(&mut self, why: &'static str) {
        if !matches!(self.state, State::Streaming) {
            return;
        }
        let complete = self.shaped.as_mut().stop();
        self.advance(Happened::Stopped { why, complete });
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

impl LogBody {
    /// An empty body, for responses of your own beside the handler's (a 404 for other
    /// paths, say), so that one router can return a single body type.
    pub fn empty() -> Self {
        LogBody {
            kind: Kind::Once(None),
        }
    }

    pub(crate) fn once(bytes: Bytes) -> Self {
        LogBody {
            kind: Kind::Once(Some(bytes)),
        }
    }

    /// A body that starts with `first` (already taken from `shaped`), then streams the
    /// rest of `shaped` until it ends, the deadline passes or `shutdown` resolves.
    /// `following` counts it among the open follow streams.
    pub(crate) fn streaming(
        shaped: Pin<Box<Shaped>>,
        first: Option<Line>,
        deadline: Instant,
        shutdown: WaitForCancellationFutureOwned,
        following: bool,
    ) -> Self {
        let mut buf = FrameBuf::new();
        let mut encoder = LineEncoder::default();
        if let Some(first) = &first {
            buf.put(first, &mut encoder);
        }
        let shared = Arc::new(Mutex::new(Shared {
            shaped,
            state: State::Streaming,
            waker: None,
        }));
        let stopper = tokio::runtime::Handle::try_current().ok().map(|runtime| {
            let shared = Arc::downgrade(&shared);
            runtime.spawn(async move {
                let sleep = std::pin::pin!(tokio::time::sleep_until(deadline));
                let shutdown = std::pin::pin!(shutdown);
                let why = match futures_util::future::select(sleep, shutdown).await {
                    futures_util::future::Either::Left(_) => "the deadline",
                    futures_util::future::Either::Right(_) => "a shutdown",
                };
                if let Some(shared) = shared.upgrade() {
                    lock(&shared).stop(why);
                }
            })
        });
        LogBody {
            kind: Kind::Streaming(Box::new(Streaming {
                shared,
                buf,
                encoder,
                deadline,
                write_due: true,
                stopper,
                _following: following.then(|| meter::Open::new(meter::FOLLOW_STREAMS)),
            })),
        }
    }
}

/// A small JSON answer of an endpoint: `value` with `status`.
pub(crate) fn json_response(
    status: http::StatusCode,
    value: &impl serde::Serialize,
) -> http::Response<LogBody> {
    let (status, body) = match serde_json::to_vec(value) {
        Ok(body) => (status, body),
        Err(e) => {
            tracing::error!(error = %e, "an answer could not be written as JSON");
            let error = br#"{"error":"the answer could not be written as JSON"}"#;
            (http::StatusCode::INTERNAL_SERVER_ERROR, error.to_vec())
        }
    };
    let mut response = http::Response::new(LogBody::once(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

impl std::fmt::Debug for LogBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            Kind::Once(_) => "once",
            Kind::Streaming(_) => "streaming",
        };
        f.debug_struct("LogBody").field("kind", &kind).finish()
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        if let Some(stopper) = &self.stopper {
            stopper.abort();
        }
    }
}

impl Streaming {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let mut shared = lock(&self.shared);
        // The clock is read here too, not only by the stopper: a worker that is never
        // idle drives its timers late.
        if Instant::now() >= self.deadline {
            shared.stop("the deadline");
        }
        if self.write_due && shared.state.reads() {
            if let Some(frame) = self.buf.take() {
                return Poll::Ready(Some(Ok(frame)));
            }
            self.write_due = !pause(cx);
            return Poll::Pending;
        }
        while shared.state.reads() {
            // A backend that panics breaks the body like any other failure: the head and
            // the lines before it still reach the client.
            let shaped = &mut shared.shaped;
            let next = std::panic::catch_unwind(AssertUnwindSafe(|| shaped.as_mut().poll_next(cx)))
                .unwrap_or_else(|panic| Poll::Ready(Some(Err(panicked(panic)))));
            match next {
                Poll::Ready(Some(Ok(line))) => {
                    self.buf.put(&line, &mut self.encoder);
                    if self.buf.len() >= FRAME_TARGET {
                        self.write_due = true;
                        break;
                    }
                }
                Poll::Ready(Some(Err(e))) => shared.advance(Happened::Failed(e)),
                Poll::Ready(None) => shared.advance(Happened::Ended),
                Poll::Pending if self.buf.is_empty() => {
                    shared.waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                // Out of tokio's budget, the stream gave the thread back and is polled
                // again soon: keep filling the frame then.
                Poll::Pending if yielded_for_budget(cx) => return Poll::Pending,
                // Nothing more is ready: what the frame holds goes now.
                Poll::Pending => break,
            }
        }
        if let Some(frame) = self.buf.take() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if let State::Failing { paused: false, .. } = shared.state {
            // A server aborts the connection on a body error without flushing what it
            // holds; pausing once lets it write the lines that came before.
            if pause(cx) {
                shared.advance(Happened::Paused);
            }
            return Poll::Pending;
        }
        // The stream is over (every way out of the loop above that leaves it running
        // has returned a frame or `Pending`).
        Poll::Ready(shared.finish().map(Err))
    }
}

/// The frame being filled. Between frames it holds no memory: a follower waits for its
/// next line with nothing allocated, however large its last frame was.
struct FrameBuf {
    buf: BytesMut,
    /// What the next frame reserves when its first line comes: twice the last frame, up
    /// to a full frame and its last line, so a dump fills each frame without growing it.
    hint: usize,
    /// Lines in the frame.
    lines: u64,
    /// Counts each frame as served when it is taken.
    served: meter::Served,
}

impl FrameBuf {
    fn new() -> Self {
        FrameBuf {
            buf: BytesMut::new(),
            hint: 4096,
            lines: 0,
            served: meter::Served::new(),
        }
    }

    /// Appends a line as it goes on the wire.
    fn put(&mut self, line: &Line, encoder: &mut LineEncoder) {
        if self.buf.capacity() == 0 {
            self.buf.reserve(self.hint);
        }
        match line {
            Line::Message(m) => {
                self.lines += 1;
                encoder.encode(m, &mut self.buf);
            }
            // A run of the store's encoded lines, one or more.
            Line::Encoded(bytes) => {
                self.lines += memchr::memchr_iter(b'\n', bytes).count() as u64;
                self.buf.extend_from_slice(bytes);
            }
        }
    }

    fn len(&self) -> usize {
        self.buf.len()
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// What the buffer holds, as one frame, counted as served. The frame takes the
    /// whole allocation: a buffer split but kept would make every later one as large as
    /// the first (`BytesMut` remembers its original capacity).
    fn take(&mut self) -> Option<Frame<Bytes>> {
        if self.buf.is_empty() {
            return None;
        }
        let frame = std::mem::take(&mut self.buf).freeze();
        self.hint = (FRAME_TARGET + FRAME_SLACK).min(frame.len() * 2);
        self.served
            .frame(std::mem::take(&mut self.lines), frame.len());
        Some(Frame::data(frame))
    }
}

/// Gives the server a turn to write what it holds: the body returns `Pending` with its
/// task woken at once. Returns whether the turn counts: the server's writes spend the
/// same cooperative budget as the body's reads, so with none left it cannot write, and
/// the body must pause again.
fn pause(cx: &Context<'_>) -> bool {
    cx.waker().wake_by_ref();
    tokio::task::coop::has_budget_remaining()
}

impl Body for LogBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match &mut self.kind {
            Kind::Once(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Streaming(s) => s.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Once(bytes) => bytes.is_none(),
            Kind::Streaming(s) => s.buf.is_empty() && matches!(lock(&s.shared).state, State::Done),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Once(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Once(None) => SizeHint::with_exact(0),
            Kind::Streaming(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, Message, Request};
    use chrono::{TimeZone, Utc};
    use http_body_util::BodyExt;
    use std::time::Duration;
    use tokio::sync::mpsc;

    fn line(i: usize) -> Message {
        Message {
            name: "f".into(),
            namespace: "openfaas-fn".into(),
            instance: "f-1".into(),
            timestamp: Utc.timestamp_opt(1_700_000_000 + i as i64, 0).unwrap(),
            text: format!("line {i}"),
            stream: None,
            details: None,
        }
    }

    /// A follow body over a channel, so the test decides what is ready when.
    fn body() -> (LogBody, mpsc::UnboundedSender<Result<Event, Error>>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let backend = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let request = Request {
            follow: true,
            ..Request::new("f")
        };
        let shaped = Box::pin(Shaped::new(
            crate::server::shaping::Backend::Stream(Box::pin(backend)),
            &request,
            &"openfaas-fn".into(),
            Utc::now(),
            Duration::from_secs(1),
            crate::Capabilities::NONE.with_marks_history_end(),
        ));
        let never = tokio_util::sync::CancellationToken::new().cancelled_owned();
        let far = Instant::now() + Duration::from_secs(3600);
        (LogBody::streaming(shaped, None, far, never, true), tx)
    }

    async fn next_frame(body: &mut LogBody) -> Bytes {
        let frame = body.frame().await.expect("a frame").expect("no error");
        frame.into_data().expect("data")
    }

    #[tokio::test]
    async fn every_ready_message_goes_into_one_frame_and_a_lone_line_goes_at_once() {
        let (mut body, tx) = body();
        tx.send(Ok(Event::HistoryEnd)).unwrap();
        for i in 0..1000 {
            tx.send(Ok(line(i).into())).unwrap();
        }
        let frame = next_frame(&mut body).await;
        assert_eq!(frame.iter().filter(|&&b| b == b'\n').count(), 1000);
        // Nothing else is ready: the next line is its own frame, sent without waiting.
        tx.send(Ok(line(1000).into())).unwrap();
        let frame = next_frame(&mut body).await;
        let want = format!("{}\n", serde_json::to_string(&line(1000)).unwrap());
        assert_eq!(frame, want.as_bytes());
    }

    #[tokio::test]
    async fn an_answer_that_cannot_be_written_as_json_is_a_500_that_says_so() {
        let keys_json_cannot_take = std::collections::HashMap::from([((1, 2), 3)]);
        let response = json_response(http::StatusCode::OK, &keys_json_cannot_take);
        assert_eq!(response.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).contains("could not be written as JSON"));
    }

    #[tokio::test]
    async fn a_large_burst_is_cut_into_bounded_frames() {
        let (mut body, tx) = body();
        tx.send(Ok(Event::HistoryEnd)).unwrap();
        let mut total = 0;
        for i in 0..20_000 {
            let m = line(i);
            total += serde_json::to_string(&m).unwrap().len() + 1;
            tx.send(Ok(m.into())).unwrap();
        }
        let mut seen = 0;
        let mut frames = 0;
        while seen < total {
            let frame = next_frame(&mut body).await;
            assert!(frame.len() < FRAME_TARGET + 200);
            seen += frame.len();
            frames += 1;
        }
        assert_eq!(seen, total);
        assert_eq!(frames, total.div_ceil(FRAME_TARGET));
    }
}
