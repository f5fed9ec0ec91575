//! The journald backend and `faas-logs collect`, each against the journal's own tool in
//! the same run, interleaved, medians of 7:
//!
//! - a dump of a function's 100,000 lines through `LogHandler`, against `journalctl
//!   --identifier=... --output=json > /dev/null` alone (and with the requester's own
//!   flags, `--all --output-fields=...`), in a journal of 1,000,000 lines;
//! - `tail=100` of that function, against `journalctl --lines=100` alone;
//! - `faas-logs collect`: 200,000 lines from a pipe into the journal, against
//!   `systemd-cat` of the same lines; the time until the last line is in the journal,
//!   and the time the writer of the pipe took (what a container would feel).
//!
//! The reads run on a journald of their own (a journal namespace), removed at the end;
//! the writes go to the system journal, the only one `systemd-cat` writes to.
//! `cargo bench --features cli --bench journald`

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use faas_logs::journald::{JournalWriter, JournaldRequester, Priority};
use faas_logs::server::LogHandler;

const FUNCTION_LINES: usize = 100_000;
const JOURNAL_LINES: usize = 1_000_000;
const COLLECT_LINES: usize = 200_000;
const ROUNDS: usize = 7;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

struct Journal {
    namespace: String,
    child: Child,
}

impl Journal {
    fn start() -> Journal {
        let namespace = format!("flbench{}", std::process::id());
        let child = Command::new("/lib/systemd/systemd-journald")
            .arg(&namespace)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("systemd-journald starts");
        let journal = Journal { namespace, child };
        let mut writer = journal.writer();
        let started = Instant::now();
        while writer
            .send(b"up", Priority::Info, &[("SYSLOG_IDENTIFIER", b"bench:up")])
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "journald did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        journal
    }

    fn socket(&self) -> String {
        format!("/run/systemd/journal.{}/socket", self.namespace)
    }

    fn writer(&self) -> JournalWriter {
        JournalWriter::new(self.socket())
    }

    fn arg(&self) -> String {
        format!("--namespace={}", self.namespace)
    }

    fn last(&self, identifier: &str) -> String {
        let out = Command::new("journalctl")
            .args([&self.arg(), "--no-pager", "-o", "cat", "-n", "1"])
            .arg(format!("--identifier={identifier}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
    }

    fn wait_for_last(&self, identifier: &str, last: &str) {
        let started = Instant::now();
        while self.last(identifier) != last {
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "{last:?} never came"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// `journalctl` with `args`, its JSON output dropped; its time.
    fn journalctl(&self, args: &[&str]) -> Duration {
        let started = Instant::now();
        let status = Command::new("journalctl")
            .arg(self.arg())
            .args(args)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        started.elapsed()
    }
}

/// Waits until `last` is the newest line of `identifier` in the journal `journal` names.
fn wait_for_last(journal: &[&str], identifier: &str, last: &str) {
    let started = Instant::now();
    loop {
        let out = Command::new("journalctl")
            .args(journal)
            .args(["--no-pager", "-o", "cat", "-n", "1"])
            .arg(format!("--identifier={identifier}"))
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).trim_end() == last {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "{last:?} never came"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let machine = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
        for dir in [
            format!("/run/systemd/journal.{}", self.namespace),
            format!("/run/log/journal/{}.{}", machine.trim(), self.namespace),
            format!("/var/log/journal/{}.{}", machine.trim(), self.namespace),
        ] {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn text(n: usize) -> String {
    format!("GET /function/bench 200 OK - request {n} served in 1.2 ms")
}

fn reading(journal: &Journal) {
    let mut writer = journal.writer();
    for n in 0..JOURNAL_LINES {
        let (identifier, container) = if n % 10 == 0 {
            ("openfaas-fn:dump", format!("dump-{}", n % 3))
        } else {
            ("openfaas-fn:other", format!("other-{}", n % 7))
        };
        writer
            .send(
                text(n).as_bytes(),
                Priority::Info,
                &[
                    ("SYSLOG_IDENTIFIER", identifier.as_bytes()),
                    ("CONTAINER_ID", container.as_bytes()),
                ],
            )
            .unwrap();
    }
    journal.wait_for_last("openfaas-fn:dump", &text(JOURNAL_LINES - 10));

    let runtime = common::server_runtime();
    let handler = LogHandler::new(
        JournaldRequester::new().with_args([journal.arg()]),
        Duration::from_secs(600),
    );
    let addr = runtime.block_on(common::serve(handler));
    let ours = |query: &str, expected: usize| {
        let started = Instant::now();
        // Messages end in `}\n`, which neither the headers nor the chunks' framing hold.
        let (mut lines, mut last) = (0, 0u8);
        common::read_all(addr, &format!("/system/logs?{query}"), |bytes| {
            let mut previous = last;
            for &b in bytes {
                lines += usize::from(previous == b'}' && b == b'\n');
                previous = b;
            }
            last = previous;
        });
        assert_eq!(lines, expected);
        started.elapsed()
    };
    let fields =
        "--output-fields=MESSAGE,PRIORITY,SYSLOG_IDENTIFIER,CONTAINER_NAME,CONTAINER_ID,_PID";
    let mut times: [Vec<Duration>; 5] = Default::default();
    for _ in 0..ROUNDS {
        times[0].push(ours("name=dump", FUNCTION_LINES));
        times[1].push(journal.journalctl(&[
            "--no-pager",
            "--output=json",
            "--identifier=openfaas-fn:dump",
        ]));
        times[2].push(journal.journalctl(&[
            "--no-pager",
            "--output=json",
            "--all",
            fields,
            "--identifier=openfaas-fn:dump",
        ]));
        times[3].push(ours("name=dump&tail=100", 100));
        times[4].push(journal.journalctl(&[
            "--no-pager",
            "--output=json",
            "--lines=100",
            "--identifier=openfaas-fn:dump",
        ]));
    }
    let [ours_dump, alone, alone_flags, ours_tail, tail_alone] = times.map(median);
    let rate = |t: Duration| FUNCTION_LINES as f64 / t.as_secs_f64();
    println!(
        "journald dump, {FUNCTION_LINES} of {JOURNAL_LINES} lines, median of {ROUNDS}: LogHandler {ours_dump:.3?} ({:.0} lines/s); journalctl --output=json alone {alone:.3?} ({:.0} lines/s), so LogHandler runs at {:.2} of its speed; with the requester's flags {alone_flags:.3?} ({:.2})",
        rate(ours_dump),
        rate(alone),
        alone.as_secs_f64() / ours_dump.as_secs_f64(),
        alone_flags.as_secs_f64() / ours_dump.as_secs_f64(),
    );
    println!(
        "journald tail=100 of {FUNCTION_LINES} in {JOURNAL_LINES}, median of {ROUNDS}: LogHandler {ours_tail:.3?} (one journalctl run, history with --lines=100, which reads the newest 100 entries of the function's field index, not its 100,000); journalctl --lines=100 alone {tail_alone:.3?}",
    );
}

/// Feeds `lines` into `stdin` of `command`; the time until the last line is in the
/// journal, and the time the writer took.
fn feed(mut command: Command, identifier: &str, lines: &[u8], last: &str) -> (Duration, Duration) {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(lines).unwrap();
    drop(stdin);
    let written = started.elapsed();
    wait_for_last(&[], identifier, last);
    let stored = started.elapsed();
    assert!(child.wait().unwrap().success());
    (stored, written)
}

/// Into the system journal: `systemd-cat` writes nowhere else.
fn collecting() {
    if !Path::new(faas_logs::journald::JOURNAL_SOCKET).exists() {
        println!("collect: SKIPPED, the system journald is not running (bash .ci/run starts it)");
        return;
    }
    let run = std::process::id();
    let collect = env!("CARGO_BIN_EXE_faas-logs");
    let lines: String = (0..COLLECT_LINES).map(|n| text(n) + "\n").collect();
    let last = text(COLLECT_LINES - 1);
    let mut times: [Vec<Duration>; 4] = Default::default();
    for round in 0..ROUNDS {
        let id = format!("bench-collect-{run}-{round}");
        let mut ours = Command::new(collect);
        ours.args([
            "collect",
            "--id",
            &id,
            "--namespace",
            "openfaas-fn",
            "--stdout=/dev/stdin",
            "--stderr=/dev/null",
            "--ready=/nonexistent",
        ])
        // Enough to hold every line: this measures writing, not dropping.
        .arg("--buffer=268435456");
        let (stored, written) = feed(ours, &format!("openfaas-fn:{id}"), lines.as_bytes(), &last);
        times[0].push(stored);
        times[1].push(written);
        let id = format!("bench-cat-{run}-{round}");
        let mut cat = Command::new("systemd-cat");
        cat.args(["-t", &format!("openfaas-fn:{id}")]);
        let (stored, written) = feed(cat, &format!("openfaas-fn:{id}"), lines.as_bytes(), &last);
        times[2].push(stored);
        times[3].push(written);
    }
    let [ours, ours_written, cat, cat_written] = times.map(median);
    let rate = |t: Duration| COLLECT_LINES as f64 / t.as_secs_f64();
    println!(
        "collect, {COLLECT_LINES} lines into the journal, median of {ROUNDS}: faas-logs collect {ours:.3?} ({:.0} lines/s; the writer done after {ours_written:.3?}); systemd-cat {cat:.3?} ({:.0} lines/s; the writer done after {cat_written:.3?}); ratio {:.2}",
        rate(ours),
        rate(cat),
        cat.as_secs_f64() / ours.as_secs_f64(),
    );
}

fn main() {
    if !Path::new("/lib/systemd/systemd-journald").exists() {
        println!("journald: SKIPPED, systemd-journald is not installed (bash .ci/run installs it)");
        return;
    }
    let only = std::env::var("FAAS_LOGS_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "read" {
        reading(&Journal::start());
    }
    if only.is_empty() || only == "collect" {
        collecting();
    }
}
