//! Pushed NDJSON into the store: whatever the bytes, no panic; every line that is not
//! blank is either stored or refused, refusals are listed up to the cap and counted past
//! it, and the store holds something exactly when a line was stored.
#![no_main]

use faas_logs::store::{LogStore, StoreLimits, MAX_LISTED_REJECTIONS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let store = LogStore::with_limits(StoreLimits {
        max_messages: 10_000,
        max_bytes: 16 << 20,
        max_functions: 1024,
        max_total_bytes: 64 << 20,
        ..StoreLimits::default()
    });
    let report = store.ingest_ndjson(data);
    let lines = data
        .split(|&b| b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .count();
    assert_eq!(
        report.accepted + report.rejected.len() + report.more_rejected,
        lines
    );
    assert!(report.rejected.len() <= MAX_LISTED_REJECTIONS);
    assert!(report.more_rejected == 0 || report.rejected.len() == MAX_LISTED_REJECTIONS);
    assert_eq!(report.accepted > 0, store.total_bytes() > 0);
});
