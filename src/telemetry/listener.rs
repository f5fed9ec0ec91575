//! [`TelemetryListener`]: the endpoint a platform POSTs its telemetry batches to.

use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use http::header::{HeaderValue, ALLOW};
use http::{Method, StatusCode};
use http_body::Body;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::event::{kind_of, parse, quick, Metrics, Phase, Source, Telemetry};
use crate::codec::trim_line_end;
use crate::server::{json_response, LogBody};
use crate::store::{lock, Invocation, LogStore, MAX_LISTED_REJECTIONS};
use crate::{BoxError, Error, LogSink, Message, SharedStr};

/// The largest batch accepted by default: 4 MiB (Lambda sends at most about twice its
/// 1 MiB `maxBytes`).
pub const DEFAULT_MAX_BATCH_BYTES: usize = 4 << 20;

/// How many recent batches are remembered to recognise a platform's retry.
const RECENT_BATCHES: usize = 64;

/// The answer to one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BatchReport {
    /// Events stored (as lines, records, or both).
    pub accepted: usize,
    /// The first [`MAX_LISTED_REJECTIONS`] events refused, each with why.
    pub rejected: Vec<RejectedEvent>,
    /// How many more events were refused than `rejected` lists.
    pub more_rejected: usize,
    /// The batch equals one already stored (a platform's retry): nothing was stored again.
    pub duplicate: bool,
    /// Why the body could not be read as telemetry at all (not JSON, not an array of
    /// events). It is still answered `200`, so that the platform does not send again a
    /// batch that cannot be fixed; a visible line of the function says so too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
    /// Lines not stored because the sink given to [`TelemetryListener::with_lines_to`] was
    /// unavailable, and why: the batch is answered `503` and may be sent again whole
    /// (the listener then takes it as new, and a sink that deduplicates, JetStream,
    /// stores each line once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<LinesNotStored>,
}

/// How many lines of a batch a sink could not store for now, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LinesNotStored {
    /// How many lines.
    pub lines: usize,
    /// Why the first was not stored.
    pub error: String,
}

/// An event of a batch that was refused; the rest of its batch is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RejectedEvent {
    /// Its place in the batch, from 0.
    pub index: usize,
    /// What is wrong with it (the key a push's refusals use too).
    pub error: String,
}

/// Receives telemetry batches into a [`LogStore`], for one function (see the
/// [module documentation](crate::telemetry) for what becomes of each event).
///
/// The function is known to the store from its first line on; call
/// [`LogStore::register`] first so that a follower who comes before it waits rather than
/// getting a 404.
///
/// Cheap to clone; clones share the store and what the listener has learnt (the
/// instance, recent batches). Use it as [`LogHandler`](crate::server::LogHandler) is
/// used: [`TelemetryListener::handle`], a hyper `Service` or a tower `Service` (axum's
/// `route_service`); or feed it bodies with [`TelemetryListener::ingest`].
///
/// ```
/// use faas_logs::store::LogStore;
/// use faas_logs::telemetry::TelemetryListener;
///
/// let store = LogStore::new();
/// let listener = TelemetryListener::new(store.clone(), "hello");
/// let report = listener.ingest(br#"[
///   {"time":"2024-03-01T12:00:00.000Z","type":"platform.start","record":{"requestId":"r-1"}},
///   {"time":"2024-03-01T12:00:00.010Z","type":"function","record":"hello from the function\n"},
///   {"time":"2024-03-01T12:00:00.020Z","type":"platform.nextBigThing","record":{}}
/// ]"#);
/// assert_eq!(report.accepted, 3);
/// assert_eq!(store.stats("", "hello").unwrap().messages, 3);
/// let invocations = store.invocations("", "hello", None, 10).unwrap();
/// assert_eq!(invocations[0].request_id, "r-1");
/// ```
///
/// Mounted beside the log endpoint in axum:
///
/// ```
/// # use std::time::Duration;
/// # use faas_logs::{server::LogHandler, store::LogStore, telemetry::TelemetryListener};
/// let store = LogStore::new();
/// store.register("", "hello").unwrap(); // followers wait for its first line
/// let app: axum::Router = axum::Router::new()
///     .route_service("/telemetry", TelemetryListener::new(store.clone(), "hello"))
///     .route_service("/system/logs", LogHandler::new(store, Duration::from_secs(60)));
/// ```
#[derive(Clone)]
pub struct TelemetryListener {
    store: LogStore,
    /// Where lines go instead of `store`.
    lines_to: Option<Arc<dyn LogSink>>,
    name: SharedStr,
    namespace: SharedStr,
    fallback_instance: SharedStr,
    max_batch_bytes: usize,
    learnt: Arc<Mutex<Learnt>>,
}

/// The lines of one batch, collected as its events are read and written together once
/// it is read: to the store, or to the sink given to [`TelemetryListener::with_lines_to`].
/// Holding them until then lets an invocation's report name the instance of the lines
/// it ended (FunctionGraph says which pod ran an invocation only in its report).
#[derive(Default)]
struct Lines {
    /// The event being read.
    event: usize,
    /// The invocation being read: from its start event to its report.
    invocation: Option<SharedStr>,
    collected: Vec<Collected>,
}

/// A line of a batch, with the event it came from and the invocation it belongs to.
struct Collected {
    event: usize,
    invocation: Option<SharedStr>,
    message: Message,
}

/// What the listener learns from the batches.
#[derive(Default)]
struct Learnt {
    /// The instance named by the platform (a pod, an environment id).
    instance: Option<SharedStr>,
    /// Hashes of the last batches stored, newest last.
    recent: VecDeque<u64>,
}

impl std::fmt::Debug for TelemetryListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryListener")
            .field("function", &self.name)
            .field("namespace", &self.namespace)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .finish_non_exhaustive()
    }
}

impl TelemetryListener {
    /// A listener that stores the telemetry of function `name` in `store`, in the
    /// store's default namespace.
    #[must_use]
    pub fn new(store: LogStore, name: impl Into<SharedStr>) -> Self {
        TelemetryListener {
            store,
            lines_to: None,
            name: name.into(),
            namespace: SharedStr::default(),
            fallback_instance: "sandbox".into(),
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            learnt: Arc::default(),
        }
    }

    /// The namespace the function's lines and records go to (default: the store's).
    #[must_use]
    pub fn with_namespace(mut self, namespace: impl Into<SharedStr>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The instance of lines until the platform names one (default `sandbox`).
    #[must_use]
    pub fn with_instance(mut self, instance: impl Into<SharedStr>) -> Self {
        self.fallback_instance = instance.into();
        self
    }

    /// Writes the lines to `sink` (JetStream, say) instead of the store; invocation
    /// records stay in the store. [`TelemetryListener::handle`] and
    /// [`TelemetryListener::ingest_into_sink`] write each batch's lines and wait for
    /// their own outcome before they answer.
    #[must_use]
    pub fn with_lines_to(mut self, sink: impl LogSink + 'static) -> Self {
        self.lines_to = Some(Arc::new(sink));
        self
    }

    /// [`TelemetryListener::ingest`], with the lines written to the sink given to
    /// [`TelemetryListener::with_lines_to`] as one batch: an event whose line the sink
    /// refuses is refused with the sink's reason, and lines the sink could not store for
    /// now are reported in [`BatchReport::unavailable`] (and the batch is not remembered
    /// as stored, so that its retry is taken). Without a sink, the same as `ingest`.
    pub async fn ingest_into_sink(&self, body: &[u8]) -> BatchReport {
        let Some(sink) = &self.lines_to else {
            return self.ingest(body);
        };
        let mut lines = Lines::default();
        let mut report = self.ingest_with(body, &mut lines);
        if lines.collected.is_empty() {
            return report;
        }
        let (events, messages): (Vec<usize>, Vec<Message>) = lines
            .collected
            .into_iter()
            .map(|c| (c.event, c.message))
            .unzip();
        let outcomes = sink.store(crate::Batch::new(messages)).await;
        self.account(&mut report, events, outcomes, body);
        report
    }

    /// Counts what became of a batch's lines in its report: an event whose line was
    /// refused is refused with the reason, lines not stored for now are
    /// [`BatchReport::unavailable`] (and the batch is forgotten, so that its retry is
    /// taken).
    fn account(
        &self,
        report: &mut BatchReport,
        events: Vec<usize>,
        outcomes: Vec<Result<(), Error>>,
        body: &[u8],
    ) {
        let mut failed_events = std::collections::BTreeMap::new();
        for (event, outcome) in events.into_iter().zip(outcomes) {
            match outcome {
                Ok(()) => {}
                Err(Error::Unavailable { message, .. }) => {
                    let not_stored = report.unavailable.get_or_insert(LinesNotStored {
                        lines: 0,
                        error: message,
                    });
                    not_stored.lines += 1;
                }
                Err(e) => {
                    failed_events.entry(event).or_insert(e.to_string());
                }
            }
        }
        for (index, reason) in failed_events {
            report.accepted = report.accepted.saturating_sub(1);
            self.tally(
                report,
                index,
                Err(format!("its line was refused: {reason}")),
            );
        }
        if let Some(not_stored) = &report.unavailable {
            tracing::warn!(lines = not_stored.lines, error = %not_stored.error, "telemetry lines not stored");
            self.forget(body);
        }
    }

    /// The largest batch accepted (default [`DEFAULT_MAX_BATCH_BYTES`]); a larger one is
    /// answered `413` and nothing of it is stored.
    #[must_use]
    pub fn with_max_batch_bytes(mut self, bytes: usize) -> Self {
        self.max_batch_bytes = bytes;
        self
    }

    /// Stores one batch (the body of a POST) in the store, lines and records, and says
    /// what became of each event. A listener with [`TelemetryListener::with_lines_to`] is fed
    /// with [`TelemetryListener::ingest_into_sink`] instead (which `handle` uses).
    #[must_use = "the report says which events were refused"]
    pub fn ingest(&self, body: &[u8]) -> BatchReport {
        let mut lines = Lines::default();
        let mut report = self.ingest_with(body, &mut lines);
        let (events, outcomes): (Vec<usize>, Vec<Result<(), Error>>) = lines
            .collected
            .into_iter()
            .map(|c| (c.event, self.store.append(c.message)))
            .unzip();
        self.account(&mut report, events, outcomes, body);
        report
    }

    fn ingest_with(&self, body: &[u8], lines: &mut Lines) -> BatchReport {
        let mut report = BatchReport::default();
        if self.seen_before(body) {
            report.duplicate = true;
            return report;
        }
        // Each event is cut out of the batch as text first, so that one odd event costs
        // only itself; the common log event is then read without a JSON tree.
        let events: Vec<Box<RawValue>> = match serde_json::from_slice::<Vec<Box<RawValue>>>(body) {
            Ok(events) => events,
            Err(e) => match serde_json::from_slice::<Value>(body) {
                Ok(single @ Value::Object(_)) => {
                    let outcome = parse(single).and_then(|t| self.store_event(t, lines));
                    self.tally(&mut report, 0, outcome);
                    return report;
                }
                Ok(other) => {
                    let what = format!("it is {}, not an array of events", kind_of(&other));
                    self.unreadable(body.len(), &what, lines);
                    report.unreadable = Some(what);
                    return report;
                }
                Err(_) => {
                    self.unreadable(body.len(), &e.to_string(), lines);
                    report.unreadable = Some(format!("not JSON: {e}"));
                    return report;
                }
            },
        };
        for (index, raw) in events.iter().enumerate() {
            lines.event = index;
            let event = match quick(raw) {
                Some(event) => Ok(event),
                None => serde_json::from_str::<Value>(raw.get())
                    .map_err(|e| format!("unreadable: {e}"))
                    .and_then(parse),
            };
            let outcome = event.and_then(|t| self.store_event(t, lines));
            self.tally(&mut report, index, outcome);
        }
        if !report.rejected.is_empty() {
            tracing::debug!(
                refused = report.rejected.len() + report.more_rejected,
                first = %report.rejected[0].error,
                "telemetry events refused"
            );
        }
        report
    }

    /// Counts one event's outcome in the report.
    fn tally(&self, report: &mut BatchReport, index: usize, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => report.accepted += 1,
            Err(_) if report.rejected.len() == MAX_LISTED_REJECTIONS => report.more_rejected += 1,
            Err(error) => report.rejected.push(RejectedEvent { index, error }),
        }
    }

    /// Forgets `body` as a batch stored lately (its lines were not all stored).
    fn forget(&self, body: &[u8]) {
        let hash = fingerprint(body);
        lock(&self.learnt).recent.retain(|h| *h != hash);
    }

    /// Whether `body` equals a batch stored lately; remembers it otherwise.
    fn seen_before(&self, body: &[u8]) -> bool {
        let hash = fingerprint(body);
        let mut learnt = lock(&self.learnt);
        if learnt.recent.contains(&hash) {
            return true;
        }
        if learnt.recent.len() == RECENT_BATCHES {
            learnt.recent.pop_front();
        }
        learnt.recent.push_back(hash);
        false
    }

    fn unreadable(&self, len: usize, why: &str, lines: &mut Lines) {
        tracing::warn!(bytes = len, error = why, "an unreadable telemetry batch");
        let text = format!("[faas-logs] a telemetry batch of {len} bytes was unreadable: {why}");
        let _ = self.append(Utc::now(), text, lines);
    }

    fn current_instance(&self) -> SharedStr {
        lock(&self.learnt)
            .instance
            .clone()
            .unwrap_or_else(|| self.fallback_instance.clone())
    }

    fn learn_instance(&self, instance: &str) {
        let mut learnt = lock(&self.learnt);
        if learnt.instance.as_deref() != Some(instance) {
            learnt.instance = Some(instance.into());
        }
    }

    fn append(&self, time: DateTime<Utc>, text: String, lines: &mut Lines) -> Result<(), String> {
        self.append_from(&self.current_instance(), time, text, lines)
    }

    fn append_from(
        &self,
        instance: &SharedStr,
        time: DateTime<Utc>,
        text: String,
        lines: &mut Lines,
    ) -> Result<(), String> {
        let message = Message::new(self.name.clone(), time, text)
            .with_namespace(self.namespace.clone())
            .with_instance(instance.clone());
        lines.collected.push(Collected {
            event: lines.event,
            invocation: lines.invocation.clone(),
            message,
        });
        Ok(())
    }

    fn record(
        &self,
        phase: Phase,
        request_id: &str,
        update: impl FnOnce(&mut Invocation),
    ) -> Result<Invocation, String> {
        self.store
            .record_invocation(
                &self.namespace,
                &self.name,
                request_id,
                phase.as_str(),
                update,
            )
            .map_err(|e| e.to_string())
    }

    /// Stores what one event says: lines, a record, or both.
    fn store_event(&self, event: Telemetry, lines: &mut Lines) -> Result<(), String> {
        match event {
            Telemetry::Log {
                source,
                time,
                record,
            } => self.store_log(source, time.unwrap_or_else(Utc::now), record, lines),
            Telemetry::Start {
                phase,
                request_id,
                time,
                detail,
                instance,
            } => {
                if let Some(instance) = instance {
                    self.learn_instance(&instance);
                }
                let at = time.unwrap_or_else(Utc::now);
                self.record(phase, &request_id, |r| r.start = Some(at))?;
                // The lines from here to the invocation's report are its own.
                lines.invocation = (!request_id.is_empty()).then(|| request_id.as_str().into());
                let mut line = match phase {
                    Phase::Invoke => format!("START RequestId: {request_id}"),
                    Phase::Init => "INIT_START".to_owned(),
                    Phase::Restore => "RESTORE_START".to_owned(),
                };
                if let Some(detail) = detail {
                    line.push(' ');
                    line.push_str(&detail);
                }
                self.append(at, line, lines)
            }
            Telemetry::Done {
                phase,
                request_id,
                time,
                status,
                error_type,
                duration_ms,
            } => {
                self.record(phase, &request_id, |r| {
                    r.end = r.end.or(time);
                    r.status = status.or(r.status.take());
                    r.error_type = error_type.or(r.error_type.take());
                    r.duration_ms = r.duration_ms.or(duration_ms);
                })?;
                Ok(())
            }
            Telemetry::Report {
                phase,
                request_id,
                start,
                end,
                status,
                error_type,
                metrics,
            } => {
                if let Some(pod) = &metrics.pod {
                    // The pod that ran the invocation: its lines of this batch (its start
                    // line included) are from it, and so are the next ones.
                    let pod = SharedStr::from(pod.as_str());
                    for line in &mut lines.collected {
                        if line.invocation.as_deref() == Some(request_id.as_str()) {
                            line.message.instance = pod.clone();
                        }
                    }
                    self.learn_instance(&pod);
                }
                if lines.invocation.as_deref() == Some(request_id.as_str()) {
                    lines.invocation = None;
                }
                let at = end.or(start).unwrap_or_else(Utc::now);
                let record = self.record(phase, &request_id, |r| {
                    r.start = r.start.or(start.filter(|_| end.is_some()));
                    r.end = Some(at);
                    r.status = status.or(r.status.take());
                    r.error_type = error_type.or(r.error_type.take());
                    fold_metrics(r, &metrics);
                })?;
                if phase == Phase::Invoke {
                    self.append(at, format!("END RequestId: {request_id}"), lines)?;
                }
                self.append(at, report_line(phase, &record), lines)
            }
            Telemetry::LogsDropped {
                time,
                records,
                bytes,
                reason,
            } => self.append(
                time.unwrap_or_else(Utc::now),
                format!(
                    "[faas-logs] the platform dropped {records} log records ({bytes} bytes): {reason}"
                ),
                lines,
            ),
            Telemetry::Notice { time, text } => {
                self.append(time.unwrap_or_else(Utc::now), text, lines)
            }
            Telemetry::Unknown { time, kind, json } => self.append(
                time.unwrap_or_else(Utc::now),
                format!("[faas-logs] a telemetry event of a type not known here ({kind}): {json}"),
                lines,
            ),
        }
    }

    /// One message per line of a log record.
    fn store_log(
        &self,
        source: Source,
        time: DateTime<Utc>,
        record: Value,
        lines: &mut Lines,
    ) -> Result<(), String> {
        let (time, mut text) = match record {
            Value::String(text) => (time, text),
            Value::Object(fields) => structured(time, fields),
            _ => return Err("a log record is a string or an object".into()),
        };
        let instance = self.current_instance();
        let mark = |line: &str| -> String {
            let tag = match source {
                Source::Function => "[Function]",
                Source::Extension => "[Extension]",
            };
            let line = line.strip_prefix(tag).unwrap_or(line);
            match source {
                Source::Function => line.to_owned(),
                Source::Extension => format!("[extension] {line}"),
            }
        };
        trim_line_end(&mut text);
        if !text.contains('\n') {
            // Nearly every record is one line: keep its string unless a tag must go.
            let text = match source {
                Source::Function if !text.starts_with("[Function]") => text,
                _ => mark(&text),
            };
            return self.append_from(&instance, time, text, lines);
        }
        for line in text.split('\n') {
            let mut line = mark(line);
            trim_line_end(&mut line);
            self.append_from(&instance, time, line, lines)?;
        }
        Ok(())
    }

    /// Answers one POST. Never fails: a bad request is a status and a JSON body.
    pub async fn handle<B>(&self, req: http::Request<B>) -> http::Response<LogBody>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        if req.method() != Method::POST {
            let mut response = json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                &serde_json::json!({"error": "the platform POSTs telemetry batches"}),
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
        let body = match crate::server::read_body(req.into_body(), self.max_batch_bytes).await {
            Ok(body) => body,
            Err(Error::BodyTooLarge { .. }) => {
                tracing::warn!(
                    limit = self.max_batch_bytes,
                    "a telemetry batch over the limit"
                );
                let error = format!(
                    "a telemetry batch larger than {} bytes; nothing of it was stored",
                    self.max_batch_bytes
                );
                return json_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &serde_json::json!({ "error": error }),
                );
            }
            Err(e) => {
                let error = format!("the batch could not be read: {e}");
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &serde_json::json!({ "error": error }),
                );
            }
        };
        let report = self.ingest_into_sink(&body).await;
        if report.unavailable.is_some() {
            let mut response = json_response(StatusCode::SERVICE_UNAVAILABLE, &report);
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
            return response;
        }
        json_response(StatusCode::OK, &report)
    }
}

/// A batch's fingerprint, to recognise a retry: FxHash's multiply and rotate over 8-byte
/// words, quicker than the standard hasher (built to resist attacks, which a batch from
/// the platform is not), and ample to tell a platform's batches apart.
fn fingerprint(body: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mix = |h: u64, word: u64| (h.rotate_left(5) ^ word).wrapping_mul(K);
    let mut words = body.chunks_exact(8);
    let mut h = mix(0, body.len() as u64);
    for w in &mut words {
        h = mix(
            h,
            u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]),
        );
    }
    for &b in words.remainder() {
        h = mix(h, u64::from(b));
    }
    h
}

/// Folds a report's figures into a record, keeping what is known when a figure is absent.
fn fold_metrics(record: &mut Invocation, metrics: &Metrics) {
    record.duration_ms = metrics.duration_ms.or(record.duration_ms);
    record.billed_duration_ms = metrics.billed_duration_ms.or(record.billed_duration_ms);
    record.memory_size_mb = metrics.memory_size_mb.or(record.memory_size_mb);
    record.max_memory_used_mb = metrics.max_memory_used_mb.or(record.max_memory_used_mb);
    record.init_duration_ms = metrics.init_duration_ms.or(record.init_duration_ms);
    if let Some(pod) = &metrics.pod {
        record.pod = Some(pod.clone());
    }
}

/// The line CloudWatch shows for a report.
fn report_line(phase: Phase, r: &Invocation) -> String {
    let mut line = match phase {
        Phase::Invoke => format!("REPORT RequestId: {}", r.request_id),
        Phase::Init => "INIT_REPORT".to_owned(),
        Phase::Restore => "RESTORE_REPORT".to_owned(),
    };
    let duration_label = match phase {
        Phase::Invoke => "Duration",
        Phase::Init => "Init Duration",
        Phase::Restore => "Restore Duration",
    };
    if let Some(d) = r.duration_ms {
        let _ = write!(line, " {duration_label}: {d:.2} ms");
    }
    if let Some(b) = r.billed_duration_ms {
        let _ = write!(line, " Billed Duration: {} ms", figure(b));
    }
    if let Some(m) = r.memory_size_mb {
        let _ = write!(line, " Memory Size: {} MB", figure(m));
    }
    if let Some(m) = r.max_memory_used_mb {
        let _ = write!(line, " Max Memory Used: {} MB", figure(m));
    }
    if let Some(i) = r.init_duration_ms.filter(|_| phase == Phase::Invoke) {
        let _ = write!(line, " Init Duration: {i:.2} ms");
    }
    if let Some(status) = r.status.as_deref().filter(|s| *s != "success") {
        let _ = write!(line, " Status: {status}");
    }
    if let Some(error_type) = &r.error_type {
        let _ = write!(line, " Error Type: {error_type}");
    }
    line
}

/// A figure as people write it: `128`, `23.4`.
fn figure(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{}", (n * 100.0).round() / 100.0)
    }
}

/// A structured log record as a line: level and message first, then every other field as
/// JSON; stamped with its own `timestamp` when that reads.
fn structured(
    time: DateTime<Utc>,
    mut rest: serde_json::Map<String, Value>,
) -> (DateTime<Utc>, String) {
    let mut take = |key: &str| match rest.remove(key) {
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
        None => None,
    };
    let level = take("level");
    let message = take("message");
    let time = rest
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t.trim()).ok())
        .map_or(time, |t| t.with_timezone(&Utc));
    let mut text = String::new();
    for part in [level, message].into_iter().flatten() {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&part);
    }
    if !rest.is_empty() {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&Value::Object(rest).to_string());
    }
    (time, text)
}

crate::server::endpoint_services!(TelemetryListener);
