//! Invocation records beside a function's lines: one per request, folded from the
//! platform's events (start, runtime done, report), newest kept, oldest evicted.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{lock, LogStore};
use crate::codec::Rfc3339;
use crate::Error;

/// One invocation of a function, as the platform reported it. Fields the platform has
/// not sent (yet) are `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Invocation {
    /// The request id (Lambda's `requestId`, FunctionGraph's `traceId`).
    pub request_id: String,
    /// `invoke` for a request; `init` and `restore` for the phases before one.
    pub phase: String,
    /// When it started.
    #[serde(serialize_with = "go_time")]
    pub start: Option<DateTime<Utc>>,
    /// When it ended.
    #[serde(serialize_with = "go_time")]
    pub end: Option<DateTime<Utc>>,
    /// `success`, `error`, `failure`, `timeout`...: trimmed and lowercase.
    pub status: Option<String>,
    /// The platform's error type, for a failed invocation.
    pub error_type: Option<String>,
    /// How long it ran, in milliseconds.
    pub duration_ms: Option<f64>,
    /// How long was billed, in milliseconds.
    pub billed_duration_ms: Option<f64>,
    /// The memory it was given, in MB.
    pub memory_size_mb: Option<f64>,
    /// The most memory it used, in MB.
    pub max_memory_used_mb: Option<f64>,
    /// How long the environment took to start before it, in milliseconds (a cold start).
    pub init_duration_ms: Option<f64>,
    /// The pod or environment that ran it, where the platform says.
    pub pod: Option<String>,
}

impl Invocation {
    /// An invocation known so far only by its request id and phase.
    #[must_use]
    pub fn new(request_id: impl Into<String>, phase: impl Into<String>) -> Self {
        Invocation {
            request_id: request_id.into(),
            phase: phase.into(),
            ..Invocation::default()
        }
    }

    /// When it happened, for ordering and `since`: its start, else its end.
    fn at(&self) -> Option<DateTime<Utc>> {
        self.start.or(self.end)
    }
}

/// A time as messages write it (Go's RFC 3339), or `null`.
fn go_time<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(Rfc3339::new(t).as_str()),
        None => s.serialize_none(),
    }
}

/// A function's invocation records, oldest first.
#[derive(Default)]
pub(super) struct Invocations {
    records: VecDeque<Invocation>,
}

impl LogStore {
    /// Changes the record of invocation `request_id` of a function (in `phase`),
    /// creating it first if the store does not hold it, and returns it as it now is.
    /// Records are bounded per function by
    /// [`StoreLimits::max_invocations`](crate::store::StoreLimits::max_invocations): a new
    /// record beyond it evicts the oldest.
    ///
    /// Fails only where [`LogStore::append`] would: for a new function beyond
    /// [`StoreLimits::max_functions`](crate::store::StoreLimits::max_functions).
    pub fn record_invocation(
        &self,
        namespace: &str,
        name: &str,
        request_id: &str,
        phase: &str,
        update: impl FnOnce(&mut Invocation),
    ) -> Result<Invocation, Error> {
        let ring = self.ring_or_create(namespace, name)?;
        let mut invocations = lock(&ring.invocations);
        let records = &mut invocations.records;
        let found = records
            .iter()
            .rposition(|r| r.request_id == request_id && r.phase == phase);
        let record = match found {
            Some(i) => &mut records[i],
            None => {
                if records.len() >= self.inner.limits.max_invocations {
                    records.pop_front();
                }
                records.push_back(Invocation::new(request_id, phase));
                records.back_mut().expect("just pushed")
            }
        };
        update(record);
        Ok(record.clone())
    }

    /// A function's invocation records, newest first: those that started at or after
    /// `since`, at most `limit`. `None` for a function the store does not know.
    #[must_use]
    pub fn invocations(
        &self,
        namespace: &str,
        name: &str,
        since: Option<DateTime<Utc>>,
        limit: usize,
    ) -> Option<Vec<Invocation>> {
        let ring = self.ring(namespace, name)?;
        let invocations = lock(&ring.invocations);
        // From the newest, so that a stable sort keeps the newest first among equals.
        let mut newest: Vec<Invocation> = invocations
            .records
            .iter()
            .rev()
            .filter(|r| since.is_none_or(|since| r.at().is_some_and(|at| at >= since)))
            .cloned()
            .collect();
        newest.sort_by_key(|r| std::cmp::Reverse(r.at()));
        newest.truncate(limit);
        Some(newest)
    }
}

/// For `Debug` of the ring's owner: how many records are held.
impl std::fmt::Debug for Invocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invocations")
            .field("records", &self.records.len())
            .finish()
    }
}
