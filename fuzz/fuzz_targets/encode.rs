//! The NDJSON encoder: any message becomes exactly one line, with Go's HTML-safe escapes
//! (no raw `<`, `>` or `&`), that a JSON decoder reads back to the same message. The first
//! 12 bytes make the timestamp; the rest, split at 0x01 bytes, the strings: name,
//! namespace, instance, text, and a structured record's severity and one attribute.
#![no_main]

use bytes::BytesMut;
use chrono::DateTime;
use faas_logs::codec::encode_message;
use faas_logs::{Details, Message, OutputStream};
use libfuzzer_sys::fuzz_target;

/// Seconds up to the end of year 9999, the last RFC 3339 can write.
const MAX_SECS: i64 = 253_402_300_800;

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<12>() else {
        return;
    };
    let secs = i64::from_le_bytes(head[..8].try_into().unwrap_or_default()).rem_euclid(MAX_SECS);
    let nanos = u32::from_le_bytes(head[8..].try_into().unwrap_or_default()) % 1_000_000_000;
    let Some(timestamp) = DateTime::from_timestamp(secs, nanos) else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut parts = text.splitn(6, '\u{1}');
    let mut next = || parts.next().unwrap_or("").to_owned();
    let mut message = Message::new(next(), timestamp, "")
        .with_namespace(next())
        .with_instance(next())
        .with_text(next());
    message.stream = match head[0] % 3 {
        0 => None,
        1 => Some(OutputStream::Stdout),
        _ => Some(OutputStream::Stderr),
    };
    let (severity, attribute) = (next(), next());
    // serde_json's private tokens as keys are out of the property: its decoder reads them
    // as something else (this crate's inputs rename them; see `Details::attributes`).
    if head[1] & 1 == 1 && !attribute.starts_with("$serde_json::private::") {
        let mut details = Details::default();
        details.severity = Some(severity);
        details
            .attributes
            .insert(attribute.clone(), attribute.into());
        message = message.with_details(details);
    }
    let mut line = BytesMut::new();
    encode_message(&message, &mut line);
    assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
    assert_eq!(line.last(), Some(&b'\n'));
    assert!(!line.iter().any(|b| matches!(b, b'<' | b'>' | b'&')));
    let back: Message = serde_json::from_slice(&line).expect("the line is JSON");
    assert_eq!(back, message);
});
