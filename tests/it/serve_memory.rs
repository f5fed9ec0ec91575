//! `faas-logs serve`, the memory provider, end to end: the demo function, commands run as
//! functions, pushed logs, and shutdown; over real HTTP on 127.0.0.1.

use crate::common;

use std::collections::BTreeSet;
use std::io::BufRead;

use common::*;
use http_body_util::BodyExt;

#[tokio::test]
async fn without_commands_the_demo_function_has_logs_at_once() {
    let mut example = Provider::start("memory", &["--listen", "127.0.0.1:0"]);
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
    let example = Provider::start(
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
        instance = m.instance.to_string();
        texts.insert((m.text, m.stream));
    }
    // stdout and stderr are separate pipes: their relative order is the OS's. Each
    // line says which it came from.
    use faas_logs::OutputStream::{Stderr, Stdout};
    assert_eq!(
        texts,
        BTreeSet::from([
            ("one".into(), Some(Stdout)),
            ("two".into(), Some(Stderr)),
            ("no newline".into(), Some(Stdout))
        ])
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
    let example = Provider::start(
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
    use tokio::io::AsyncWriteExt;
    let log = std::env::temp_dir().join(format!("faas-logs-ctrl-c-{}.log", std::process::id()));
    let example = Provider::start_with(
        "memory",
        &["--listen", "127.0.0.1:0", "--run", "idle=sleep 600"],
        &[],
        std::fs::File::create(&log).unwrap().into(),
    );
    let (response, mut lines) = get(example.addr, "/system/logs?name=idle&follow=true").await;
    assert_eq!(response.status(), 200);
    // Connections that have not said which HTTP they speak do not hold the shutdown up.
    let _silent = tokio::net::TcpStream::connect(example.addr).await.unwrap();
    let mut undecided = tokio::net::TcpStream::connect(example.addr).await.unwrap();
    undecided.write_all(b"PRI * HTTP/2.0").await.unwrap();
    example.interrupt();
    assert_eq!(lines.rest().await.unwrap(), Vec::<String>::new());
    assert!(example.exits_cleanly().await);
    let said = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    assert!(said.contains("shutting down"), "{said}");
    assert!(!said.contains("did not close"), "{said}");
}

/// The lines of a response body that is JSON, not NDJSON.
async fn json_body(response: hyper::Response<hyper::body::Incoming>) -> serde_json::Value {
    let body = within(response.into_body().collect()).await.unwrap();
    serde_json::from_slice(&body.to_bytes()).unwrap()
}

#[tokio::test]
async fn a_pushed_text_loses_its_line_ending_whichever_it_is() {
    let example = Provider::start("memory", &["--listen", "127.0.0.1:0"]);
    let body = [
        r#"{"name":"ends","text":"dos\r\n"}"#,
        r#"{"name":"ends","text":"unix\n"}"#,
        r#"{"name":"ends","text":"bare\r"}"#,
        r#"{"name":"ends","text":"inner\r\nkept"}"#,
    ]
    .join("\n");
    let mut conn = Connection::open(example.addr).await;
    let response = conn
        .send("POST", "/system/logs/push", body.as_bytes())
        .await;
    assert_eq!(response.status(), 200);
    let (_, mut lines) = get(example.addr, "/system/logs?name=ends").await;
    assert_eq!(
        texts(&lines.messages().await),
        ["dos", "unix", "bare", "inner\r\nkept"]
    );
}

#[tokio::test]
async fn the_store_keeps_its_total_bound_by_evicting_the_oldest_lines_store_wide() {
    let example = Provider::start(
        "memory",
        &["--listen", "127.0.0.1:0", "--max-total-bytes", "200000"],
    );
    let mut conn = Connection::open(example.addr).await;
    let text = "x".repeat(400);
    for f in 0..10 {
        let body: Vec<String> = (0..100)
            .map(|i| format!(r#"{{"name":"f{f}","instance":"{i}","text":"{text}"}}"#))
            .collect();
        let response = conn
            .send("POST", "/system/logs/push", body.join("\n").as_bytes())
            .await;
        assert_eq!(response.status(), 200);
    }
    let mut kept = Vec::new();
    for f in 0..10 {
        let (_, mut lines) = get(example.addr, &format!("/system/logs?name=f{f}")).await;
        kept.push(lines.messages().await.len());
    }
    // The newest function whole, the oldest gone, nothing kept past the bound: each line
    // counts a little over 400 bytes, so 200,000 bytes hold fewer than 500 of them.
    assert_eq!(kept[9], 100, "{kept:?}");
    assert_eq!(kept[0], 0, "{kept:?}");
    let total: usize = kept.iter().sum();
    assert!((200..500).contains(&total), "{kept:?}");
    // Evicted oldest first: counts never fall from an older function to a newer one.
    assert!(kept.windows(2).all(|w| w[0] <= w[1]), "{kept:?}");
}

#[tokio::test]
async fn max_functions_sets_how_many_functions_the_store_keeps() {
    let example = Provider::start(
        "memory",
        &["--listen", "127.0.0.1:0", "--max-functions", "3000"],
    );
    let addr = example.addr;
    // Four clients push lines of 2,999 functions at once (the default keeps 1,024);
    // with the built-in demo function the store then holds 3,000.
    let functions: Vec<usize> = (0..2999).collect();
    let batches: Vec<Vec<usize>> = functions.chunks(250).map(<[usize]>::to_vec).collect();
    let pushes = (0..4).map(|client| {
        let mine: Vec<Vec<usize>> = batches.iter().skip(client).step_by(4).cloned().collect();
        async move {
            let mut conn = Connection::open(addr).await;
            for batch in mine {
                let body: Vec<String> = batch
                    .iter()
                    .map(|f| format!(r#"{{"name":"f{f}","text":"line of f{f}"}}"#))
                    .collect();
                let response = conn
                    .send("POST", "/system/logs/push", body.join("\n").as_bytes())
                    .await;
                let status = response.status();
                let body = within(response.into_body().collect())
                    .await
                    .unwrap()
                    .to_bytes();
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            }
        }
    });
    futures::future::join_all(pushes).await;
    // One more function is refused, with its reason, and the others keep their lines.
    let mut conn = Connection::open(addr).await;
    let response = conn
        .send(
            "POST",
            "/system/logs/push",
            br#"{"name":"one-too-many","text":"x"}"#,
        )
        .await;
    assert_eq!(response.status(), 422);
    let body = within(response.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    let report = String::from_utf8_lossy(&body);
    assert!(report.contains("3000 functions"), "{report}");
    for f in [0, 1499, 2998] {
        let (_, mut lines) = get(addr, &format!("/system/logs?name=f{f}")).await;
        assert_eq!(texts(&lines.messages().await), [format!("line of f{f}")]);
    }
}

#[tokio::test]
async fn a_push_of_many_bad_lines_lists_the_first_hundred_and_counts_the_rest() {
    let example = Provider::start("memory", &["--listen", "127.0.0.1:0"]);
    let body = vec!["not json"; 100_000].join("\n");
    let mut conn = Connection::open(example.addr).await;
    let response = conn
        .send("POST", "/system/logs/push", body.as_bytes())
        .await;
    assert_eq!(response.status(), 422);
    let report = json_body(response).await;
    assert_eq!(report["accepted"], 0);
    assert_eq!(report["rejected"].as_array().unwrap().len(), 100);
    assert_eq!(report["rejected"][99]["line"], 100);
    assert_eq!(report["more_rejected"], 99_900);
}

#[tokio::test]
async fn basic_auth_guards_the_log_endpoint_and_the_push_but_not_healthz() {
    let example = Provider::start_behind_login("memory");
    let good = [LOGIN];
    let bad = [("authorization", "Basic YWRtaW46d3Jvbmc=")]; // admin:wrong
    let push = br#"{"name":"guarded","text":"in"}"#;
    let mut conn = Connection::open(example.addr).await;
    for headers in [&[][..], &bad[..]] {
        let response = conn
            .send_with("POST", "/system/logs/push", headers, push)
            .await;
        assert_eq!(response.status(), 401);
        assert!(response.headers().contains_key("www-authenticate"));
        json_body(response).await;
        for path in ["/system/logs?name=demo", "/", "/system/logs/functions"] {
            let response = conn.send_with("GET", path, headers, b"").await;
            assert_eq!(response.status(), 401, "{path}");
            json_body(response).await;
        }
    }
    // The viewer and its function list are behind the same login.
    let response = conn.send_with("GET", "/", &good, b"").await;
    assert_eq!(response.status(), 200);
    let page = within(response.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&page[..], faas_logs::server::VIEWER_HTML.as_bytes());
    let response = conn
        .send_with("GET", "/system/logs/functions", &good, b"")
        .await;
    assert_eq!(response.status(), 200);
    let listed = json_body(response).await;
    assert_eq!(listed["functions"][0]["name"], "demo", "{listed}");
    let response = conn
        .send_with("POST", "/system/logs/push", &good, push)
        .await;
    assert_eq!(response.status(), 200);
    json_body(response).await;
    let response = conn
        .send_with("GET", "/system/logs?name=guarded", &good, b"")
        .await;
    assert_eq!(response.status(), 200);
    let body = within(response.into_body().collect()).await.unwrap();
    let text = String::from_utf8(body.to_bytes().to_vec()).unwrap();
    assert_eq!(
        text.lines().count(),
        1,
        "only the authorised push is stored"
    );
    let response = conn.send("GET", "/healthz", b"").await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn slow_clients_are_cut_off_at_the_header_and_body_deadlines() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let example = Provider::start(
        "memory",
        &[
            "--listen",
            "127.0.0.1:0",
            "--header-timeout",
            "1",
            "--body-timeout",
            "1",
        ],
    );
    // Headers that never finish: the server closes the connection.
    let mut slow = tokio::net::TcpStream::connect(example.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = within(slow.read_to_end(&mut answer)).await;
    assert!(!String::from_utf8_lossy(&answer).contains("200 OK"));
    // Nothing at all, or HTTP/2's preface begun and never finished: closed as well.
    for first in [&b""[..], b"PRI * HTTP/2"] {
        let mut silent = tokio::net::TcpStream::connect(example.addr).await.unwrap();
        silent.write_all(first).await.unwrap();
        // Closed with unread bytes, the connection may end in a reset: either will do.
        let mut answer = Vec::new();
        let _ = within(silent.read_to_end(&mut answer)).await;
        assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    }

    // A chunked push whose body never ends: answered 408, nothing stored.
    let mut slow = tokio::net::TcpStream::connect(example.addr).await.unwrap();
    let head = "POST /system/logs/push HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    let chunk = r#"{"name":"slow","text":"never stored"}"#;
    let start = format!("{head}{:x}\r\n{chunk}\n\r\n", chunk.len() + 1);
    slow.write_all(start.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    within(async {
        let mut buf = [0u8; 1024];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = slow.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed without an answer");
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(
        answer.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let (response, _) = get(example.addr, "/system/logs?name=slow").await;
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn out_of_file_descriptors_the_provider_backs_off_and_recovers() {
    let mut example = Provider::start_with(
        "memory",
        &["--listen", "127.0.0.1:0"],
        &["prlimit", "--nofile=48:48", "--"],
        std::process::Stdio::piped(),
    );
    let stderr = example.child.stderr.take().unwrap();
    let (tx, mut log) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Idle connections until the provider has no descriptor left to accept with.
    let mut idle = Vec::new();
    for _ in 0..80 {
        idle.push(tokio::net::TcpStream::connect(example.addr).await.unwrap());
    }
    within(async {
        while let Some(line) = log.recv().await {
            if line.contains("accept failed") {
                return;
            }
        }
        panic!("the provider exited");
    })
    .await;
    // Let the episode last: a loop that retried at once would write thousands of
    // warnings in this time.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let mut warnings = 0;
    while let Ok(line) = log.try_recv() {
        warnings += usize::from(line.contains("accept failed"));
    }
    assert_eq!(warnings, 0, "one warning per episode");
    drop(idle);
    let mut conn = Connection::open(example.addr).await;
    assert_eq!(conn.send("GET", "/healthz", b"").await.status(), 200);
    within(async {
        while let Some(line) = log.recv().await {
            if line.contains("accepting connections again") {
                return;
            }
        }
    })
    .await;
}

/// Follows the flooding function of `example` on a narrow window, reads its first line,
/// stops reading for `stall`, then reads the rest: the lines, and how the body ended.
async fn stalled_follower(example: &Provider, stall: std::time::Duration) -> (Vec<String>, bool) {
    let (response, mut lines) =
        get_narrow(example.addr, "/system/logs?name=flood&follow=true").await;
    assert_eq!(response.status(), 200);
    let mut got = vec![lines.next().await.unwrap().unwrap()];
    // The scenario: a client that does not read for a while.
    tokio::time::sleep(stall).await;
    loop {
        match lines.next().await {
            Ok(Some(line)) => got.push(line),
            Ok(None) => return (got, true),
            Err(_) => return (got, false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_reads_late_gets_its_lines_and_a_clean_end_within_the_write_timeout() {
    let flood = ["--listen", "127.0.0.1:0", "--run", "flood=yes hello"];
    // The deadline passes while the client does not read; it reads within the write
    // timeout: every line queued for it, then the final chunk.
    let example = Provider::start(
        "memory",
        &[&flood[..], &["--timeout", "1", "--write-timeout", "30"]].concat(),
    );
    let (lines, clean) = stalled_follower(&example, std::time::Duration::from_secs(3)).await;
    assert!(clean, "a clean end after {} lines", lines.len());
    for line in &lines {
        let message: faas_logs::Message = serde_json::from_str(line).unwrap();
        assert!(
            message.text == "hello" || message.text.starts_with("[faas-logs] "),
            "{line}"
        );
    }
    // A client that reads nothing for longer than the write timeout loses the
    // connection, and sees a broken body, well before the deadline.
    let example = Provider::start(
        "memory",
        &[&flood[..], &["--timeout", "60", "--write-timeout", "1"]].concat(),
    );
    let started = std::time::Instant::now();
    let (_, clean) = stalled_follower(&example, std::time::Duration::from_secs(3)).await;
    assert!(
        !clean,
        "the connection was closed under the stalled follower"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_push_over_the_bound_always_gets_its_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let example = Provider::start(
        "memory",
        &[
            "--listen",
            "127.0.0.1:0",
            "--max-push-bytes",
            "1024",
            "--run",
            "idle=true",
        ],
    );
    let line = "{\"name\":\"f\",\"text\":\"x\"}\n";
    let chunk = format!("{:x}\r\n{}\r\n", line.len() * 2048, line.repeat(2048));
    let head = "POST /system/logs/push HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    // A hundred pushes of 3 MiB, each on a connection of its own, as a simple client
    // sends them: the whole body, then the answer. The server must take the body (not
    // reset the connection under it) and answer 413.
    for attempt in 0..100 {
        let mut tcp = tokio::net::TcpStream::connect(example.addr).await.unwrap();
        let sent = within(async {
            tcp.write_all(head.as_bytes()).await?;
            for _ in 0..64 {
                tcp.write_all(chunk.as_bytes()).await?;
            }
            tcp.write_all(b"0\r\n\r\n").await
        })
        .await;
        assert!(
            sent.is_ok(),
            "push {attempt}: the body could not be sent: {sent:?}"
        );
        let mut answer = Vec::new();
        let read = within(async {
            let mut buf = [0u8; 4096];
            while !answer.ends_with(b"}") {
                match tcp.read(&mut buf).await? {
                    0 => break,
                    n => answer.extend_from_slice(&buf[..n]),
                }
            }
            Ok::<_, std::io::Error>(())
        })
        .await;
        let text = String::from_utf8_lossy(&answer);
        assert!(read.is_ok(), "push {attempt}: {read:?} after {text:?}");
        assert!(text.starts_with("HTTP/1.1 413"), "push {attempt}: {text:?}");
        assert!(
            text.contains("larger than 1024 bytes"),
            "push {attempt}: {text:?}"
        );
    }
}

#[test]
fn a_busy_port_is_named_in_a_sentence_that_says_what_to_do() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_faas-logs"))
        .args(["serve", "--listen", &address])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(
        said.contains(&format!("cannot listen on {address}")),
        "{said}"
    );
    assert!(said.contains("--listen"), "{said}");
    assert!(!stderr.contains("Os {"), "no debug dump: {stderr}");
}

#[tokio::test]
async fn the_provider_serves_http2_with_prior_knowledge_and_http1_whatever_its_first_packet() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let example = Provider::start("memory", &["--listen", "127.0.0.1:0"]);
    let addr = example.addr;
    // Four HTTP/1 pushes at once, each sending its first byte alone: "P" may begin
    // HTTP/2's preface ("PRI * HTTP/2.0"), so the server must wait for more to choose.
    let pushes = (0..4).map(|i| async move {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let body = format!(r#"{{"name":"split","instance":"c-{i}","text":"line {i}"}}"#);
        let request = format!(
            "POST /system/logs/push HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        tcp.write_all(&request.as_bytes()[..1]).await.unwrap();
        // No event tells when the server has looked at the lone byte: a pause lets it.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        tcp.write_all(&request.as_bytes()[1..]).await.unwrap();
        let mut answer = Vec::new();
        within(tcp.read_to_end(&mut answer)).await.unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    });
    for answer in futures::future::join_all(pushes).await {
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    // An HTTP/2 client that knows the server speaks it reads them back.
    let response = get_http2(addr, "/system/logs?name=split").await;
    assert_eq!(response.status(), 200);
    let body = within(response.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    let mut texts: Vec<String> = String::from_utf8_lossy(&body)
        .lines()
        .map(|l| serde_json::from_str::<faas_logs::Message>(l).unwrap().text)
        .collect();
    texts.sort();
    assert_eq!(texts, ["line 0", "line 1", "line 2", "line 3"]);
}
