//! The Kubernetes backend against an emulated API server (tests/it/emulator), which the
//! real `kubectl` judges first: it must list, watch and read logs from the emulator as it
//! does from a cluster. Then, over real HTTP through `LogHandler`: tail across replicas
//! (faas-netes' fault, as a test), the whole history, since, instance; a follow while
//! three replicas write, one is scaled in, one out and the watch expires; a restarted
//! container; a function scaled to zero; 404; RBAC refusals; an unreachable server; the
//! provider binary from a kubeconfig.

#[path = "emulator/kubernetes.rs"]
mod emulator;

use crate::common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use emulator::Emulator;
use faas_logs::kubernetes::{Client, KubernetesRequester};
use faas_logs::server::LogHandler;
use faas_logs::{Message, Requester};

const NS: &str = "openfaas-fn";

fn client(emulator: &Emulator) -> Client {
    let config = kube::Config::new(emulator.url().parse().unwrap());
    Client::try_from(config).unwrap()
}

async fn serve(requester: KubernetesRequester) -> std::net::SocketAddr {
    common::serve(LogHandler::new(requester, Duration::from_secs(120))).await
}

async fn fetch(addr: std::net::SocketAddr, query: &str) -> Vec<Message> {
    let (response, mut lines) = get(addr, &format!("/system/logs?{query}")).await;
    assert_eq!(response.status(), 200, "{query}");
    lines.messages().await
}

/// The status and body of a request that fails before its response starts.
async fn failure(addr: std::net::SocketAddr, query: &str) -> (u16, String) {
    get_whole(addr, &format!("/system/logs?{query}")).await
}

fn kubectl(test: &str) -> bool {
    let present = Command::new("kubectl")
        .args(["version", "--client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    needs(test, present, "kubectl is not installed")
}

/// A time `ms` milliseconds after a fixed start.
fn at(ms: i64) -> DateTime<Utc> {
    base() + chrono::Duration::milliseconds(ms)
}

/// Three replicas of `f` with `per_pod` lines each, interleaved in time: line `n` of pod
/// `k` is written at `3n + k` ms.
fn three_replicas(emulator: &Emulator, function: &str, per_pod: i64) -> Vec<Message> {
    emulator.add_deployment(NS, function);
    let mut all = Vec::new();
    for k in 0..3 {
        let pod = format!("{function}-7d4b9c-{k}");
        emulator.add_pod(NS, function, &pod);
        let lines: Vec<(DateTime<Utc>, String)> = (0..per_pod)
            .map(|n| (at(3 * n + k), format!("{pod} line {n}")))
            .collect();
        for (time, text) in &lines {
            all.push(
                Message::new(function, *time, text.clone())
                    .with_namespace(NS)
                    .with_instance(pod.as_str()),
            );
        }
        emulator.write_at(NS, &pod, function, lines);
    }
    all.sort_by_key(|m| m.timestamp);
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lists_watches_and_reads_logs_from_the_emulator() {
    if !kubectl("kubectl judges the emulator") {
        return;
    }
    let emulator = Emulator::start().await;
    let dir = tempdir("kubectl");
    let config = emulator.kubeconfig(&dir);
    emulator.add_deployment(NS, "hello");
    emulator.add_pod(NS, "hello", "hello-1");
    emulator.add_pod(NS, "other", "other-1");
    let lines: Vec<(DateTime<Utc>, String)> = (0..20)
        .map(|n| (at(n * 1000), format!("line {n}")))
        .collect();
    emulator.write_at(NS, "hello-1", "hello", lines.clone());
    let run = |args: &[&str]| {
        let output = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };

    let listed: serde_json::Value = serde_json::from_str(&run(&[
        "get",
        "pods",
        "-l",
        "faas_function=hello",
        "-o",
        "json",
    ]))
    .unwrap();
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hello-1"]);
    assert_eq!(
        listed["items"][0]["metadata"]["labels"]["faas_function"],
        "hello"
    );

    let tail = run(&["logs", "--timestamps", "--tail=3", "hello-1"]);
    let expected: String = lines[17..]
        .iter()
        .map(|(t, text)| {
            format!(
                "{} {text}\n",
                t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
            )
        })
        .collect();
    assert_eq!(tail, expected);
    let since = run(&[
        "logs",
        &format!("--since-time={}", at(18_000).to_rfc3339()),
        "hello-1",
    ]);
    assert_eq!(since, "line 18\nline 19\n");
    assert_eq!(run(&["logs", "--limit-bytes=10", "hello-1"]), "line 0\nlin");
    emulator.restart(NS, "hello-1", "hello");
    emulator.write(NS, "hello-1", "hello", &["after the restart"]);
    assert_eq!(run(&["logs", "hello-1"]), "after the restart\n");
    let previous = run(&["logs", "--previous", "hello-1"]);
    assert_eq!(previous.lines().count(), 20);
    assert!(previous.starts_with("line 0\nline 1\n"), "{previous}");

    // A follow: the tail, the lines written while it runs, and its end when the pod goes.
    let mut follow = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&config)
        .args(["logs", "--timestamps", "--tail=1", "-f", "hello-1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = tokio::io::BufReader::new(follow.stdout.take().unwrap());
    let mut line = String::new();
    use tokio::io::AsyncBufReadExt;
    within(out.read_line(&mut line)).await.unwrap();
    assert!(line.ends_with(" after the restart\n"), "{line}");
    emulator.write(NS, "hello-1", "hello", &["live 1", "live 2"]);
    for want in ["live 1", "live 2"] {
        line.clear();
        within(out.read_line(&mut line)).await.unwrap();
        assert!(line.ends_with(&format!(" {want}\n")), "{line}");
    }
    emulator.delete_pod(NS, "hello-1");
    line.clear();
    assert_eq!(within(out.read_line(&mut line)).await.unwrap(), 0, "{line}");
    assert!(within(follow.wait()).await.unwrap().success());

    // A watch: a pod added and one deleted, as events.
    let mut watch = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&config)
        .args([
            "get",
            "pods",
            "-w",
            "--output-watch-events",
            "-o",
            "jsonpath={.type} {.object.metadata.name}{\"\\n\"}",
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = tokio::io::BufReader::new(watch.stdout.take().unwrap());
    line.clear();
    within(out.read_line(&mut line)).await.unwrap();
    assert_eq!(line, "ADDED other-1\n");
    emulator.add_pod(NS, "hello", "hello-2");
    line.clear();
    within(out.read_line(&mut line)).await.unwrap();
    assert_eq!(line, "ADDED hello-2\n");
    emulator.delete_pod(NS, "other-1");
    line.clear();
    within(out.read_line(&mut line)).await.unwrap();
    assert_eq!(line, "DELETED other-1\n");
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("faas-logs-k8s-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_is_the_newest_n_across_replicas_and_history_is_merged_by_time() {
    let emulator = Emulator::start().await;
    let all = three_replicas(&emulator, "hello", 1000);
    let addr = serve(KubernetesRequester::new(client(&emulator))).await;

    // faas-netes' fault: tail sent to each pod gives up to 3×N lines, unsorted.
    let got = fetch(addr, "name=hello&tail=10").await;
    assert_eq!(got, newest(&all, 10));
    assert!(got.iter().all(|m| m.namespace.as_str() == NS));

    // No tail, no since: everything, not the last five minutes, in time order.
    let got = fetch(addr, "name=hello").await;
    assert_eq!(got.len(), 3000);
    assert_eq!(got, all);

    // since, and since with tail.
    let since = at(2400).to_rfc3339();
    let after: Vec<Message> = all
        .iter()
        .filter(|m| m.timestamp >= at(2400))
        .cloned()
        .collect();
    let query = format!("name=hello&since={}", urlencode(&since));
    assert_eq!(fetch(addr, &query).await, after);
    assert_eq!(
        fetch(addr, &format!("{query}&tail=7")).await,
        newest(&after, 7)
    );

    // One instance, with a tail.
    let mine: Vec<Message> = all
        .iter()
        .filter(|m| m.instance.as_str() == "hello-7d4b9c-1")
        .cloned()
        .collect();
    let got = fetch(addr, "name=hello&instance=hello-7d4b9c-1&tail=4").await;
    assert_eq!(got, newest(&mine, 4));
    let (status, body) = failure(addr, "name=hello&instance=hello-nope").await;
    assert_eq!(status, 404, "{body}");

    // Each pod was asked for its own tail, with timestamps, for the function's container.
    let asked = emulator.requests();
    assert!(
        asked.iter().any(|r| r.contains("/pods/hello-7d4b9c-2/log?")
            && r.contains("container=hello")
            && r.contains("tailLines=10")
            && r.contains("timestamps=true")),
        "{asked:?}"
    );
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Reads messages until `done` says the follow has shown enough.
async fn follow_until(lines: &mut Lines, mut done: impl FnMut(&[Message]) -> bool) -> Vec<Message> {
    let mut got = Vec::new();
    while !done(&got) {
        got.push(lines.next_message().await);
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_keeps_every_line_once_while_pods_come_and_go_and_the_watch_expires() {
    let emulator = Emulator::start().await;
    three_replicas(&emulator, "web", 100);
    let addr = serve(KubernetesRequester::new(client(&emulator))).await;
    let (response, mut lines) = get(addr, "/system/logs?name=web&tail=5&follow=true").await;
    assert_eq!(response.status(), 200);
    let history = follow_until(&mut lines, |got| got.len() == 5).await;
    assert!(
        history
            .iter()
            .all(|m| m.text.ends_with(" line 98") || m.text.ends_with(" line 99")),
        "{history:?}"
    );

    // Three replicas write at once; then one is scaled in, one out, and the watch
    // expires; every writer ends with a last line.
    let pods: Vec<String> = (0..3).map(|k| format!("web-7d4b9c-{k}")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = |pod: String, stop: Arc<AtomicBool>, emulator: Emulator| {
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                emulator.write(NS, &pod, "web", &[&format!("{pod} live {n}")]);
                n += 1;
                tokio::task::yield_now().await;
            }
            emulator.write(NS, &pod, "web", &[&format!("{pod} last {n}")]);
            n
        })
    };
    let mut writers: Vec<_> = pods
        .iter()
        .map(|pod| writer(pod.clone(), Arc::clone(&stop), emulator.clone()))
        .collect();
    let mut seen: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut lasts: BTreeMap<String, usize> = BTreeMap::new();
    let record = |m: &Message,
                  seen: &mut BTreeMap<String, Vec<usize>>,
                  lasts: &mut BTreeMap<String, usize>| {
        let (pod, rest) = m.text.split_once(' ').unwrap();
        assert_eq!(pod, m.instance.as_str());
        if let Some(n) = rest.strip_prefix("last ") {
            lasts.insert(pod.to_owned(), n.parse().unwrap());
        } else if let Some(n) = rest.strip_prefix("live ") {
            seen.entry(pod.to_owned())
                .or_default()
                .push(n.parse().unwrap());
        } else {
            panic!("a history line after history: {}", m.text);
        }
    };
    for _ in 0..300 {
        let m = lines.next_message().await;
        record(&m, &mut seen, &mut lasts);
    }
    // Scaled out: a fourth pod; scaled in: the first, deleted once its writer is done.
    emulator.add_pod(NS, "web", "web-7d4b9c-3");
    writers.push(writer(
        "web-7d4b9c-3".into(),
        Arc::clone(&stop),
        emulator.clone(),
    ));
    emulator.expire_watches();
    for _ in 0..300 {
        let m = lines.next_message().await;
        record(&m, &mut seen, &mut lasts);
    }
    stop.store(true, Ordering::SeqCst);
    let mut totals = Vec::new();
    for w in writers {
        totals.push(w.await.unwrap());
    }
    emulator.delete_pod(NS, "web-7d4b9c-0");
    // After the expiry, a fifth pod is noticed too.
    emulator.add_pod(NS, "web", "web-7d4b9c-4");
    emulator.write(NS, "web-7d4b9c-4", "web", &["web-7d4b9c-4 last 0"]);
    while lasts.len() < 5 {
        let m = lines.next_message().await;
        record(&m, &mut seen, &mut lasts);
    }
    for (k, total) in totals.iter().enumerate() {
        let pod = format!("web-7d4b9c-{k}");
        let numbers = seen.get(&pod).cloned().unwrap_or_default();
        assert_eq!(
            numbers,
            (0..*total).collect::<Vec<_>>(),
            "{pod}: each line once, in order"
        );
        assert_eq!(lasts[&pod], *total);
    }
    // Nothing more: no line is repeated once the pods are quiet.
    emulator.write(NS, "web-7d4b9c-1", "web", &["web-7d4b9c-1 last 999999"]);
    let m = lines.next_message().await;
    assert_eq!(m.text, "web-7d4b9c-1 last 999999");
    // The watch was listed again after its 410.
    let relisted = emulator
        .requests()
        .iter()
        .filter(|r| {
            r.starts_with("/api/v1/namespaces/openfaas-fn/pods?") && !r.contains("watch=true")
        })
        .count();
    assert!(relisted >= 2, "{:?}", emulator.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_container_is_followed_and_its_previous_log_is_shown_when_asked() {
    let emulator = Emulator::start().await;
    emulator.add_deployment(NS, "crashy");
    emulator.add_pod(NS, "crashy", "crashy-1");
    emulator.write(NS, "crashy-1", "crashy", &["first run 1", "first run 2"]);
    let addr = serve(KubernetesRequester::new(client(&emulator))).await;
    // The restart falls between the follow's history and its live read: the rest of
    // the first run is then only in the previous log.
    emulator.hold_follows(true);
    let (response, mut lines) = get(addr, "/system/logs?name=crashy&follow=true").await;
    assert_eq!(response.status(), 200);
    let got = follow_until(&mut lines, |got| got.len() == 2).await;
    assert_eq!(texts(&got), ["first run 1", "first run 2"]);
    emulator.write(NS, "crashy-1", "crashy", &["first run 3"]);
    emulator.restart(NS, "crashy-1", "crashy");
    emulator.write(NS, "crashy-1", "crashy", &["second run 1"]);
    emulator.hold_follows(false);
    let got = follow_until(&mut lines, |got| got.len() == 2).await;
    assert_eq!(texts(&got), ["first run 3", "second run 1"]);
    // A restart during the live read.
    emulator.write(NS, "crashy-1", "crashy", &["second run 2"]);
    emulator.restart(NS, "crashy-1", "crashy");
    emulator.write(NS, "crashy-1", "crashy", &["third run 1"]);
    let got = follow_until(&mut lines, |got| got.len() == 2).await;
    assert_eq!(texts(&got), ["second run 2", "third run 1"]);

    // History: the current run; with previous, the run before too, marked.
    emulator.restart(NS, "crashy-1", "crashy");
    emulator.write(NS, "crashy-1", "crashy", &["fourth run 1"]);
    assert_eq!(texts(&fetch(addr, "name=crashy").await), ["fourth run 1"]);
    drop(lines);
    emulator.hold_follows(false);
    let with_previous =
        serve(KubernetesRequester::new(client(&emulator)).with_previous(true)).await;
    let got = fetch(with_previous, "name=crashy").await;
    let shown: Vec<(String, String)> = got
        .iter()
        .map(|m| (m.instance.to_string(), m.text.clone()))
        .collect();
    let pair = |i: &str, t: &str| (i.to_owned(), t.to_owned());
    assert_eq!(
        shown,
        [
            pair("crashy-1 (previous)", "third run 1"),
            pair("crashy-1", "fourth run 1"),
        ]
    );
    let got = fetch(with_previous, "name=crashy&instance=crashy-1&tail=1").await;
    assert_eq!(texts(&got), ["fourth run 1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaled_to_zero_is_empty_and_a_follow_waits_for_a_pod_while_unknown_is_404() {
    let emulator = Emulator::start().await;
    emulator.add_deployment(NS, "idle");
    let requester = KubernetesRequester::new(client(&emulator));
    let addr = serve(requester.clone()).await;
    assert!(fetch(addr, "name=idle").await.is_empty());
    let (status, body) = failure(addr, "name=ghost").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("ghost"), "{body}");
    let (status, _) = failure(addr, "name=ghost&follow=true").await;
    assert_eq!(status, 404);

    let (response, mut lines) = get(addr, "/system/logs?name=idle&follow=true").await;
    assert_eq!(response.status(), 200);
    // Scaled up: a pod that waits to start, then starts and writes.
    emulator.add_pod_with(NS, "idle-1", &[("faas_function", "idle")], &["idle"], false);
    emulator.start_pod(NS, "idle-1");
    emulator.write(NS, "idle-1", "idle", &["up"]);
    let m = lines.next_message().await;
    assert_eq!(
        (m.instance.as_str(), m.text.as_str(), m.namespace.as_str()),
        ("idle-1", "up", NS)
    );

    // The function list: from the Deployments' labels; in the default namespace alone
    // when listing across namespaces is refused.
    emulator.add_deployment("staging", "billing");
    let names = |list: Vec<faas_logs::FunctionName>| -> Vec<String> {
        list.into_iter()
            .map(|f| format!("{}/{}", f.namespace, f.name))
            .collect()
    };
    let all = requester.functions().await.unwrap().unwrap();
    assert_eq!(names(all), ["openfaas-fn/idle", "staging/billing"]);
    emulator.forbid("list", "deployments", "*");
    let here = requester.functions().await.unwrap().unwrap();
    assert_eq!(names(here), ["openfaas-fn/idle"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_what_to_grant_and_an_unreachable_server_is_a_503() {
    let emulator = Emulator::start().await;
    three_replicas(&emulator, "locked", 3);
    emulator.add_pod_with(
        NS,
        "two-1",
        &[("faas_function", "two")],
        &["sidecar", "app"],
        true,
    );
    emulator.add_pod_with(NS, "solo-1", &[("faas_function", "solo")], &["main"], true);
    emulator.write(NS, "solo-1", "main", &["from the only container"]);
    let addr = serve(KubernetesRequester::new(client(&emulator))).await;

    // The pod's only container, whatever its name; two containers and none named like
    // the function: a clear error, not the API's 400 or a 422.
    assert_eq!(
        texts(&fetch(addr, "name=solo").await),
        ["from the only container"]
    );
    let (status, body) = failure(addr, "name=two").await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("sidecar, app") && body.contains("none is named two"),
        "{body}"
    );

    // Refused before the first line: the status says so, naming what to grant.
    emulator.forbid("get", "pods/log", NS);
    for query in [
        "name=locked",
        "name=locked&tail=1",
        "name=locked&follow=true",
    ] {
        let (status, body) = failure(addr, query).await;
        assert_eq!(status, 500, "{body}");
        assert!(
            body.contains("RBAC") && body.contains("\\\"get\\\" on \\\"pods/log\\\""),
            "{body}"
        );
    }
    emulator.forbid("list", "pods", NS);
    for query in ["name=locked", "name=locked&follow=true"] {
        let (status, body) = failure(addr, query).await;
        assert_eq!(status, 500, "{body}");
        assert!(
            body.contains("RBAC") && body.contains("\\\"list\\\" on \\\"pods\\\""),
            "{body}"
        );
    }

    // Nothing listening: 503, for history and follow.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let config = kube::Config::new(format!("http://{closed}").parse().unwrap());
    let nowhere = serve(KubernetesRequester::new(Client::try_from(config).unwrap())).await;
    for query in ["name=hello", "name=hello&follow=true"] {
        let (status, body) = failure(nowhere, query).await;
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("cannot be reached"), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_binary_reads_a_kubeconfig_and_lists_functions() {
    let emulator = Emulator::start().await;
    emulator.require_token("emulated-token");
    three_replicas(&emulator, "hello", 10);
    let dir = tempdir("binary");
    let config = emulator.kubeconfig(&dir);
    let provider = Provider::start(
        "kubernetes",
        &[
            "--listen",
            "127.0.0.1:0",
            "--kubeconfig",
            config.to_str().unwrap(),
        ],
    );
    let got = fetch(provider.addr, "name=hello&tail=4").await;
    assert_eq!(got.len(), 4);
    assert!(got.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    let (status, body) = get_whole(provider.addr, faas_logs::server::FUNCTIONS_PATH).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"hello\""), "{body}");
    // The viewer, as every provider binary serves it.
    let (status, page) = get_whole(provider.addr, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("<html"), "{page}");
    // A follow holds one pod watch and one log stream per pod, and lets them go.
    let Some(python) = crate::common::python("the Kubernetes metrics") else {
        return;
    };
    let open = |watches: f64, streams: f64| {
        crate::metrics::scrape_until(&python, provider.addr, move |s| {
            s.value("faas_logs_kubernetes_watches", &[]) == watches
                && s.value("faas_logs_kubernetes_log_streams", &[]) == streams
        })
    };
    let (response, mut lines) =
        get(provider.addr, "/system/logs?name=hello&tail=1&follow=true").await;
    assert_eq!(response.status(), 200);
    lines.next_message().await;
    open(1.0, 3.0).await;
    drop(lines);
    open(0.0, 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_whose_api_server_dies_is_broken_not_ended() {
    let emulator = Emulator::start().await;
    three_replicas(&emulator, "fragile", 2);
    let addr = serve(KubernetesRequester::new(client(&emulator))).await;
    let (response, mut lines) = get(addr, "/system/logs?name=fragile&tail=1&follow=true").await;
    assert_eq!(response.status(), 200);
    lines.next_message().await;
    emulator.write(NS, "fragile-7d4b9c-1", "fragile", &["live"]);
    assert_eq!(lines.next_message().await.text, "live");
    emulator.kill();
    let end = lines.next().await;
    assert!(end.is_err(), "not broken off: {end:?}");
}

/// The files a pod's service account has, where every in-cluster client reads them.
const SERVICE_ACCOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_pod_the_provider_uses_its_service_account_over_tls() {
    let dir = std::path::Path::new(SERVICE_ACCOUNT);
    // Made here and removed after: never where a real one is.
    let writable = !std::path::Path::new("/var/run/secrets/kubernetes.io").exists()
        && std::fs::create_dir_all(dir).is_ok()
        && std::fs::write(dir.join("namespace"), NS).is_ok();
    if !needs(
        "the in-cluster configuration",
        writable,
        "no service account folder could be made (it needs root, and no real one may be there)",
    ) {
        return;
    }
    struct Cleanup;
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all("/var/run/secrets/kubernetes.io");
        }
    }
    let _cleanup = Cleanup;
    // An API server on TLS whose certificate, for 127.0.0.1, is the service account's CA.
    let (pem, acceptor) = self_signed_tls("127.0.0.1");
    std::fs::write(dir.join("ca.crt"), pem).unwrap();
    std::fs::write(dir.join("token"), "service-account-token").unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let emulator = Emulator::unbound(tcp.local_addr().unwrap());
    emulator.require_token("service-account-token");
    let served = emulator.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = tcp.accept().await {
            let (acceptor, served) = (acceptor.clone(), served.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    served.connection(hyper_util::rt::TokioIo::new(tls)).await;
                }
            });
        }
    });
    three_replicas(&emulator, "incluster", 5);
    let home = tempdir("incluster-home");
    let port = emulator.addr.port().to_string();
    let provider = Provider::start_env(
        "kubernetes",
        &["--listen", "127.0.0.1:0"],
        &[],
        Stdio::null(),
        &[
            ("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
            ("KUBERNETES_SERVICE_PORT", &port),
            // No kubeconfig to find first.
            ("HOME", home.to_str().unwrap()),
            ("KUBECONFIG", ""),
        ],
    );
    let got = fetch(provider.addr, "name=incluster&tail=2").await;
    assert_eq!(
        texts(&got),
        ["incluster-7d4b9c-1 line 4", "incluster-7d4b9c-2 line 4"]
    );
    assert!(emulator
        .requests()
        .iter()
        .any(|r| r.contains("/pods/incluster-7d4b9c-0/log?")));
}

/// `tail: Some(0)` (no history; code alone can ask for it: the query string's `tail=0`
/// is the whole history) over the `Requester` trait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_with_no_history_shows_only_what_is_written_after_it_asked() {
    use futures::StreamExt;
    let emulator = Emulator::start().await;
    three_replicas(&emulator, "zero", 50);
    let requester = KubernetesRequester::new(client(&emulator));
    // Lines written once history is over but before the live reads open are live.
    emulator.hold_follows(true);
    let mut request = faas_logs::Request::new("zero");
    request.tail = Some(0);
    request.follow = true;
    let mut stream = requester.query(request).await.unwrap();
    assert_eq!(
        within(stream.next()).await.unwrap().unwrap(),
        faas_logs::Event::HistoryEnd
    );
    for k in 0..3 {
        let pod = format!("zero-7d4b9c-{k}");
        emulator.write(NS, &pod, "zero", &[&format!("{pod} after")]);
    }
    emulator.hold_follows(false);
    let mut got = Vec::new();
    while got.len() < 3 {
        match within(stream.next()).await.unwrap().unwrap() {
            faas_logs::Event::Message(m) => got.push(m.text),
            other => panic!("{other:?}"),
        }
    }
    got.sort();
    assert_eq!(
        got,
        [
            "zero-7d4b9c-0 after",
            "zero-7d4b9c-1 after",
            "zero-7d4b9c-2 after"
        ]
    );
}
