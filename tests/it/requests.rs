//! Requests the handler refuses, errors before the stream, POST bodies, and the Go wire
//! format, over real HTTP on 127.0.0.1.

use crate::common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use faas_logs::server::LogHandler;
use faas_logs::{Error, Message};
use http_body_util::BodyExt;

/// Sends one request and returns its status, headers and parsed JSON body.
async fn call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, hyper::HeaderMap, serde_json::Value) {
    let mut conn = Connection::open(addr).await;
    let response = conn.send(method, path, body).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = within(response.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, headers, json)
}

#[tokio::test]
async fn bad_parameters_get_422_naming_the_parameter_and_never_reach_the_backend() {
    let backend = Arc::new(Scripted::new(big_history(3)));
    let addr = serve(LogHandler::from_arc(
        backend.clone(),
        Duration::from_secs(5),
    ))
    .await;
    let cases = [
        ("", "name"),
        ("namespace=x", "name"),
        ("name=", "name"),
        ("name=a%20b", "name"),
        ("name=f/../etc", "name"),
        ("name=f&namespace=a;b", "namespace"),
        ("name=f&instance=%00", "instance"),
        ("name=f&tail=ten", "tail"),
        ("name=f&tail=1.5", "tail"),
        ("name=f&tail=99999999999999999999", "tail"),
        ("name=f&follow=yes", "follow"),
        ("name=f&follow=on", "follow"),
        ("name=f&since=yesterday", "since"),
        ("name=f&since=2024-13-01T00:00:00Z", "since"),
        ("name=f&since=-5m", "since"),
        ("name=f&follow=true&follow=maybe", "follow"),
    ];
    for (query, param) in cases {
        let (status, headers, json) =
            call(addr, "GET", &format!("/system/logs?{query}"), b"").await;
        assert_eq!(status, 422, "{query}");
        assert_eq!(headers["content-type"], "application/json", "{query}");
        let error = json["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with(&format!("invalid {param}:")),
            "{query}: {error}"
        );
    }
    assert_eq!(backend.queries.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn go_parsebool_values_are_all_accepted() {
    let (addr, _) = start(Scripted::new(vec![])).await;
    for value in [
        "1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False",
    ] {
        let (status, _, _) = call(
            addr,
            "GET",
            &format!("/system/logs?name=f&follow={value}"),
            b"",
        )
        .await;
        assert_eq!(status, 200, "{value}");
    }
}

#[tokio::test]
async fn the_last_repeated_key_wins_and_unknown_keys_are_ignored() {
    let history = big_history(20);
    let (addr, _) = start(Scripted::new(history.clone())).await;
    let (_, mut lines) = get(
        addr,
        "/system/logs?name=nope&tail=1&name=f&tail=4&colour=blue",
    )
    .await;
    assert_eq!(lines.messages().await, newest(&history, 4));
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let (addr, _) = start(Scripted::new(vec![])).await;
    for method in ["PUT", "DELETE", "PATCH", "HEAD"] {
        let (status, headers, json) = call(addr, method, "/system/logs?name=f", b"").await;
        assert_eq!(status, 405, "{method}");
        assert_eq!(headers["allow"], "GET, POST");
        if method != "HEAD" {
            assert!(json["error"]
                .as_str()
                .unwrap()
                .contains("method not allowed"));
        }
    }
}

#[tokio::test]
async fn post_takes_the_same_fields_as_a_json_body() {
    let history = big_history(50);
    let (addr, _) = start(Scripted::new(history.clone())).await;
    let body = br#"{"name":"f","instance":"f-a","tail":5,"follow":false,"since":null}"#;
    let mut conn = Connection::open(addr).await;
    let response = conn.send("POST", "/system/logs", body).await;
    assert_eq!(response.status(), 200);
    let bytes = within(response.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    let got: Vec<Message> = bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let only_a: Vec<_> = history
        .iter()
        .filter(|m| m.instance == "f-a")
        .cloned()
        .collect();
    assert_eq!(got, newest(&only_a, 5));
}

#[tokio::test]
async fn bad_post_bodies_are_refused_with_json_errors() {
    let (addr, _) = start(Scripted::new(vec![])).await;
    let (status, _, json) = call(addr, "POST", "/system/logs", b"name=f").await;
    assert_eq!(status, 422);
    assert!(json["error"].as_str().unwrap().starts_with("invalid body:"));
    let (status, _, json) = call(
        addr,
        "POST",
        "/system/logs",
        br#"{"name":"f","follow":"yes"}"#,
    )
    .await;
    assert_eq!(status, 422);
    assert!(json["error"]
        .as_str()
        .unwrap()
        .starts_with("invalid follow:"));
    let (status, _, json) = call(addr, "POST", "/system/logs", br#"{"tail":1}"#).await;
    assert_eq!(status, 422);
    assert!(json["error"].as_str().unwrap().starts_with("invalid name:"));

    let big = format!(
        r#"{{"name":"f","pad":"{}"}}"#,
        "x".repeat(faas_logs::server::MAX_BODY_BYTES)
    );
    let (status, _, json) = call(addr, "POST", "/system/logs", big.as_bytes()).await;
    assert_eq!(status, 413);
    assert!(json["error"]
        .as_str()
        .unwrap()
        .contains("larger than 65536 bytes"));
}

#[tokio::test]
async fn backend_errors_before_the_stream_map_to_statuses_with_json_bodies() {
    type Case = (fn() -> Error, u16, &'static str);
    let cases: [Case; 4] = [
        (
            || Error::not_found("function f not found"),
            404,
            "function f not found",
        ),
        (
            || {
                Error::unavailable("log system unreachable")
                    .with_source(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
            },
            503,
            "log system unreachable",
        ),
        (|| Error::other("index corrupt"), 500, "index corrupt"),
        (
            || Error::invalid("instance", "no such replica"),
            422,
            "invalid instance: no such replica",
        ),
    ];
    for (make, want_status, want_error) in cases {
        let (addr, _) = start(Failing(make)).await;
        let (status, headers, json) = call(addr, "GET", "/system/logs?name=f", b"").await;
        assert_eq!(status, want_status);
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(json, serde_json::json!({ "error": want_error }));
    }
}

#[tokio::test]
async fn a_backend_that_never_answers_gets_503_at_the_deadline() {
    struct Stuck;
    #[faas_logs::async_trait]
    impl faas_logs::Requester for Stuck {
        async fn query(&self, _: faas_logs::Request) -> Result<faas_logs::LogStream, Error> {
            std::future::pending().await
        }
    }
    let addr = serve(LogHandler::new(Stuck, Duration::from_millis(200))).await;
    let (status, _, json) = call(addr, "GET", "/system/logs?name=f", b"").await;
    assert_eq!(status, 503);
    assert!(json["error"]
        .as_str()
        .unwrap()
        .contains("did not answer within"));
}

/// Lines exactly as Go's `json.NewEncoder(w).Encode(msg)` writes them (Go 1.22+).
const GO_LINES: [&str; 5] = [
    r#"{"name":"nodeinfo","namespace":"openfaas-fn","instance":"nodeinfo-6b5d5c7f9d-x2vqz","timestamp":"2023-07-04T16:32:22.223912519Z","text":"Forking - node [index.js]"}"#,
    r#"{"name":"hello","namespace":"","instance":"hello","timestamp":"2019-11-10T23:00:00Z","text":"2019/11/10 23:00:00 Started logging stderr from function."}"#,
    r#"{"name":"env","namespace":"dev","instance":"env-1","timestamp":"2024-02-29T00:00:00.1Z","text":"tab\there \"quoted\" back\\slash é ☃"}"#,
    r#"{"name":"ctl","namespace":"dev","instance":"ctl-1","timestamp":"2024-02-29T00:00:00.000001Z","text":"bell\u0007 nul\u0000 esc\u001b"}"#,
    r#"{"name":"web","namespace":"ns","instance":"web-1","timestamp":"2024-05-01T12:00:00.5Z","text":"\u003ch1\u003e \u0026 \b\f \u2028"}"#,
];

#[tokio::test]
async fn go_lines_round_trip_byte_for_byte_through_the_handler() {
    let parsed: Vec<Message> = GO_LINES
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(parsed[2].text, "tab\there \"quoted\" back\\slash é ☃");
    assert_eq!(parsed[3].text, "bell\u{7} nul\u{0} esc\u{1b}");
    // A backend that answers for the function itself: its names pass as they are. The
    // line without a namespace gets the provider's default one.
    let mut backend = Scripted::new(parsed.clone());
    backend.capabilities = backend.capabilities.with_selects_function();
    let (addr, _) = start(backend).await;
    let (_, mut lines) = get(addr, "/system/logs?name=any").await;
    let mut expected = GO_LINES.map(str::to_owned);
    expected[1] = expected[1].replace(r#""namespace":"""#, r#""namespace":"openfaas-fn""#);
    assert_eq!(lines.rest().await.unwrap(), expected);
    // serde_json's own writer agrees for the lines without characters Go escapes for HTML.
    for (line, message) in GO_LINES.iter().zip(&parsed).take(4) {
        assert_eq!(&serde_json::to_string(message).unwrap(), line);
    }
}

#[test]
fn go_html_escapes_offsets_and_extra_fields_are_read() {
    // Go escapes <, > and & by default, writes local offsets, and newer providers may add
    // fields; all must decode.
    let line = r#"{"name":"web","namespace":"ns","instance":"web-1","timestamp":"2024-05-01T14:00:00.5+02:00","text":"\u003ch1\u003e \u0026 done","stream":"stderr","node":"n1"}"#;
    let m: Message = serde_json::from_str(line).unwrap();
    assert_eq!(m.text, "<h1> & done");
    assert_eq!(m.timestamp.to_rfc3339(), "2024-05-01T12:00:00.500+00:00");
    assert_eq!(
        serde_json::to_string(&m).unwrap(),
        r#"{"name":"web","namespace":"ns","instance":"web-1","timestamp":"2024-05-01T12:00:00.5Z","text":"<h1> & done","stream":"stderr"}"#
    );
    // Without a stream, exactly Go's five fields.
    let mut plain = m;
    plain.stream = None;
    assert!(serde_json::to_string(&plain)
        .unwrap()
        .ends_with(r#""text":"<h1> & done"}"#));
}

#[tokio::test]
async fn axum_mounts_the_handler_with_route_service() {
    let history = big_history(10);
    let handler = LogHandler::new(Scripted::new(history.clone()), Duration::from_secs(5));
    let app = axum::Router::new().route_service("/system/logs", handler);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let (response, mut lines) = get(addr, "/system/logs?name=f&tail=3").await;
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    assert_eq!(lines.messages().await, newest(&history, 3));
    let (status, _, _) = call(addr, "GET", "/system/logs?name=f&tail=x", b"").await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn a_backend_chosen_at_run_time_serves_as_a_boxed_trait_object() {
    let history = big_history(5);
    for broken in [false, true] {
        let backend: Box<dyn faas_logs::Requester> = if broken {
            Box::new(Failing(|| Error::unavailable("down")))
        } else {
            Box::new(Scripted::new(history.clone()))
        };
        let addr = serve(LogHandler::new(backend, Duration::from_secs(5))).await;
        let (status, _, _) = call(addr, "GET", "/system/logs?name=f&tail=1", b"").await;
        assert_eq!(status, if broken { 503 } else { 200 });
    }
}

#[tokio::test]
async fn a_huge_bad_name_is_refused_without_echoing_it() {
    let (addr, _) = start(Scripted::new(vec![])).await;
    let body = format!(r#"{{"name":"{}!"}}"#, "a".repeat(60_000));
    let (status, _, json) = call(addr, "POST", "/system/logs", body.as_bytes()).await;
    assert_eq!(status, 422);
    let error = json["error"].as_str().unwrap();
    assert!(
        error.starts_with("invalid name: the value is not a valid name"),
        "{error}"
    );
}

#[tokio::test]
async fn the_handler_serves_http2_streams_too() {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let history = big_history(50);
    let (backend, live) = Scripted::new(history.clone()).marked().live();
    let handler = LogHandler::new(backend, Duration::from_secs(5));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(tcp), handler)
            .await;
    });
    let response = get_http2(addr, "/system/logs?name=f&tail=5&follow=true").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let mut body = response.into_body();
    let mut text = String::new();
    while text.lines().count() < 5 {
        let frame = within(body.frame()).await.unwrap().unwrap();
        text.push_str(std::str::from_utf8(&frame.into_data().unwrap()).unwrap());
    }
    let got: Vec<Message> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got, newest(&history, 5));
    // A live line, then the backend ends: the stream ends cleanly.
    let m = message("f-a", 99_000, "over http/2");
    live.send(Ok(faas_logs::Event::Message(m.clone()))).unwrap();
    drop(live);
    let mut rest = Vec::new();
    while let Some(frame) = within(body.frame()).await {
        rest.extend_from_slice(&frame.unwrap().into_data().unwrap_or_default());
    }
    let line: Message = serde_json::from_slice(rest.strip_suffix(b"\n").unwrap()).unwrap();
    assert_eq!(line, m);
}
