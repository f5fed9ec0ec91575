//! The journald backend against a real journald: history semantics on 100,000 lines,
//! follow exactly once while writers write, rotation and vacuum during a follow, faasd's
//! identifiers and priorities, bytes that are not UTF-8, a 1 MiB line, no `journalctl`
//! left behind, the 503s, Docker's `journald` log driver, and `faas-logs collect` run
//! by containerd.
//!
//! Each test that can starts a journald of its own, in a journal namespace
//! (`systemd-journald NS`, read with `journalctl --namespace=NS`), so tests neither see
//! each other's lines nor disturb each other when they rotate, vacuum or kill it. What
//! only writes to the system journal (`systemd-cat`, Docker's driver) uses the journald
//! that `.ci/run` starts. Without journald, a failure in CI and a visible skip elsewhere.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use faas_logs::journald::{JournalWriter, JournaldRequester, Priority, JOURNAL_SOCKET};
use faas_logs::server::LogHandler;
use faas_logs::{Message, OutputStream, Requester};

const JOURNALD: &str = "/lib/systemd/systemd-journald";

/// How long anything a test waits for may take on a loaded machine.
const BUDGET: Duration = Duration::from_secs(60);

fn journal_tools(test: &str) -> bool {
    let present = Path::new(JOURNALD).exists()
        && Command::new("journalctl")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    common::needs(
        test,
        present,
        "systemd-journald and journalctl are not installed",
    )
}

fn system_journal(test: &str) -> bool {
    journal_tools(test)
        && common::needs(
            test,
            Path::new(JOURNAL_SOCKET).exists(),
            "the system journald is not running",
        )
}

/// A name no other test or run uses.
fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}{}x{n}x{nanos:x}", std::process::id())
}

/// Polls `done` until it holds, within [`BUDGET`].
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < BUDGET, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A journald of a test's own: a journal namespace, killed and its files removed when
/// dropped.
struct Journal {
    namespace: String,
    child: Option<Child>,
}

impl Journal {
    fn start() -> Journal {
        let mut journal = Journal {
            namespace: unique("fl"),
            child: None,
        };
        journal.restart();
        journal
    }

    fn restart(&mut self) {
        let child = Command::new(JOURNALD)
            .arg(&self.namespace)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("systemd-journald starts");
        self.child = Some(child);
        // It listens once its socket is there and a write is taken.
        let mut writer = self.writer();
        wait_until("journald's socket", || {
            writer
                .send(b"up", Priority::Info, &[("SYSLOG_IDENTIFIER", b"test:up")])
                .is_ok()
        });
    }

    /// kill -9.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn socket(&self) -> PathBuf {
        PathBuf::from(format!("/run/systemd/journal.{}/socket", self.namespace))
    }

    fn arg(&self) -> String {
        format!("--namespace={}", self.namespace)
    }

    fn writer(&self) -> JournalWriter {
        JournalWriter::new(self.socket())
    }

    fn requester(&self) -> JournaldRequester {
        JournaldRequester::new().with_args([self.arg()])
    }

    /// Waits until journalctl shows `last` as the last line of `identifier`.
    fn wait_for_last(&self, identifier: &str, last: &str) {
        wait_until(&format!("{last:?} in the journal"), || {
            let out = Command::new("journalctl")
                .args([&self.arg(), "--no-pager", "-o", "cat", "-n", "1"])
                .arg(format!("--identifier={identifier}"))
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim_end() == last
        });
    }

    fn journalctl(&self, args: &[&str]) {
        let status = Command::new("journalctl")
            .arg(self.arg())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "journalctl {args:?}");
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.kill();
        let machine = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
        let machine = machine.trim();
        for dir in [
            format!("/run/systemd/journal.{}", self.namespace),
            format!("/run/log/journal/{machine}.{}", self.namespace),
            format!("/var/log/journal/{machine}.{}", self.namespace),
        ] {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Writes `text` as a line of `<namespace>:<name>` from `instance` (`CONTAINER_ID`).
fn write(writer: &mut JournalWriter, identifier: &str, instance: &str, text: &str) {
    writer
        .send(
            text.as_bytes(),
            Priority::Info,
            &[
                ("SYSLOG_IDENTIFIER", identifier.as_bytes()),
                ("CONTAINER_ID", instance.as_bytes()),
            ],
        )
        .expect("journald takes the line");
}

async fn serve(requester: JournaldRequester) -> std::net::SocketAddr {
    common::serve(LogHandler::new(requester, Duration::from_secs(120))).await
}

async fn fetch(addr: std::net::SocketAddr, query: &str) -> Vec<Message> {
    let (response, mut lines) = get(addr, &format!("/system/logs?{query}")).await;
    assert_eq!(response.status(), 200, "{query}");
    lines.messages().await
}

/// Fetches `query` until it answers at least `n` lines (lines written to the system
/// journal by another program arrive when journald has read them), within [`BUDGET`].
async fn fetch_at_least(addr: std::net::SocketAddr, query: &str, n: usize) -> Vec<Message> {
    let start = Instant::now();
    loop {
        let got = fetch(addr, query).await;
        if got.len() >= n {
            return got;
        }
        assert!(
            start.elapsed() < BUDGET,
            "{n} lines did not come through: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn texts_of(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.text.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_since_and_instance_hold_on_a_journal_of_100000_lines() {
    if !journal_tools("journald history") {
        return;
    }
    let journal = Journal::start();
    let name = unique("hist");
    let identifier = format!("openfaas-fn:{name}");
    let total = 100_000;
    let mut writer = journal.writer();
    let mut other = journal.writer();
    for n in 0..total {
        write(
            &mut writer,
            &identifier,
            &format!("i{}", n % 3),
            &format!("line {n}"),
        );
        if n % 10 == 0 {
            // Another function's lines between, which no answer may hold.
            write(&mut other, "openfaas-fn:other", "i0", &format!("other {n}"));
        }
    }
    journal.wait_for_last(&identifier, &format!("line {}", total - 1));
    let addr = serve(journal.requester()).await;
    let q = |extra: &str| format!("name={name}{extra}");

    let all = fetch(addr, &q("")).await;
    let expected: Vec<String> = (0..total).map(|n| format!("line {n}")).collect();
    assert_eq!(
        texts_of(&all),
        expected,
        "the whole history, in order, not five minutes"
    );
    assert!(all.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    assert!(all
        .iter()
        .all(|m| m.namespace == "openfaas-fn" && m.name == *name));
    assert_eq!(all[4].instance, "i1");

    let tail = fetch(addr, &q("&tail=100")).await;
    assert_eq!(
        tail,
        all[all.len() - 100..],
        "the newest 100 across instances"
    );

    let of = |instance: &str| -> Vec<Message> {
        all.iter()
            .filter(|m| m.instance == instance)
            .cloned()
            .collect()
    };
    let i1 = fetch(addr, &q("&instance=i1")).await;
    assert_eq!(i1, of("i1"));
    let i2_tail = fetch(addr, &q("&instance=i2&tail=250")).await;
    let i2 = of("i2");
    assert_eq!(i2_tail, i2[i2.len() - 250..]);

    let since = all[60_000].timestamp;
    let since_arg = since.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let after: Vec<Message> = all
        .iter()
        .filter(|m| m.timestamp >= since)
        .cloned()
        .collect();
    let got = fetch(addr, &q(&format!("&since={since_arg}"))).await;
    assert_eq!(got, after);
    let got = fetch(addr, &q(&format!("&since={since_arg}&tail=50"))).await;
    assert_eq!(got, after[after.len() - 50..]);

    let none = fetch(addr, "name=nosuchfunction").await;
    assert!(none.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_opened_while_three_writers_write_gets_each_line_once() {
    if !journal_tools("journald follow") {
        return;
    }
    let journal = Journal::start();
    let name = unique("follow");
    let identifier = format!("openfaas-fn:{name}");
    // A history of 100,000 lines under the tail the follow asks for.
    let mut filler = journal.writer();
    for n in 0..100_000 {
        write(&mut filler, &identifier, "old", &format!("old {n}"));
    }
    journal.wait_for_last(&identifier, "old 99999");
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (stop, written) = (Arc::clone(&stop), Arc::clone(&written));
            let mut writer = journal.writer();
            let identifier = identifier.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    write(
                        &mut writer,
                        &identifier,
                        &format!("w{w}"),
                        &format!("w{w} {n}"),
                    );
                    written.fetch_add(1, Ordering::SeqCst);
                    n += 1;
                }
                write(
                    &mut writer,
                    &identifier,
                    &format!("w{w}"),
                    &format!("w{w} last {n}"),
                );
                n
            })
        })
        .collect();
    wait_until("the writers to be writing", || {
        written.load(Ordering::SeqCst) > 3000
    });
    let addr = serve(journal.requester()).await;
    let (response, mut lines) = get(
        addr,
        &format!("/system/logs?name={name}&tail=5&follow=true"),
    )
    .await;
    assert_eq!(response.status(), 200);
    let mut seen: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut lasts = BTreeMap::new();
    let mut count = 0;
    while lasts.len() < 3 {
        let m = lines.next_message().await;
        count += 1;
        if count == 3000 {
            stop.store(true, Ordering::SeqCst);
        }
        let (writer, rest) = m.text.split_once(' ').unwrap();
        if writer == "old" {
            // Only the tail's five can be history's, and only before any writer's line.
            assert!(
                seen.is_empty() && rest.parse::<usize>().unwrap() >= 99_995,
                "{}",
                m.text
            );
            continue;
        }
        match rest.strip_prefix("last ") {
            Some(n) => {
                lasts.insert(writer.to_owned(), n.parse::<usize>().unwrap());
            }
            None => seen
                .entry(writer.to_owned())
                .or_default()
                .push(rest.parse().unwrap()),
        }
    }
    let totals: Vec<usize> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    for (w, total) in totals.iter().enumerate() {
        let key = format!("w{w}");
        let numbers = seen.get(&key).cloned().unwrap_or_default();
        let first = numbers.first().copied().unwrap_or(*total);
        let expected: Vec<usize> = (first..*total).collect();
        assert_eq!(
            numbers, expected,
            "{key}: every line from the first seen, once, in order"
        );
        assert_eq!(lasts[&key], *total);
    }
    assert!(count > 3000, "lines were live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_and_vacuum_during_a_follow_lose_nothing_and_end_nothing() {
    if !journal_tools("journald rotation") {
        return;
    }
    let journal = Journal::start();
    let name = unique("rot");
    let identifier = format!("openfaas-fn:{name}");
    let mut writer = journal.writer();
    write(&mut writer, &identifier, "a", "before");
    journal.wait_for_last(&identifier, "before");
    let addr = serve(journal.requester()).await;
    let (response, mut lines) = get(addr, &format!("/system/logs?name={name}&follow=true")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(lines.next_message().await.text, "before");
    let mut expected = 0;
    for (round, action) in [&["--rotate"][..], &["--vacuum-files=1"], &["--rotate"]]
        .into_iter()
        .enumerate()
    {
        for n in 0..200 {
            write(&mut writer, &identifier, "a", &format!("{round} {n}"));
        }
        for n in 0..200 {
            assert_eq!(lines.next_message().await.text, format!("{round} {n}"));
            expected += 1;
        }
        journal.journalctl(action);
    }
    write(&mut writer, &identifier, "a", "after");
    assert_eq!(lines.next_message().await.text, "after");
    assert_eq!(expected, 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_whose_journalctl_dies_is_aborted_not_ended() {
    if !journal_tools("journald follow abort") {
        return;
    }
    let journal = Journal::start();
    let name = unique("dies");
    let addr = serve(journal.requester()).await;
    let (response, mut lines) = get(addr, &format!("/system/logs?name={name}&follow=true")).await;
    assert_eq!(response.status(), 200);
    // Written as the follow starts: a quiet function's line still comes.
    let mut writer = journal.writer();
    write(&mut writer, &format!("openfaas-fn:{name}"), "a", "one");
    assert_eq!(lines.next_message().await.text, "one");
    let followers = journalctls(&journal.namespace);
    assert_eq!(followers.len(), 1, "one journalctl follows");
    Command::new("kill")
        .args(["-9", &followers[0].to_string()])
        .status()
        .unwrap();
    let end = lines.next().await;
    assert!(end.is_err(), "the body breaks off: {end:?}");
}

/// The pids and command lines of the `journalctl` processes reading namespace
/// `namespace`.
fn journalctl_commands(namespace: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).into_owned();
        if cmdline.contains("journalctl") && cmdline.contains(&format!("--namespace={namespace}")) {
            found.push((pid, cmdline));
        }
    }
    found
}

/// The pids of the `journalctl` processes reading namespace `namespace`.
fn journalctls(namespace: &str) -> Vec<u32> {
    journalctl_commands(namespace)
        .into_iter()
        .map(|(pid, _)| pid)
        .collect()
}

/// `journalctl` children of this process that died and were not waited for.
fn zombie_journalctls() -> usize {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            // pid (comm) state ppid ...
            let Some((_, after)) = stat.rsplit_once(')') else {
                return false;
            };
            let fields: Vec<&str> = after.split_whitespace().collect();
            stat.contains("(journalctl)")
                && fields.first() == Some(&"Z")
                && fields.get(1) == Some(&me.as_str())
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_journalctl_outlives_its_response() {
    if !journal_tools("journald processes") {
        return;
    }
    let journal = Journal::start();
    let name = unique("procs");
    let mut writer = journal.writer();
    for n in 0..20_000 {
        write(
            &mut writer,
            &format!("openfaas-fn:{name}"),
            "a",
            &format!("{n}"),
        );
    }
    journal.wait_for_last(&format!("openfaas-fn:{name}"), "19999");
    let addr = serve(journal.requester()).await;
    let mut open = Vec::new();
    for i in 0..12 {
        let query = match i % 3 {
            0 => format!("/system/logs?name={name}&follow=true&tail=1"),
            1 => format!("/system/logs?name={name}"),
            _ => format!("/system/logs?name={name}&follow=true"),
        };
        let (response, mut lines) = get(addr, &query).await;
        assert_eq!(response.status(), 200);
        lines.next_message().await;
        open.push(lines);
    }
    assert!(!journalctls(&journal.namespace).is_empty());
    // Clients that leave mid-history and mid-follow.
    drop(open);
    // And one that reads to the end.
    assert_eq!(fetch(addr, &format!("name={name}&tail=3")).await.len(), 3);
    wait_until("every journalctl to be gone", || {
        journalctls(&journal.namespace).is_empty() && zombie_journalctls() == 0
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journalctl_missing_or_the_journal_unreadable_is_a_503_that_says_so() {
    let addr = serve(JournaldRequester::new().with_journalctl("/nonexistent/journalctl")).await;
    let (status, body) = get_whole(addr, "/system/logs?name=figlet").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("/nonexistent/journalctl") && body.contains("not found"),
        "{body}"
    );
    if !journal_tools("journald unreadable") {
        return;
    }
    let addr =
        serve(JournaldRequester::new().with_args(["--directory=/nonexistent-journal"])).await;
    for query in ["name=figlet", "name=figlet&follow=true"] {
        let (status, body) = get_whole(addr, &format!("/system/logs?{query}")).await;
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("/nonexistent-journal"), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faasd_identifiers_priorities_bytes_and_a_line_of_1_mib() {
    if !system_journal("journald faasd lines") {
        return;
    }
    // As faasd's collect writes them: systemd-cat, stdout at info, stderr at err.
    let name = unique("faasd");
    let identifier = format!("openfaas-fn:{name}");
    for (priority, text) in [
        ("info", "out"),
        ("err", "err"),
        ("crit", "crit"),
        ("warning", "warn"),
        ("debug", "debug"),
    ] {
        let status = Command::new("systemd-cat")
            .args(["-t", &identifier, "-p", priority, "echo", text])
            .status()
            .unwrap();
        assert!(status.success());
    }
    // systemd-cat's lines come over stream connections, which journald reads in its own
    // time: in before the native ones below, so that the order asserted is the order sent.
    let addr = serve(JournaldRequester::new()).await;
    fetch_at_least(addr, &format!("name={name}"), 5).await;
    let mut system = JournalWriter::new(JOURNAL_SOCKET);
    system
        .send(
            b"caf\xe9 \xff",
            Priority::Info,
            &[("SYSLOG_IDENTIFIER", identifier.as_bytes())],
        )
        .unwrap();
    let big: String = (0..1 << 20)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    system
        .send(
            big.as_bytes(),
            Priority::Err,
            &[("SYSLOG_IDENTIFIER", identifier.as_bytes())],
        )
        .unwrap();
    system
        .send(
            b"two\nlines",
            Priority::Info,
            &[("SYSLOG_IDENTIFIER", identifier.as_bytes())],
        )
        .unwrap();
    let got = fetch_at_least(addr, &format!("name={name}"), 8).await;
    let streams: Vec<(&str, Option<OutputStream>)> =
        got.iter().map(|m| (m.text.as_str(), m.stream)).collect();
    assert_eq!(
        streams[..5],
        [
            ("out", Some(OutputStream::Stdout)),
            ("err", Some(OutputStream::Stderr)),
            ("crit", Some(OutputStream::Stderr)),
            ("warn", Some(OutputStream::Stdout)),
            ("debug", Some(OutputStream::Stdout)),
        ]
    );
    assert!(
        got[..5].iter().all(|m| m.instance.parse::<u32>().is_ok()),
        "the pid, as faasd"
    );
    assert_eq!(got[5].text, "caf\u{fffd} \u{fffd}");
    assert_eq!(got[6].text.len(), 1 << 20);
    assert!(got[6].text == big, "the 1 MiB line whole");
    assert_eq!(got[6].stream, Some(OutputStream::Stderr));
    assert_eq!(got[7].text, "two\nlines");
    let functions = JournaldRequester::new().functions().await.unwrap().unwrap();
    assert!(functions
        .iter()
        .any(|f| f.namespace == "openfaas-fn" && f.name == name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_binary_serves_a_journal_and_lists_its_functions() {
    if !journal_tools("faas-logs serve journald") {
        return;
    }
    let journal = Journal::start();
    let name = unique("bin");
    let mut writer = journal.writer();
    write(&mut writer, &format!("openfaas-fn:{name}"), "c1", "hello");
    write(&mut writer, &format!("other-ns:{name}"), "c2", "elsewhere");
    write(&mut writer, "not a function", "c3", "ignored");
    journal.wait_for_last(&format!("other-ns:{name}"), "elsewhere");
    let arg = format!("--journal-arg={}", journal.arg());
    let provider = Provider::start("journald", &["--listen", "127.0.0.1:0", &arg]);
    let got = fetch(provider.addr, &format!("name={name}")).await;
    assert_eq!(texts_of(&got), ["hello"]);
    assert_eq!(got[0].instance, "c1");
    let got = fetch(provider.addr, &format!("name={name}&namespace=other-ns")).await;
    assert_eq!(texts_of(&got), ["elsewhere"]);
    let (status, body) = get_whole(provider.addr, faas_logs::server::FUNCTIONS_PATH).await;
    assert_eq!(status, 200);
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    let listed: Vec<(String, String)> = listed["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["namespace"].as_str().unwrap().to_owned(),
                f["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        listed.contains(&("openfaas-fn".to_owned(), name.clone())),
        "{body}"
    );
    assert!(
        listed.contains(&("other-ns".to_owned(), name.clone())),
        "{body}"
    );
    assert!(!body.contains("not a function"), "{body}");

    // A follow holds a journalctl child, counted at /metrics while it runs.
    let Some(python) = crate::common::python("the journald metrics") else {
        return;
    };
    let children = |python: std::path::PathBuf| async move {
        crate::metrics::scrape(&python, provider.addr, None)
            .await
            .value("faas_logs_journald_children", &[])
    };
    let (response, mut lines) = get(
        provider.addr,
        &format!("/system/logs?name={name}&follow=true"),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(lines.next_message().await.text, "hello");
    assert!(children(python.clone()).await >= 1.0);
    drop(lines);
    crate::metrics::scrape_until(&python, provider.addr, |s| {
        s.value("faas_logs_journald_children", &[]) == 0.0
    })
    .await;
}

const CONTAINERD: &str = "/run/docker/containerd/containerd.sock";
const CTR_IMAGE: &str = "docker.io/library/faas-logs-busybox:1";

/// Whether Docker's containerd answers `ctr`; imports the busybox image into its
/// `openfaas-fn` namespace once.
fn containerd(test: &str) -> bool {
    let up = Command::new("ctr")
        .args(["--address", CONTAINERD, "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !common::needs(test, up, "Docker's containerd does not answer ctr") {
        return false;
    }
    static IMPORTED: std::sync::Once = std::sync::Once::new();
    IMPORTED.call_once(|| {
        crate::docker::ensure_image();
        let status = Command::new("sh")
            .args(["-c", &format!("docker save faas-logs-busybox:1 | ctr --address {CONTAINERD} -n openfaas-fn images import -")])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "the image imports into containerd");
    });
    true
}

/// Runs `script` in a busybox container named `id`, its output through `faas-logs
/// collect` with the log URI's query `query`; waits for the container and its driver.
fn ctr_run(id: &str, query: &str, script: &str) {
    let driver = env!("CARGO_BIN_EXE_faas-logs");
    let output = Command::new("ctr")
        .args([
            "--address",
            CONTAINERD,
            "-n",
            "openfaas-fn",
            "run",
            "--rm",
            "--snapshotter",
            "native",
        ])
        .arg(format!("--log-uri=binary://{driver}?collect{query}"))
        .args([CTR_IMAGE, id, "/bin/sh", "-c", script])
        .output()
        .unwrap();
    assert!(output.status.success(), "ctr run: {output:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_run_by_containerd_keeps_streams_partial_and_long_lines() {
    if !journal_tools("faas-logs collect") || !containerd("faas-logs collect") {
        return;
    }
    let journal = Journal::start();
    let id = unique("ctr");
    let query = format!("&--journal-socket={}", journal.socket().display());
    // A line of 2.5 MiB, cut at 1 MiB; stderr; a last line without a newline.
    let script = "echo out; echo err >&2; head -c 2621440 /dev/zero | tr '\\0' x; echo; echo 'é' >&2; printf partial";
    tokio::task::block_in_place(|| ctr_run(&id, &query, script));
    let addr = serve(journal.requester()).await;
    let got = fetch(addr, &format!("name={id}")).await;
    assert!(
        got.iter().all(|m| m.instance == *id),
        "the container id is the instance"
    );
    let of = |stream| -> Vec<&str> {
        got.iter()
            .filter(|m| m.stream == Some(stream))
            .map(|m| m.text.as_str())
            .collect()
    };
    assert_eq!(of(OutputStream::Stderr), ["err", "é"]);
    let out = of(OutputStream::Stdout);
    assert_eq!(out.len(), 5, "out, three pieces, partial");
    assert_eq!((out[0], out[4]), ("out", "partial"));
    assert_eq!(
        out[1..4].iter().map(|p| p.len()).collect::<Vec<_>>(),
        [1 << 20, 1 << 20, 1 << 19]
    );
    assert!(out[1..4].iter().all(|p| p.bytes().all(|b| b == b'x')));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_accounts_for_every_line_of_a_container_writing_100_mb_at_full_speed() {
    if !journal_tools("faas-logs collect 100 MB") || !containerd("faas-logs collect 100 MB") {
        return;
    }
    let journal = Journal::start();
    let id = unique("flood");
    let query = format!("&--journal-socket={}", journal.socket().display());
    // 63 characters and a newline: 1,562,500 lines.
    let line = "x".repeat(63);
    let script = format!("yes {line} | head -c 100000000");
    tokio::task::block_in_place(|| ctr_run(&id, &query, &script));
    let output = Command::new("journalctl")
        .args([&journal.arg(), "--no-pager", "-o", "cat"])
        .arg(format!("--identifier=openfaas-fn:{id}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let (mut kept, mut lost) = (0u64, 0u64);
    for l in text.lines() {
        if l == line {
            kept += 1;
        } else {
            let n = l
                .strip_prefix("faas-logs collect: ")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("an unexpected line {l:?}"));
            lost += n;
        }
    }
    assert_eq!(
        kept + lost,
        1_562_500,
        "every line written or counted as lost ({kept} kept)"
    );
    assert!(kept > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_holds_lines_while_journald_is_down_and_writes_them_when_it_is_back() {
    if !journal_tools("faas-logs collect and a journald restart") {
        return;
    }
    let mut journal = Journal::start();
    let id = unique("down");
    let dir = std::env::temp_dir().join(unique("collect-fifos"));
    std::fs::create_dir_all(&dir).unwrap();
    let (out, err) = (dir.join("out"), dir.join("err"));
    for fifo in [&out, &err] {
        assert!(Command::new("mkfifo").arg(fifo).status().unwrap().success());
    }
    let mut collect = Command::new(env!("CARGO_BIN_EXE_faas-logs"))
        .args([
            "collect",
            "--id",
            &id,
            "--namespace",
            "openfaas-fn",
            "--ready",
            "/nonexistent",
        ])
        .arg(format!("--journal-socket={}", journal.socket().display()))
        .arg(format!("--stdout={}", out.display()))
        .arg(format!("--stderr={}", err.display()))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let identifier = format!("openfaas-fn:{id}");
    let mut stdout = std::fs::OpenOptions::new().write(true).open(&out).unwrap();
    let stderr = std::fs::OpenOptions::new().write(true).open(&err).unwrap();
    let write_lines = |file: &mut std::fs::File, from: usize| {
        let lines: String = (from..from + 100).map(|n| format!("{n}\n")).collect();
        std::io::Write::write_all(file, lines.as_bytes()).unwrap();
    };
    // What collect says, line by line as it says it.
    let (said_tx, said_rx) = std::sync::mpsc::channel();
    let collect_stderr = std::io::BufReader::new(collect.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(collect_stderr) {
            let _ = said_tx.send(line.unwrap_or_default());
        }
    });
    write_lines(&mut stdout, 0);
    journal.wait_for_last(&identifier, "99");
    journal.kill();
    write_lines(&mut stdout, 100);
    // journald comes back only once collect has found it gone: on a loaded machine it
    // could otherwise come back before collect tried it.
    let mut said = String::new();
    while !said.contains("is not taking lines") {
        let line = said_rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("collect never said journald was gone: {said}"));
        said.push_str(&line);
        said.push('\n');
    }
    journal.restart();
    write_lines(&mut stdout, 200);
    drop(stdout);
    drop(stderr);
    let status = collect.wait().unwrap();
    said.extend(said_rx.iter().map(|line| line + "\n"));
    assert!(status.success(), "{said}");
    let addr = serve(journal.requester()).await;
    let got = fetch(addr, &format!("name={id}")).await;
    let expected: Vec<String> = (0..300).map(|n| n.to_string()).collect();
    assert_eq!(texts_of(&got), expected);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_pushes_to_a_provider_when_asked() {
    if !containerd("faas-logs collect --push") {
        return;
    }
    let provider = Provider::start("memory", &["--listen", "127.0.0.1:0"]);
    let id = unique("push");
    let query = format!("&--push=http://{}/system/logs/push", provider.addr);
    tokio::task::block_in_place(|| ctr_run(&id, &query, "echo one; echo two >&2; printf three"));
    let got = fetch(provider.addr, &format!("name={id}")).await;
    let mut lines: Vec<(&str, Option<OutputStream>)> =
        got.iter().map(|m| (m.text.as_str(), m.stream)).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            ("one", Some(OutputStream::Stdout)),
            ("three", Some(OutputStream::Stdout)),
            ("two", Some(OutputStream::Stderr)),
        ]
    );
    assert!(got
        .iter()
        .all(|m| m.instance == *id && m.namespace == "openfaas-fn"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_containers_logging_to_journald_are_read_by_name_and_instance() {
    if !system_journal("Docker's journald driver") {
        return;
    }
    let up = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !common::needs("Docker's journald driver", up, "no Docker engine answers") {
        return;
    }
    crate::docker::ensure_image();
    let name = unique("dj");
    for replica in ["a", "b"] {
        let status = Command::new("docker")
            .args(["run", "--rm", "--network", "none", "--log-driver=journald"])
            .arg(format!("--log-opt=tag=openfaas-fn:{name}"))
            .arg(format!("--name={name}-{replica}"))
            .args(["faas-logs-busybox:1", "sh", "-c"])
            .arg(format!("echo out {replica}; echo err {replica} >&2"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    }
    let addr = serve(JournaldRequester::new()).await;
    let got = fetch_at_least(addr, &format!("name={name}"), 4).await;
    let mut seen: Vec<(String, String, Option<OutputStream>)> = got
        .iter()
        .map(|m| (m.instance.to_string(), m.text.clone(), m.stream))
        .collect();
    seen.sort();
    let a = format!("{name}-a");
    let b = format!("{name}-b");
    assert_eq!(
        seen,
        [
            (a.clone(), "err a".to_owned(), Some(OutputStream::Stderr)),
            (a.clone(), "out a".to_owned(), Some(OutputStream::Stdout)),
            (b.clone(), "err b".to_owned(), Some(OutputStream::Stderr)),
            (b.clone(), "out b".to_owned(), Some(OutputStream::Stdout)),
        ]
    );
    let only_b = fetch(addr, &format!("name={name}&instance={b}")).await;
    assert_eq!(only_b.len(), 2);
    assert!(only_b.iter().all(|m| m.instance == *b));
}

/// The `journalctl --follow` processes reading namespace `namespace`.
fn followers(namespace: &str) -> usize {
    journalctl_commands(namespace)
        .iter()
        .filter(|(_, cmdline)| cmdline.contains("--follow"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_followers_share_one_journalctl_and_each_gets_every_line_once() {
    if !journal_tools("journald many followers") {
        return;
    }
    let journal = Journal::start();
    let name = unique("many");
    let identifier = format!("openfaas-fn:{name}");
    let mut writer = journal.writer();
    write(&mut writer, &identifier, "a", "history");
    journal.wait_for_last(&identifier, "history");
    let addr = serve(journal.requester()).await;
    // More followers than Linux's default 128 inotify instances a user may hold: one
    // journalctl each would refuse some.
    let mut streams = Vec::new();
    for _ in 0..200 {
        let (response, mut lines) =
            get(addr, &format!("/system/logs?name={name}&follow=true")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(lines.next_message().await.text, "history");
        streams.push(lines);
    }
    assert_eq!(
        followers(&journal.namespace),
        1,
        "one journalctl follows for all"
    );
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let mut writer = journal.writer();
            let identifier = identifier.clone();
            std::thread::spawn(move || {
                for n in 0..150 {
                    write(&mut writer, &identifier, "a", &format!("w{w} {n}"));
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let expected = |w: usize| -> Vec<String> { (0..150).map(|n| format!("w{w} {n}")).collect() };
    for lines in &mut streams {
        let mut got: [Vec<String>; 2] = Default::default();
        for _ in 0..300 {
            let text = lines.next_message().await.text;
            let w = usize::from(text.starts_with("w1"));
            got[w].push(text);
        }
        assert_eq!(got, [expected(0), expected(1)]);
    }
    drop(streams);
    wait_until("the shared journalctl to end with its followers", || {
        journalctls(&journal.namespace).is_empty() && zombie_journalctls() == 0
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_follower_left_behind_by_the_others_still_gets_every_line_once() {
    if !journal_tools("journald stalled follower") {
        return;
    }
    let journal = Journal::start();
    let name = unique("stall");
    let identifier = format!("openfaas-fn:{name}");
    let addr = serve(journal.requester()).await;
    let (response, mut stalled) = get(addr, &format!("/system/logs?name={name}&follow=true")).await;
    assert_eq!(response.status(), 200);
    let (_, mut reading) = get(addr, &format!("/system/logs?name={name}&follow=true")).await;
    // Far more than the hub keeps for a follower that does not read.
    let total = 60_000;
    let mut writer = journal.writer();
    for n in 0..total {
        write(&mut writer, &identifier, "a", &format!("{n}"));
    }
    for n in 0..total {
        assert_eq!(reading.next_message().await.text, n.to_string());
    }
    for n in 0..total {
        assert_eq!(stalled.next_message().await.text, n.to_string());
    }
    assert_eq!(
        followers(&journal.namespace),
        2,
        "the stalled follower was left behind and follows on its own"
    );
    write(&mut writer, &identifier, "a", "after");
    assert_eq!(stalled.next_message().await.text, "after");
    assert_eq!(reading.next_message().await.text, "after");
}
