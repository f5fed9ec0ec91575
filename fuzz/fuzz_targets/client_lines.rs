//! The client's check of a provider's line: any bytes are accepted exactly when the JSON
//! parser reads them as a message, and then to the same message and timestamp, whether
//! the fast check of the usual form or the full parse decided.
#![no_main]

use bytes::Bytes;
use faas_logs::client::LogLine;
use faas_logs::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = serde_json::from_slice::<Message>(data);
    match LogLine::parse(Bytes::copy_from_slice(data)) {
        Ok(line) => {
            let Ok(message) = parsed else {
                panic!("accepted a line the parser refuses: {data:?}");
            };
            assert_eq!(line.timestamp(), message.timestamp);
            assert_eq!(line.message(), message);
            assert_eq!(&line.bytes()[..], data);
        }
        Err(_) => assert!(parsed.is_err(), "refused a message: {data:?}"),
    }
});
