//! What an OpenWhisk API sends: any log line reads without a panic, its text is the
//! line's own end, and a stream is read only with a time; any record that reads writes
//! back to JSON that reads as the same record.
#![no_main]

use faas_logs::openwhisk::{is_sentinel, parse_line, Activation};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = std::str::from_utf8(data) {
        let parsed = parse_line(line);
        assert!(line.ends_with(parsed.text), "{line:?}");
        assert!(parsed.stream.is_none() || parsed.time.is_some(), "{line:?}");
        if parsed.time.is_none() {
            assert_eq!(parsed.text, line);
        }
        let _ = is_sentinel(line);
    }
    if let Ok(record) = serde_json::from_slice::<Activation>(data) {
        let written = serde_json::to_vec(&record).unwrap();
        let again: Activation = serde_json::from_slice(&written).unwrap();
        assert_eq!(again, record);
    }
});
