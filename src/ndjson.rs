//! The response body: newline-delimited JSON, coalesced into few large frames, ended by
//! the deadline, a shutdown or the stream itself.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use futures_core::Stream;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::semantics::Shaped;
use crate::{Error, Message};

/// Once the buffer holds this much, it is sent even if more messages are ready: large
/// enough that a bulk dump costs few writes, small enough to bound memory per response.
pub(crate) const FRAME_TARGET: usize = 128 * 1024;

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
    shaped: Option<Shaped>,
    buf: BytesMut,
    deadline: Pin<Box<Sleep>>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    follow: bool,
    failure: Option<Error>,
    done: bool,
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

    pub(crate) fn streaming(
        shaped: Shaped,
        follow: bool,
        deadline: Instant,
        shutdown: WaitForCancellationFutureOwned,
    ) -> Self {
        LogBody {
            kind: Kind::Streaming(Box::new(Streaming {
                shaped: Some(shaped),
                buf: BytesMut::new(),
                deadline: Box::pin(tokio::time::sleep_until(deadline)),
                shutdown: Box::pin(shutdown),
                follow,
                failure: None,
                done: false,
            })),
        }
    }
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

/// Appends one message as a JSON line.
pub(crate) fn encode(message: &Message, buf: &mut BytesMut) {
    // Writing into memory cannot fail, and a Message always serializes.
    if let Err(e) = serde_json::to_writer(buf.writer(), message) {
        tracing::error!(error = %e, "could not encode a log message");
        return;
    }
    buf.put_u8(b'\n');
}

impl Streaming {
    /// Ends the stream: the backend is dropped now; what is buffered still goes out.
    fn finish(&mut self, failure: Option<Error>) {
        self.shaped = None;
        self.done = true;
        self.failure = failure;
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if !self.done {
            if self.shutdown.as_mut().poll(cx).is_ready() {
                tracing::debug!("log stream ended by shutdown");
                self.finish(None);
            } else if self.deadline.as_mut().poll(cx).is_ready() {
                if self.follow {
                    tracing::debug!("follow stream reached the deadline");
                    self.finish(None);
                } else {
                    let e = Error::unavailable(
                        "the log backend did not finish before the handler's timeout",
                    );
                    tracing::warn!(error = %e, "aborting a non-follow log stream");
                    self.finish(Some(e));
                }
            }
        }
        while let Some(shaped) = self.shaped.as_mut() {
            match Pin::new(shaped).poll_next(cx) {
                Poll::Ready(Some(Ok(message))) => {
                    encode(&message, &mut self.buf);
                    if self.buf.len() >= FRAME_TARGET {
                        break;
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::error!(error = %e.chain(), "log backend failed mid-stream; aborting the response");
                    self.finish(Some(e));
                }
                Poll::Ready(None) => self.finish(None),
                Poll::Pending => {
                    if self.buf.is_empty() {
                        return Poll::Pending;
                    }
                    break;
                }
            }
        }
        if !self.buf.is_empty() {
            let frame = self.buf.split().freeze();
            // Reuse the allocation once hyper has written the previous frame.
            self.buf.reserve(FRAME_TARGET.min(frame.len() * 2));
            return Poll::Ready(Some(Ok(Frame::data(frame))));
        }
        Poll::Ready(self.failure.take().map(Err))
    }
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
            Kind::Streaming(s) => s.done && s.buf.is_empty() && s.failure.is_none(),
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
