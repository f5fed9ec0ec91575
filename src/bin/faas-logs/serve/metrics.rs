//! `GET /metrics`: the figures of every provider in Prometheus' text format, from the
//! crate's [`faas_logs::meter`] figures, the requests counted by route and status, and
//! the store's totals read at each scrape.

use std::sync::OnceLock;

use bytes::Bytes;
use faas_logs::store::StoreTotals;
use http_body_util::{Either, Full};
use hyper::{Response, StatusCode};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::server::{error, Body};

/// Requests answered, by `route` and `status` (counter).
const REQUESTS: &str = "faas_logs_http_requests_total";
const STORE_FUNCTIONS: &str = "faas_logs_store_functions";
const STORE_LINES: &str = "faas_logs_store_lines";
const STORE_BYTES: &str = "faas_logs_store_bytes";
const STORE_EVICTED: &str = "faas_logs_store_evicted_lines_total";

/// The recorder's handle, once [`install`] has run.
static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// What a scrape reads from the provider's store, when it has one.
type StoreFigures = Box<dyn Fn() -> Option<StoreTotals> + Send + Sync>;
static STORE: OnceLock<StoreFigures> = OnceLock::new();

/// Installs the Prometheus recorder, so that the crate's figures are kept from now on.
pub(crate) fn install() {
    match PrometheusBuilder::new().install_recorder() {
        Ok(handle) => {
            let _ = RECORDER.set(handle);
            faas_logs::meter::describe();
            metrics::describe_counter!(REQUESTS, "Requests answered, by route and status.");
            metrics::describe_gauge!(STORE_FUNCTIONS, "Functions the store knows.");
            metrics::describe_gauge!(STORE_LINES, "Lines the store holds.");
            metrics::describe_gauge!(
                STORE_BYTES,
                metrics::Unit::Bytes,
                "Bytes the store holds, as counted against its limits."
            );
            metrics::describe_counter!(
                STORE_EVICTED,
                "Lines gone from the store to make room or by age."
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics are off: the recorder could not be installed")
        }
    }
}

/// Has each scrape read the store's totals with `totals` (`None`: a store that keeps
/// no such figures).
pub(crate) fn report_store(totals: impl Fn() -> Option<StoreTotals> + Send + Sync + 'static) {
    let _ = STORE.set(Box::new(totals));
}

/// Counts a request answered.
pub(crate) fn request(route: &'static str, status: StatusCode) {
    metrics::counter!(REQUESTS, "route" => route, "status" => status.as_u16().to_string())
        .increment(1);
}

/// The answer to `GET /metrics`.
pub(crate) fn response() -> Response<Body> {
    let Some(recorder) = RECORDER.get() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are off: the recorder could not be installed",
        );
    };
    if let Some(totals) = STORE.get().and_then(|totals| totals()) {
        metrics::gauge!(STORE_FUNCTIONS).set(totals.functions as f64);
        metrics::gauge!(STORE_LINES).set(totals.lines as f64);
        metrics::gauge!(STORE_BYTES).set(totals.bytes as f64);
        metrics::counter!(STORE_EVICTED).absolute(totals.evicted);
    }
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(recorder.render()))));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
