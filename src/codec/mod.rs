//! The bytes of logs, apart from who sends or reads them: NDJSON of [`Message`] as Go
//! writes it, lines cut out of a process's output, and timestamps in Go's form.
//!
//! Each is a [`tokio_util::codec`] encoder or decoder, so it plugs into
//! [`FramedRead`](tokio_util::codec::FramedRead) and
//! [`FramedWrite`](tokio_util::codec::FramedWrite); the server, the store's capture and
//! pushes, and clients of other providers use these same codecs.
//!
//! [`Message`]: crate::Message

#[cfg(feature = "client")]
mod canonical;
mod lines;
mod ndjson;
mod timestamp;

#[cfg(feature = "client")]
pub(crate) use canonical::canonical;
#[cfg(feature = "docker")]
pub(crate) use lines::line_text;
pub(crate) use lines::trim_line_end;
pub use lines::{LineCodec, DEFAULT_MAX_LINE};
pub(crate) use ndjson::LineEncoder;
pub use ndjson::{
    encode_message, NdjsonDecoder, NdjsonEncoder, NdjsonError, DEFAULT_MAX_JSON_LINE,
};
pub(crate) use timestamp::parse_rfc3339;
pub use timestamp::Rfc3339;
