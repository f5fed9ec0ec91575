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
use faas_logs::{Error, Message, Requester};

/// One `nats-server -js` on a free port, with its own store; killed when dropped.
struct NatsServer {
    child: Child,
    port: u16,
    _dir: PathBuf,
    extra: Vec<String>,
}

impl NatsServer {
    /// Starts a server, or `None` (a skip, failing in CI) when there is no nats-server.
    fn start(test: &str) -> Option<NatsServer> {
        if !installed(test) {
            return None;
        }
        let port = free_port();
        let dir = store_dir(port);
        Some(NatsServer::run(port, dir, &[]))
    }

    fn run(port: u16, dir: PathBuf, extra: &[String]) -> NatsServer {
        NatsServer {
            child: spawn(port, &dir, extra),
            port,
            _dir: dir,
            extra: extra.to_vec(),
        }
    }

    /// Stops the server and starts it again on the same port and store.
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(self.port, &self._dir, &self.extra);
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

/// `nats-server -js` on `port` with its store in `dir`, once it accepts connections.
fn spawn(port: u16, dir: &std::path::Path, extra: &[String]) -> Child {
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nats-server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Whether nats-server is installed; without it a skip, or a failure in CI.
fn installed(test: &str) -> bool {
    let present = Command::new("nats-server")
        .arg("--version")
        .output()
        .is_ok();
    common::needs(test, present, "nats-server is not installed")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn store_dir(port: u16) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("faas-logs-nats-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Three servers routed into one JetStream cluster.
fn cluster(test: &str) -> Option<Vec<NatsServer>> {
    if !installed(test) {
        return None;
    }
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let routes = ports
        .iter()
        .map(|(_, route)| format!("nats://127.0.0.1:{route}"))
        .collect::<Vec<_>>()
        .join(",");
    Some(
        ports
            .iter()
            .enumerate()
            .map(|(i, (port, route))| {
                let extra = [
                    "--server_name".to_owned(),
                    format!("n{i}-{port}"),
                    "--cluster_name".to_owned(),
                    "faas-logs".to_owned(),
                    "--cluster".to_owned(),
                    format!("nats://127.0.0.1:{route}"),
                    "--routes".to_owned(),
                    routes.clone(),
                ];
                NatsServer::run(*port, store_dir(*port), &extra)
            })
            .collect(),
    )
}

/// Waits for `f` as long as a cluster may take to elect its leaders.
async fn within_election<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("the cluster did not elect its leaders in time")
}

/// Connects once the cluster has elected its JetStream leaders and the stream exists.
async fn connect_when_ready(url: &str, config: JetStreamConfig) -> JetStreamLogs {
    within_election(async {
        loop {
            match JetStreamLogs::connect(url, config.clone()).await {
                Ok(logs) => return logs,
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    })
    .await
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

/// Lines `range` of one instance written and acknowledged.
async fn stored(logs: &JetStreamLogs, name: &str, instance: &str, range: std::ops::Range<usize>) {
    for i in range {
        logs.write(line(name, instance, i)).await.unwrap();
    }
    logs.flush().await.unwrap();
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
    // The function list reads the names back out of the subjects' tokens.
    let listed = writer
        .functions()
        .await
        .unwrap()
        .expect("JetStream lists its functions");
    let names: Vec<&str> = listed.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["fig.let", "other"], "{listed:?}");

    // Writers keep writing other functions while the queries run.
    let noise = {
        let writer = writer.clone();
        tokio::spawn(async move {
            for i in 0.. {
                let name = if i % 2 == 0 { "fig" } else { "fig.let.x" };
                if writer.write(line(name, "n-1", i)).await.is_err() {
                    return;
                }
                if i % 100 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        })
    };
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

    noise.abort();
    // An unknown function is a 404; the other function is its own.
    let (response, _) = get(providers[0], "/system/logs?name=nobody").await;
    assert_eq!(response.status(), 404);
    let (_, mut lines) = get(providers[0], "/system/logs?name=other").await;
    assert_eq!(texts(&lines.messages().await), ["other-1 line 0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_sees_every_line_once_in_order_across_the_switch_to_live_on_two_replicas() {
    let Some(server) = NatsServer::start("follow_sees_every_line_once") else {
        return;
    };
    let logs = JetStreamLogs::connect(&server.url(), JetStreamConfig::default())
        .await
        .unwrap();
    stored(&logs, "f", "f-1", 0..200).await;
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
    // Two provider replicas, each with its own connection, followed at once.
    let other = JetStreamLogs::connect(&server.url(), JetStreamConfig::default())
        .await
        .unwrap();
    let (_, mut first) = get(provider(&logs).await, "/system/logs?name=f&follow=true").await;
    let (_, mut second) = get(provider(&other).await, "/system/logs?name=f&follow=true").await;
    let expected: Vec<String> = (0..1_200).map(|i| format!("f-1 line {i}")).collect();
    for lines in [&mut first, &mut second] {
        let mut got = Vec::new();
        while got.len() < 1_200 {
            got.push(within(lines.next_message()).await.text);
        }
        assert_eq!(got, expected);
    }
    writer.await.unwrap();
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
    stored(&logs, "f", "f-1", 0..100).await;
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
    get_whole(addr, "/system/logs?name=f").await
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
    // Both viewers list the same functions, from the stream.
    let (status, listed_a) = get_whole(a.addr, "/system/logs/functions").await;
    assert_eq!(status, 200);
    assert_eq!(
        get_whole(b.addr, "/system/logs/functions").await,
        (200, listed_a.clone())
    );
    assert!(
        listed_a.contains(r#""name":"pushed""#) && listed_a.contains(r#""name":"hello""#),
        "{listed_a}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_in_files_survive_a_restart_of_the_server() {
    let Some(mut server) = NatsServer::start("logs_in_files_survive_a_restart") else {
        return;
    };
    let logs = JetStreamLogs::connect(&server.url(), JetStreamConfig::default())
        .await
        .unwrap();
    stored(&logs, "f", "f-1", 0..50).await;
    drop(logs);
    server.restart();
    let logs = connect_when_ready(&server.url(), JetStreamConfig::default()).await;
    let (_, mut lines) = get(provider(&logs).await, "/system/logs?name=f").await;
    let expected: Vec<String> = (0..50).map(|i| format!("f-1 line {i}")).collect();
    assert_eq!(texts(&lines.messages().await), expected);
}

/// Writes lines `f-1 line N` until told to stop, flushing every 20; returns the numbers
/// acknowledged and those whose flush failed (stored or not: never written again).
async fn keep_writing(
    logs: JetStreamLogs,
    stop: tokio::sync::watch::Receiver<bool>,
    acked: tokio::sync::watch::Sender<usize>,
) -> (Vec<usize>, Vec<usize>) {
    let (mut confirmed, mut unsure, mut batch) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0.. {
        if *stop.borrow() {
            break;
        }
        match logs.write(line("f", "f-1", i)).await {
            Ok(()) => batch.push(i),
            Err(_) => {
                unsure.push(i);
                // While the cluster elects a new leader.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if batch.len() == 20 {
            match logs.flush().await {
                Ok(()) => confirmed.append(&mut batch),
                Err(_) => unsure.append(&mut batch),
            }
            acked.send_replace(confirmed.len());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    match logs.flush().await {
        Ok(()) => confirmed.append(&mut batch),
        Err(_) => unsure.append(&mut batch),
    }
    acked.send_replace(confirmed.len());
    (confirmed, unsure)
}

#[cfg(feature = "client")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_through_the_loss_of_its_server_sees_every_acknowledged_line_once() {
    use faas_logs::client::{LogClient, Resume};
    use futures::StreamExt;
    let Some(mut servers) = cluster("a_follow_through_the_loss_of_its_server") else {
        return;
    };
    let config = JetStreamConfig::default().replicas(3);
    // The writer on the second server, the provider on the first (which it loses).
    let writer = connect_when_ready(&servers[1].url(), config.clone()).await;
    let reader = connect_when_ready(&servers[0].url(), config).await;
    // The follow goes on through the client's reconnect, or breaks and is resumed.
    let addr = provider(&reader).await;

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (acked, mut acknowledged) = tokio::sync::watch::channel(0usize);
    let writing = tokio::spawn(keep_writing(writer, stopped, acked));
    let client = LogClient::new(format!("http://{addr}")).unwrap();
    let resume = Resume::default()
        .max_failures(30)
        .backoff(Duration::from_millis(100), Duration::from_millis(500));
    let mut follow = client.follow(faas_logs::Request::new("f"), resume);
    let mut got = Vec::new();
    while got.len() < 300 {
        got.push(within(follow.next()).await.unwrap().unwrap().text);
    }
    // The provider's server goes; the writers keep writing through the cluster.
    let lost = servers.remove(0);
    drop(lost);
    // The writers' acknowledgements wait for the stream's new leader: an election.
    within_election(acknowledged.wait_for(|n| *n >= got.len() + 600))
        .await
        .unwrap();
    stop.send_replace(true);
    let (confirmed, unsure) = within(writing).await.unwrap();
    let last = format!("f-1 line {}", confirmed.last().unwrap());
    let long = async {
        while got.last() != Some(&last) {
            got.push(follow.next().await.unwrap().unwrap().text);
        }
    };
    tokio::time::timeout(Duration::from_secs(60), long)
        .await
        .unwrap();

    // Every acknowledged line once, in order; a line whose acknowledgement was lost at
    // most once; nothing else.
    let numbers: Vec<usize> = got
        .iter()
        .map(|t| t.strip_prefix("f-1 line ").unwrap().parse().unwrap())
        .collect();
    let mut sorted = numbers.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), numbers.len(), "a line came twice");
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "out of order");
    for n in &confirmed {
        assert!(
            sorted.binary_search(n).is_ok(),
            "acknowledged line {n} was lost"
        );
    }
    for n in &numbers {
        assert!(
            confirmed.contains(n) || unsure.contains(n),
            "line {n} was never written"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_cluster_restarted_still_has_its_logs() {
    let Some(mut servers) = cluster("a_whole_cluster_restarted") else {
        return;
    };
    let config = JetStreamConfig::default().replicas(3);
    let logs = connect_when_ready(&servers[0].url(), config.clone()).await;
    for i in 0..100 {
        logs.write(line("f", &format!("f-{}", i % 2), i))
            .await
            .unwrap();
    }
    logs.flush().await.unwrap();
    drop(logs);
    for server in &mut servers {
        server.restart();
    }
    let logs = connect_when_ready(&servers[2].url(), config).await;
    let addr = provider(&logs).await;
    // Until the restarted cluster has elected the stream's leader, a query is a 503.
    let got = within_election(async {
        loop {
            let (response, mut lines) = get(addr, "/system/logs?name=f").await;
            if response.status() == 200 {
                return lines.messages().await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert_eq!(got.len(), 100);
    for instance in ["f-0", "f-1"] {
        let expected: Vec<String> = (0..100)
            .filter(|i| format!("f-{}", i % 2) == instance)
            .map(|i| format!("{instance} line {i}"))
            .collect();
        assert_eq!(of_instance(&got, instance), expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_telemetry_listener_writes_its_lines_to_jetstream() {
    use faas_logs::store::LogStore;
    use faas_logs::telemetry::TelemetryListener;
    let Some(server) = NatsServer::start("the_telemetry_listener_writes_its_lines") else {
        return;
    };
    let logs = JetStreamLogs::connect(&server.url(), JetStreamConfig::default())
        .await
        .unwrap();
    let records = LogStore::new();
    let listener = TelemetryListener::new(records.clone(), "tele.fn").lines_to(logs.clone());
    let batch = br#"[
      {"time":"2024-03-01T12:00:00.000Z","type":"platform.start","record":{"requestId":"r-1"}},
      {"time":"2024-03-01T12:00:00.010Z","type":"function","record":"hello from the function\n"}
    ]"#;
    let report = listener.ingest_into_sink(batch).await;
    assert_eq!((report.accepted, report.rejected.len()), (2, 0));
    // The lines are in the stream, for every provider; the record stays in the store.
    let (_, mut lines) = get(provider(&logs).await, "/system/logs?name=tele.fn").await;
    let got = lines.messages().await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].text, "hello from the function");
    assert!(records.stats("", "tele.fn").is_none_or(|s| s.messages == 0));
    assert_eq!(
        records.invocations("", "tele.fn", None, 10).unwrap()[0].request_id,
        "r-1"
    );
}
