//! Telemetry push: the events AWS Lambda's Telemetry API and Huawei FunctionGraph's
//! telemetry API POST to an extension, kept in a [`LogStore`] as the function's log lines
//! and as invocation records, so that `GET /system/logs` (tail, since, follow) works on
//! platforms that let nobody query their logs.
//!
//! [`TelemetryListener`] is the endpoint the platform posts to. Each batch (a JSON array
//! of events) is read event by event:
//!
//! - **Never refused whole.** A platform retries a batch whose POST fails, so a listener
//!   that refuses one odd event gets its batch again for ever. Every readable batch is
//!   answered `200` with a report, `{"accepted":N,"rejected":[{"index":i,"reason":...}],
//!   "more_rejected":0,"duplicate":false}`; a body that is not JSON at all is answered
//!   `200` too, and leaves a visible line in the function's log saying so. Only a body over
//!   the size bound (4 MiB by default) is refused, with `413`, and nothing of it is stored.
//! - **Both dialects.** Lambda's `{"time","type","record"}` events and FunctionGraph's
//!   flat ones (`name`, `startTime`, `traceId`, ...), with the stray spaces of
//!   FunctionGraph's documented examples trimmed from keys and values, type names in any
//!   case (`platform.RuntimeDone`), and its metrics under `metrics` or `reportMetrics`.
//! - **Logs become messages** of the function the listener serves: one per line of a
//!   record, stamped with the event's `time` (`startTime`), FunctionGraph's `[Function]`
//!   tag removed. Extension output keeps its source visible: its lines start with
//!   `[extension] `. A structured (JSON log format) record reads `LEVEL message` followed
//!   by the record's other fields as JSON, nothing dropped, stamped with its own
//!   `timestamp` when it has one.
//! - **Invocations become records** (see [`Invocation`]) folded by request id, and lines
//!   as CloudWatch shows them: `START RequestId: ...`, `END RequestId: ...` and
//!   `REPORT RequestId: ... Duration: 10.60 ms Billed Duration: 11 ms Memory Size: 128 MB
//!   Max Memory Used: 23.4 MB` (with `Init Duration`, `Status` and `Error Type` when the
//!   platform reports them); `INIT_START`, `INIT_REPORT`, `RESTORE_START`,
//!   `RESTORE_REPORT`, `EXTENSION` and `TELEMETRY` lines likewise.
//! - **Nothing silent.** `platform.logsDropped` becomes a line with its counts, and a type
//!   nobody knows yet a line holding the whole event.
//! - **Instance.** Lines carry the pod that FunctionGraph's reports name (`podName`), or
//!   the environment id of a Lambda `initStart` (`instanceId`), once seen; before that, the
//!   listener's fallback instance, `sandbox` unless set with
//!   [`TelemetryListener::with_instance`]. An invocation's lines are one instance's: the
//!   lines of a batch from its start event to its report (its start line, its function
//!   lines, its `END` and `REPORT`) take the pod the report names, though FunctionGraph
//!   names it only there; lines of the invocation stored from an earlier batch keep the
//!   instance known then.
//! - **Retries.** A batch whose bytes equal one of the last 64 accepted is a platform
//!   retry of a batch already stored (its answer was lost): it is answered `200` with
//!   `"duplicate":true` and not stored again.
//!
//! [`LogStore`]: crate::store::LogStore
//! [`Invocation`]: crate::store::Invocation

mod event;
mod listener;

pub use listener::{
    BatchReport, LinesNotStored, RejectedEvent, TelemetryListener, DEFAULT_MAX_BATCH_BYTES,
};
