//! One response body as a stream of lines: decoded as it arrives, ended by the
//! provider or by what broke it.

use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use futures_util::StreamExt;

use super::{ClientError, LogLine};
use crate::codec::NdjsonDecoder;

/// The lines of `response`, then its end or the error that broke it.
pub(super) fn lines(
    response: reqwest::Response,
    max_line: usize,
) -> impl Stream<Item = Result<LogLine, ClientError>> + Send {
    struct Body {
        chunks: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
        decoder: NdjsonDecoder,
        buf: BytesMut,
        ended: bool,
        done: bool,
    }
    let body = Body {
        chunks: Box::pin(response.bytes_stream()),
        decoder: NdjsonDecoder::new(max_line),
        buf: BytesMut::new(),
        ended: false,
        done: false,
    };
    futures_util::stream::unfold(body, |mut body| async move {
        while !body.done {
            let decoded = if body.ended {
                body.decoder.decode_line_eof(&mut body.buf)
            } else {
                body.decoder.decode_line(&mut body.buf)
            };
            match decoded {
                Ok(Some((message, line))) => return Some((Ok(LogLine { message, line }), body)),
                Ok(None) if body.ended => body.done = true,
                Ok(None) => match body.chunks.next().await {
                    Some(Ok(chunk)) => body.buf.extend_from_slice(&chunk),
                    Some(Err(e)) => {
                        body.done = true;
                        return Some((Err(ClientError::Transport(e)), body));
                    }
                    None => body.ended = true,
                },
                Err(e) => {
                    body.done = true;
                    return Some((Err(ClientError::Decode(e)), body));
                }
            }
        }
        None
    })
}
