//! [`OtlpReceiver`]: `POST /v1/logs` into a [`LogSink`].

use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use http::header::{HeaderValue, ALLOW, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use http::{Method, StatusCode};
use http_body::Body;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use prost::Message as _;

use super::decode::{decode_into, decompress, Encoding, Undecodable};
use super::mapping::Mapper;
use crate::server::LogBody;
use crate::{Batch, BoxError, Error, LogSink, SharedStr};

/// The largest request accepted by default, as sent and as decompressed: 32 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 32 << 20;

/// The longest text of one record kept by default: 1 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;

/// What became of one request's records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportOutcome {
    /// Records stored.
    pub stored: usize,
    /// Records refused for what they hold (no function name, too long, refused by the
    /// sink): sending them again cannot help. The answer's `partial_success` counts them.
    pub rejected: usize,
    /// Why the first refused record was.
    pub rejection: Option<String>,
    /// Records the sink could not store now, and why the first was not: the request is
    /// answered `503` with `Retry-After`, for the exporter to send it again.
    pub unavailable: usize,
    /// Why the first unavailable record was not stored.
    pub unavailable_error: Option<String>,
}

/// Receives OpenTelemetry logs over OTLP/HTTP (`POST /v1/logs`) into any [`LogSink`]:
/// the in-memory store, the durable one, JetStream. See the
/// [module documentation](crate::otlp) for what becomes of each record and how each
/// request is answered.
///
/// Cheap to clone. Use it as [`LogHandler`](crate::server::LogHandler) is used:
/// [`OtlpReceiver::handle`], a hyper `Service` or a tower `Service` (axum's
/// `route_service`).
///
/// ```
/// # use std::time::Duration;
/// use faas_logs::otlp::OtlpReceiver;
/// use faas_logs::server::LogHandler;
/// use faas_logs::store::LogStore;
///
/// let store = LogStore::new();
/// let app: axum::Router = axum::Router::new()
///     .route_service("/v1/logs", OtlpReceiver::new(store.clone()))
///     .route_service("/system/logs", LogHandler::new(store, Duration::from_secs(60)));
/// ```
#[derive(Clone)]
pub struct OtlpReceiver {
    sink: Arc<dyn LogSink>,
    default_namespace: SharedStr,
    max_request_bytes: usize,
    max_record_bytes: usize,
}

impl std::fmt::Debug for OtlpReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpReceiver")
            .field("default_namespace", &self.default_namespace)
            .field("max_request_bytes", &self.max_request_bytes)
            .field("max_record_bytes", &self.max_record_bytes)
            .finish_non_exhaustive()
    }
}

impl OtlpReceiver {
    /// A receiver that stores records in `sink`.
    #[must_use]
    pub fn new(sink: impl LogSink + 'static) -> Self {
        OtlpReceiver {
            sink: Arc::new(sink),
            default_namespace: SharedStr::default(),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }

    /// The namespace of records whose resource names none (default: empty, which a
    /// sink reads as its own default).
    #[must_use]
    pub fn with_default_namespace(mut self, namespace: impl Into<SharedStr>) -> Self {
        self.default_namespace = namespace.into();
        self
    }

    /// The largest request, as sent and as decompressed (default
    /// [`DEFAULT_MAX_REQUEST_BYTES`]); a larger one is answered `413`.
    #[must_use]
    pub fn with_max_request_bytes(mut self, bytes: usize) -> Self {
        self.max_request_bytes = bytes;
        self
    }

    /// The longest text of a record (default [`DEFAULT_MAX_RECORD_BYTES`]); a longer
    /// record is refused and counted in `partial_success`.
    #[must_use]
    pub fn with_max_record_bytes(mut self, bytes: usize) -> Self {
        self.max_record_bytes = bytes;
        self
    }

    /// Stores the records of one request's body, as `content_type` and
    /// `content_encoding` say it is written.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRequest`] when the body cannot be decoded (nothing of it is
    /// stored) and [`Error::BodyTooLarge`] when it decompresses to more than the limit.
    pub async fn ingest(
        &self,
        content_type: &str,
        content_encoding: Option<&str>,
        body: &[u8],
    ) -> Result<ExportOutcome, Error> {
        let encoding = Encoding::of(content_type).ok_or_else(|| {
            Error::invalid(
                "content-type",
                format!("{content_type:?} is not application/x-protobuf or application/json"),
            )
        })?;
        self.ingest_as(encoding, content_encoding, body)
            .await
            .map_err(|e| self.error(e))
    }

    async fn ingest_as(
        &self,
        encoding: Encoding,
        content_encoding: Option<&str>,
        body: &[u8],
    ) -> Result<ExportOutcome, Undecodable> {
        let bytes = decompress(content_encoding, body, self.max_request_bytes)?;
        // A hint: the records of a usual export take more than 100 bytes each.
        let capacity = bytes.len() / 128;
        let mut mapper = Mapper::new(
            &self.default_namespace,
            self.max_record_bytes,
            Utc::now(),
            capacity,
        );
        decode_into(encoding, &bytes, &mut mapper)?;
        drop(bytes);
        let mapped = mapper.mapped;
        let mut outcome = ExportOutcome {
            rejected: mapped.rejected,
            rejection: mapped.first_rejection,
            ..ExportOutcome::default()
        };
        if mapped.messages.is_empty() {
            return Ok(outcome);
        }
        let mut batch = Batch::new(mapped.messages);
        batch.stamped_on_arrival = mapped.stamped_on_arrival;
        for result in self.sink.store(batch).await {
            match result {
                Ok(()) => outcome.stored += 1,
                Err(e @ (Error::Unavailable { .. } | Error::InsufficientStorage { .. })) => {
                    outcome.unavailable += 1;
                    outcome
                        .unavailable_error
                        .get_or_insert_with(|| e.to_string());
                }
                Err(e) => {
                    outcome.rejected += 1;
                    outcome.rejection.get_or_insert_with(|| e.to_string());
                }
            }
        }
        if outcome.unavailable > 0 {
            tracing::warn!(
                records = outcome.unavailable,
                error = outcome.unavailable_error.as_deref().unwrap_or_default(),
                "OTLP log records not stored for now"
            );
        }
        Ok(outcome)
    }

    fn error(&self, undecodable: Undecodable) -> Error {
        match undecodable {
            Undecodable::Compression(encoding) => Error::invalid(
                "content-encoding",
                format!("{encoding:?} is not gzip, deflate or identity"),
            ),
            Undecodable::TooLarge(limit) => Error::body_too_large(limit),
            Undecodable::Malformed(why) => Error::invalid("body", why),
        }
    }

    /// Answers one request. Never fails: a bad request is a status and a body, in the
    /// request's encoding (a protobuf `Status` or its OTLP/JSON form).
    pub async fn handle<B>(&self, req: http::Request<B>) -> http::Response<LogBody>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        if req.method() != Method::POST {
            let mut response = status(
                Encoding::Json,
                StatusCode::METHOD_NOT_ALLOWED,
                "OTLP/HTTP exporters POST their logs here",
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
        let (parts, body) = req.into_parts();
        let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let content_type = header(CONTENT_TYPE).unwrap_or("");
        let Some(encoding) = Encoding::of(content_type) else {
            let why = format!(
                "the content type {content_type:?} is not application/x-protobuf or application/json"
            );
            return status(Encoding::Json, StatusCode::UNSUPPORTED_MEDIA_TYPE, &why);
        };
        let content_encoding = header(CONTENT_ENCODING).map(str::to_owned);
        let body = match crate::server::read_body(body, self.max_request_bytes).await {
            Ok(body) => body,
            Err(Error::BodyTooLarge { limit, .. }) => return too_large(encoding, limit),
            Err(e) => {
                let why = format!("the request could not be read: {e}");
                return status(encoding, StatusCode::BAD_REQUEST, &why);
            }
        };
        let outcome = match self
            .ingest_as(encoding, content_encoding.as_deref(), &body)
            .await
        {
            Ok(outcome) => outcome,
            Err(Undecodable::TooLarge(limit)) => return too_large(encoding, limit),
            Err(Undecodable::Compression(what)) => {
                let why = format!("the content encoding {what:?} is not gzip, deflate or identity");
                return status(encoding, StatusCode::UNSUPPORTED_MEDIA_TYPE, &why);
            }
            Err(Undecodable::Malformed(why)) => {
                tracing::warn!(error = %why, "an OTLP request that does not decode");
                let why = format!("{why}; nothing of it was stored");
                return status(encoding, StatusCode::BAD_REQUEST, &why);
            }
        };
        crate::meter::pushed(
            "otlp",
            outcome.stored,
            outcome.rejected,
            outcome.unavailable,
            false,
        );
        if outcome.unavailable > 0 {
            let why = format!(
                "{} of the request's log records could not be stored now ({}); send it again",
                outcome.unavailable,
                outcome.unavailable_error.as_deref().unwrap_or_default()
            );
            let mut response = status(encoding, StatusCode::SERVICE_UNAVAILABLE, &why);
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        }
        success(encoding, &outcome)
    }
}

/// `200` with `partial_success` when records were refused.
fn success(encoding: Encoding, outcome: &ExportOutcome) -> http::Response<LogBody> {
    let partial = (outcome.rejected > 0).then(|| ExportLogsPartialSuccess {
        rejected_log_records: outcome.rejected as i64,
        error_message: outcome.rejection.clone().unwrap_or_default(),
    });
    let body = match encoding {
        Encoding::Protobuf => ExportLogsServiceResponse {
            partial_success: partial,
        }
        .encode_to_vec(),
        // OTLP/JSON writes 64-bit integers as strings.
        Encoding::Json => {
            let json = match partial {
                Some(p) => serde_json::json!({"partialSuccess": {
                    "rejectedLogRecords": p.rejected_log_records.to_string(),
                    "errorMessage": p.error_message,
                }}),
                None => serde_json::json!({}),
            };
            json.to_string().into_bytes()
        }
    };
    answer(encoding, StatusCode::OK, body)
}

fn too_large(encoding: Encoding, limit: usize) -> http::Response<LogBody> {
    let why = format!("a request larger than {limit} bytes; nothing of it was stored");
    status(encoding, StatusCode::PAYLOAD_TOO_LARGE, &why)
}

/// `google.rpc.Status`, the body of OTLP/HTTP's failures.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// A failure as OTLP/HTTP writes one: a `Status` with gRPC's code for the HTTP status.
fn status(encoding: Encoding, http: StatusCode, message: &str) -> http::Response<LogBody> {
    let code = match http {
        StatusCode::SERVICE_UNAVAILABLE => 14, // UNAVAILABLE
        StatusCode::METHOD_NOT_ALLOWED => 12,  // UNIMPLEMENTED
        StatusCode::PAYLOAD_TOO_LARGE => 8,    // RESOURCE_EXHAUSTED
        _ => 3,                                // INVALID_ARGUMENT
    };
    let body = match encoding {
        Encoding::Protobuf => RpcStatus {
            code,
            message: message.to_owned(),
        }
        .encode_to_vec(),
        Encoding::Json => serde_json::json!({ "code": code, "message": message })
            .to_string()
            .into_bytes(),
    };
    answer(encoding, http, body)
}

fn answer(encoding: Encoding, status: StatusCode, body: Vec<u8>) -> http::Response<LogBody> {
    let mut response = http::Response::new(LogBody::once(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(encoding.content_type()),
    );
    response
}

crate::server::endpoint_services!(OtlpReceiver);
