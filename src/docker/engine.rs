//! The seam between the backend's logic (replicas, history, follow, reconnects) and the
//! Docker Engine API: the four calls it makes, whoever answers them. `client.rs`
//! answers them over HTTP; the unit tests answer them from a script.

use std::pin::Pin;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_core::Stream;

use super::api::{Inspect, Summary};
use crate::Error;

/// A response body as it arrives; an error when it broke off.
pub(super) type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, Error>> + Send>>;

/// A failed call, in the two kinds the backend acts on differently.
#[derive(Debug)]
pub(super) enum ApiError {
    /// The daemon answered 404: what was asked about (a container) does not exist, or no
    /// longer does.
    Gone(Error),
    /// The daemon is out of reach, refused, or answered something unexpected.
    Failed(Error),
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::Failed(e)
    }
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Gone(e) | ApiError::Failed(e) => e,
        }
    }
}

/// Which part of a container's log to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LogOptions {
    /// Keep the stream open for new lines.
    pub(super) follow: bool,
    /// Lines from this time on, to the nanosecond (the daemon's `since` takes
    /// `seconds.nanoseconds`, which is how a broken stream resumes exactly).
    pub(super) since: Option<DateTime<Utc>>,
    /// The newest this many lines; all when `None`.
    pub(super) tail: Option<usize>,
}

/// The Docker Engine API calls the logs need.
#[async_trait::async_trait]
pub(super) trait DockerApi: Send + Sync + 'static {
    /// The containers, running or stopped, that carry every label (`key=value`).
    async fn list(&self, labels: &[String]) -> Result<Vec<Summary>, ApiError>;

    /// One container's name, state and settings.
    async fn inspect(&self, id: &str) -> Result<Inspect, ApiError>;

    /// A container's log with timestamps: Docker's multiplexed frames, or the raw
    /// bytes of a container with a terminal.
    async fn logs(&self, id: &str, options: LogOptions) -> Result<ByteStream, ApiError>;

    /// The start events of containers that carry every label, as NDJSON, replayed from
    /// `since` when it is given.
    async fn start_events(
        &self,
        labels: &[String],
        since: Option<DateTime<Utc>>,
    ) -> Result<ByteStream, ApiError>;
}
