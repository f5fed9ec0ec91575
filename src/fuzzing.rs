//! What the fuzz targets in `fuzz/` test directly: the private parsers of untrusted bytes
//! and the encoder. Compiled only under `cargo fuzz` (`--cfg fuzzing`); not part of the
//! API.

use bytes::BytesMut;

use crate::Message;

/// One message as the response body writes it, newline included.
pub fn encode(message: &Message) -> Vec<u8> {
    let mut buf = BytesMut::new();
    crate::ndjson::encode(message, &mut buf);
    buf.to_vec()
}

/// The lines of a non-TTY container's log stream, fed in pieces of `chunk` bytes:
/// `(stderr, text)` of each line, and whether the stream was refused.
#[cfg(feature = "docker")]
pub fn demux(stream: &[u8], chunk: usize) -> (Vec<(bool, String)>, bool) {
    crate::docker::fuzz_demux(stream, chunk)
}

/// The lines of a TTY container's log stream, fed in pieces of `chunk` bytes.
#[cfg(feature = "docker")]
pub fn raw(stream: &[u8], chunk: usize) -> Vec<String> {
    crate::docker::fuzz_raw(stream, chunk)
}
