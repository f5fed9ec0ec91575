//! [`OpenWhiskError`]: why a call to the activations API failed, and whether trying
//! again may help.

use std::time::Duration;

use http::StatusCode;

use crate::Error;

/// Why a call of an [`OpenWhiskClient`](super::OpenWhiskClient) failed.
///
/// Its `Display` is a sentence for a person; the variants say what a program may do
/// about it ([`OpenWhiskError::retry_after`] when the API asked to wait). It becomes
/// the crate's [`Error`] with `?` where a provider answers with it: a refused key, an
/// unreachable, throttling or failing API is a 503, a missing activation a 404, the
/// rest a 500.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenWhiskError {
    /// A setting of the client cannot be used (the API key, the host, a certificate).
    #[error("invalid {setting}: {reason}")]
    InvalidSetting {
        /// Which one (`auth`, `apihost`, `cacert`).
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
        /// The underlying error, if any.
        #[source]
        source: Option<reqwest::Error>,
    },
    /// The API host could not be reached.
    #[error("cannot reach the OpenWhisk API at {host}")]
    Unreachable {
        /// The API host, with its scheme.
        host: String,
        /// What the connection said.
        #[source]
        source: reqwest::Error,
    },
    /// The API did not answer within the client's timeout.
    #[error("the OpenWhisk API at {host} did not answer in time")]
    Timeout {
        /// The API host, with its scheme.
        host: String,
        /// What the connection said.
        #[source]
        source: reqwest::Error,
    },
    /// The API broke off its answer.
    #[error("the OpenWhisk API at {host} broke off its answer for {what}")]
    BrokeOff {
        /// The API host, with its scheme.
        host: String,
        /// What was asked for.
        what: String,
        /// What the connection said.
        #[source]
        source: reqwest::Error,
    },
    /// The API refused the API key (401 or 403).
    #[error("the OpenWhisk API refused the API key ({status}): check AUTH or --auth")]
    Unauthorized {
        /// The status it answered with.
        status: StatusCode,
    },
    /// What was asked for does not exist (404).
    #[error("{what} was not found on the OpenWhisk API")]
    NotFound {
        /// What was asked for.
        what: String,
    },
    /// The API is throttling the key (429).
    #[error("the OpenWhisk API is throttling ({status}): {message}")]
    Throttled {
        /// The status it answered with.
        status: StatusCode,
        /// What it said.
        message: String,
        /// How long it asked to wait (`Retry-After`), if it did.
        retry_after: Option<Duration>,
    },
    /// The API failed (5xx).
    #[error("the OpenWhisk API failed ({status}): {message}")]
    Failed {
        /// The status it answered with.
        status: StatusCode,
        /// What it said.
        message: String,
        /// How long it asked to wait (`Retry-After`), if it did.
        retry_after: Option<Duration>,
    },
    /// The API refused the query with another status.
    #[error("the OpenWhisk API refused the query for {what} ({status}): {message}")]
    Refused {
        /// What was asked for.
        what: String,
        /// The status it answered with.
        status: StatusCode,
        /// What it said.
        message: String,
    },
    /// The answer is larger than the client reads
    /// ([`OpenWhiskClientBuilder::max_answer`](super::OpenWhiskClientBuilder::max_answer)).
    #[error("the OpenWhisk API's answer for {what} is larger than {limit} bytes")]
    TooLarge {
        /// What was asked for.
        what: String,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The answer is not the JSON expected.
    #[error("the OpenWhisk API's answer for {what} cannot be read: {reason}")]
    Unreadable {
        /// What was asked for.
        what: String,
        /// Where and why it could not be read.
        reason: serde_json::Error,
    },
}

/// Whether a failed call is worth repeating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// No: the answer will not change (a refused key, a bad query, not found).
    Never,
    /// The server is busy or failing (429, 5xx, no answer in time); after this long
    /// when it said so.
    Busy(Option<Duration>),
    /// The server could not be reached.
    Unreachable,
}

impl OpenWhiskError {
    /// How long the API asked to wait before the next call (`Retry-After` on a 429 or a
    /// 5xx), if it did.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            OpenWhiskError::Throttled { retry_after, .. }
            | OpenWhiskError::Failed { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status the API answered with, for a failure it answered.
    #[must_use]
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            OpenWhiskError::Unauthorized { status }
            | OpenWhiskError::Throttled { status, .. }
            | OpenWhiskError::Failed { status, .. }
            | OpenWhiskError::Refused { status, .. } => Some(*status),
            OpenWhiskError::NotFound { .. } => Some(StatusCode::NOT_FOUND),
            _ => None,
        }
    }

    pub(crate) fn retry(&self) -> Retry {
        match self {
            OpenWhiskError::Unreachable { .. } => Retry::Unreachable,
            OpenWhiskError::Timeout { .. } | OpenWhiskError::BrokeOff { .. } => Retry::Busy(None),
            OpenWhiskError::Throttled { retry_after, .. }
            | OpenWhiskError::Failed { retry_after, .. } => Retry::Busy(*retry_after),
            _ => Retry::Never,
        }
    }

    /// The failure of an answer with a status other than success, from its body
    /// (OpenWhisk answers `{"error": "...", "code": "<transaction id>"}`).
    pub(crate) fn from_status(
        status: StatusCode,
        body: &[u8],
        what: &str,
        retry_after: Option<Duration>,
    ) -> Self {
        let message = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                OpenWhiskError::Unauthorized { status }
            }
            StatusCode::NOT_FOUND => OpenWhiskError::NotFound {
                what: what.to_owned(),
            },
            StatusCode::TOO_MANY_REQUESTS => OpenWhiskError::Throttled {
                status,
                message,
                retry_after,
            },
            s if s.is_server_error() => OpenWhiskError::Failed {
                status,
                message,
                retry_after,
            },
            _ => OpenWhiskError::Refused {
                what: what.to_owned(),
                status,
                message,
            },
        }
    }
}

impl From<OpenWhiskError> for Error {
    fn from(e: OpenWhiskError) -> Self {
        let message = e.to_string();
        match e {
            OpenWhiskError::InvalidSetting {
                setting,
                reason,
                source,
            } => {
                let error = Error::invalid(setting, reason);
                match source {
                    Some(source) => error.with_source(source),
                    None => error,
                }
            }
            OpenWhiskError::Unreachable { source, .. }
            | OpenWhiskError::Timeout { source, .. }
            | OpenWhiskError::BrokeOff { source, .. } => {
                Error::unavailable(message).with_source(source)
            }
            OpenWhiskError::Unauthorized { .. }
            | OpenWhiskError::Throttled { .. }
            | OpenWhiskError::Failed { .. } => Error::unavailable(message),
            OpenWhiskError::NotFound { .. } => Error::not_found(message),
            OpenWhiskError::Refused { .. }
            | OpenWhiskError::TooLarge { .. }
            | OpenWhiskError::Unreadable { .. } => Error::other(message),
        }
    }
}
