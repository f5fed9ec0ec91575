//! The `memory` provider binary end to end: the demo function, commands run as
//! functions, pushed logs, and shutdown; over real HTTP on 127.0.0.1.

mod common;

use std::collections::BTreeSet;
use std::io::BufRead;

use common::*;
use http_body_util::BodyExt;

#[tokio::test]
async fn without_commands_the_demo_function_has_logs_at_once() {
    let mut example = Example::start("memory", &["--listen", "127.0.0.1:0"]);
    let mut hint = String::new();
    example.stdout.read_line(&mut hint).unwrap();
    assert!(hint.contains("/system/logs?name=demo&tail=5"), "{hint}");
    let (response, mut lines) = get(example.addr, "/system/logs?name=demo&tail=5").await;
    assert_eq!(response.status(), 200);
    let got = lines.messages().await;
    assert!(
        got.len() >= 3,
        "the demo writes its first lines at start: {got:?}"
    );
    assert_eq!(got[0].text, "demo function started");
    assert!(got
        .iter()
        .all(|m| m.instance == "demo-1" && m.namespace == "openfaas-fn"));
}

#[tokio::test]
async fn commands_run_as_functions_and_their_output_comes_back_line_by_line() {
    let example = Example::start(
        "memory",
        &[
            "--listen",
            "127.0.0.1:0",
            "--run",
            "hello=echo one; echo two >&2; printf 'no newline'",
            "--run",
            r#"long=head -c 100000 /dev/zero | tr '\0' a; echo; printf '\377\376bad\n'"#,
        ],
    );
    // Follow, so the lines are awaited as they are captured.
    let (_, mut lines) = get(example.addr, "/system/logs?name=hello&follow=true").await;
    let mut texts = BTreeSet::new();
    let mut instance = String::new();
    while texts.len() < 3 {
        let m = lines.next_message().await;
        instance = m.instance.clone();
        texts.insert(m.text);
    }
    // stdout and stderr are separate pipes: their relative order is the OS's.
    assert_eq!(
        texts,
        BTreeSet::from(["one".into(), "two".into(), "no newline".into()])
    );
    assert!(
        instance.starts_with("hello-") && instance[6..].parse::<u32>().is_ok(),
        "{instance}"
    );

    let (_, mut lines) = get(example.addr, "/system/logs?name=long&follow=true").await;
    let cut = lines.next_message().await.text;
    let marker = " [faas-logs: line cut at 65536 bytes]";
    assert_eq!(cut.len(), 65_536 + marker.len());
    assert!(cut.starts_with("aaaa") && cut.ends_with(marker));
    assert_eq!(lines.next_message().await.text, "\u{fffd}\u{fffd}bad");
}

#[tokio::test]
async fn pushed_lines_are_stored_and_bad_ones_refused_with_reasons() {
    let example = Example::start(
        "memory",
        &["--listen", "127.0.0.1:0", "--max-push-bytes", "4096"],
    );
    let body = [
        r#"{"name":"pushed","instance":"p-1","text":"first"}"#,
        "not json",
        r#"{"name":"bad name","text":"x"}"#,
        "",
        r#"{"name":"pushed","instance":"p-2","timestamp":"2024-05-01T12:00:00.5+02:00","text":"second"}"#,
        r#"{"name":"pushed","text":"stamp","timestamp":"noon"}"#,
    ]
    .join("\n");
    let mut conn = Connection::open(example.addr).await;
    let response = conn
        .send("POST", "/system/logs/push", body.as_bytes())
        .await;
    assert_eq!(response.status(), 422);
    let report: serde_json::Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(report["accepted"], 2);
    let rejected: Vec<u64> = report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(rejected, [2, 3, 6]);
    assert!(report["rejected"][1]["error"]
        .as_str()
        .unwrap()
        .starts_with("invalid name:"));

    let (_, mut lines) = get(example.addr, "/system/logs?name=pushed").await;
    let got = lines.messages().await;
    // Answered in timestamp order: the pushed 2024 line first.
    assert_eq!(texts(&got), ["second", "first"]);
    assert_eq!(
        got[0].timestamp.to_rfc3339(),
        "2024-05-01T10:00:00.500+00:00"
    );

    let big = format!(r#"{{"name":"pushed","text":"{}"}}"#, "z".repeat(5000));
    let response = conn.send("POST", "/system/logs/push", big.as_bytes()).await;
    assert_eq!(response.status(), 413);
    let (_, mut lines) = get(example.addr, "/system/logs?name=pushed").await;
    assert_eq!(
        lines.messages().await.len(),
        2,
        "nothing of a refused body is stored"
    );

    let response = conn.send("GET", "/healthz", b"").await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn ctrl_c_ends_follow_streams_cleanly_and_stops_the_provider() {
    let example = Example::start(
        "memory",
        &["--listen", "127.0.0.1:0", "--run", "idle=sleep 600"],
    );
    let (response, mut lines) = get(example.addr, "/system/logs?name=idle&follow=true").await;
    assert_eq!(response.status(), 200);
    example.interrupt();
    assert_eq!(lines.rest().await.unwrap(), Vec::<String>::new());
    assert!(example.exits_cleanly().await);
}
