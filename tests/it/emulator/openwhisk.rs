//! An emulated OpenWhisk API (controller), written from the documented API: the four
//! activation routes and the action lookup, basic auth with one key, list semantics as
//! OpenWhisk's controller has them (newest first, `since`/`upto` inclusive on start,
//! `limit` 30 by default, 0 meaning 200, more than 200 refused, `skip`, `docs`,
//! `count`), errors as `{"error", "code"}`. It serves records given to it, counts
//! requests, and can be told to fail the next requests.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{json, Value};

/// The namespace `_` stands for.
pub(crate) const DEFAULT_NAMESPACE: &str = "guest";

/// A failure to answer instead of the next request.
#[derive(Clone, Debug)]
pub(crate) struct Fault {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<u64>,
    pub(crate) body: String,
}

#[derive(Default)]
struct State {
    key: String,
    records: Vec<Value>,
    logs_route: HashMap<String, Vec<String>>,
    actions: HashSet<String>,
    faults: VecDeque<Fault>,
    requests: Vec<String>,
}

/// The emulated API on a 127.0.0.1 port.
#[derive(Clone)]
pub(crate) struct Emulator {
    pub(crate) addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl Emulator {
    /// Serves on a fresh port, accepting the API key `key` (`uuid:secret`).
    pub(crate) async fn start(key: &str) -> Emulator {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            key: key.to_owned(),
            ..State::default()
        }));
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let answer = answer(&state, &req);
                        async move { Ok::<_, std::convert::Infallible>(answer) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Emulator { addr, state }
    }

    /// `http://127.0.0.1:PORT`, an API host as `wsk` takes it.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds a full record; its action (from `path`, else `name`) now exists.
    pub(crate) fn add(&self, record: Value) {
        let mut state = self.state.lock().unwrap();
        let namespace = record["namespace"].as_str().unwrap_or_default().to_owned();
        state
            .actions
            .insert(format!("{namespace}/{}", entity(&record)));
        state.records.push(record);
    }

    /// Makes `entity` (`action` or `package/action`) an action that exists in the
    /// default namespace.
    #[allow(dead_code)] // the tests use it; the bench that shares this module does not
    pub(crate) fn add_action(&self, entity: &str) {
        self.state
            .lock()
            .unwrap()
            .actions
            .insert(format!("{DEFAULT_NAMESPACE}/{entity}"));
    }

    /// What `.../activations/{id}/logs` answers, where it differs from the record.
    #[allow(dead_code)] // the tests use it; the bench that shares this module does not
    pub(crate) fn set_logs_route(&self, id: &str, lines: Vec<String>) {
        self.state
            .lock()
            .unwrap()
            .logs_route
            .insert(id.to_owned(), lines);
    }

    /// The next `n` requests get `status` (with `Retry-After: secs` when given).
    #[allow(dead_code)] // the tests use it; the bench that shares this module does not
    pub(crate) fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        let fault = Fault {
            status,
            retry_after,
            body: json!({"error": "emulated failure", "code": "4f1e"}).to_string(),
        };
        self.state
            .lock()
            .unwrap()
            .faults
            .extend(std::iter::repeat_n(fault, n));
    }

    /// The next request gets this body with a 200.
    #[allow(dead_code)] // the tests use it; the bench that shares this module does not
    pub(crate) fn answer_next(&self, body: &str) {
        self.state.lock().unwrap().faults.push_back(Fault {
            status: 200,
            retry_after: None,
            body: body.to_owned(),
        });
    }

    /// Every request so far, as `PATH?QUERY`.
    pub(crate) fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    pub(crate) fn forget_requests(&self) {
        self.state.lock().unwrap().requests.clear();
    }
}

/// `package/action` or `action`: the record's `path` annotation without its namespace.
pub(crate) fn entity(record: &Value) -> String {
    let path = record["annotations"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["key"] == "path")
        .and_then(|a| a["value"].as_str());
    match path.and_then(|p| p.split_once('/')) {
        Some((_, entity)) => entity.to_owned(),
        None => record["name"].as_str().unwrap_or_default().to_owned(),
    }
}

fn reply(status: u16, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
}

fn error(status: u16, text: &str) -> Response<Full<Bytes>> {
    reply(status, json!({"error": text, "code": "a1b2c3"}).to_string())
}

fn answer(state: &Mutex<State>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let mut state = state.lock().unwrap();
    let query = req.uri().query().unwrap_or("").to_owned();
    state.requests.push(format!("{}?{query}", req.uri().path()));
    if let Some(fault) = state.faults.pop_front() {
        let mut response = reply(fault.status, fault.body);
        if let Some(secs) = fault.retry_after {
            response.headers_mut().insert("retry-after", secs.into());
        }
        return response;
    }
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(&state.key)
    );
    let authorized = req
        .headers()
        .get("authorization")
        .is_some_and(|v| v.as_bytes() == expected.as_bytes());
    if !authorized {
        return error(401, "The supplied authentication is invalid.");
    }
    let path: Vec<String> = req.uri().path().split('/').map(percent_decode).collect();
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    let params: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    match path.as_slice() {
        ["", "api", "v1", "namespaces", ns, "activations"] => list(&state, ns, &params),
        ["", "api", "v1", "namespaces", ns, "activations", id, rest @ ..] => {
            let ns = namespace(ns);
            let Some(record) = state
                .records
                .iter()
                .find(|r| r["activationId"] == *id && r["namespace"] == ns)
            else {
                return error(404, "The requested resource does not exist.");
            };
            match rest {
                [] => reply(200, record.to_string()),
                ["logs"] => {
                    let logs = match state.logs_route.get(*id) {
                        Some(lines) => json!(lines),
                        None => record["logs"].clone(),
                    };
                    reply(200, json!({ "logs": logs }).to_string())
                }
                ["result"] => reply(200, record["response"].to_string()),
                _ => error(404, "The requested resource does not exist."),
            }
        }
        ["", "api", "v1", "namespaces", ns, "actions"] => {
            let prefix = format!("{}/", namespace(ns));
            let mut rows: Vec<Value> = state
                .actions
                .iter()
                .filter_map(|a| a.strip_prefix(&prefix))
                .map(|entity| match entity.split_once('/') {
                    Some((package, name)) => {
                        json!({"namespace": format!("{prefix}{package}"), "name": name})
                    }
                    None => json!({"namespace": namespace(ns), "name": entity}),
                })
                .collect();
            rows.sort_by_key(|r| r["name"].to_string());
            let skip = params.get("skip").and_then(|s| s.parse().ok()).unwrap_or(0);
            let limit = params
                .get("limit")
                .and_then(|s| s.parse().ok())
                .unwrap_or(30);
            let page: Vec<Value> = rows.into_iter().skip(skip).take(limit).collect();
            reply(200, Value::Array(page).to_string())
        }
        ["", "api", "v1", "namespaces", ns, "actions", entity @ ..] => {
            if state
                .actions
                .contains(&format!("{}/{}", namespace(ns), entity.join("/")))
            {
                reply(
                    200,
                    json!({"name": entity.last(), "exec": {"kind": "nodejs:20"}}).to_string(),
                )
            } else {
                error(404, "The requested resource does not exist.")
            }
        }
        _ => error(404, "The requested resource does not exist."),
    }
}

fn namespace(ns: &str) -> &str {
    if ns == "_" {
        DEFAULT_NAMESPACE
    } else {
        ns
    }
}

#[allow(clippy::result_large_err)] // an answer is the error, built once per request
fn list(state: &State, ns: &str, params: &HashMap<String, String>) -> Response<Full<Bytes>> {
    let number = |key: &str| -> Result<Option<i64>, Response<Full<Bytes>>> {
        match params.get(key) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| error(400, &format!("The parameter '{key}' is not a number."))),
        }
    };
    let limit = match number("limit") {
        Ok(None) => 30,
        Ok(Some(0)) => 200,
        Ok(Some(n)) if (1..=200).contains(&n) => n,
        Ok(Some(n)) => {
            return error(
                400,
                &format!("The value '{n}' is not in the range of 0 to 200 for activations."),
            )
        }
        Err(e) => return e,
    };
    let (skip, since, upto) = match (number("skip"), number("since"), number("upto")) {
        (Ok(skip), Ok(since), Ok(upto)) => (skip.unwrap_or(0), since, upto),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
    };
    let name = params.get("name").filter(|n| !n.is_empty());
    if name.is_some_and(|n| n.split('/').count() > 2) {
        return error(
            400,
            "Parameter may be a 'simple' name or 'package-name/simple' name.",
        );
    }
    let ns = namespace(ns);
    let mut rows: Vec<&Value> = state
        .records
        .iter()
        .filter(|r| r["namespace"] == ns)
        .filter(|r| name.is_none_or(|n| entity(r) == *n))
        .filter(|r| {
            let start = r["start"].as_i64().unwrap_or(0);
            since.is_none_or(|s| start >= s) && upto.is_none_or(|u| start <= u)
        })
        .collect();
    if params.get("count").is_some_and(|v| v == "true") {
        return reply(200, json!({ "activations": rows.len() }).to_string());
    }
    rows.sort_by(|a, b| {
        let key = |r: &Value| {
            (
                r["start"].as_i64().unwrap_or(0),
                r["activationId"].as_str().unwrap_or("").to_owned(),
            )
        };
        key(b).cmp(&key(a))
    });
    let docs = params.get("docs").is_some_and(|v| v == "true");
    let page: Vec<Value> = rows
        .into_iter()
        .skip(usize::try_from(skip).unwrap_or(0))
        .take(usize::try_from(limit).unwrap_or(0))
        .map(|r| if docs { r.clone() } else { summary(r) })
        .collect();
    reply(200, Value::Array(page).to_string())
}

/// The view's summary row of a record.
fn summary(record: &Value) -> Value {
    let mut row = serde_json::Map::new();
    for key in [
        "namespace",
        "name",
        "version",
        "publish",
        "annotations",
        "activationId",
        "start",
        "end",
        "duration",
        "cause",
    ] {
        if let Some(value) = record.get(key) {
            row.insert(key.to_owned(), value.clone());
        }
    }
    if record.get("end").is_some() {
        let code = match record["response"]["status"].as_str() {
            Some("application error") => 1,
            Some("action developer error") => 2,
            Some("whisk internal error") => 3,
            _ => 0,
        };
        row.insert("statusCode".to_owned(), json!(code));
    }
    Value::Object(row)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() && text.is_char_boundary(i + 3) {
            if let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
