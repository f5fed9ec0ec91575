//! The JetStream backend against real `nats-server`s (Debian's package, 2.9): every
//! semantic over HTTP through `LogHandler` with writers running, two providers on one
//! stream, consumers cleaned up, and faults. Each test starts its own servers on free
//! ports with their own storage, and stops them.
//!
//! Needs `nats-server` on the PATH (`.ci/run` installs it). In CI (`CI` set) a missing
//! server fails; elsewhere these tests print that they were skipped.

use crate::common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use common::*;
use faas_logs::nats::{JetStreamConfig, JetStreamLogs};
use faas_logs::server::LogHandler;
use faas_logs::{Batch, Error, LogSink, Message, Requester};

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
    let mut child = child;
    // Budgeted for a loaded machine; a server that exits (its port taken) fails at once.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("nats-server on port {port} exited: {status}");
        }
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

/// A new, empty store for a server: never one a server of an earlier test left behind on
/// the same port (its streams would be this test's).
fn store_dir(port: u16) -> PathBuf {
    static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = MADE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir =
        std::env::temp_dir().join(format!("faas-logs-nats-{}-{port}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
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
        let _ = std::fs::remove_dir_all(&self._dir);
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
    store_all(logs, range.map(|i| line(name, instance, i)).collect()).await;
}

/// `messages` written as one batch, every one acknowledged.
async fn store_all(logs: &JetStreamLogs, messages: Vec<Message>) {
    for outcome in logs.store(Batch::new(messages)).await {
        outcome.unwrap();
    }
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
    let first: Vec<Message> = (0..300)
        .map(|i| {
            let instance = if i % 3 == 0 { "fig.let-b" } else { "fig.let-a" };
            line(name, instance, i)
        })
        .collect();
    store_all(&writer, first).await;
    let middle = Utc::now();
    let mut second: Vec<Message> = (300..400).map(|i| line(name, "fig.let-a", i)).collect();
    second.push(line("other", "other-1", 0));
    store_all(&writer, second).await;
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
            for i in (0..).step_by(50) {
                let name = if i % 100 == 0 { "fig" } else { "fig.let.x" };
                let batch = (i..i + 50).map(|i| line(name, "n-1", i)).collect();
                if writer
                    .store(Batch::new(batch))
                    .await
                    .iter()
                    .any(Result::is_err)
                {
                    return;
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
            for start in (200..1_200).step_by(50) {
                stored(&logs, "f", "f-1", start..start + 50).await;
            }
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
    let both = (0..5_000)
        .flat_map(|i| [line("f", "f-1", i), line("g", "g-1", i)])
        .collect();
    store_all(&logs, both).await;
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
    // NATS refuses a payload over its 1 MiB limit: a clear refusal of that line alone,
    // and the lines beside it are stored.
    let huge = Message::new(&*long, Utc::now(), "x".repeat(1 << 20)).with_instance(&*long);
    let outcomes = logs
        .store(Batch::new(vec![
            line(&long, &long, 2),
            huge,
            line(&long, &long, 3),
        ]))
        .await;
    assert!(outcomes[0].is_ok() && outcomes[2].is_ok(), "{outcomes:?}");
    let refused = outcomes[1].as_ref().unwrap_err();
    assert!(matches!(refused, Error::InvalidRequest { .. }), "{refused}");
    assert!(refused.to_string().contains("too large"), "{refused}");
    let addr = provider(&logs).await;
    let (response, mut lines) = get(addr, &format!("/system/logs?name={long}")).await;
    assert_eq!(response.status(), 200);
    let got = lines.messages().await;
    assert_eq!(texts(&got), [1, 2, 3].map(|i| format!("{long} line {i}")));
    assert_eq!(got[0].name, long.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_gone_or_a_stream_deleted_is_a_503_not_a_hang() {
    // Nothing listening: connecting fails at once, with the address.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("nats://{}", closed.local_addr().unwrap());
    drop(closed);
    let once = JetStreamConfig::default().with_connect_timeout(Duration::ZERO);
    let error = within(JetStreamLogs::connect(&url, once))
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

/// The history of function `name` from the provider at `addr`, once the stream has a
/// leader to answer (a 503 until then).
async fn history_once_elected(addr: SocketAddr, name: &str) -> Vec<Message> {
    within_election(async {
        loop {
            let (response, mut lines) = get(addr, &format!("/system/logs?name={name}")).await;
            if response.status() == 200 {
                return lines.messages().await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
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
    let a = Provider::start(
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
    let b = Provider::start(
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
    let pushed = r#"{"name":"pushed","instance":"p.1","text":"from b"}"#;
    let (status, report) = push(&mut connection, pushed, None).await;
    assert_eq!(status, 200, "{report}");
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

/// Writes lines `f-1 line N` in batches of 20 until told to stop; returns the numbers
/// acknowledged and those that were not (stored or not: never written again).
async fn keep_writing(
    logs: JetStreamLogs,
    stop: tokio::sync::watch::Receiver<bool>,
    acked: tokio::sync::watch::Sender<usize>,
) -> (Vec<usize>, Vec<usize>) {
    let (mut confirmed, mut unsure) = (Vec::new(), Vec::new());
    for start in (0..).step_by(20) {
        if *stop.borrow() {
            break;
        }
        let batch = (start..start + 20).map(|i| line("f", "f-1", i)).collect();
        let outcomes = logs.store(Batch::new(batch)).await;
        let mut failed = false;
        for (i, outcome) in (start..).zip(outcomes) {
            match outcome {
                Ok(()) => confirmed.push(i),
                Err(_) => {
                    unsure.push(i);
                    failed = true;
                }
            }
        }
        acked.send_replace(confirmed.len());
        // A pause between batches, longer while the cluster elects a new leader.
        let pause = if failed { 20 } else { 5 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
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
    let config = JetStreamConfig::default().with_replicas(3);
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
        .with_max_failures(30)
        .with_backoff(Duration::from_millis(100), Duration::from_millis(500));
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
    let config = JetStreamConfig::default().with_replicas(3);
    let logs = connect_when_ready(&servers[0].url(), config.clone()).await;
    let lines = (0..100)
        .map(|i| line("f", &format!("f-{}", i % 2), i))
        .collect();
    store_all(&logs, lines).await;
    drop(logs);
    for server in &mut servers {
        server.restart();
    }
    let logs = connect_when_ready(&servers[2].url(), config).await;
    let addr = provider(&logs).await;
    // Until the restarted cluster has elected the stream's leader, a query is a 503.
    let got = history_once_elected(addr, "f").await;
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
    let listener = TelemetryListener::new(records.clone(), "tele.fn").with_lines_to(logs.clone());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_otlp_receiver_writes_to_jetstream_and_an_export_sent_again_is_stored_once() {
    use faas_logs::otlp::OtlpReceiver;
    let Some(server) = NatsServer::start("the_otlp_receiver_writes_to_jetstream") else {
        return;
    };
    let logs = JetStreamLogs::connect(&server.url(), JetStreamConfig::default())
        .await
        .unwrap();
    let receiver = OtlpReceiver::new(logs.clone());
    let record = |i: u64, severity: u64| {
        serde_json::json!({
            "timeUnixNano": (1_709_294_400_000_000_000_u64 + i).to_string(),
            "severityNumber": severity,
            "traceId": "5b8efff798038103d269b633813fc60c",
            "body": {"stringValue": format!("record {i}")},
            "attributes": [{"key": "i", "value": {"intValue": i.to_string()}}]
        })
    };
    let export = serde_json::json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "faas.name", "value": {"stringValue": "otel.fn"}}]},
        "scopeLogs": [{"logRecords": [record(0, 9), record(1, 17), record(2, 13)]}]
    }]})
    .to_string();
    // Sent twice, as an exporter whose answer was lost sends it again.
    for _ in 0..2 {
        let outcome = receiver
            .ingest("application/json", None, export.as_bytes())
            .await
            .unwrap();
        assert_eq!((outcome.stored, outcome.rejected), (3, 0));
    }
    let (_, mut lines) = get(provider(&logs).await, "/system/logs?name=otel.fn").await;
    let got = lines.messages().await;
    let texts: Vec<&str> = got.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["record 0", "record 1", "record 2"]);
    let details = got[1].details.as_deref().unwrap();
    assert_eq!(details.severity.as_deref(), Some("ERROR"));
    assert_eq!(
        details.trace_id.as_deref(),
        Some("5b8efff798038103d269b633813fc60c")
    );
    assert_eq!(details.attributes["i"], serde_json::json!(1));
    assert_eq!(got[1].stream, Some(faas_logs::OutputStream::Stderr));
}

/// The admin's view of the stream: a plain async-nats connection.
async fn admin(url: &str) -> async_nats::jetstream::Context {
    async_nats::jetstream::new(async_nats::connect(url).await.unwrap())
}

/// A push of `body` to a provider on `connection`, with an `Idempotency-Key` when given:
/// the status and the report.
async fn push(
    connection: &mut Connection,
    body: &str,
    key: Option<&str>,
) -> (u16, serde_json::Value) {
    use http_body_util::BodyExt;
    let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
    let response = connection
        .send_with("POST", "/system/logs/push", &headers, body.as_bytes())
        .await;
    let status = response.status().as_u16();
    if status == 503 {
        assert!(
            response.headers().contains_key("retry-after"),
            "a 503 says when to retry"
        );
    }
    let body = within(response.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pushes_each_get_their_own_outcome_from_a_stream_that_refuses_a_subject() {
    let Some(server) = NatsServer::start("concurrent_pushes_each_get_their_own_outcome") else {
        return;
    };
    // The stream takes one function's subjects only.
    admin(&server.url())
        .await
        .create_stream(async_nats::jetstream::stream::Config {
            name: "FAAS_LOGS".into(),
            subjects: vec!["faas-logs.openfaas-fn.ok.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let url = server.url();
    let provider = Provider::start(
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
    // Two clients at once, each on its own connection: one pushes lines the stream
    // takes, one pushes lines it refuses, one line a push.
    let client = |name: &'static str| {
        let addr = provider.addr;
        tokio::spawn(async move {
            let mut connection = Connection::open(addr).await;
            let mut answers = Vec::new();
            for i in 0..400 {
                let body = format!(
                    r#"{{"name":"{name}","instance":"{name}-1","text":"{name} line {i}"}}"#
                );
                answers.push(push(&mut connection, &body, None).await);
            }
            answers
        })
    };
    let (ok, bad) = (client("ok"), client("bad"));
    let (ok, bad) = (ok.await.unwrap(), bad.await.unwrap());
    for (status, report) in &ok {
        assert_eq!(*status, 200, "{report}");
        assert_eq!(report["accepted"], 1, "{report}");
        assert_eq!(report["rejected"], serde_json::json!([]), "{report}");
    }
    for (status, report) in &bad {
        assert_eq!(*status, 422, "{report}");
        assert_eq!(report["accepted"], 0, "{report}");
        assert_eq!(report["rejected"][0]["line"], 1, "{report}");
        let error = report["rejected"][0]["error"].as_str().unwrap();
        assert!(error.contains("does not take the subject"), "{error}");
    }
    // Every line answered 200 is there, once, in order; the refused function has none.
    let (_, mut lines) = get(provider.addr, "/system/logs?name=ok").await;
    let expected: Vec<String> = (0..400).map(|i| format!("ok line {i}")).collect();
    assert_eq!(texts(&lines.messages().await), expected);
    let (status, _) = get_whole(provider.addr, "/system/logs?name=bad").await;
    assert_eq!(status, 404);
}

/// The index in `servers` of the stream's leader.
async fn stream_leader(url: &str, servers: &[NatsServer]) -> usize {
    within_election(async {
        loop {
            if let Ok(mut stream) = admin(url).await.get_stream("FAAS_LOGS").await {
                let leader = stream
                    .info()
                    .await
                    .ok()
                    .and_then(|info| info.cluster.clone())
                    .and_then(|cluster| cluster.leader);
                if let Some(leader) = leader {
                    let port = leader.rsplit('-').next().unwrap().parse::<u16>().unwrap();
                    return servers.iter().position(|s| s.port == port).unwrap();
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
}

/// Starts the memory provider on `urls` (a blocking read of its first line, off the
/// runtime's threads).
async fn memory_provider(args: Vec<String>) -> Provider {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Provider::start("memory", &args)
    })
    .await
    .unwrap()
}

/// A memory provider on `url` that nothing but pushes write to, whose pushes wait
/// `push_timeout` for their acknowledgements.
async fn pushed_to(url: &str, push_timeout: &str) -> Provider {
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--nats",
        url,
        "--nats-push-timeout",
        push_timeout,
        "--run",
        "idle=true",
    ];
    memory_provider(args.map(String::from).to_vec()).await
}

/// What one writer saw: its pushes answered 200, and how long each 503 took.
#[derive(Default)]
struct Pushed {
    batches: usize,
    unavailable: Vec<Duration>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_writers_through_a_killed_leader_store_every_acknowledged_line_exactly_once() {
    let Some(mut servers) = cluster("four_writers_through_a_killed_leader") else {
        return;
    };
    let urls: Vec<String> = servers.iter().map(NatsServer::url).collect();
    let all = urls.join(",");
    let push_timeout = Duration::from_secs(5);
    // Two providers on the three servers; they wait for the cluster's first election.
    let mut providers = Vec::new();
    for _ in 0..2 {
        providers.push(
            memory_provider(
                [
                    "--listen",
                    "127.0.0.1:0",
                    "--nats",
                    &all,
                    "--nats-replicas",
                    "3",
                    "--nats-push-timeout",
                    "5s",
                    "--run",
                    "idle=true",
                ]
                .map(String::from)
                .to_vec(),
            )
            .await,
        );
    }
    let addrs: Vec<SocketAddr> = providers.iter().map(|p| p.addr).collect();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (progress, _) = tokio::sync::watch::channel(0usize);
    // Four writers, each an instance of function f, each pushing batches of 10 lines
    // to one provider or the other, every batch sent again (same body, same key) until
    // it is answered 200.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (addrs, stopped, progress) = (addrs.clone(), stopped.clone(), progress.clone());
            tokio::spawn(async move {
                let mut pushed = Pushed::default();
                for batch in 0.. {
                    if *stopped.borrow() {
                        break;
                    }
                    let body: String = (batch * 10..batch * 10 + 10)
                        .map(|i| format!("{{\"name\":\"f\",\"instance\":\"w-{w}\",\"text\":\"w-{w} line {i}\"}}\n"))
                        .collect();
                    let key = format!("w-{w}-batch-{batch}");
                    loop {
                        // A connection of its own: an idle one may be closed by the
                        // provider while this writer waits out an election elsewhere.
                        let mut connection = Connection::open(addrs[(batch + w) % 2]).await;
                        let started = std::time::Instant::now();
                        let (status, report) = push(&mut connection, &body, Some(&key)).await;
                        match status {
                            200 => {
                                assert_eq!(report["accepted"], 10, "{report}");
                                break;
                            }
                            503 => {
                                pushed.unavailable.push(started.elapsed());
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                            other => panic!("a push answered {other}: {report}"),
                        }
                    }
                    pushed.batches += 1;
                    progress.send_modify(|n| *n += 1);
                }
                pushed
            })
        })
        .collect();
    let mut seen = progress.subscribe();
    within_election(seen.wait_for(|n| *n >= 100)).await.unwrap();
    // The stream's leader is killed (SIGKILL); the writers go on through the election.
    let leader = stream_leader(&urls[0], &servers).await;
    let killed_at = *seen.borrow();
    drop(servers.remove(leader));
    within_election(seen.wait_for(|n| *n >= killed_at + 200))
        .await
        .unwrap();
    stop.send_replace(true);
    let mut unavailable = Vec::new();
    let mut batches = Vec::new();
    for writer in writers {
        let pushed = within_election(writer).await.unwrap();
        batches.push(pushed.batches);
        unavailable.extend(pushed.unavailable);
    }
    // A 503 comes within the push's deadline (and a little for the answer to travel).
    for took in &unavailable {
        assert!(
            *took < push_timeout + Duration::from_secs(2),
            "a 503 took {took:?}"
        );
    }
    assert!(!unavailable.is_empty(), "no push met the election");
    // Both providers' history holds every line answered 200, exactly once, in order.
    for addr in addrs {
        let got = history_once_elected(addr, "f").await;
        for (w, batches) in batches.iter().enumerate() {
            let instance = format!("w-{w}");
            let expected: Vec<String> = (0..batches * 10)
                .map(|i| format!("{instance} line {i}"))
                .collect();
            let got = of_instance(&got, &instance);
            if got != expected {
                let at = got
                    .iter()
                    .zip(&expected)
                    .take_while(|(a, b)| a == b)
                    .count();
                panic!(
                    "{instance} from {addr}: {} lines, {} expected; from line {at}: got {:?}, expected {:?}",
                    got.len(),
                    expected.len(),
                    &got[at..(at + 5).min(got.len())],
                    &expected[at..(at + 5).min(expected.len())]
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_falls_behind_retention_is_told_exactly_how_many_lines_it_lost() {
    let Some(server) = NatsServer::start("a_follower_that_falls_behind_retention") else {
        return;
    };
    // The stream keeps 200 lines per instance.
    let config = JetStreamConfig::default().with_retention(Duration::from_secs(3600), 1 << 30, 200);
    let logs = JetStreamLogs::connect(&server.url(), config).await.unwrap();
    let text = |i: usize| format!("line {i} {}", "x".repeat(1000));
    let lines = |range: std::ops::Range<usize>| {
        range
            .map(|i| Message::new("f", Utc::now(), text(i)).with_instance("f-1"))
            .collect::<Vec<_>>()
    };
    store_all(&logs, lines(0..100)).await;
    let addr = provider(&logs).await;
    // The follower reads the last line, then stops reading.
    let (_, mut follower) = get_narrow(addr, "/system/logs?name=f&follow=true&tail=1").await;
    assert_eq!(within(follower.next_message()).await.text, text(99));
    // 40 MB of lines go past it: far more than the connection and the reader hold.
    let total = 40_100;
    for start in (100..total).step_by(500) {
        store_all(&logs, lines(start..start + 500)).await;
    }
    // Reading again: lines in order, one gap line with the exact count, lines in order
    // to the last.
    let mut expected = 100;
    let mut gaps = Vec::new();
    while expected < total {
        let line = within(follower.next()).await.unwrap().unwrap();
        let message: Message = serde_json::from_str(&line).unwrap();
        if let Some(lost) = message.text.strip_prefix("[faas-logs] ") {
            let lost: usize = lost.split(' ').next().unwrap().parse().unwrap();
            assert!(
                message
                    .text
                    .ends_with("lines lost here: this reader fell behind the store"),
                "{}",
                message.text
            );
            gaps.push(lost);
            expected += lost;
            continue;
        }
        assert_eq!(message.text, text(expected), "after {gaps:?}");
        expected += 1;
    }
    assert!(
        !gaps.is_empty(),
        "the follower fell behind retention and was told"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_started_before_nats_waits_for_it_and_then_serves() {
    if !installed("a_provider_started_before_nats") {
        return;
    }
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let starting = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            Provider::start_with(
                "memory",
                &[
                    "--listen",
                    "127.0.0.1:0",
                    "--nats",
                    &url,
                    "--run",
                    "hello=echo hello",
                ],
                &[],
                Stdio::piped(),
            )
        })
    };
    // NATS comes 2 s later (the scenario, not a wait for an event).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _server = NatsServer::run(port, store_dir(port), &[]);
    let mut provider = within_election(starting).await.unwrap();
    let mut lines = get_once_present(provider.addr, "/system/logs?name=hello&follow=true").await;
    assert_eq!(within(lines.next_message()).await.text, "hello");
    // It said what it was waiting for, as a sentence.
    drop(provider.child.kill());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut provider.child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("NATS is not ready; trying again"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("cannot connect to NATS at {url}")),
        "{stderr}"
    );
}

/// `GET path` once the function has a line in the stream (a 404 before).
async fn get_once_present(addr: SocketAddr, path: &str) -> Lines {
    within(async {
        loop {
            let (response, lines) = get(addr, path).await;
            if response.status() != 404 {
                assert_eq!(response.status(), 200);
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// Runs the memory provider on `url` with `extra` flags until it prints its address or
/// exits; returns its stderr so far (it is killed) and whether it started.
async fn provider_output(url: &str, extra: &[&str]) -> (bool, String) {
    let mut args = vec![
        "serve".to_owned(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--nats".into(),
        url.into(),
        "--run".into(),
        "idle=true".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut child = Command::new(env!("CARGO_BIN_EXE_faas-logs"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 1];
        let started = child.stdout.take().unwrap().read(&mut first).unwrap() == 1;
        let _ = child.kill();
        let _ = child.wait();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        (started, stderr)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_with_other_settings_is_reported_at_start_and_updated_when_asked() {
    let Some(server) = NatsServer::start("a_stream_with_other_settings") else {
        return;
    };
    let url = server.url();
    let js = admin(&url).await;
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "FAAS_LOGS".into(),
        subjects: vec!["faas-logs.>".into()],
        max_age: Duration::from_secs(3600),
        max_messages_per_subject: 100_000,
        max_bytes: 1 << 30,
        ..Default::default()
    })
    .await
    .unwrap();
    // Reported, and used as it is.
    let (started, stderr) = provider_output(
        &url,
        &[
            "--nats-max-age",
            "2h",
            "--nats-max-lines-per-instance",
            "500",
        ],
    )
    .await;
    assert!(started, "{stderr}");
    assert!(
        stderr.contains("max age: the stream has 3600s, the configuration asks for 7200s"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "max lines per instance: the stream has 100000, the configuration asks for 500"
        ),
        "{stderr}"
    );
    let config = js
        .get_stream("FAAS_LOGS")
        .await
        .unwrap()
        .cached_info()
        .config
        .clone();
    assert_eq!(config.max_age, Duration::from_secs(3600));
    // Applied when asked.
    let (started, stderr) = provider_output(
        &url,
        &[
            "--nats-max-age",
            "2h",
            "--nats-max-lines-per-instance",
            "500",
            "--nats-update-stream",
        ],
    )
    .await;
    assert!(started, "{stderr}");
    let config = js
        .get_stream("FAAS_LOGS")
        .await
        .unwrap()
        .cached_info()
        .config
        .clone();
    assert_eq!(
        (config.max_age, config.max_messages_per_subject),
        (Duration::from_secs(7200), 500)
    );
    // A change the server refuses (the storage of a stream kept in memory) stops the
    // provider with a sentence, not a debug dump.
    js.delete_stream("FAAS_LOGS").await.unwrap();
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "FAAS_LOGS".into(),
        subjects: vec!["faas-logs.>".into()],
        storage: async_nats::jetstream::stream::StorageType::Memory,
        ..Default::default()
    })
    .await
    .unwrap();
    let (started, stderr) = provider_output(&url, &["--nats-update-stream"]).await;
    assert!(!started, "{stderr}");
    let last = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_default();
    assert!(
        last.starts_with("error: invalid stream: the log stream FAAS_LOGS cannot be changed"),
        "{stderr}"
    );
    assert!(last.contains("storage: the stream has Memory"), "{last}");
    assert!(!stderr.contains(" { "), "no debug dump: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_output_is_stored_once_and_in_order_across_a_killed_server() {
    let Some(mut server) = NatsServer::start("captured_output_is_stored_once") else {
        return;
    };
    let url = server.url();
    // A command that writes 4,000 numbered lines over a few seconds.
    let provider = memory_provider(
        ["--listen", "127.0.0.1:0", "--nats", &url, "--run", "count=i=0; while [ $i -lt 4000 ]; do echo \"line $i\"; i=$((i+1)); [ $((i % 100)) -eq 0 ] && sleep 0.1; done"]
            .map(String::from)
            .to_vec(),
    )
    .await;
    // Once some lines are stored, the server is killed and started again on its store.
    let mut follower = get_once_present(provider.addr, "/system/logs?name=count&follow=true").await;
    while within(follower.next_message()).await.text != "line 500" {}
    server.restart();
    // Every line arrives in the end, once, in order.
    let expected: Vec<String> = (0..4000).map(|i| format!("line {i}")).collect();
    let got = within_election(async {
        loop {
            let (response, mut lines) = get(provider.addr, "/system/logs?name=count").await;
            if response.status() == 200 {
                let got = texts(&lines.messages().await);
                if got.len() >= 4000 || got.last() == expected.last() {
                    return got;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert_eq!(got, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_while_nats_is_down_are_503s_within_the_deadline_and_none_holds_another() {
    let Some(server) = NatsServer::start("pushes_while_nats_is_down") else {
        return;
    };
    let url = server.url();
    let provider = pushed_to(&url, "3s").await;
    let body: String = (0..20)
        .map(|i| format!("{{\"name\":\"f\",\"instance\":\"f-1\",\"text\":\"line {i}\"}}\n"))
        .collect();
    let mut connection = Connection::open(provider.addr).await;
    assert_eq!(push(&mut connection, &body, None).await.0, 200);
    drop(server);
    // Four pushes at once, each answered within its deadline, each for its own lines.
    let pushes: Vec<_> = (0..4)
        .map(|_| {
            let (addr, body) = (provider.addr, body.clone());
            tokio::spawn(async move {
                let mut connection = Connection::open(addr).await;
                let started = std::time::Instant::now();
                let answer = push(&mut connection, &body, None).await;
                (started.elapsed(), answer)
            })
        })
        .collect();
    for push in pushes {
        let (took, (status, report)) = push.await.unwrap();
        assert_eq!(status, 503, "{report}");
        assert!(took < Duration::from_secs(5), "answered after {took:?}");
        assert_eq!(report["accepted"], 0, "{report}");
        assert_eq!(report["unavailable"]["count"], 20, "{report}");
        assert_eq!(
            report["unavailable"]["lines"],
            serde_json::json!([[1, 20]]),
            "{report}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_awaited_while_the_server_is_frozen_are_counted_at_metrics() {
    let Some(server) = NatsServer::start("acknowledgements_awaited_while_frozen") else {
        return;
    };
    let Some(python) = crate::common::python("acknowledgements_awaited") else {
        return;
    };
    let url = server.url();
    let provider = pushed_to(&url, "60s").await;
    let addr = provider.addr;
    let mut connection = Connection::open(addr).await;
    let first = r#"{"name":"frozen","text":"before"}"#;
    assert_eq!(push(&mut connection, first, None).await.0, 200);
    let awaited = |python: PathBuf| async move {
        crate::metrics::scrape(&python, addr, None)
            .await
            .value("faas_logs_nats_acks_awaited", &[])
    };
    assert_eq!(awaited(python.clone()).await, 0.0);

    // The server stops answering: a push of ten lines waits for their acknowledgements.
    let signal = |what: &str| {
        let pid = server.child.id().to_string();
        assert!(Command::new("kill")
            .args([what, &pid])
            .status()
            .unwrap()
            .success());
    };
    signal("-STOP");
    let body: String = (0..10)
        .map(|i| format!("{{\"name\":\"frozen\",\"text\":\"line {i}\"}}\n"))
        .collect();
    let pushing = tokio::spawn(async move {
        let mut connection = Connection::open(addr).await;
        push(&mut connection, &body, None).await
    });
    crate::metrics::scrape_until(&python, addr, |s| {
        s.value("faas_logs_nats_acks_awaited", &[]) >= 1.0
    })
    .await;
    assert!(
        !pushing.is_finished(),
        "a push is answered once its lines are stored"
    );
    // It answers again: the push is a 200, every line stored, nothing awaited.
    signal("-CONT");
    let (status, report) = within(pushing).await.unwrap();
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["accepted"], 10);
    assert_eq!(awaited(python.clone()).await, 0.0);
    let (_, mut lines) = get(addr, "/system/logs?name=frozen").await;
    assert_eq!(lines.messages().await.len(), 11);
}
