//! Whatever `journalctl --output=json` prints (or a damaged line of it): decoding an
//! entry either gives an entry or an error, never a panic, and an entry becomes a
//! message or nothing.
#![no_main]

use faas_logs::journald::{JournalEntry, JournalFields};
use faas_logs::SharedStr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fields = JournalFields::default();
    if let Ok(entry) = JournalEntry::from_json(data, &fields) {
        let _ = entry.function_name();
        let _ = entry.stream();
        let name = SharedStr::from("f");
        let namespace = SharedStr::from("openfaas-fn");
        if let Some(message) = entry.clone().into_message(&name, &namespace) {
            assert_eq!(message.text, entry.message);
        }
    }
});
