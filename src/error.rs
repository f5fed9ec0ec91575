//! [`Error`]: what can go wrong, and the HTTP status each kind maps to.

use http::StatusCode;

/// A boxed error from a backend, kept as the [`std::error::Error::source`] of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while answering a log request.
///
/// A [`Requester`](crate::Requester) returns one of these; the handler turns it into a
/// status and a JSON body `{"error": "..."}` when it happens before the response has
/// started, or aborts the body when it happens after. Either way the whole cause chain is
/// logged with `tracing`.
///
/// | kind | status |
/// |---|---|
/// | [`Error::InvalidRequest`] | 422 Unprocessable Entity |
/// | [`Error::NotFound`] | 404 Not Found |
/// | [`Error::BodyTooLarge`] | 413 Payload Too Large |
/// | [`Error::Unavailable`] | 503 Service Unavailable |
/// | [`Error::InsufficientStorage`] | 507 Insufficient Storage |
/// | [`Error::Other`] | 500 Internal Server Error |
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request parameter is missing or malformed.
    #[error("invalid {param}: {reason}")]
    InvalidRequest {
        /// The parameter at fault, as it is spelled on the wire (`tail`, `since`, ...).
        param: String,
        /// What is wrong with it and what would be accepted.
        reason: String,
        /// The underlying cause, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The function, or the instance asked for, does not exist.
    #[error("{message}")]
    NotFound {
        /// What was looked for, and where.
        message: String,
        /// The underlying cause, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// A request body larger than the handler accepts.
    #[error("request body larger than {limit} bytes")]
    BodyTooLarge {
        /// The largest body accepted, in bytes.
        limit: usize,
        /// The underlying cause, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The log system cannot be reached, or did not answer in time.
    #[error("{message}")]
    Unavailable {
        /// What a user can act on.
        message: String,
        /// The underlying cause, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The store has no room for what was written (a full disk); nothing of it was
    /// stored. Writing again once there is room can succeed.
    #[error("{message}")]
    InsufficientStorage {
        /// What is full, and what to do.
        message: String,
        /// The underlying cause, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// Anything else.
    #[error("{message}")]
    Other {
        /// What went wrong.
        message: String,
        /// The underlying cause, if any.
        #[source]
        source: Option<BoxError>,
    },
}

impl Error {
    /// A parameter is missing or malformed (422).
    pub fn invalid(param: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidRequest {
            param: param.into(),
            reason: reason.into(),
            source: None,
        }
    }

    /// The function or instance does not exist (404).
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::NotFound {
            message: message.into(),
            source: None,
        }
    }

    /// A request body over `limit` bytes (413).
    #[must_use]
    pub fn body_too_large(limit: usize) -> Self {
        Error::BodyTooLarge {
            limit,
            source: None,
        }
    }

    /// The log system cannot be reached (503). Attach the cause with [`Error::with_source`].
    pub fn unavailable(message: impl Into<String>) -> Self {
        Error::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// No room to store what was written (507). Attach the cause with
    /// [`Error::with_source`].
    pub fn insufficient_storage(message: impl Into<String>) -> Self {
        Error::InsufficientStorage {
            message: message.into(),
            source: None,
        }
    }

    /// Any other failure (500). Attach the cause with [`Error::with_source`].
    pub fn other(message: impl Into<String>) -> Self {
        Error::Other {
            message: message.into(),
            source: None,
        }
    }

    /// Attaches an underlying cause, whatever the kind; it is logged with the error and
    /// is its [`std::error::Error::source`].
    #[must_use]
    pub fn with_source(mut self, cause: impl Into<BoxError>) -> Self {
        let (Error::InvalidRequest { source, .. }
        | Error::NotFound { source, .. }
        | Error::BodyTooLarge { source, .. }
        | Error::Unavailable { source, .. }
        | Error::InsufficientStorage { source, .. }
        | Error::Other { source, .. }) = &mut self;
        *source = Some(cause.into());
        self
    }

    /// The HTTP status this error is answered with before a response has started.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Error::InvalidRequest { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::InsufficientStorage { .. } => StatusCode::INSUFFICIENT_STORAGE,
            Error::Other { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short name for the error's kind (`invalid_request`, `not_found`,
    /// `body_too_large`, `unavailable`, `insufficient_storage`, `other`): the `kind`
    /// label of [`meter::BACKEND_ERRORS`](crate::meter::BACKEND_ERRORS).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidRequest { .. } => "invalid_request",
            Error::NotFound { .. } => "not_found",
            Error::BodyTooLarge { .. } => "body_too_large",
            Error::Unavailable { .. } => "unavailable",
            Error::InsufficientStorage { .. } => "insufficient_storage",
            Error::Other { .. } => "other",
        }
    }

    /// The error and every cause under it, joined by `": "`, for logs.
    #[must_use]
    pub fn chain(&self) -> String {
        Error::describe(self)
    }

    /// Any error and every cause under it as one line, `a: b: c`, a cause left out when
    /// the text already says it (many errors repeat their cause in their message): what
    /// a program prints when an error stops it, rather than a debug dump.
    #[must_use]
    pub fn describe(e: &dyn std::error::Error) -> String {
        let mut text = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            let said = c.to_string();
            if !text.contains(&said) {
                text.push_str(": ");
                text.push_str(&said);
            }
            cause = c.source();
        }
        text
    }
}

/// I/O errors that mean the log system is out of reach become [`Error::Unavailable`];
/// the rest become [`Error::Other`].
impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind::*;
        let unreachable = matches!(
            e.kind(),
            ConnectionRefused
                | ConnectionReset
                | ConnectionAborted
                | NotFound
                | TimedOut
                | PermissionDenied
                | NotConnected
                | AddrNotAvailable
        );
        let base = if unreachable {
            Error::unavailable("log backend unreachable")
        } else {
            Error::other("log backend I/O error")
        };
        base.with_source(e)
    }
}

/// The error for a backend that panicked, with the panic's message logged.
pub(crate) fn panicked(panic: Box<dyn std::any::Any + Send>) -> Error {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    tracing::error!(panic = %what, "the log backend panicked");
    Error::other("the log backend failed unexpectedly")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_every_cause() {
        let e = Error::unavailable("docker is down").with_source(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connect /var/run/docker.sock",
        ));
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.chain(), "docker is down: connect /var/run/docker.sock");
    }

    #[test]
    fn every_kind_keeps_its_cause() {
        let cause = || std::io::Error::other("the cause");
        for e in [
            Error::invalid("tail", "bad"),
            Error::not_found("no such function"),
            Error::body_too_large(10),
            Error::unavailable("down"),
            Error::other("odd"),
        ] {
            let status = e.status();
            let e = e.with_source(cause());
            assert_eq!(e.status(), status);
            assert!(e.chain().ends_with(": the cause"), "{}", e.chain());
        }
    }

    #[test]
    fn io_errors_map_by_kind() {
        let refused: Error = std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        let bad: Error = std::io::Error::from(std::io::ErrorKind::InvalidData).into();
        assert_eq!(bad.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
