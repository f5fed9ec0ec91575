//! `GET /metrics` of `faas-logs serve`, scraped while clients push and follow, and read
//! with Prometheus' own Python client's text parser (tests/python/scrape.py).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::common::{self, get, get_narrow, within, Provider};

/// One sample of a scrape, as the parser read it.
#[derive(Debug, serde::Deserialize)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// One metric family: its type and help text.
#[derive(Debug, serde::Deserialize)]
struct Family {
    family: String,
    #[serde(rename = "type")]
    kind: String,
    help: String,
}

/// A scrape, parsed.
pub(crate) struct Scrape {
    samples: Vec<Sample>,
    families: Vec<Family>,
}

impl Scrape {
    /// The value of the sample `name` with exactly these `labels` (0 when absent: a
    /// counter not yet moved is not written).
    pub(crate) fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == labels)
            .map_or(0.0, |s| s.value)
    }

    fn family(&self, name: &str) -> &Family {
        self.families
            .iter()
            .find(|f| f.family == name)
            .unwrap_or_else(|| panic!("no family {name} in the scrape"))
    }
}

/// Parses a scrape's text with prometheus_client; panics with the parser's error when
/// it refuses the text.
async fn parse(python: &std::path::Path, text: &str) -> Scrape {
    use tokio::io::AsyncWriteExt;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/scrape.py");
    let mut child = tokio::process::Command::new(python)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the parser ends within a minute")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the parser refused:\n{stderr}\n{text}"
    );
    let mut scrape = Scrape {
        samples: Vec::new(),
        families: Vec::new(),
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        if line.starts_with("{\"family\"") {
            scrape.families.push(serde_json::from_str(line).unwrap());
        } else {
            scrape.samples.push(serde_json::from_str(line).unwrap());
        }
    }
    scrape
}

/// `GET /metrics` on `addr`, with `login` when given: the status and the parsed text.
pub(crate) async fn scrape(
    python: &std::path::Path,
    addr: SocketAddr,
    login: Option<(&str, &str)>,
) -> Scrape {
    let mut request = reqwest::Client::new().get(format!("http://{addr}/metrics"));
    if let Some((user, password)) = login {
        request = request.basic_auth(user, Some(password));
    }
    let response = within(request.send()).await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    parse(python, &response.text().await.unwrap()).await
}

/// The last line pushed.
const LAST: &str = "from otlp";

/// Scrapes `addr` again until `holds` holds of what it reads, within the tests' budget.
pub(crate) async fn scrape_until(
    python: &std::path::Path,
    addr: SocketAddr,
    holds: impl Fn(&Scrape) -> bool,
) {
    within(async {
        while !holds(&scrape(python, addr, None).await) {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

/// What a follower received up to [`LAST`]: lines, bytes (with their newlines), and the
/// gap lines among them with the lines each said were lost.
#[derive(Default)]
struct Received {
    lines: u64,
    bytes: u64,
    gaps: Vec<u64>,
}

impl Received {
    fn count(&mut self, line: &str) -> faas_logs::Message {
        self.lines += 1;
        self.bytes += line.len() as u64 + 1;
        let message: faas_logs::Message = serde_json::from_str(line).unwrap();
        if let Some(rest) = message.text.strip_prefix("[faas-logs] ") {
            self.gaps
                .push(rest.split(' ').next().unwrap().parse().unwrap());
        }
        message
    }
}

/// Reads a follower up to [`LAST`]; `received` holds what came before. The follower is
/// handed back open.
async fn read_to_last(
    mut lines: common::Lines,
    mut received: Received,
) -> (Received, common::Lines) {
    loop {
        let line = lines.next().await.expect("no error").expect("no end");
        if received.count(&line).text == LAST {
            return (received, lines);
        }
    }
}

fn push_body(pusher: usize, lines: usize, bad: usize) -> String {
    use std::fmt::Write;
    let mut body = String::new();
    for i in 0..lines {
        let line = format!("line {pusher}-{i}");
        let _ = writeln!(
            body,
            r#"{{"name":"f","instance":"p{pusher}","text":"{line}"}}"#
        );
    }
    for _ in 0..bad {
        body.push_str("{\"name\":\"../etc\",\"text\":\"refused\"}\n");
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_as_clients_push_follow_and_fall_behind() {
    let Some(python) = crate::common::python("counters_move_as_clients_push_follow") else {
        return;
    };
    const PUSHERS: usize = 4;
    const LINES: usize = 10_000;
    const BAD: usize = 2;
    // A ring of 50 lines, which 40,000 pushed lines overrun: followers fall behind.
    let provider = Provider::start(
        "memory",
        &[
            "--listen",
            "127.0.0.1:0",
            "--run",
            "idle=true",
            "--max-lines",
            "50",
        ],
    );
    let addr = provider.addr;
    let before = scrape(&python, addr, None).await;
    let client = reqwest::Client::new();
    let push = |body: String| {
        let client = client.clone();
        async move {
            let url = format!("http://{addr}/system/logs/push");
            within(client.post(url).body(body).send())
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(push(push_body(9, 1, 0)).await, 200);
    let (missing, _) = get(addr, "/system/logs?name=nope").await;
    assert_eq!(missing.status(), 404);

    // Three followers that read as lines come, one on a narrow window that stops
    // reading after its first line.
    let mut followers = Vec::new();
    for _ in 0..3 {
        let (response, mut lines) = get(addr, "/system/logs?name=f&follow=true").await;
        assert_eq!(response.status(), 200);
        let first = within(lines.next()).await.unwrap().unwrap();
        followers.push((first, lines));
    }
    let (response, mut stalled) = get_narrow(addr, "/system/logs?name=f&follow=true").await;
    assert_eq!(response.status(), 200);
    let stalled_first = within(stalled.next()).await.unwrap().unwrap();
    let open = scrape(&python, addr, None).await;
    assert_eq!(open.value("faas_logs_follow_streams", &[]), 4.0);
    assert_eq!(open.family("faas_logs_follow_streams").kind, "gauge");

    let readers: Vec<_> = followers
        .into_iter()
        .map(|(first, lines)| {
            let mut received = Received::default();
            received.count(&first);
            tokio::spawn(read_to_last(lines, received))
        })
        .collect();
    let pushes: Vec<_> = (0..PUSHERS)
        .map(|p| tokio::spawn(push(push_body(p, LINES, BAD))))
        .collect();
    for pushed in pushes {
        assert_eq!(pushed.await.unwrap(), 422, "each push holds refused lines");
    }
    // An OTLP/JSON export: one record stored, one without a function name refused.
    let otlp = serde_json::json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "f"}}]},
        "scopeLogs": [{"logRecords": [
            {"body": {"stringValue": LAST}},
        ]}]
    }, {
        "scopeLogs": [{"logRecords": [{"body": {"stringValue": "nameless"}}]}]
    }]});
    let exported = client
        .post(format!("http://{addr}/v1/logs"))
        .json(&otlp)
        .send()
        .await
        .unwrap();
    assert_eq!(exported.status(), 200);

    // The stalled follower reads again: what it missed comes as gaps. Every follower
    // reads up to the last line; nothing comes after it.
    let mut received = Received::default();
    received.count(&stalled_first);
    let (received, stalled) = within(read_to_last(stalled, received)).await;
    let mut received = vec![received];
    let mut open_followers = vec![stalled];
    for reader in readers {
        let (r, lines) = within(reader).await.unwrap();
        received.push(r);
        open_followers.push(lines);
    }
    assert!(
        !received[0].gaps.is_empty(),
        "the stalled follower fell behind 40,000 lines in a ring of 50"
    );

    let after = scrape(&python, addr, None).await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    let total = |f: fn(&Received) -> u64| received.iter().map(f).sum::<u64>() as f64;
    assert_eq!(after.value("faas_logs_follow_streams", &[]), 4.0);
    assert_eq!(
        delta("faas_logs_served_lines_total", &[]),
        total(|r| r.lines)
    );
    assert_eq!(
        delta("faas_logs_served_bytes_total", &[]),
        total(|r| r.bytes)
    );
    let gaps = received.iter().map(|r| r.gaps.len() as u64).sum::<u64>() as f64;
    let lost = received.iter().flat_map(|r| &r.gaps).sum::<u64>() as f64;
    assert_eq!(delta("faas_logs_gaps_total", &[]), gaps);
    assert_eq!(delta("faas_logs_gap_lines_total", &[]), lost);
    let pushed = (PUSHERS * LINES + 1) as f64;
    assert_eq!(
        delta("faas_logs_pushed_lines_total", &[("via", "ndjson")]),
        pushed
    );
    assert_eq!(
        delta("faas_logs_pushed_lines_total", &[("via", "otlp")]),
        1.0
    );
    let refused = |via| {
        delta(
            "faas_logs_refused_lines_total",
            &[("via", via), ("reason", "invalid")],
        )
    };
    assert_eq!(refused("ndjson"), (PUSHERS * BAD) as f64);
    assert_eq!(refused("otlp"), 1.0);
    let requests = |route, status| {
        delta(
            "faas_logs_http_requests_total",
            &[("route", route), ("status", status)],
        )
    };
    assert_eq!(requests("/system/logs/push", "200"), 1.0);
    assert_eq!(requests("/system/logs/push", "422"), PUSHERS as f64);
    assert_eq!(requests("/system/logs", "404"), 1.0);
    assert_eq!(requests("/system/logs", "200"), 4.0);
    assert_eq!(requests("/v1/logs", "200"), 1.0);
    // The scrapes before this one.
    assert_eq!(
        after.value(
            "faas_logs_http_requests_total",
            &[("route", "/metrics"), ("status", "200")]
        ),
        2.0
    );
    // The store: `idle` and `f`, whose ring holds its newest 50 lines of the 40,002.
    assert_eq!(after.value("faas_logs_store_functions", &[]), 2.0);
    assert_eq!(after.value("faas_logs_store_lines", &[]), 50.0);
    assert_eq!(
        after.value("faas_logs_store_evicted_lines_total", &[]),
        pushed + 1.0 - 50.0
    );
    assert!(after.value("faas_logs_store_bytes", &[]) > 0.0);
    assert_eq!(
        after.value("faas_logs_backend_errors_total", &[("kind", "other")]),
        0.0
    );
    for (family, kind) in [
        ("faas_logs_served_lines", "counter"),
        ("faas_logs_http_requests", "counter"),
        ("faas_logs_store_bytes", "gauge"),
        ("faas_logs_refused_lines", "counter"),
    ] {
        let family = after.family(family);
        assert_eq!(family.kind, kind, "{family:?}");
        assert!(!family.help.is_empty(), "{family:?} has its help text");
    }
    // Followers that leave are no longer counted.
    drop(open_followers);
    scrape_until(&python, addr, |s| {
        s.value("faas_logs_follow_streams", &[]) == 0.0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_behind_basic_auth_or_on_their_own_address_and_count_backend_errors() {
    use std::io::BufRead;
    let Some(python) = crate::common::python("metrics_are_behind_basic_auth") else {
        return;
    };
    let secrets = std::env::temp_dir().join(format!("faas-logs-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("basic-auth-user"), "admin\n").unwrap();
    std::fs::write(secrets.join("basic-auth-password"), "s3cret\n").unwrap();
    // A journald provider whose journalctl is missing: every read is a 503.
    let mut provider = Provider::start(
        "journald",
        &[
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--basic-auth",
            "--secret-mount-path",
            secrets.to_str().unwrap(),
            "--journalctl",
            "/nonexistent/journalctl",
        ],
    );
    std::fs::remove_dir_all(&secrets).unwrap();
    let mut line = String::new();
    provider.stdout.read_line(&mut line).unwrap();
    let metrics_addr: SocketAddr = line
        .trim()
        .strip_prefix("metrics on http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected line {line:?}"));
    let addr = provider.addr;
    let client = reqwest::Client::new();

    let denied = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let before = scrape(&python, addr, Some(("admin", "s3cret"))).await;
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let request = client
                .get(format!("http://{addr}/system/logs?name=f"))
                .basic_auth("admin", Some("s3cret"));
            tokio::spawn(async move { within(request.send()).await.unwrap().status() })
        })
        .collect();
    for reader in readers {
        assert_eq!(reader.await.unwrap(), 503);
    }
    // The metrics address wants no login, and answers nothing but /metrics.
    let after = scrape(&python, metrics_addr, None).await;
    let elsewhere = client
        .get(format!("http://{metrics_addr}/system/logs?name=f"))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 404);
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    assert_eq!(
        delta("faas_logs_backend_errors_total", &[("kind", "unavailable")]),
        3.0
    );
    let requests = |route, status| {
        after.value(
            "faas_logs_http_requests_total",
            &[("route", route), ("status", status)],
        )
    };
    assert_eq!(requests("/system/logs", "503"), 3.0);
    assert_eq!(requests("/metrics", "401"), 1.0);
    assert_eq!(
        requests("/metrics", "200"),
        1.0,
        "the scrape on the main address"
    );
}
