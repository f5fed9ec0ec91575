//! An OTLP/HTTP log export: whatever the bytes (the first chooses protobuf or JSON, gzip
//! or not), no panic; a body is decoded whole or refused whole; every record stored is
//! one message that the NDJSON encoder writes as one line and a JSON decoder reads back
//! to the same message, details and all.
#![no_main]

use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use faas_logs::codec::encode_message;
use faas_logs::otlp::OtlpReceiver;
use faas_logs::{async_trait, Batch, Error, LogSink, Message};
use libfuzzer_sys::fuzz_target;

/// Keeps every message it is given.
#[derive(Clone, Default)]
struct Kept(Arc<Mutex<Vec<Message>>>);

#[async_trait]
impl LogSink for Kept {
    async fn store(&self, batch: Batch) -> Vec<Result<(), Error>> {
        let outcomes = batch.messages.iter().map(|_| Ok(())).collect();
        self.0.lock().unwrap().extend(batch.messages);
        outcomes
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, body)) = data.split_first() else {
        return;
    };
    let content_type = if choice & 1 == 0 {
        "application/x-protobuf"
    } else {
        "application/json"
    };
    let encoding = (choice & 2 != 0).then_some("gzip");
    let kept = Kept::default();
    let receiver = OtlpReceiver::new(kept.clone()).with_max_request_bytes(1 << 20);
    let outcome = futures::executor::block_on(receiver.ingest(content_type, encoding, body));
    let kept = kept.0.lock().unwrap();
    let Ok(outcome) = outcome else {
        assert!(kept.is_empty(), "a refused body stored records");
        return;
    };
    assert_eq!(outcome.stored, kept.len());
    assert_eq!(outcome.unavailable, 0);
    for message in kept.iter() {
        assert!(!message.name.is_empty());
        let mut line = BytesMut::new();
        encode_message(message, &mut line);
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        let back: Message = serde_json::from_slice(&line).expect("the line is JSON");
        assert_eq!(&back, message);
    }
});
