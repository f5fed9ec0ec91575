//! Reading a request body with a bound, so that a client always gets the answer to one
//! that is too large.

use bytes::{Buf, Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt;

use crate::{BoxError, Error};

/// How much of a body past its bound is read and thrown away before answering.
const DRAIN: usize = 8 << 20;

/// Reads a request body of at most `limit` bytes. A larger one is
/// [`Error::BodyTooLarge`] (a 413), once the rest of it has been read and thrown away,
/// up to 8 MiB more: a server that answers and closes while request bytes are still
/// unread makes the kernel reset the connection, which can destroy the answer before
/// the client reads it. Bound the time it may take with a timeout of your own.
pub async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, Error>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let mut body = std::pin::pin!(body);
    let mut read = BytesMut::new();
    let mut over = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            let e: BoxError = e.into();
            Error::invalid("body", format!("could not be read: {e}")).with_source(e)
        })?;
        let Ok(mut data) = frame.into_data() else {
            continue;
        };
        if over == 0 && read.len() + data.remaining() <= limit {
            while data.has_remaining() {
                let chunk = data.chunk();
                read.extend_from_slice(chunk);
                let n = chunk.len();
                data.advance(n);
            }
            continue;
        }
        over += data.remaining().max(1);
        read = BytesMut::new();
        if over > DRAIN {
            break;
        }
    }
    if over > 0 {
        return Err(Error::body_too_large(limit));
    }
    Ok(read.freeze())
}
