//! A telemetry batch: whatever the bytes, no panic; every event of a JSON array (or the
//! one object) is accounted for, accepted or refused; refusals are listed up to the cap;
//! and what the store held before is still there.
#![no_main]

use chrono::Utc;
use faas_logs::store::{LogStore, StoreLimits, MAX_LISTED_REJECTIONS};
use faas_logs::telemetry::TelemetryListener;
use faas_logs::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let store = LogStore::with_limits(StoreLimits {
        max_messages: 1_000_000,
        max_bytes: 1 << 30,
        max_total_bytes: 1 << 30,
        ..StoreLimits::default()
    });
    store
        .append(Message::new("f", Utc::now(), "stored before"))
        .unwrap();
    let report = TelemetryListener::new(store.clone(), "f").ingest(data);
    let events = match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(serde_json::Value::Array(events)) => events.len(),
        Ok(serde_json::Value::Object(_)) => 1,
        _ => 0,
    };
    assert_eq!(
        report.accepted + report.rejected.len() + report.more_rejected,
        events
    );
    assert!(report.rejected.len() <= MAX_LISTED_REJECTIONS);
    assert!(report.more_rejected == 0 || report.rejected.len() == MAX_LISTED_REJECTIONS);
    let kept = store.stats("", "f").unwrap();
    assert_eq!(kept.appended as usize, kept.messages, "nothing evicted");
});
