//! One response body as a stream of lines: split and checked as it arrives, ended by the
//! provider or by what broke it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;

use super::{ClientError, LogLine};
use crate::codec::NdjsonDecoder;

/// The lines of a response, then its end or the error that broke it.
pub(super) struct Lines {
    chunks: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    decoder: NdjsonDecoder,
    buf: BytesMut,
    ended: bool,
    done: bool,
}

impl Lines {
    pub(super) fn new(response: reqwest::Response, max_line: usize) -> Self {
        Lines {
            chunks: Box::pin(response.bytes_stream()),
            decoder: NdjsonDecoder::new(max_line),
            buf: BytesMut::new(),
            ended: false,
            done: false,
        }
    }
}

// A hand-written poll rather than an async unfold: this runs once per line.
impl Stream for Lines {
    type Item = Result<LogLine, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        while !this.done {
            let decoded = if this.ended {
                this.decoder.decode_raw_eof(&mut this.buf)
            } else {
                this.decoder.decode_raw(&mut this.buf)
            };
            match decoded {
                Ok(Some(line)) => {
                    let item = LogLine::parse(line)
                        .map_err(|e| ClientError::Decode(this.decoder.invalid(e)));
                    this.done = item.is_err();
                    return Poll::Ready(Some(item));
                }
                Ok(None) if this.ended => this.done = true,
                Ok(None) => match this.chunks.as_mut().poll_next(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(Ok(chunk))) => this.buf.extend_from_slice(&chunk),
                    Poll::Ready(Some(Err(e))) => {
                        this.done = true;
                        return Poll::Ready(Some(Err(ClientError::Transport(e))));
                    }
                    Poll::Ready(None) => this.ended = true,
                },
                Err(e) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(ClientError::Decode(e))));
                }
            }
        }
        Poll::Ready(None)
    }
}
