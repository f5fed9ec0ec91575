//! Whatever the API server's pod log subresource sends with `timestamps=true` (or a
//! damaged body): the reader gives lines without newlines, none longer than its cap,
//! each with a time, and never panics; the bytes it reads are all accounted for.
#![no_main]

use faas_logs::kubernetes::LogReader;
use libfuzzer_sys::fuzz_target;

/// The reader's cap on one line, in bytes, before invalid bytes are replaced (each by
/// three bytes at most).
const MAX_LINE: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let mut reader = LogReader::new(data);
    let lines = futures::executor::block_on(async {
        let mut lines = Vec::new();
        while let Some(line) = reader.next().await.expect("a slice does not fail") {
            lines.push(line);
        }
        lines
    });
    let newlines = data.iter().filter(|&&b| b == b'\n').count();
    let partial = usize::from(!data.is_empty() && !data.ends_with(b"\n"));
    assert_eq!(lines.len(), newlines + partial);
    for line in &lines {
        assert!(!line.text.contains('\n'));
        assert!(line.text.len() <= MAX_LINE * 3);
    }
});
