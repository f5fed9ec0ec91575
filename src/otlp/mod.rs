//! OpenTelemetry logs in: [`OtlpReceiver`] answers `POST /v1/logs` as OTLP/HTTP
//! specifies, and stores each log record as a [`Message`](crate::Message) in any
//! [`LogSink`](crate::LogSink), so that every OpenTelemetry SDK, AWS's Lambda layers and
//! any collector can send a function's logs with no agent in between, and
//! `GET /system/logs` (tail, since, follow) serves them.
//!
//! # The request
//!
//! - **Encodings.** `application/x-protobuf` and `application/json` (OTLP/JSON: hex
//!   trace and span ids, integer enums, 64-bit integers as strings or numbers), either
//!   of them with `Content-Encoding: gzip` or `deflate`. Another content type is `415`.
//! - **Bounded.** A request larger than the limit (32 MiB by default,
//!   [`OtlpReceiver::with_max_request_bytes`]) as sent, or once decompressed, is `413`;
//!   a gzip bomb is inflated no further than one byte past the limit.
//! - **Decoded whole or not at all.** A body that does not decode (truncated protobuf,
//!   invalid UTF-8 in a string field, a body of maps nested more than about 30 deep,
//!   past which the protobuf and JSON decoders' depth limits refuse it) is `400`, and
//!   nothing of it is stored.
//!
//! # The mapping
//!
//! | message | from the record (or its resource) |
//! |---|---|
//! | `name` | resource `faas.name`, else `service.name`; a record with neither is refused |
//! | `namespace` | resource `faas.namespace`, else `service.namespace`, else the receiver's default |
//! | `instance` | resource `faas.instance`, else `service.instance.id`, else `host.name`, else empty |
//! | `timestamp` | `time_unix_nano`, else `observed_time_unix_nano`, else the arrival |
//! | `text` | the body: a string as it is (its last line end trimmed), a map or array as compact JSON, bytes as base64 |
//! | `stream` | `stderr` for severity `ERROR` and above (number 17 and up, or a text such as `error`, `CRITICAL`), `stdout` below; absent without a severity |
//! | `severity` | `severity_text`, else the data model's name of `severity_number` (`INFO`, `WARN2`) |
//! | `trace_id`, `span_id` | the ids in lowercase hex, when valid (right length, not all zero) |
//! | `attributes` | the record's attributes as a JSON object (and `event_name` as `event.name`) |
//!
//! `severity`, `trace_id`, `span_id` and `attributes` are the message's
//! [`Details`](crate::Details): extra keys of its JSON line, which Go's decoder and
//! `faas-cli` ignore, and which every store keeps. Each record is one message, its
//! lines together: a stack trace stays one record.
//!
//! # The answers
//!
//! - `200` once every record is stored or refused; refused ones (no name, a text longer
//!   than 1 MiB by default, one the sink will never take) are counted in the answer's
//!   `partial_success` (`rejected_log_records`, `error_message`), the others stored.
//! - `503` with `Retry-After: 1` when the sink could not store some records for now
//!   (JetStream without a leader, a full disk): the exporter sends the request again, as
//!   the specification tells it to. Records of it already stored may then be stored
//!   twice, except in a sink that recognises a resent line (JetStream).
//! - `400`, `413`, `415` as above, and `405` for a method other than `POST`; each with a
//!   `google.rpc.Status` body (protobuf, or its JSON form for JSON requests) saying why.

mod decode;
mod mapping;
mod receiver;

pub use receiver::{
    ExportOutcome, OtlpReceiver, DEFAULT_MAX_RECORD_BYTES, DEFAULT_MAX_REQUEST_BYTES,
};
