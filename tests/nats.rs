//! The JetStream backend against real `nats-server`s (Debian's package, 2.9): every
//! semantic over HTTP through `LogHandler` with writers running, two providers on one
//! stream, consumers cleaned up, and faults. Each test starts its own servers on free
//! ports with their own storage, and stops them.
//!
//! Needs `nats-server` on the PATH (`.ci/run` installs it). In CI (`CI` set) a missing
//! server fails; elsewhere these tests print that they were skipped.
#![cfg(feature = "nats")]

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use common::*;
use faas_logs::nats::{JetStreamConfig, JetStreamLogs};
use faas_logs::server::LogHandler;
use faas_logs::{Error, Message};

/// One `nats-server -js` on a free port, with its own store; killed when dropped.
struct NatsServer {
    child: Child,
    port: u16,
    _dir: PathBuf,
}

impl NatsServer {
    /// Starts a server, or `None` (a skip, failing in CI) when there is no nats-server.
    fn start(test: &str) -> Option<NatsServer> {
        if Command::new("nats-server")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var_os("CI").is_none(),
                "nats-server is not installed, and CI needs it for {test}"
            );
            let note = format!("SKIPPED {test}: nats-server is not installed\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr(), note.as_bytes());
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir =
            std::env::temp_dir().join(format!("faas-logs-nats-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Ready once it accepts connections.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(NatsServer {
            child,
            port,
            _dir: dir,
        })
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn provider(logs: &JetStreamLogs) -> SocketAddr {
    serve(LogHandler::new(logs.clone(), Duration::from_secs(30))).await
}

fn line(name: &str, instance: &str, i: usize) -> Message {
    Message::new(name, Utc::now(), format!("{instance} line {i}")).with_instance(instance)
}

/// The texts of one instance, in the order they came.
fn of_instance(messages: &[Message], instance: &str) -> Vec<String> {
    messages
        .iter()
        .filter(|m| m.instance == instance)
        .map(|m| m.text.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_since_instance_and_dump_over_http_the_same_from_two_providers() {
    let Some(server) = NatsServer::start("tail_since_instance_and_dump") else {
        return;
    };
    let writer = JetStreamLogs::connect(&server.url(), JetStreamConfig::default())
        .await
        .unwrap();
    // A name with dots, which NATS uses as separators, and two instances.
    let name = "fig.let";
    for i in 0..300 {
        let instance = if i % 3 == 0 { "fig.let-b" } else { "fig.let-a" };
        writer.write(line(name, instance, i)).await.unwrap();
    }
    writer.flush().await.unwrap();
    let middle = Utc::now();
    for i in 300..400 {
        writer.write(line(name, "fig.let-a", i)).await.unwrap();
    }
    writer.write(line("other", "other-1", 0)).await.unwrap();
    writer.flush().await.unwrap();

    let first = JetStreamLogs::connect(&server.url(), JetStreamConfig::default())
        .await
        .unwrap();
    let second = JetStreamLogs::connect(&server.url(), JetStreamConfig::default())
        .await
        .unwrap();
    let providers = [provider(&first).await, provider(&second).await];
    let mut answers = Vec::new();
    for addr in providers {
        let mut answer = Vec::new();
        for query in [
            "",
            "&tail=10",
            "&tail=1000",
            "&instance=fig.let-b",
            "&instance=fig.let-b&tail=3",
            &format!("&since={}", middle.to_rfc3339()),
        ] {
            let (response, mut lines) =
                get(addr, &format!("/system/logs?name={name}{query}")).await;
            assert_eq!(response.status(), 200, "{query}");
            answer.push(lines.messages().await);
        }
        answers.push(answer);
    }
    assert_eq!(answers[0], answers[1], "two providers answer alike");
    let [all, tail10, tail1000, only_b, b_tail3, since] = &answers[0][..] else {
        unreachable!()
    };
    assert_eq!(all.len(), 400);
    assert!(all
        .iter()
        .all(|m| m.name == name && m.namespace == "openfaas-fn"));
    let expected_a: Vec<String> = (0..400)
        .filter(|i| i % 3 != 0 || *i >= 300)
        .map(|i| format!("fig.let-a line {i}"))
        .collect();
    assert_eq!(of_instance(all, "fig.let-a"), expected_a);
    assert_eq!(texts(tail10), texts(&newest(all, 10)));
    assert_eq!(tail1000, all);
    let expected_b: Vec<String> = (0..300)
        .step_by(3)
        .map(|i| format!("fig.let-b line {i}"))
        .collect();
    assert_eq!(texts(only_b), expected_b);
    assert_eq!(texts(b_tail3), expected_b[expected_b.len() - 3..]);
    assert_eq!(
        texts(since),
        (300..400)
            .map(|i| format!("fig.let-a line {i}"))
            .collect::<Vec<_>>()
    );

    // An unknown function is a 404; the other function is its own.
    let (response, _) = get(providers[0], "/system/logs?name=nobody").await;
    assert_eq!(response.status(), 404);
    let (_, mut lines) = get(providers[0], "/system/logs?name=other").await;
    assert_eq!(texts(&lines.messages().await), ["other-1 line 0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_sees_every_line_once_in_order_across_the_switch_to_live() {
    let Some(server) = NatsServer::start("follow_sees_every_line_once") else {
        return;
    };
    let logs = JetStreamLogs::connect(&server.url(), JetStreamConfig::default())
        .await
        .unwrap();
    for i in 0..200 {
        logs.write(line("f", "f-1", i)).await.unwrap();
    }
    logs.flush().await.unwrap();
    // A writer keeps writing while the follow begins and goes on.
    let writer = {
        let logs = logs.clone();
        tokio::spawn(async move {
            for i in 200..1_200 {
                logs.write(line("f", "f-1", i)).await.unwrap();
                if i % 50 == 0 {
                    logs.flush().await.unwrap();
                }
            }
            logs.flush().await.unwrap();
        })
    };
    let addr = provider(&logs).await;
    let (_, mut lines) = get(addr, "/system/logs?name=f&follow=true").await;
    let mut got = Vec::new();
    while got.len() < 1_200 {
        got.push(within(lines.next_message()).await.text);
    }
    writer.await.unwrap();
    let expected: Vec<String> = (0..1_200).map(|i| format!("f-1 line {i}")).collect();
    assert_eq!(got, expected);
}

/// The consumers of the log stream on the server, once the deletions have gone through.
async fn consumers_settle_at_zero(url: &str) {
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    within(async {
        loop {
            let mut stream = js.get_stream("FAAS_LOGS").await.unwrap();
            if stream.info().await.unwrap().state.consumer_count == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_consumer_is_left_behind_after_queries_tails_and_a_follower_that_leaves() {
    let Some(server) = NatsServer::start("no_consumer_is_left_behind") else {
        return;
    };
    let logs = JetStreamLogs::connect(&server.url(), JetStreamConfig::default())
        .await
        .unwrap();
    for i in 0..100 {
        logs.write(line("f", "f-1", i)).await.unwrap();
    }
    logs.flush().await.unwrap();
    let addr = provider(&logs).await;
    for query in ["", "&tail=7", "&tail=0"] {
        let (_, mut lines) = get(addr, &format!("/system/logs?name=f{query}")).await;
        lines.messages().await;
    }
    let (_, mut lines) = get(addr, "/system/logs?name=f&follow=true&tail=1").await;
    assert_eq!(within(lines.next_message()).await.text, "f-1 line 99");
    drop(lines);
    consumers_settle_at_zero(&server.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_is_found_without_reading_the_history() {
    let Some(server) = NatsServer::start("tail_is_found_without_reading") else {
        return;
    };
    let logs = JetStreamLogs::connect(&server.url(), JetStreamConfig::default())
        .await
        .unwrap();
    for i in 0..5_000 {
        logs.write(line("f", "f-1", i)).await.unwrap();
        logs.write(line("g", "g-1", i)).await.unwrap();
    }
    logs.flush().await.unwrap();
    let addr = provider(&logs).await;
    let (_, mut lines) = get(addr, "/system/logs?name=f&tail=3").await;
    assert_eq!(
        texts(&lines.messages().await),
        ["f-1 line 4997", "f-1 line 4998", "f-1 line 4999"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_names_and_a_too_large_line_are_handled_and_nothing_stored_is_lost() {
    let Some(server) = NatsServer::start("long_names_and_a_too_large_line") else {
        return;
    };
    let logs = JetStreamLogs::connect(&server.url(), JetStreamConfig::default())
        .await
        .unwrap();
    let long = format!("{}.{}", "n".repeat(126), "m".repeat(126));
    logs.write(line(&long, &long, 1)).await.unwrap();
    logs.flush().await.unwrap();
    // NATS refuses a payload over its 1 MiB limit: a clear error, and the rest stays.
    let huge = Message::new(&*long, Utc::now(), "x".repeat(1 << 20)).with_instance(&*long);
    let refused = match logs.write(huge).await {
        Err(e) => e,
        Ok(()) => logs.flush().await.unwrap_err(),
    };
    assert!(
        refused.to_string().to_lowercase().contains("payload"),
        "{refused}"
    );
    logs.write(line(&long, &long, 2)).await.unwrap();
    logs.flush().await.unwrap();
    let addr = provider(&logs).await;
    let (response, mut lines) = get(addr, &format!("/system/logs?name={long}")).await;
    assert_eq!(response.status(), 200);
    let got = lines.messages().await;
    assert_eq!(
        texts(&got),
        [format!("{long} line 1"), format!("{long} line 2")]
    );
    assert_eq!(got[0].name, long.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_gone_or_a_stream_deleted_is_a_503_not_a_hang() {
    // Nothing listening: connecting fails at once, with the address.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("nats://{}", closed.local_addr().unwrap());
    drop(closed);
    let error = within(JetStreamLogs::connect(&url, JetStreamConfig::default()))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Unavailable { .. }), "{error}");
    assert!(error.to_string().contains(&url), "{error}");

    let Some(server) = NatsServer::start("a_server_that_is_gone") else {
        return;
    };
    let logs = JetStreamLogs::connect(&server.url(), JetStreamConfig::default())
        .await
        .unwrap();
    logs.write(line("f", "f-1", 0)).await.unwrap();
    logs.flush().await.unwrap();
    let addr = provider(&logs).await;

    // The stream deleted underneath.
    let admin = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
    admin.delete_stream("FAAS_LOGS").await.unwrap();
    let (status, body) = answer(addr).await;
    assert_eq!(status, 503);
    assert!(body.contains("FAAS_LOGS"), "{body}");

    // The server gone.
    drop(server);
    let (status, body) = answer(addr).await;
    assert_eq!(status, 503, "{body}");
}

/// The status and body of `GET /system/logs?name=f`.
async fn answer(addr: SocketAddr) -> (u16, String) {
    use http_body_util::BodyExt;
    let mut connection = Connection::open(addr).await;
    let response = within(connection.send("GET", "/system/logs?name=f", b"")).await;
    let status = response.status().as_u16();
    let body = within(response.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_providers_pointed_at_one_stream_serve_the_same_logs() {
    let Some(server) = NatsServer::start("memory_providers_pointed_at_one_stream") else {
        return;
    };
    let url = server.url();
    let a = Example::start(
        "memory",
        &[
            "--listen",
            "127.0.0.1:0",
            "--nats",
            &url,
            "--run",
            "hello=echo one; echo 'two \"2\"'",
        ],
    );
    let b = Example::start(
        "memory",
        &[
            "--listen",
            "127.0.0.1:0",
            "--nats",
            &url,
            "--run",
            "idle=true",
        ],
    );

    // A push to one provider, and the other's captured command, reach both.
    let mut connection = Connection::open(b.addr).await;
    let pushed = br#"{"name":"pushed","instance":"p.1","text":"from b"}"#;
    let response = within(connection.send("POST", "/system/logs/push", pushed)).await;
    assert_eq!(response.status(), 200);
    let (_, mut lines) = get(b.addr, "/system/logs?name=hello&follow=true").await;
    let mut followed = Vec::new();
    while followed.len() < 2 {
        followed.push(within(lines.next_message()).await);
    }
    let mut followed_texts = texts(&followed);
    followed_texts.sort();
    assert_eq!(followed_texts, ["one", "two \"2\""]);
    for name in ["hello", "pushed"] {
        let (_, mut from_a) = get(a.addr, &format!("/system/logs?name={name}")).await;
        let (_, mut from_b) = get(b.addr, &format!("/system/logs?name={name}")).await;
        let (from_a, from_b) = (from_a.messages().await, from_b.messages().await);
        assert!(!from_a.is_empty(), "{name}");
        assert_eq!(from_a, from_b, "{name}");
    }
}
