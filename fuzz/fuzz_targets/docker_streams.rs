//! Docker's log streams, multiplexed (non-TTY) and raw (TTY): whatever the bytes, no
//! panic, and the same lines (and the same verdict on a malformed stream) whatever sizes
//! the reads come in. The first byte picks a read size; the rest is the stream.
#![no_main]

use faas_logs::fuzzing::{demux, raw};
use libfuzzer_sys::fuzz_target;

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
