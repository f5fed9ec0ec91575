//! Docker's log streams, multiplexed (non-TTY) and raw (TTY): whatever the bytes, no
//! panic, and the same lines (and the same verdict on a malformed stream) whatever sizes
//! the reads come in. The first byte picks a read size; the rest is the stream.
#![no_main]

use bytes::BytesMut;
use faas_logs::docker::frames::{Multiplexed, Raw};
use faas_logs::OutputStream;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

/// `(stderr, text)` of each line of `stream` fed in `chunk`-byte reads, and whether the
/// stream was refused. (Timestamps are left out: an entry without one is stamped now.)
fn lines<D: Decoder<Item = faas_logs::docker::frames::Line>>(
    mut decoder: D,
    stream: &[u8],
    chunk: usize,
) -> (Vec<(bool, String)>, bool) {
    let mut out = Vec::new();
    let mut buf = BytesMut::new();
    let line = |l: faas_logs::docker::frames::Line| (l.stream == OutputStream::Stderr, l.text);
    for piece in stream.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(l)) => out.push(line(l)),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    loop {
        match decoder.decode_eof(&mut buf) {
            Ok(Some(l)) => out.push(line(l)),
            Ok(None) => return (out, false),
            Err(_) => return (out, true),
        }
    }
}

fn demux(stream: &[u8], chunk: usize) -> (Vec<(bool, String)>, bool) {
    lines(Multiplexed::new(), stream, chunk)
}

fn raw(stream: &[u8], chunk: usize) -> (Vec<(bool, String)>, bool) {
    let (lines, refused) = lines(Raw::new(), stream, chunk);
    assert!(!refused, "a TTY stream is never refused");
    (lines, refused)
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(seed) % 64 + 1;
    let whole = demux(stream, stream.len());
    assert_eq!(demux(stream, chunk), whole, "multiplexed, reads of {chunk}");
    assert_eq!(demux(stream, 1), whole, "multiplexed, reads of 1");
    let whole = raw(stream, stream.len());
    assert_eq!(raw(stream, chunk), whole, "raw, reads of {chunk}");
    assert_eq!(raw(stream, 1), whole, "raw, reads of 1");
});
