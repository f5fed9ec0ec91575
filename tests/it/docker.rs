//! The Docker backend against a real Docker engine: our answers compared with
//! `docker logs --timestamps`, replicas, long lines, TTY, streams, instances, follow with
//! replicas coming and going, errors, and the provider binary.
//!
//! Needs a running engine and the image `faas-logs-busybox:1` (built here from busybox
//! when missing). In CI (`CI` set) a missing engine fails; elsewhere these tests print
//! that they were skipped.

use crate::common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use common::*;
use faas_logs::docker::DockerRequester;
use faas_logs::server::LogHandler;
use faas_logs::{FunctionName, Message, OutputStream, Requester};

const IMAGE: &str = "faas-logs-busybox:1";

/// Whether an engine answers; builds the test image when it is missing. Without an
/// engine: a failure in CI, a clear skip elsewhere.
fn engine(test: &str) -> bool {
    let up = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !common::needs(test, up, "no Docker engine answers") {
        return false;
    }
    ensure_image();
    true
}

pub(crate) fn ensure_image() {
    let present = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return;
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("busybox (busybox-static) is needed to build the test image");
    let dir = std::env::temp_dir().join(format!("faas-logs-image-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::copy(busybox, dir.join("bin/busybox")).unwrap();
    for applet in run(busybox, &["--list"]).lines() {
        let _ = std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet));
    }
    let tar = dir.with_extension("tar");
    run(
        "tar",
        &[
            "-C",
            dir.to_str().unwrap(),
            "-cf",
            tar.to_str().unwrap(),
            ".",
        ],
    );
    // Two tests may race to build it; either import is as good.
    let _ = Command::new("docker")
        .args(["import", tar.to_str().unwrap(), IMAGE])
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&tar);
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A container of a test function, removed when dropped.
struct Container {
    name: String,
    id: String,
}

impl Container {
    /// Starts `sh -c script` as an instance of `function`.
    fn start(function: &str, name: &str, tty: bool, script: &str) -> Container {
        Container::start_labelled(function, name, tty, &[], script)
    }

    /// [`Container::start`] with more labels (`key=value`).
    fn start_labelled(
        function: &str,
        name: &str,
        tty: bool,
        labels: &[&str],
        script: &str,
    ) -> Container {
        let name = format!("{name}-{}", std::process::id());
        let label = format!("com.openfaas.function={function}");
        let mut args = vec![
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            &name,
            "-l",
            &label,
        ];
        for extra in labels {
            args.extend(["-l", extra]);
        }
        if tty {
            args.push("-t");
        }
        args.extend([IMAGE, "sh", "-c", script]);
        let out = Command::new("docker").args(&args).output().unwrap();
        if !out.status.success() {
            // A container can be created and then fail to start: leave nothing behind.
            let _ = Command::new("docker").args(["rm", "-f", &name]).output();
            panic!("docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Container { name, id }
    }

    /// Waits for the container to exit.
    fn wait(&self) {
        run("docker", &["wait", &self.id]);
    }

    /// `docker logs --timestamps` as (timestamp, stream, text), in timestamp order.
    fn docker_logs(&self, extra: &[&str]) -> Vec<(DateTime<Utc>, OutputStream, String)> {
        let mut args = vec!["logs", "--timestamps"];
        args.extend_from_slice(extra);
        args.push(&self.id);
        let out = Command::new("docker").args(&args).output().unwrap();
        assert!(out.status.success());
        let mut lines = Vec::new();
        for (bytes, stream) in [
            (&out.stdout, OutputStream::Stdout),
            (&out.stderr, OutputStream::Stderr),
        ] {
            for line in String::from_utf8_lossy(bytes).lines() {
                let (ts, text) = line.split_once(' ').unwrap_or((line, ""));
                let ts = DateTime::parse_from_rfc3339(ts)
                    .unwrap()
                    .with_timezone(&Utc);
                lines.push((ts, stream, text.trim_end_matches('\r').to_owned()));
            }
        }
        lines.sort_by_key(|l| l.0);
        lines
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.id]).output();
    }
}

/// A function name unique to this test run.
fn function(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

async fn provider() -> std::net::SocketAddr {
    let docker = DockerRequester::from_env().unwrap();
    serve(LogHandler::new(docker, Duration::from_secs(30))).await
}

/// Runs `script` as an instance of a new function to its end, and returns the function,
/// the container and our answer to `query` (appended to `name=<function>`).
async fn finished(
    name: &str,
    tty: bool,
    script: &str,
    query: &str,
) -> (String, Container, Vec<Message>) {
    let f = function(name);
    let c = Container::start(&f, name, tty, script);
    c.wait();
    let addr = provider().await;
    let (_, mut lines) = get(addr, &format!("/system/logs?name={f}{query}")).await;
    let got = lines.messages().await;
    (f, c, got)
}

fn as_triples(messages: &[Message]) -> Vec<(DateTime<Utc>, OutputStream, String)> {
    messages
        .iter()
        .map(|m| {
            (
                m.timestamp,
                m.stream.expect("Docker records the stream"),
                m.text.clone(),
            )
        })
        .collect()
}

fn rfc3339(ts: DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

#[tokio::test]
async fn our_answers_equal_docker_logs_with_no_parameters_tail_since_and_both() {
    if !engine("equal_docker_logs") {
        return;
    }
    let f = function("equal");
    let c = Container::start(
        &f,
        "equal",
        false,
        "for i in $(seq 1 60); do echo \"line $i\"; done",
    );
    c.wait();
    let addr = provider().await;
    let all = c.docker_logs(&[]);
    assert_eq!(all.len(), 60);
    let since = all[25].0;
    let cases: [(String, Vec<String>); 4] = [
        (String::new(), vec![]),
        ("&tail=7".into(), vec!["--tail".into(), "7".into()]),
        (
            format!("&since={}", rfc3339(since)),
            vec!["--since".into(), rfc3339(since)],
        ),
        (
            format!("&since={}&tail=5", rfc3339(since)),
            vec![
                "--since".into(),
                rfc3339(since),
                "--tail".into(),
                "5".into(),
            ],
        ),
    ];
    for (query, args) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let want = c.docker_logs(&args);
        let (response, mut lines) = get(addr, &format!("/system/logs?name={f}{query}")).await;
        assert_eq!(response.status(), 200);
        let got = lines.messages().await;
        assert_eq!(as_triples(&got), want, "{query}");
        assert!(got.iter().all(|m| m.instance == c.name && m.name == f));
    }
}

#[tokio::test]
async fn two_replicas_are_merged_by_timestamp_under_one_tail() {
    if !engine("replicas_merged") {
        return;
    }
    let f = function("merged");
    let script =
        |who: &str| format!("for i in $(seq 1 12); do echo \"{who} $i\"; sleep 0.02; done");
    let a = Container::start(&f, "merged-a", false, &script("a"));
    let b = Container::start(&f, "merged-b", false, &script("b"));
    a.wait();
    b.wait();
    let mut union = a.docker_logs(&[]);
    union.extend(b.docker_logs(&[]));
    union.sort_by_key(|l| l.0);
    let addr = provider().await;
    let (_, mut lines) = get(addr, &format!("/system/logs?name={f}")).await;
    assert_eq!(as_triples(&lines.messages().await), union);
    let (_, mut lines) = get(addr, &format!("/system/logs?name={f}&tail=9")).await;
    assert_eq!(
        as_triples(&lines.messages().await),
        union[union.len() - 9..]
    );
}

#[tokio::test]
async fn a_100_kib_line_comes_back_as_one_message() {
    if !engine("long_line") {
        return;
    }
    let script =
        "head -c 102400 /dev/zero | tr '\\0' x; echo; echo after; printf '\\377\\376ok\\n'";
    let (_, _c, got) = finished("long", false, script, "").await;
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].text.len(), 102_400);
    assert!(got[0].text.bytes().all(|b| b == b'x'));
    assert_eq!(got[1].text, "after");
    assert_eq!(
        got[2].text, "\u{fffd}\u{fffd}ok",
        "invalid UTF-8 is replaced"
    );
}

#[tokio::test]
async fn a_tty_container_and_its_long_lines() {
    if !engine("tty") {
        return;
    }
    let script = "echo one; head -c 40000 /dev/zero | tr '\\0' t; echo; echo three";
    let (_, _c, got) = finished("tty", true, script, "").await;
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].text, "one");
    assert_eq!(got[1].text, "t".repeat(40_000));
    assert_eq!(got[2].text, "three");
    assert!(got.iter().all(|m| m.stream == Some(OutputStream::Stdout)));
}

#[tokio::test]
async fn stdout_and_stderr_are_told_apart() {
    if !engine("streams") {
        return;
    }
    let (_, c, got) = finished(
        "streams",
        false,
        "echo to-out; echo to-err >&2; echo out-again",
        "",
    )
    .await;
    assert_eq!(as_triples(&got), c.docker_logs(&[]));
    let streams: BTreeSet<(OutputStream, String)> = got
        .iter()
        .map(|m| (m.stream.unwrap(), m.text.clone()))
        .collect();
    assert_eq!(
        streams,
        BTreeSet::from([
            (OutputStream::Stdout, "to-out".into()),
            (OutputStream::Stderr, "to-err".into()),
            (OutputStream::Stdout, "out-again".into()),
        ])
    );
}

#[tokio::test]
async fn instance_selects_by_container_name_or_id_prefix() {
    if !engine("instance") {
        return;
    }
    let f = function("inst");
    let a = Container::start(&f, "inst-a", false, "echo from a");
    let b = Container::start(&f, "inst-b", false, "echo from b");
    a.wait();
    b.wait();
    let addr = provider().await;
    let (_, mut lines) = get(addr, &format!("/system/logs?name={f}&instance={}", b.name)).await;
    assert_eq!(texts(&lines.messages().await), ["from b"]);
    let (_, mut lines) = get(
        addr,
        &format!("/system/logs?name={f}&instance={}", &a.id[..12]),
    )
    .await;
    let got = lines.messages().await;
    assert_eq!(texts(&got), ["from a"]);
    assert_eq!(got[0].instance, a.name);
    let (response, _) = get(addr, &format!("/system/logs?name={f}&instance=nobody")).await;
    assert_eq!(response.status(), 404);
}

/// Reads messages until `done` says so.
async fn read_until(lines: &mut Lines, mut done: impl FnMut(&Message) -> bool) -> Vec<Message> {
    let mut got = Vec::new();
    loop {
        let m = lines.next_message().await;
        let stop = done(&m);
        got.push(m);
        if stop {
            return got;
        }
    }
}

#[tokio::test]
async fn a_replica_started_during_a_follow_shows_up_once() {
    if !engine("replica_joins") {
        return;
    }
    let f = function("joins");
    let a = Container::start(
        &f,
        "joins-a",
        false,
        "i=0; while true; do i=$((i+1)); echo \"a $i\"; sleep 0.2; done",
    );
    let addr = provider().await;
    let (_, mut lines) = get(addr, &format!("/system/logs?name={f}&follow=true&tail=1")).await;
    read_until(&mut lines, |m| m.text.starts_with("a ")).await;
    let b = Container::start(&f, "joins-b", false, "echo b one; echo b two; echo b three");
    let got = read_until(&mut lines, |m| m.text == "b three").await;
    let from_b: Vec<_> = got
        .iter()
        .filter(|m| m.instance == b.name)
        .map(|m| m.text.as_str())
        .collect();
    assert_eq!(from_b, ["b one", "b two", "b three"]);
    // b has exited; three more ticks of a, and no line of b again.
    let mut ticks = 0;
    let after = read_until(&mut lines, |m| {
        ticks += usize::from(m.instance == a.name);
        ticks == 3
    })
    .await;
    assert!(
        after.iter().all(|m| m.instance == a.name),
        "a line of b came twice: {after:?}"
    );
}

#[tokio::test]
async fn a_container_removed_during_a_follow_ends_only_its_part() {
    if !engine("replica_leaves") {
        return;
    }
    let f = function("leaves");
    let tick =
        |who: &str| format!("i=0; while true; do i=$((i+1)); echo \"{who} $i\"; sleep 0.2; done");
    let a = Container::start(&f, "leaves-a", false, &tick("a"));
    let b = Container::start(&f, "leaves-b", false, &tick("b"));
    let addr = provider().await;
    let (_, mut lines) = get(addr, &format!("/system/logs?name={f}&follow=true&tail=1")).await;
    let mut seen = BTreeSet::new();
    read_until(&mut lines, |m| {
        seen.insert(m.instance.clone());
        seen.len() == 2
    })
    .await;
    let b_name = b.name.clone();
    drop(b); // docker rm -f
    let removed_at = Utc::now();
    // The stream goes on with a's lines; b's part is over.
    let mut ticks = 0;
    let after = read_until(&mut lines, |m| {
        ticks += usize::from(m.instance == a.name);
        ticks == 5
    })
    .await;
    for m in after.iter().filter(|m| m.instance == b_name) {
        assert!(
            m.timestamp < removed_at,
            "a line of b written after its removal: {m:?}"
        );
    }
}

/// A Unix-socket proxy in front of the daemon that counts the connections open through
/// it, and that a test can cut (every open connection dropped) or kill (cut, and nothing
/// listens any more): the daemon as a provider sees it when the daemon goes away.
struct CountingProxy {
    path: std::path::PathBuf,
    open: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    changed: std::sync::Arc<tokio::sync::Notify>,
    /// Cancelled to drop the connections open now; replaced for the next ones.
    cut: std::sync::Arc<std::sync::Mutex<tokio_util::sync::CancellationToken>>,
    accepting: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    fn start() -> CountingProxy {
        use std::sync::atomic::Ordering;
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "faas-logs-proxy-{}-{}.sock",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let open = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let changed = std::sync::Arc::new(tokio::sync::Notify::new());
        let cut = std::sync::Arc::new(std::sync::Mutex::new(
            tokio_util::sync::CancellationToken::new(),
        ));
        let (count, notify, token) = (open.clone(), changed.clone(), cut.clone());
        let accepting = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let (count, notify) = (count.clone(), notify.clone());
                let cut = token.lock().unwrap().clone();
                count.fetch_add(1, Ordering::SeqCst);
                notify.notify_waiters();
                tokio::spawn(async move {
                    if let Ok(mut daemon) =
                        tokio::net::UnixStream::connect("/var/run/docker.sock").await
                    {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut daemon) => {}
                            _ = cut.cancelled() => {}
                        }
                    }
                    count.fetch_sub(1, Ordering::SeqCst);
                    notify.notify_waiters();
                });
            }
        });
        CountingProxy {
            path,
            open,
            changed,
            cut,
            accepting,
        }
    }

    /// Drops every connection open now, mid-stream; new ones are still accepted.
    fn cut(&self) {
        let mut token = self.cut.lock().unwrap();
        token.cancel();
        *token = tokio_util::sync::CancellationToken::new();
    }

    /// The daemon is gone: open connections dropped, and nothing listens any more.
    fn kill(&self) {
        self.accepting.abort();
        let _ = std::fs::remove_file(&self.path);
        self.cut();
    }

    fn requester(&self) -> DockerRequester {
        DockerRequester::with_host(&format!("unix://{}", self.path.display())).unwrap()
    }

    fn open(&self) -> usize {
        self.open.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn wait_until_none_open(&self) {
        within(async {
            loop {
                let changed = self.changed.notified();
                if self.open() == 0 {
                    return;
                }
                changed.await;
            }
        })
        .await
    }
}

#[tokio::test]
async fn a_client_that_leaves_closes_every_connection_to_the_daemon() {
    if !engine("connections") {
        return;
    }
    let f = function("conns");
    let tick =
        |who: &str| format!("i=0; while true; do i=$((i+1)); echo \"{who} $i\"; sleep 0.2; done");
    let _a = Container::start(&f, "conns-a", false, &tick("a"));
    let _b = Container::start(&f, "conns-b", false, &tick("b"));
    let proxy = CountingProxy::start();
    let addr = serve(LogHandler::new(proxy.requester(), Duration::from_secs(30))).await;
    let (_, mut lines) = get(addr, &format!("/system/logs?name={f}&follow=true&tail=1")).await;
    let mut seen = BTreeSet::new();
    read_until(&mut lines, |m| {
        seen.insert(m.instance.clone());
        seen.len() == 2
    })
    .await;
    // Two follow streams and the event stream, at least.
    assert!(proxy.open() >= 3, "{} connections open", proxy.open());
    drop(lines);
    proxy.wait_until_none_open().await;
    let _ = std::fs::remove_file(&proxy.path);
}

#[tokio::test]
async fn each_message_carries_its_containers_namespace_and_none_means_the_default() {
    if !engine("namespaces") {
        return;
    }
    let f = function("spaces");
    let plain = Container::start(&f, "spaces-plain", false, "echo in the default");
    let staged = Container::start_labelled(
        &f,
        "spaces-staged",
        false,
        &["com.openfaas.namespace=staging"],
        "echo in staging",
    );
    let labelled = Container::start_labelled(
        &f,
        "spaces-labelled",
        false,
        &["com.openfaas.namespace=openfaas-fn"],
        "echo labelled default",
    );
    for c in [&plain, &staged, &labelled] {
        c.wait();
    }
    let addr = provider().await;
    let answer = |query: String| async move {
        let (response, mut lines) = get(addr, &query).await;
        assert_eq!(response.status(), 200, "{query}");
        let mut got: Vec<(String, String)> = lines
            .messages()
            .await
            .into_iter()
            .map(|m| (m.namespace.to_string(), m.text))
            .collect();
        got.sort();
        got
    };
    let default = [
        ("openfaas-fn".to_owned(), "in the default".to_owned()),
        ("openfaas-fn".to_owned(), "labelled default".to_owned()),
    ];
    // faas-cli's default: no namespace at all.
    assert_eq!(answer(format!("/system/logs?name={f}")).await, default);
    assert_eq!(
        answer(format!("/system/logs?name={f}&namespace=openfaas-fn")).await,
        default
    );
    assert_eq!(
        answer(format!("/system/logs?name={f}&namespace=staging")).await,
        [("staging".to_owned(), "in staging".to_owned())]
    );
    let (response, _) = get(addr, &format!("/system/logs?name={f}&namespace=other")).await;
    assert_eq!(response.status(), 404);

    // The function list (the viewer's) names it once in each of its namespaces.
    let docker = DockerRequester::from_env().unwrap();
    let listed = docker
        .functions()
        .await
        .unwrap()
        .expect("Docker lists its functions");
    let mine: Vec<&FunctionName> = listed.iter().filter(|n| n.name == f).collect();
    assert_eq!(
        mine,
        [
            &FunctionName::new("openfaas-fn", f.as_str()),
            &FunctionName::new("staging", f.as_str())
        ]
    );
}

/// A shell script that prints `WHO N` for N = 1, 2, ... every 50 ms.
fn counter(who: &str) -> String {
    format!("i=0; while true; do i=$((i+1)); echo \"{who} $i\"; sleep 0.05; done")
}

/// The numbers `WHO N` read from `lines` until `until` of them have come.
async fn count_until(lines: &mut Lines, who: &str, until: u64, seen: &mut Vec<u64>) {
    read_until(lines, |m| {
        if let Some(n) = m.text.strip_prefix(&format!("{who} ")) {
            seen.push(n.parse().unwrap());
        }
        seen.len() as u64 >= until
    })
    .await;
}

#[tokio::test]
async fn a_daemon_lost_during_a_follow_breaks_the_response_visibly() {
    if !engine("daemon lost") {
        return;
    }
    let f = function("lost");
    let _c = Container::start(&f, "lost-a", false, &counter("a"));
    let proxy = CountingProxy::start();
    let addr = serve(LogHandler::new(proxy.requester(), Duration::from_secs(30))).await;
    let (response, mut lines) = get(addr, &format!("/system/logs?name={f}&follow=true")).await;
    assert_eq!(response.status(), 200);
    count_until(&mut lines, "a", 3, &mut Vec::new()).await;
    proxy.kill();
    loop {
        match lines.next().await {
            Ok(Some(_)) => continue, // lines already on their way
            Ok(None) => panic!("a lost daemon must not look like a clean end"),
            Err(_) => break,
        }
    }
}

#[tokio::test]
async fn connections_cut_during_a_follow_are_reopened_without_losing_or_repeating_a_line() {
    if !engine("connections cut") {
        return;
    }
    let f = function("cut");
    let _a = Container::start(&f, "cut-a", false, &counter("a"));
    let proxy = CountingProxy::start();
    let addr = serve(LogHandler::new(proxy.requester(), Duration::from_secs(30))).await;
    let (_, mut lines) = get(addr, &format!("/system/logs?name={f}&follow=true")).await;
    let mut seen = Vec::new();
    count_until(&mut lines, "a", 5, &mut seen).await;
    // The log stream and the event stream both break; the daemon is still there.
    proxy.cut();
    count_until(&mut lines, "a", 25, &mut seen).await;
    let first = seen[0];
    assert_eq!(seen, (first..first + 25).collect::<Vec<_>>());
    // Replica watching survived the cut: a replica started now is followed.
    let _b = Container::start(&f, "cut-b", false, &counter("b"));
    count_until(&mut lines, "b", 3, &mut Vec::new()).await;
}

#[tokio::test]
async fn an_unknown_function_is_404_with_a_message_to_act_on() {
    use http_body_util::BodyExt;
    if !engine("unknown") {
        return;
    }
    let addr = provider().await;
    let ghost = function("ghost");
    let mut conn = Connection::open(addr).await;
    let response = conn
        .send("GET", &format!("/system/logs?name={ghost}"), b"")
        .await;
    assert_eq!(response.status(), 404);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        json["error"],
        format!(
            "no container found for function \"{ghost}\" (label com.openfaas.function={ghost}) \
             in namespace \"openfaas-fn\""
        )
    );
}

#[tokio::test]
async fn a_docker_host_where_nothing_listens_is_503() {
    // No engine needed: nothing listens there by construction.
    let dir = std::env::temp_dir().join(format!("faas-logs-nothing-{}.sock", std::process::id()));
    let docker = DockerRequester::with_host(&format!("unix://{}", dir.display())).unwrap();
    let addr = serve(LogHandler::new(docker, Duration::from_secs(5))).await;
    let mut conn = Connection::open(addr).await;
    let response = conn.send("GET", "/system/logs?name=f", b"").await;
    assert_eq!(response.status(), 503);
    let tcp = DockerRequester::with_host("tcp://127.0.0.1:1").unwrap();
    let addr = serve(LogHandler::new(tcp, Duration::from_secs(5))).await;
    let mut conn = Connection::open(addr).await;
    let response = conn.send("GET", "/system/logs?name=f", b"").await;
    assert_eq!(response.status(), 503);
}

#[cfg(feature = "cli")]
#[tokio::test]
async fn the_provider_binary_serves_docker_logs_with_and_without_basic_auth() {
    use http_body_util::BodyExt;
    if !engine("binary") {
        return;
    }
    let f = function("binary");
    let c = Container::start(&f, "binary", false, "echo served by the binary");
    c.wait();

    let open = Provider::start("docker", &["--listen", "127.0.0.1:0"]);
    let (response, mut lines) = get(open.addr, &format!("/system/logs?name={f}")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(texts(&lines.messages().await), ["served by the binary"]);
    let mut conn = Connection::open(open.addr).await;
    let missing = conn
        .send("GET", "/system/logs?name=no-such-function", b"")
        .await;
    assert_eq!(missing.status(), 404);
    let body = missing.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("no container found for function"));
    assert_eq!(conn.send("GET", "/healthz", b"").await.status(), 200);
    // The viewer, and the function list it shows.
    let page = conn.send("GET", "/", b"").await;
    assert_eq!(page.status(), 200);
    let page = page.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&page[..], faas_logs::server::VIEWER_HTML.as_bytes());
    let listed = conn.send("GET", "/system/logs/functions", b"").await;
    assert_eq!(listed.status(), 200);
    let listed = listed.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&listed).contains(&format!(r#""name":"{f}""#)));

    let guarded = Provider::start_behind_login("docker");
    let path = format!("/system/logs?name={f}");
    for (auth, want) in [
        (None, 401),
        (Some("Basic YWRtaW46d3Jvbmc="), 401), // admin:wrong
        (Some(LOGIN.1), 200),
        (Some("Bearer YWRtaW46czNjcmV0"), 401),
    ] {
        let tcp = tokio::net::TcpStream::connect(guarded.addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        let mut req = hyper::Request::get(&path).header("host", "127.0.0.1");
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let response = sender
            .send_request(
                req.body(http_body_util::Empty::<bytes::Bytes>::new())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), want, "{auth:?}");
        if want == 401 {
            assert_eq!(
                response.headers()["www-authenticate"],
                "Basic realm=\"faas-logs\""
            );
        }
    }
    let mut conn = Connection::open(guarded.addr).await;
    assert_eq!(conn.send("GET", "/healthz", b"").await.status(), 200);

    // SIGINT with a follow stream open: the stream ends cleanly, the process exits.
    let runner = Container::start(
        &f,
        "binary-follow",
        false,
        "while true; do echo still here; sleep 0.2; done",
    );
    let (_, mut follow) = get(
        open.addr,
        &format!("/system/logs?name={f}&follow=true&instance={}", runner.name),
    )
    .await;
    follow.next_message().await;
    open.interrupt();
    follow.rest().await.expect("a clean end");
    assert!(open.exits_cleanly().await);
}

#[cfg(feature = "cli")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_faas_logs_command_reads_the_docker_provider_as_faas_cli_would() {
    if !engine("the_faas_logs_command_reads_the_docker_provider_as_faas_cli_would") {
        return;
    }
    let f = function("cli");
    let a = Container::start(
        &f,
        "cli-a",
        false,
        r#"echo 'say "hi" <>&'; echo 'ünï 🎉' >&2; printf 'tab\there\n'"#,
    );
    let b = Container::start(&f, "cli-b", false, "echo from b");
    a.wait();
    b.wait();
    let addr = provider().await;
    let faas_logs = |extra: &[&str]| {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_faas-logs"));
        c.args([f.as_str(), "--tail=false", "-g", &format!("http://{addr}")])
            .args(extra)
            .env_remove("OPENFAAS_URL")
            .env_remove("FAAS_DEBUG")
            .env("HOME", std::env::temp_dir());
        c
    };

    // Every line of both containers, as faas-cli formats what the provider sends.
    let out = within(faas_logs(&["-o", "keyvalue", "--name", "--instance"]).output())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, mut lines) = get(addr, &format!("/system/logs?name={f}")).await;
    let sent = lines.messages().await;
    let expected: String = sent
        .iter()
        .map(|m| faas_cli_line(m, &rfc3339_seconds(m.timestamp), true, true, true) + "\n")
        .collect();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
    let mut from_docker: Vec<String> = [&a, &b]
        .iter()
        .flat_map(|c| c.docker_logs(&[]))
        .map(|(_, _, text)| text)
        .collect();
    let mut texts = texts(&sent);
    from_docker.sort();
    texts.sort();
    assert_eq!(texts, from_docker);

    // The instance filter faas-cli lacks: one container's lines.
    let out = within(faas_logs(&["--only-instance", &b.name, "--time-format="]).output())
        .await
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "from b\n");
}

#[cfg(feature = "cli")]
fn rfc3339_seconds(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[tokio::test]
async fn the_docker_example_serves_every_replica_and_ends_on_ctrl_c() {
    if !engine("the_docker_example_serves_every_replica_and_ends_on_ctrl_c") {
        return;
    }
    let name = function("example");
    // Two replicas write their numbered lines at the same time, then stay up.
    let script = "for i in 1 2 3 4 5 6 7 8; do echo \"$(hostname) line $i\"; done; sleep 600";
    let replicas = [
        Container::start(&name, "example-a", false, script),
        Container::start(&name, "example-b", false, script),
    ];
    let example = Provider::start("docker-example", &["--listen", "127.0.0.1:0"]);
    let addr = example.addr;

    let (status, list) = get_whole(addr, faas_logs::server::FUNCTIONS_PATH).await;
    assert_eq!(status, 200, "{list}");
    assert!(list.contains(&name), "{list}");

    // A follower sees both replicas' lines, each replica's in its own order, once each.
    let query = format!("/system/logs?name={name}&follow=true");
    let (response, mut follow) = get(addr, &query).await;
    assert_eq!(response.status(), 200);
    let mut by_instance = std::collections::BTreeMap::<String, Vec<String>>::new();
    for _ in 0..16 {
        let m = follow.next_message().await;
        by_instance
            .entry(m.instance.to_string())
            .or_default()
            .push(m.text);
    }
    assert_eq!(by_instance.len(), 2, "{by_instance:?}");
    for texts in by_instance.values() {
        // Each line says which container wrote it, and its number.
        let host = texts[0].split(' ').next().unwrap();
        let want: Vec<String> = (1..=8).map(|i| format!("{host} line {i}")).collect();
        assert_eq!(texts, &want);
    }

    // A tail across replicas: the newest lines by time, in time order.
    let (_, mut tail) = get(addr, &format!("/system/logs?name={name}&tail=3")).await;
    let got = tail.messages().await;
    assert_eq!(got.len(), 3);
    assert!(got.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));

    example.interrupt();
    assert_eq!(follow.rest().await.unwrap(), Vec::<String>::new());
    assert!(example.exits_cleanly().await);
    drop(replicas);
}
