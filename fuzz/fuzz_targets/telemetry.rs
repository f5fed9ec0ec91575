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
    // Events counted by JSON's grammar alone: a number past f64's range (`12e345`) is
    // still JSON, and an event that carries one is still an event.
    let events = match serde_json::from_slice::<&serde_json::value::RawValue>(data) {
        Ok(raw) if raw.get().starts_with('[') => {
            serde_json::from_str::<Vec<&serde_json::value::RawValue>>(raw.get())
                .map_or(0, |events| events.len())
        }
        Ok(raw) if raw.get().starts_with('{') => 1,
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
