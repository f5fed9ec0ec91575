//! The figures the crate keeps for operators, through the [`metrics`] facade.
//!
//! Every part of the crate counts what it does (responses served, lines pushed and
//! refused, gaps told to readers, backend errors, and each backend's own work) with the
//! `metrics` crate's macros. Until a program installs a recorder they cost next to
//! nothing and keep nothing; `faas-logs serve` installs the Prometheus exporter and
//! answers `GET /metrics`. A provider of your own can install any recorder
//! (`metrics-exporter-prometheus`, `metrics-exporter-statsd`, ...) and get the same
//! figures; call [`describe`] once to give them their help texts.
//!
//! | name | type | labels | what it counts |
//! |---|---|---|---|
//! | `faas_logs_follow_streams` | gauge | | follow responses open now |
//! | `faas_logs_served_lines_total` | counter | | log lines sent to readers |
//! | `faas_logs_served_bytes_total` | counter | | bytes of log lines sent to readers |
//! | `faas_logs_pushed_lines_total` | counter | `via` (`ndjson`, `otlp`) | pushed lines stored |
//! | `faas_logs_refused_lines_total` | counter | `via`, `reason` (`invalid`, `unavailable`, `full`) | pushed lines not stored |
//! | `faas_logs_gaps_total` | counter | | gaps told to readers (lines lost before they were read) |
//! | `faas_logs_gap_lines_total` | counter | | lines those gaps said were lost |
//! | `faas_logs_backend_errors_total` | counter | `kind` ([`Error::kind`]) | backend failures that reached a reader: before the response (a 5xx) or during it (an aborted body) |
//! | `faas_logs_nats_acks_awaited` | gauge | | JetStream acknowledgements a push waits for now |
//! | `faas_logs_journald_children` | gauge | | `journalctl` processes running |
//! | `faas_logs_kubernetes_watches` | gauge | | pod watches open on the API server |
//! | `faas_logs_kubernetes_log_streams` | gauge | | pod log streams open on the API server |
//!
//! The stores' own figures ([`StoreTotals`](crate::store::StoreTotals), from
//! [`LogStore::totals`](crate::store::LogStore::totals) and, with the `disk` feature,
//! `DiskStore::totals`) are read when asked, not kept: `faas-logs serve` reads them at
//! each scrape as `faas_logs_store_functions`, `faas_logs_store_lines`,
//! `faas_logs_store_bytes` and `faas_logs_store_evicted_lines_total`.

use metrics::{Counter, Gauge};

use crate::Error;

/// Follow responses open now (gauge).
pub const FOLLOW_STREAMS: &str = "faas_logs_follow_streams";
/// Log lines sent to readers (counter).
pub const SERVED_LINES: &str = "faas_logs_served_lines_total";
/// Bytes of log lines sent to readers (counter).
pub const SERVED_BYTES: &str = "faas_logs_served_bytes_total";
/// Pushed lines stored, by `via` (counter).
pub const PUSHED_LINES: &str = "faas_logs_pushed_lines_total";
/// Pushed lines not stored, by `via` and `reason` (counter).
pub const REFUSED_LINES: &str = "faas_logs_refused_lines_total";
/// Gaps told to readers (counter).
pub const GAPS: &str = "faas_logs_gaps_total";
/// Lines the gaps told to readers said were lost (counter).
pub const GAP_LINES: &str = "faas_logs_gap_lines_total";
/// Backend failures that reached a reader, by `kind` (counter).
pub const BACKEND_ERRORS: &str = "faas_logs_backend_errors_total";
/// JetStream acknowledgements awaited now (gauge).
pub const NATS_ACKS_AWAITED: &str = "faas_logs_nats_acks_awaited";
/// `journalctl` processes running (gauge).
pub const JOURNALD_CHILDREN: &str = "faas_logs_journald_children";
/// Pod watches open on the Kubernetes API server (gauge).
pub const KUBERNETES_WATCHES: &str = "faas_logs_kubernetes_watches";
/// Pod log streams open on the Kubernetes API server (gauge).
pub const KUBERNETES_LOG_STREAMS: &str = "faas_logs_kubernetes_log_streams";

/// Gives every figure of this module its help text in the installed recorder, and
/// writes those that every provider keeps (follow streams, lines and bytes served, gaps)
/// at zero, so that a dashboard sees them before they first move. Call it once, after
/// installing the recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, Unit};
    metrics::gauge!(FOLLOW_STREAMS).set(0.0);
    for counter in [SERVED_LINES, SERVED_BYTES, GAPS, GAP_LINES] {
        metrics::counter!(counter).increment(0);
    }
    describe_gauge!(FOLLOW_STREAMS, "Follow responses open now.");
    describe_counter!(SERVED_LINES, "Log lines sent to readers.");
    describe_counter!(
        SERVED_BYTES,
        Unit::Bytes,
        "Bytes of log lines sent to readers."
    );
    describe_counter!(PUSHED_LINES, "Pushed lines stored, by the way they came.");
    describe_counter!(
        REFUSED_LINES,
        "Pushed lines not stored, by the way they came and why: invalid (sending them again cannot help), unavailable or full (send them again later)."
    );
    describe_counter!(
        GAPS,
        "Gaps told to readers: lines lost before they were read."
    );
    describe_counter!(GAP_LINES, "Lines the gaps told to readers said were lost.");
    describe_counter!(
        BACKEND_ERRORS,
        "Backend failures that reached a reader, as an error status or an aborted body, by kind."
    );
    describe_gauge!(
        NATS_ACKS_AWAITED,
        "JetStream acknowledgements pushes wait for now."
    );
    describe_gauge!(JOURNALD_CHILDREN, "journalctl processes running.");
    describe_gauge!(
        KUBERNETES_WATCHES,
        "Pod watches open on the Kubernetes API server."
    );
    describe_gauge!(
        KUBERNETES_LOG_STREAMS,
        "Pod log streams open on the Kubernetes API server."
    );
}

/// One of something open, counted in a gauge while it lives.
#[must_use = "the gauge goes down when this is dropped"]
pub(crate) struct Open(Gauge);

impl Open {
    pub(crate) fn new(gauge: &'static str) -> Open {
        let gauge = metrics::gauge!(gauge);
        gauge.increment(1.0);
        Open(gauge)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// What one response sends, counted as it goes; the counters are looked up once.
pub(crate) struct Served {
    lines: Counter,
    bytes: Counter,
}

impl Served {
    pub(crate) fn new() -> Served {
        Served {
            lines: metrics::counter!(SERVED_LINES),
            bytes: metrics::counter!(SERVED_BYTES),
        }
    }

    pub(crate) fn frame(&self, lines: u64, bytes: usize) {
        self.lines.increment(lines);
        self.bytes.increment(bytes as u64);
    }
}

/// A gap of `lost` lines told to a reader.
pub(crate) fn gap(lost: u64) {
    metrics::counter!(GAPS).increment(1);
    metrics::counter!(GAP_LINES).increment(lost);
}

/// A backend failure that reached a reader. Errors of the request itself (a 404, a
/// 422) are not the backend's and are not counted.
pub(crate) fn backend_failed(e: &Error) {
    if e.status().is_server_error() {
        metrics::counter!(BACKEND_ERRORS, "kind" => e.kind()).increment(1);
    }
}

/// What became of a push's lines: `stored`, `invalid` (refused for what they hold) and
/// `later` (not stored for now: `full` says whether because the store was full).
pub(crate) fn pushed(via: &'static str, stored: usize, invalid: usize, later: usize, full: bool) {
    if stored > 0 {
        metrics::counter!(PUSHED_LINES, "via" => via).increment(stored as u64);
    }
    if invalid > 0 {
        metrics::counter!(REFUSED_LINES, "via" => via, "reason" => "invalid")
            .increment(invalid as u64);
    }
    if later > 0 {
        let reason = if full { "full" } else { "unavailable" };
        metrics::counter!(REFUSED_LINES, "via" => via, "reason" => reason).increment(later as u64);
    }
}
