//! The `faas-logs` command against real providers on 127.0.0.1: faas-cli's flags, query
//! and output bytes, where the gateway and credentials come from, exit statuses, broken
//! and hostile streams, `--forever`, Ctrl-C, https, merged functions and filters.

use crate::common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use common::*;
use faas_logs::server::LogHandler;
use faas_logs::store::{LogStore, StoreLimits};
use faas_logs::{Error, Event, Message};
use http_body_util::Full;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_faas-logs");

/// A folder of its own for one run: its HOME and working directory.
fn scratch() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("faas-logs-cli-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The command as a user on a fresh machine runs it: no saved login, no stack file, none
/// of the variables it reads, in `dir`.
fn command(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(BIN);
    for var in [
        "OPENFAAS_URL",
        "OPENFAAS_TOKEN",
        "OPENFAAS_USER",
        "OPENFAAS_CONFIG",
        "FAAS_DEBUG",
        "NO_COLOR",
        "CI",
    ] {
        c.env_remove(var);
    }
    c.env("HOME", dir)
        .current_dir(dir)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn text(&self) -> String {
        String::from_utf8(self.stdout.clone()).unwrap()
    }
}

async fn run_in(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = within(command(dir, args, env).output()).await.unwrap();
    Run {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn run(args: &[&str]) -> Run {
    run_in(&scratch(), args, &[]).await
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// A store served with `timeout` on 127.0.0.1.
async fn provider(store: &LogStore, timeout: Duration) -> SocketAddr {
    serve(LogHandler::new(store.clone(), timeout)).await
}

/// The texts faas-cli users meet: every one must come out as faas-cli prints it.
fn hostile_texts() -> Vec<String> {
    vec![
        "plain ascii".into(),
        "ünïcödé 日本語 🎉".into(),
        r#"say "hi" and 'bye'"#.into(),
        r"C:\path\to\file \\ \n literally".into(),
        "<script>alert('&amp;')</script>".into(),
        "line\u{2028}separator\u{2029}paragraph".into(),
        "bell\u{7} escape\u{1b}[31mred\u{1b}[0m nul\u{0} del\u{7f}".into(),
        "tab\there\rcarriage".into(),
        "  leading spaces kept".into(),
        "trailing newlines\n\n".into(),
        String::new(),
        "x".repeat(100 * 1024),
    ]
}

async fn hostile_provider() -> (SocketAddr, Vec<Message>) {
    let store = LogStore::new();
    let at = Utc.with_ymd_and_hms(2024, 2, 7, 15, 4, 5).unwrap();
    for (i, text) in hostile_texts().into_iter().enumerate() {
        let m = Message::new(
            "fmt",
            at + chrono::Duration::microseconds(i as i64 * 123_457),
            text,
        )
        .with_instance(format!("fmt-{}", i % 3));
        store.append(m).unwrap();
    }
    let addr = provider(&store, Duration::from_secs(30)).await;
    // What the provider sends, read as faas-cli reads it.
    let (_, mut lines) = get(addr, "/system/logs?name=fmt").await;
    let sent = lines.messages().await;
    assert_eq!(sent.len(), hostile_texts().len());
    (addr, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_output_format_prints_the_bytes_faas_cli_prints() {
    let (addr, sent) = hostile_provider().await;
    let gateway = url(addr);
    let rfc3339 = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    // Go's RFC3339Nano: nine digits with trailing zeros (and a bare point) trimmed.
    let nano = |t: &DateTime<Utc>| {
        let full = t.to_rfc3339_opts(SecondsFormat::Nanos, false);
        let (seconds, fraction) = full.split_once('.').unwrap();
        let fraction = fraction.trim_end_matches("+00:00").trim_end_matches('0');
        let point = if fraction.is_empty() { "" } else { "." };
        format!("{seconds}{point}{fraction}Z")
    };
    let millis = |t: &DateTime<Utc>| t.format("%H:%M:%S%.3f").to_string();
    let kitchen = |t: &DateTime<Utc>| t.format("%-I:%M%p").to_string();
    let none = |_: &DateTime<Utc>| String::new();
    type Stamp<'a> = &'a dyn Fn(&DateTime<Utc>) -> String;
    let cases: Vec<(Vec<&str>, Stamp, bool, bool, bool)> = vec![
        (vec![], &rfc3339, false, false, false),
        (vec!["--name", "--instance"], &rfc3339, false, true, true),
        (
            vec!["--instance=true", "--name=false"],
            &rfc3339,
            false,
            false,
            true,
        ),
        (vec!["-o", "keyvalue"], &rfc3339, true, false, false),
        (
            vec!["--output=keyvalue", "--name", "--instance"],
            &rfc3339,
            true,
            true,
            true,
        ),
        (vec!["--time-format", ""], &none, false, false, false),
        (
            vec!["--time-format=", "-o", "keyvalue"],
            &none,
            true,
            false,
            false,
        ),
        (
            vec!["--time-format", "rfc3339nano"],
            &nano,
            false,
            false,
            false,
        ),
        (
            vec!["--time-format", "15:04:05.000", "--name"],
            &millis,
            false,
            true,
            false,
        ),
        (
            vec!["--time-format", "Kitchen", "--instance"],
            &kitchen,
            true,
            false,
            true,
        ),
    ];
    for (flags, stamp, keyvalue, name, instance) in cases {
        let mut args = vec!["fmt", "--tail=false", "-g", &gateway];
        args.extend(&flags);
        if keyvalue && !flags.iter().any(|f| f.contains("keyvalue")) {
            args.extend(["-o", "keyvalue"]);
        }
        let got = run(&args).await;
        assert_eq!(got.code, Some(0), "{flags:?}: {}", got.stderr);
        let expected: String = sent
            .iter()
            .map(|m| faas_cli_line(m, &stamp(&m.timestamp), keyvalue, name, instance) + "\n")
            .collect();
        assert!(got.text() == expected, "{flags:?} printed differently");
    }

    // json: each line exactly as the provider sent it, whichever way it is asked for.
    let body = reqwest::get(format!("{gateway}/system/logs?name=fmt"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    for flag in [
        &["-j"][..],
        &["--json"],
        &["-o", "json"],
        &["--output=JSON"],
    ] {
        let mut args = vec!["fmt", "--tail=false", "-g", &gateway, "--name"];
        args.extend(flag);
        let got = run(&args).await;
        assert_eq!(got.code, Some(0), "{}", got.stderr);
        assert!(got.stdout == body, "{flag:?} changed the provider's lines");
    }
}

/// A provider that answers every request with an empty 200 and remembers each query.
async fn recording() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let queries = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&queries);
    let addr = serve_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let seen = Arc::clone(&seen);
        async move {
            let query = req.uri().query().unwrap_or_default().to_owned();
            seen.lock().unwrap().push(query);
            hyper::Response::new(Full::new(bytes::Bytes::new()))
        }
    })
    .await;
    (addr, queries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_sends_the_query_faas_cli_sends_and_faas_debug_prints_it_first() {
    let (addr, queries) = recording().await;
    let gateway = url(addr);
    let cases: [(&[&str], &str); 9] = [
        (&[], "follow=true&name=q&tail=-1"),
        (&["--tail=false"], "follow=false&name=q&tail=-1"),
        (&["-t=false", "--lines", "0"], "follow=false&name=q"),
        (
            &["--lines=5", "-n", "staging"],
            "follow=true&name=q&namespace=staging&tail=5",
        ),
        (
            &["--lines", "-3", "--tail=0"],
            "follow=false&name=q&tail=-3",
        ),
        (
            &["--since-time", "2024-01-02T03:04:05.678Z"],
            "follow=true&name=q&since=2024-01-02T03%3A04%3A05Z&tail=-1",
        ),
        (
            &["--since=10m", "--since-time=2024-01-02T05:04:05+02:00"],
            "follow=true&name=q&since=2024-01-02T03%3A04%3A05Z&tail=-1",
        ),
        (
            &["--only-instance", "q-7 b/c", "--tail=f"],
            "follow=false&instance=q-7+b%2Fc&name=q&tail=-1",
        ),
        (&["--namespace=", "--lines=1"], "follow=true&name=q&tail=1"),
    ];
    for (flags, expected) in cases {
        let mut args = vec!["logs", "q", "-g", &gateway];
        args.extend(flags);
        let got = run_in(&scratch(), &args, &[("FAAS_DEBUG", "1")]).await;
        assert_eq!(got.code, Some(0), "{flags:?}: {}", got.stderr);
        assert_eq!(got.text(), format!("{expected}\n"), "{flags:?}");
        assert_eq!(queries.lock().unwrap().pop().as_deref(), Some(expected));
    }

    // --since counts back from now and is cut to the second.
    let before = Utc::now();
    let got = run(&["q", "--since", "1h30m", "-g", &gateway]).await;
    assert_eq!(got.code, Some(0), "{}", got.stderr);
    let query = queries.lock().unwrap().pop().unwrap();
    let since = query
        .split('&')
        .find_map(|p| p.strip_prefix("since="))
        .unwrap();
    let since = DateTime::parse_from_rfc3339(&since.replace("%3A", ":")).unwrap();
    let ago = before - since.to_utc();
    assert!(
        ago > chrono::Duration::minutes(90) - chrono::Duration::seconds(2)
            && ago <= chrono::Duration::minutes(90) + chrono::Duration::seconds(1),
        "{query}"
    );
    assert!(!query.contains('.'), "since is cut to the second: {query}");

    // No name, a bad flag value: usage errors, status 2, nothing sent.
    let sent = queries.lock().unwrap().len();
    for bad in [
        &[][..],
        &["q", "--tail=maybe"],
        &["q", "--since=5"],
        &["q", "--since-time=yesterday"],
        &["q", "-o", "yaml"],
        &["q", "--include=("],
    ] {
        let got = run(bad).await;
        assert_eq!(got.code, Some(2), "{bad:?}");
        assert!(!got.stderr.is_empty(), "{bad:?}");
    }
    assert_eq!(queries.lock().unwrap().len(), sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_comes_from_the_flag_then_the_stack_file_then_openfaas_url() {
    let (flag, flag_queries) = recording().await;
    let (stack, stack_queries) = recording().await;
    let (env, env_queries) = recording().await;
    let count = |q: &Arc<Mutex<Vec<String>>>| q.lock().unwrap().len();
    let dir = scratch();
    let env_url = url(env);
    let with_env = [("OPENFAAS_URL", env_url.as_str())];

    // OPENFAAS_URL alone, without a scheme as people write it.
    let bare = env.to_string();
    let got = run_in(&dir, &["q", "--tail=false"], &[("OPENFAAS_URL", &bare)]).await;
    assert_eq!(
        (got.code, count(&env_queries)),
        (Some(0), 1),
        "{}",
        got.stderr
    );

    // A stack file here wins over OPENFAAS_URL; variables in it are substituted.
    let stack_file = "version: 1.0\nprovider:\n  name: openfaas\n  gateway: http://127.0.0.1:${STACK_PORT}/\nfunctions:\n  q:\n    image: q:latest\n";
    std::fs::write(dir.join("stack.yaml"), stack_file).unwrap();
    let port = stack.port().to_string();
    let got = run_in(
        &dir,
        &["q", "--tail=false"],
        &[with_env[0], ("STACK_PORT", &port)],
    )
    .await;
    assert_eq!(
        (got.code, count(&stack_queries)),
        (Some(0), 1),
        "{}",
        got.stderr
    );

    // -f names another file; --gateway wins over both.
    std::fs::remove_file(dir.join("stack.yaml")).unwrap();
    std::fs::write(dir.join("other.yml"), stack_file).unwrap();
    let got = run_in(
        &dir,
        &["q", "--tail=false", "-f", "other.yml"],
        &[with_env[0], ("STACK_PORT", &port)],
    )
    .await;
    assert_eq!(
        (got.code, count(&stack_queries)),
        (Some(0), 2),
        "{}",
        got.stderr
    );
    let flag_url = url(flag);
    let got = run_in(
        &dir,
        &[
            "q",
            "--tail=false",
            "--yaml",
            "other.yml",
            "--gateway",
            &flag_url,
        ],
        &[with_env[0], ("STACK_PORT", &port)],
    )
    .await;
    assert_eq!(
        (got.code, count(&flag_queries)),
        (Some(0), 1),
        "{}",
        got.stderr
    );

    // A stack file that is named but missing is an error; one found here that is not
    // YAML is not (faas-cli ignores it).
    let got = run_in(&dir, &["q", "-f", "missing.yml"], &with_env).await;
    assert_eq!(got.code, Some(1));
    assert!(got.stderr.contains("missing.yml"), "{}", got.stderr);
    std::fs::write(dir.join("stack.yml"), "{{ not yaml").unwrap();
    let got = run_in(&dir, &["q", "--tail=false"], &with_env).await;
    assert_eq!(
        (got.code, count(&env_queries)),
        (Some(0), 2),
        "{}",
        got.stderr
    );
}

/// A provider that requires `expected` as its Authorization header and remembers every
/// header it was sent.
async fn guarded(expected: String) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let headers = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&headers);
    let addr = serve_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let seen = Arc::clone(&seen);
        let expected = expected.clone();
        async move {
            let auth = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            seen.lock().unwrap().push(auth.clone());
            let (status, body) = if auth == expected {
                (200, concat!(r#"{"name":"q","namespace":"","instance":"q-1","timestamp":"2024-01-01T00:00:00Z","text":"let in"}"#, "\n"))
            } else {
                (401, "unauthorized\n")
            };
            let mut response = hyper::Response::new(Full::new(bytes::Bytes::from(body)));
            *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
            response
        }
    })
    .await;
    (addr, headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_come_from_faas_clis_saved_login_unless_flags_or_env_say_otherwise() {
    use base64::Engine;
    let basic = |user: &str, password: &str| {
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {pair}")
    };
    let (addr, headers) = guarded(basic("admin", "s3cr:et")).await;
    let gateway = url(addr);
    let last = || headers.lock().unwrap().last().cloned().unwrap_or_default();

    // No login saved: 401, exit 1, and the hint faas-cli gives.
    let dir = scratch();
    let got = run_in(&dir, &["q", "--tail=false", "-g", &gateway], &[]).await;
    assert_eq!(got.code, Some(1));
    assert!(got.stderr.contains("faas-cli login"), "{}", got.stderr);
    assert!(got.stdout.is_empty());

    // The login faas-cli saved for this gateway, in ~/.openfaas/config.yml.
    let token = base64::engine::general_purpose::STANDARD.encode("admin:s3cr:et");
    let config = format!(
        "auths:\n- gateway: https://elsewhere.example.com\n  auth: basic\n  token: {}\n- gateway: {gateway}\n  auth: basic\n  token: {token}\n",
        base64::engine::general_purpose::STANDARD.encode("wrong:user")
    );
    std::fs::create_dir_all(dir.join(".openfaas")).unwrap();
    std::fs::write(dir.join(".openfaas/config.yml"), &config).unwrap();
    let got = run_in(
        &dir,
        &["q", "--tail=false", "-g", &format!("{gateway}/")],
        &[],
    )
    .await;
    assert_eq!(got.code, Some(0), "{}", got.stderr);
    assert!(got.text().ends_with("let in\n"));
    assert_eq!(last(), basic("admin", "s3cr:et"));

    // OPENFAAS_CONFIG names the folder instead.
    let elsewhere = scratch();
    std::fs::write(elsewhere.join("config.yml"), &config).unwrap();
    let got = run_in(
        &scratch(),
        &["q", "--tail=false", "-g", &gateway],
        &[("OPENFAAS_CONFIG", elsewhere.to_str().unwrap())],
    )
    .await;
    assert_eq!(got.code, Some(0), "{}", got.stderr);

    // Flags and env win over the saved login.
    let got = run_in(
        &dir,
        &["q", "--tail=false", "-g", &gateway, "-k", "tok"],
        &[],
    )
    .await;
    assert_eq!((got.code, last()), (Some(1), "Bearer tok".to_owned()));
    let got = run_in(
        &dir,
        &["q", "--tail=false", "-g", &gateway],
        &[("OPENFAAS_TOKEN", "env-tok")],
    )
    .await;
    assert_eq!((got.code, last()), (Some(1), "Bearer env-tok".to_owned()));
    let got = run_in(
        &dir,
        &["q", "--tail=false", "-g", &gateway, "-u", "admin:s3cr:et"],
        &[],
    )
    .await;
    assert_eq!((got.code, last()), (Some(0), basic("admin", "s3cr:et")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_exit_non_zero_with_the_cause_and_a_clean_end_exits_zero() {
    let store = LogStore::new();
    store
        .append(Message::new("f", Utc::now(), "one line"))
        .unwrap();
    let addr = provider(&store, Duration::from_millis(300)).await;
    let gateway = url(addr);

    // A follow the provider ends at its timeout ends with exit 0, as faas-cli's does.
    let got = run(&["f", "-g", &gateway, "--time-format="]).await;
    assert_eq!(
        (got.code, got.text().as_str()),
        (Some(0), "one line\n"),
        "{}",
        got.stderr
    );

    // The provider's error, with its text.
    let got = run(&["nobody", "-g", &gateway]).await;
    assert_eq!(got.code, Some(1));
    assert!(
        got.stderr.contains("404") && got.stderr.contains("no logs for function \"nobody\""),
        "{}",
        got.stderr
    );
    let (failing, _) = start(Failing(|| Error::unavailable("the log system is down"))).await;
    let got = run(&["f", "-g", &url(failing)]).await;
    assert_eq!(got.code, Some(1));
    assert!(
        got.stderr.contains("503") && got.stderr.contains("the log system is down"),
        "{}",
        got.stderr
    );

    // Nothing listening: the address and the cause.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nowhere = url(closed.local_addr().unwrap());
    drop(closed);
    let got = run(&["f", "-g", &nowhere]).await;
    assert_eq!(got.code, Some(1));
    assert!(
        got.stderr
            .contains(&format!("cannot connect to OpenFaaS on URL: {nowhere}"))
            && got.stderr.contains("Connection refused"),
        "{}",
        got.stderr
    );
}

/// A provider that answers one request with `head` and `body` as raw bytes, then closes
/// the connection.
async fn raw_provider(head: &'static str, body: Vec<u8>) -> SocketAddr {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = tcp.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}

fn wire(i: usize) -> String {
    format!(
        r#"{{"name":"f","namespace":"","instance":"f-1","timestamp":"2024-03-01T12:00:0{i}Z","text":"line {i}"}}"#
    ) + "\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_at_a_line_boundary_or_mid_line_exits_non_zero_after_the_lines_it_got() {
    const CHUNKED: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n";
    let chunk = |data: &str| format!("{:x}\r\n{data}\r\n", data.len());
    let lines = wire(1) + &wire(2);

    // Cut at a line boundary: the chunked body never gets its last chunk.
    let at_boundary = raw_provider(CHUNKED, chunk(&lines).into_bytes()).await;
    // Cut mid-line: the connection closes inside the third line's chunk.
    let mid_line = raw_provider(
        CHUNKED,
        (chunk(&lines) + "40\r\n{\"name\":\"f\"").into_bytes(),
    )
    .await;
    // Complete by HTTP's framing, but the last line has no newline.
    let body = lines.clone() + r#"{"name":"f","text":"cu"#;
    let head: &'static str = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_boxed_str(),
    );
    let unterminated = raw_provider(head, body.into_bytes()).await;

    for addr in [at_boundary, mid_line, unterminated] {
        for format in ["plain", "json"] {
            let got = run(&[
                "f",
                "--tail=false",
                "-g",
                &url(addr),
                "-o",
                format,
                "--time-format=",
            ])
            .await;
            assert_eq!(got.code, Some(1), "{addr} {format}: {}", got.stderr);
            let expected = if format == "json" {
                lines.clone()
            } else {
                "line 1\nline 2\n".into()
            };
            assert_eq!(got.text(), expected);
            assert!(
                got.stderr
                    .contains("the log stream broke off after 2 lines"),
                "{}",
                got.stderr
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_providers_end_in_a_clear_error_in_bounded_memory() {
    // Garbage, a line that is not a Message, a 10 MB line.
    let garbage = raw_provider(
        "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n",
        b"<html><body>Bad gateway</body></html>\n".to_vec(),
    )
    .await;
    let not_a_message = raw_provider(
        "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n",
        (wire(1) + "{\"name\":\"f\",\"timestamp\":17}\n" + &wire(2)).into_bytes(),
    )
    .await;
    let text = "y".repeat(10_000_000);
    let huge = format!(
        r#"{{"name":"f","namespace":"","instance":"f-1","timestamp":"2024-03-01T12:00:00Z","text":"{text}"}}"#
    ) + "\n";
    let ten_mb = raw_provider(
        "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n",
        huge.clone().into_bytes(),
    )
    .await;

    let got = run(&["f", "-t=false", "-g", &url(garbage)]).await;
    assert_eq!(got.code, Some(1));
    assert!(
        got.stderr.contains("line 1 is not a log message"),
        "{}",
        got.stderr
    );
    let got = run(&["f", "-t=false", "-g", &url(not_a_message), "--time-format="]).await;
    assert_eq!((got.code, got.text().as_str()), (Some(1), "line 1\n"));
    assert!(
        got.stderr.contains("line 2 is not a log message") && got.stderr.contains("timestamp"),
        "{}",
        got.stderr
    );
    let got = run(&["f", "-t=false", "-g", &url(ten_mb)]).await;
    assert_eq!(got.code, Some(1));
    assert!(
        got.stderr.contains("line 1 is longer than 1048576 bytes"),
        "{}",
        got.stderr
    );
    // Asked for, it comes whole.
    let got = run(&[
        "f",
        "-t=false",
        "-g",
        &url(ten_mb),
        "--max-line=16000000",
        "-j",
    ])
    .await;
    assert_eq!(got.code, Some(0), "{}", got.stderr);
    assert!(got.stdout == huge.as_bytes());

    // An endless line without a newline: refused once it passes the limit; the command
    // stops reading and hangs up rather than holding it all.
    let sent = Arc::new(AtomicUsize::new(0));
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endless = tcp.local_addr().unwrap();
    let counter = Arc::clone(&sent);
    let server = tokio::spawn(async move {
        let (mut stream, _) = tcp.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
        let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(b"4\r\n{\"te\r\n").await.unwrap();
        let chunk = format!("10000\r\n{}\r\n", "z".repeat(0x10000));
        while stream.write_all(chunk.as_bytes()).await.is_ok() {
            counter.fetch_add(0x10000, Ordering::SeqCst);
        }
    });
    let got = run(&["f", "-t=false", "-g", &url(endless), "--max-line=4000000"]).await;
    assert_eq!(got.code, Some(1));
    assert!(
        got.stderr.contains("line 1 is longer than 4000000 bytes"),
        "{}",
        got.stderr
    );
    within(server).await.unwrap();
    // What the socket buffers held beyond the limit, and no more.
    let sent = sent.load(Ordering::SeqCst);
    assert!(
        sent < 4_000_000 + 16 * 1024 * 1024,
        "{sent} bytes were sent"
    );
}

/// A response body that breaks off after so many frames, as a dropped connection does.
struct BreaksOff<B> {
    inner: B,
    frames: usize,
    /// Counts the responses broken off.
    broken: Arc<AtomicUsize>,
}

impl<B> http_body::Body for BreaksOff<B>
where
    B: http_body::Body + Unpin,
    B::Error: Into<faas_logs::BoxError>,
{
    type Data = B::Data;
    type Error = faas_logs::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<B::Data>, Self::Error>>> {
        if self.frames == 0 {
            self.frames = usize::MAX;
            self.broken.fetch_add(1, Ordering::SeqCst);
            return std::task::Poll::Ready(Some(Err("the connection dropped".into())));
        }
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(_))) = &polled {
            self.frames -= 1;
        }
        polled.map(|frame| frame.map(|f| f.map_err(Into::into)))
    }
}

/// Reads lines from a running command until `done` says so.
async fn read_until(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    got: &mut Vec<String>,
    done: impl Fn(&[String]) -> bool,
) {
    within(async {
        while !done(got) {
            match lines.next_line().await.unwrap() {
                Some(line) => got.push(line),
                None => panic!("the command ended early after {got:?}"),
            }
        }
    })
    .await;
}

fn interrupt(child: &tokio::process::Child) {
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forever_resumes_across_timeouts_and_dropped_connections_with_every_line_once_in_order() {
    let store = LogStore::builder()
        .limits(StoreLimits {
            max_messages: 100_000,
            ..StoreLimits::default()
        })
        .build();
    let handler = LogHandler::new(store.clone(), Duration::from_millis(200));
    // Counts the requests, awaitably; every other response ends at the provider's
    // timeout, the others break off after a few writes, as a dropped connection does.
    let (counted, mut requests) = tokio::sync::watch::channel(0usize);
    let counted = Arc::new(counted);
    let broken = Arc::new(AtomicUsize::new(0));
    let breaks = Arc::clone(&broken);
    let addr = serve_fn(move |req| {
        counted.send_modify(|n| *n += 1);
        let frames = if *counted.borrow() % 2 == 0 {
            3
        } else {
            usize::MAX
        };
        let (handler, broken) = (handler.clone(), Arc::clone(&breaks));
        async move {
            let response = handler.handle(req).await;
            response.map(|inner| BreaksOff {
                inner,
                frames,
                broken,
            })
        }
    })
    .await;
    store
        .append(Message::new("f", Utc::now(), "before"))
        .unwrap();

    let gateway = url(addr);
    let mut child = command(
        &scratch(),
        &["f", "--forever", "-g", &gateway, "--time-format="],
        &[],
    )
    .spawn()
    .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut got = Vec::new();
    read_until(&mut lines, &mut got, |g| g.len() == 1).await;

    // Writers keep writing, three lines to a timestamp, across at least five reconnects.
    const LINES: usize = 1_500;
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for batch in 0..LINES / 3 {
                let at = Utc::now();
                for j in 0..3 {
                    store
                        .append(Message::new("f", at, format!("line {}", batch * 3 + j)))
                        .unwrap();
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };
    read_until(&mut lines, &mut got, |g| g.len() == LINES + 1).await;
    writer.await.unwrap();
    // At least five reconnects of each kind.
    let reconnects = *requests.borrow() - 1;
    let broken = broken.load(Ordering::SeqCst);
    assert!(
        broken >= 5 && reconnects - broken >= 5,
        "{reconnects} reconnects, {broken} after a dropped connection"
    );
    let expected: Vec<String> = std::iter::once("before".to_owned())
        .chain((0..LINES).map(|i| format!("line {i}")))
        .collect();
    assert_eq!(got, expected);

    // Nothing more arrives after another reconnect, and Ctrl-C ends it.
    let now = *requests.borrow_and_update();
    within(requests.wait_for(|n| *n > now)).await.unwrap();
    interrupt(&child);
    let status = within(child.wait()).await.unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(within(lines.next_line()).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_ends_a_follow_at_once_and_the_provider_sees_the_connection_close() {
    let (backend, live) = Scripted::new(Vec::new()).trusted().open().live();
    let dropped = Arc::clone(&backend.dropped);
    let (addr, _) = start(backend).await;
    let mut child = command(&scratch(), &["f", "-g", &url(addr), "--time-format="], &[])
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    live.send(Ok(Event::Message(message("f-1", 0, "live"))))
        .unwrap();
    let mut got = Vec::new();
    read_until(&mut lines, &mut got, |g| !g.is_empty()).await;
    assert_eq!(got, ["live"]);
    assert!(!dropped.is_set());
    interrupt(&child);
    let status = within(child.wait()).await.unwrap();
    assert_eq!(status.code(), Some(130));
    dropped.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_self_signed_certificate_that_is_trusted_or_not_checked() {
    let (pem, acceptor) = self_signed_tls("localhost");
    let dir = scratch();
    std::fs::write(dir.join("gateway.pem"), pem).unwrap();

    let store = LogStore::new();
    store
        .append(Message::new("f", Utc::now(), "over tls"))
        .unwrap();
    let handler = LogHandler::new(store, Duration::from_secs(30));
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = tcp.accept().await {
            let (acceptor, handler) = (acceptor.clone(), handler.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), handler)
                    .await;
            });
        }
    });
    let gateway = format!("https://localhost:{port}");

    let untrusted = run_in(&dir, &["f", "-t=false", "-g", &gateway], &[]).await;
    assert_eq!(untrusted.code, Some(1));
    assert!(
        untrusted.stderr.contains("cannot connect to OpenFaaS"),
        "{}",
        untrusted.stderr
    );
    for trust in [&["--cacert", "gateway.pem"][..], &["--tls-no-verify"]] {
        let mut args = vec!["f", "-t=false", "-g", &gateway, "--time-format="];
        args.extend(trust);
        let got = run_in(&dir, &args, &[]).await;
        assert_eq!(
            (got.code, got.text().as_str()),
            (Some(0), "over tls\n"),
            "{trust:?}: {}",
            got.stderr
        );
        assert!(
            !got.stderr.contains("WARNING"),
            "https is no reason to warn"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_functions_merge_in_time_order_coloured_per_instance_on_request() {
    let store = LogStore::new();
    let mut all = Vec::new();
    for i in 0..30i64 {
        let (name, instance) = match i % 3 {
            0 => ("web", "web-1"),
            1 => ("web", "web-2"),
            _ => ("worker", "worker-1"),
        };
        let m = Message::new(
            name,
            base() + chrono::Duration::milliseconds(i),
            format!("{name} {i}"),
        )
        .with_instance(instance);
        store.append(m.clone()).unwrap();
        all.push(m);
    }
    let addr = provider(&store, Duration::from_secs(30)).await;
    let gateway = url(addr);

    // Not a terminal: no colour, each line named "NAME (INSTANCE)".
    let got = run(&[
        "web",
        "worker",
        "-t=false",
        "-g",
        &gateway,
        "--time-format=",
    ])
    .await;
    assert_eq!(got.code, Some(0), "{}", got.stderr);
    let expected: String = all
        .iter()
        .map(|m| format!("{} ({}) {}\n", m.name, m.instance, m.text))
        .collect();
    assert_eq!(got.text(), expected);

    // Coloured: one colour per instance, the same in every run.
    let coloured = run(&[
        "web",
        "worker",
        "-t=false",
        "-g",
        &gateway,
        "--time-format=",
        "--color=always",
    ])
    .await;
    let again = run(&[
        "worker",
        "web",
        "-t=false",
        "-g",
        &gateway,
        "--time-format=",
        "--color=always",
    ])
    .await;
    assert_eq!(coloured.stdout, again.stdout);
    let mut colours = std::collections::HashMap::new();
    for (line, m) in coloured.text().lines().zip(&all) {
        let rest = line.strip_prefix("\u{1b}[").unwrap();
        let (code, rest) = rest.split_once('m').unwrap();
        assert_eq!(
            rest,
            format!("{} ({}) \u{1b}[0m{}", m.name, m.instance, m.text)
        );
        colours
            .entry(m.instance.to_string())
            .or_insert_with(Vec::new)
            .push(code.to_owned());
    }
    for codes in colours.values() {
        assert!(codes.iter().all(|c| c == &codes[0]));
    }
    // NO_COLOR turns --color=auto off (stdout is not a terminal here either way).
    let plain = run_in(
        &scratch(),
        &[
            "web",
            "worker",
            "-t=false",
            "-g",
            &gateway,
            "--time-format=",
        ],
        &[("NO_COLOR", "1")],
    )
    .await;
    assert_eq!(plain.text(), expected);

    // One unknown function among several is a warning: the others are still shown, and
    // the status says something was missing.
    let got = run(&[
        "web",
        "nobody",
        "-t=false",
        "-g",
        &gateway,
        "--time-format=",
    ])
    .await;
    assert_eq!(got.code, Some(1));
    let web: String = all
        .iter()
        .filter(|m| m.name == "web")
        .map(|m| format!("{} ({}) {}\n", m.name, m.instance, m.text))
        .collect();
    assert_eq!(got.text(), web);
    assert!(got.stderr.contains("warning: nobody"), "{}", got.stderr);
    assert!(
        got.stderr.contains("1 of 2 functions not found: nobody"),
        "{}",
        got.stderr
    );
    let none = run(&["nobody", "nothing", "-t=false", "-g", &gateway]).await;
    assert_eq!(none.code, Some(1));
    assert!(none.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_functions_instances_and_its_stderr_are_coloured_where_colours_are_wanted() {
    let store = LogStore::new();
    let lines = [
        ("f-1", None, "one"),
        ("f-2", None, "two"),
        ("f-1", Some(faas_logs::OutputStream::Stderr), "oops"),
    ];
    for (i, (instance, stream, text)) in lines.iter().enumerate() {
        let mut m = Message::new(
            "f",
            base() + chrono::Duration::milliseconds(i as i64),
            *text,
        )
        .with_instance(*instance);
        m.stream = *stream;
        store.append(m).unwrap();
    }
    let gateway = url(provider(&store, Duration::from_secs(30)).await);
    let args = [
        "f",
        "--instance",
        "-t=false",
        "-g",
        &gateway,
        "--time-format=",
    ];
    // CLICOLOR_FORCE asks for colours though stdout is not a terminal.
    let got = run_in(&scratch(), &args, &[("CLICOLOR_FORCE", "1")]).await;
    assert_eq!(got.code, Some(0), "{}", got.stderr);
    let printed: Vec<&str> = std::str::from_utf8(&got.stdout).unwrap().lines().collect();
    let colour = |line: &str| line.split('m').next().unwrap().to_owned();
    // Each instance its own colour, and they are not the same; stderr's text in red.
    assert_eq!(
        printed[0],
        format!("{}m(f-1) \u{1b}[0mone", colour(printed[0]))
    );
    assert_ne!(colour(printed[0]), colour(printed[1]));
    assert_eq!(colour(printed[0]), colour(printed[2]));
    assert!(
        printed[2].ends_with("(f-1) \u{1b}[0m\u{1b}[31moops\u{1b}[0m"),
        "{:?}",
        printed[2]
    );
    // NO_COLOR wins over CLICOLOR_FORCE; a dumb terminal gets none; --color=never none.
    for env in [
        vec![("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")],
        vec![("TERM", "dumb")],
    ] {
        let plain = run_in(&scratch(), &args, &env).await;
        assert_eq!(
            plain.text(),
            "(f-1) one\n(f-2) two\n(f-1) oops\n",
            "{env:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_to_a_plain_http_provider_says_so() {
    let store = LogStore::new();
    store.register("", "f").unwrap();
    let addr = provider(&store, Duration::from_secs(30)).await;
    let got = run(&["f", "-t=false", "-g", &format!("https://{addr}")]).await;
    assert_eq!(got.code, Some(1));
    assert!(
        got.stderr
            .contains(&format!("answers plain HTTP, not HTTPS; use http://{addr}")),
        "{}",
        got.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_a_terminal_a_follow_the_provider_ends_says_why_and_how_to_go_on() {
    if !common::needs(
        "at_a_terminal_a_follow_the_provider_ends",
        std::process::Command::new("script")
            .arg("--version")
            .output()
            .is_ok(),
        "script (util-linux) is not installed",
    ) {
        return;
    }
    let store = LogStore::new();
    store
        .append(Message::new("f", chrono::Utc::now(), "hello").with_instance("f-1"))
        .unwrap();
    let gateway = url(provider(&store, Duration::from_secs(1)).await);
    // `script` gives the command a terminal; what it printed comes back on stdout.
    let line = format!("{BIN} f -g {gateway}");
    let got = within(
        tokio::process::Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .env("HOME", scratch())
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&got.stdout);
    assert!(said.contains("hello"), "{said}");
    assert!(
        said.contains("the provider ended the stream (its timeout); --forever follows on"),
        "{said}"
    );
    // Not at a terminal, the end is as quiet as faas-cli's.
    let quiet = run(&["f", "-g", &gateway]).await;
    assert_eq!(quiet.code, Some(0));
    assert!(quiet.stderr.is_empty(), "{}", quiet.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_and_exclude_filter_on_the_text_in_every_format() {
    let store = LogStore::new();
    for (i, text) in [
        "GET /healthz 200",
        "ERROR disk full",
        "WARN slow",
        "INFO ok",
        "ERROR healthz down",
    ]
    .iter()
    .enumerate()
    {
        store
            .append(Message::new(
                "f",
                base() + chrono::Duration::seconds(i as i64),
                *text,
            ))
            .unwrap();
    }
    let gateway = url(provider(&store, Duration::from_secs(30)).await);
    let got = run(&[
        "f",
        "-t=false",
        "-g",
        &gateway,
        "--time-format=",
        "--include",
        "ERROR|WARN",
        "--exclude=healthz",
    ])
    .await;
    assert_eq!(
        (got.code, got.text().as_str()),
        (Some(0), "ERROR disk full\nWARN slow\n")
    );
    let got = run(&[
        "f",
        "-t=false",
        "-g",
        &gateway,
        "-j",
        "--include=^INFO",
        "--include=^WARN",
    ])
    .await;
    let texts: Vec<String> = got
        .text()
        .lines()
        .map(|l| serde_json::from_str::<Message>(l).unwrap().text)
        .collect();
    assert_eq!(texts, ["WARN slow", "INFO ok"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_provider_binary_read_as_faas_cli_reads_it() {
    let example = Provider::start(
        "memory",
        &[
            "--listen",
            "127.0.0.1:0",
            "--run",
            "hello=echo one; echo two >&2; echo 'three \"3\"'",
        ],
    );
    let gateway = url(example.addr);
    // Followed until the command's three lines are in, then the provider's own dump.
    let mut child = command(
        &scratch(),
        &["hello", "-g", &gateway, "--time-format=", "--instance"],
        &[],
    )
    .spawn()
    .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut got = Vec::new();
    read_until(&mut lines, &mut got, |g| g.len() == 3).await;
    interrupt(&child);
    assert_eq!(within(child.wait()).await.unwrap().code(), Some(130));
    let (_, mut raw) = get(example.addr, "/system/logs?name=hello").await;
    let sent = raw.messages().await;
    let expected: Vec<String> = sent
        .iter()
        .map(|m| faas_cli_line(m, "", false, false, true))
        .collect();
    assert_eq!(got, expected);
    let mut texts = texts(&sent);
    texts.sort();
    assert_eq!(texts, ["one", "three \"3\"", "two"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forever_gives_up_after_its_retries_once_the_provider_is_gone() {
    let example = Provider::start("memory", &["--listen", "127.0.0.1:0"]);
    let gateway = url(example.addr);
    let mut child = command(
        &scratch(),
        &["demo", "--forever", "--retries=2", "-g", &gateway],
        &[],
    )
    .spawn()
    .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut got = Vec::new();
    read_until(&mut lines, &mut got, |g| !g.is_empty()).await;
    drop(example);
    let out = within(child.wait_with_output()).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("gave up following after 2 failures in a row"),
        "{stderr}"
    );
}

/// The command run with `input` on its standard input.
async fn run_with_input(args: &[&str], input: &[u8]) -> Run {
    let mut child = command(&scratch(), args, &[])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // Written beside the reading, so that a large input cannot fill both pipes.
    let writer = tokio::spawn(async move {
        stdin.write_all(&input).await.unwrap();
    });
    let out = within(child.wait_with_output()).await.unwrap();
    writer.await.unwrap();
    Run {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_lines_read_from_stdin_print_as_the_provider_s_own_with_every_filter() {
    let (addr, sent) = hostile_provider().await;
    let gateway = url(addr);
    // What a user saves: the provider's lines as `-o json` prints them.
    let saved = run(&["fmt", "--gateway", &gateway, "--tail=false", "-o", "json"]).await;
    assert_eq!(saved.code, Some(0), "{}", saved.stderr);
    let since = sent[sent.len() / 2].timestamp.to_rfc3339();
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec!["-o", "keyvalue", "--name", "--instance"],
        vec!["-o", "raw"],
        vec!["-o", "json"],
        vec!["--lines=3", "--instance"],
        vec!["--include", "[0-9]", "--exclude", "<"],
        vec!["--since-time", &since, "--time-format", "rfc3339nano"],
        vec!["--only-instance", "fmt-2"],
        vec!["--exclude-instance", "fmt-[01]", "--instance"],
        vec![
            "--highlight",
            "[0-9]+",
            "--highlight",
            "e",
            "--color=always",
            "--name",
        ],
        vec!["--highlight", "[0-9]+", "-o", "keyvalue"],
    ];
    for flags in cases {
        let mut live = vec!["fmt", "--gateway", &gateway, "--tail=false"];
        live.extend(&flags);
        let from_provider = run(&live).await;
        assert_eq!(
            from_provider.code,
            Some(0),
            "{flags:?}: {}",
            from_provider.stderr
        );
        let mut saved_args = vec!["--stdin"];
        saved_args.extend(&flags);
        let from_stdin = run_with_input(&saved_args, &saved.stdout).await;
        assert_eq!(from_stdin.code, Some(0), "{flags:?}: {}", from_stdin.stderr);
        assert_eq!(from_stdin.text(), from_provider.text(), "{flags:?}");
    }
    // Another instance's lines are gone; the highlight marks without filtering, and only
    // where colours are on.
    let excluded = run_with_input(
        &["--stdin", "--exclude-instance", "fmt-[01]", "-o", "json"],
        &saved.stdout,
    )
    .await;
    let fmt_2: Vec<&Message> = sent.iter().filter(|m| &*m.instance == "fmt-2").collect();
    assert_eq!(excluded.text().lines().count(), fmt_2.len());
    let marked = run_with_input(
        &[
            "--stdin",
            "-o",
            "raw",
            "--highlight",
            "asci+",
            "--color=always",
        ],
        &saved.stdout,
    )
    .await;
    let first = marked.text().lines().next().unwrap().to_owned();
    assert!(
        first.starts_with("plain \u{1b}[")
            && first.contains("43m")
            && first.ends_with("ascii\u{1b}[0m"),
        "{first:?}"
    );
    assert_eq!(marked.text().lines().count(), sent.len());
    let unmarked = run_with_input(
        &["--stdin", "-o", "raw", "--highlight", "ascii"],
        &saved.stdout,
    )
    .await;
    assert!(unmarked.text().starts_with("plain ascii\n"));

    // Raw is the text alone.
    let raw = run_with_input(&["--stdin", "-o", "raw"], &saved.stdout).await;
    let texts: Vec<String> = sent
        .iter()
        .map(|m| m.text.trim_end_matches('\n').to_owned())
        .collect();
    assert_eq!(
        raw.text(),
        texts.iter().map(|t| format!("{t}\n")).collect::<String>()
    );

    // A function chosen by name; a line that is not a message is reported by its number,
    // the others printed, and the command exits 1.
    let other = r#"{"name":"g","namespace":"","instance":"g-1","timestamp":"2024-03-01T12:00:00Z","text":"from g"}"#;
    let mut mixed = format!("{other}\n").into_bytes();
    mixed.extend_from_slice(&saved.stdout);
    mixed.extend_from_slice(b"this is not JSON\n\n");
    let only_g = run_with_input(&["--stdin", "g", "-o", "raw"], &mixed).await;
    assert_eq!(only_g.text(), "from g\n");
    assert_eq!(only_g.code, Some(1));
    let bad = sent.len() + 2;
    assert!(
        only_g
            .stderr
            .contains(&format!("line {bad} of standard input is not a message")),
        "{}",
        only_g.stderr
    );
    assert!(
        only_g.stderr.contains(&format!("1 of {} lines", bad + 1)),
        "{}",
        only_g.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_arriving_on_stdin_is_printed_before_the_next_one_comes() {
    let mut child = command(&scratch(), &["--stdin", "-o", "raw"], &[])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut got = Vec::new();
    for i in 0..3 {
        let line =
            format!(r#"{{"name":"f","timestamp":"2024-03-01T12:00:0{i}Z","text":"line {i}"}}"#);
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
        // Printed while standard input is still open, as `tail -f saved | ...` needs.
        read_until(&mut lines, &mut got, |got| got.len() == i + 1).await;
    }
    assert_eq!(got, ["line 0", "line 1", "line 2"]);
    drop(stdin);
    assert!(within(child.wait()).await.unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_short_and_full_in_any_zone() {
    let line = br#"{"name":"f","instance":"f-1","timestamp":"2024-03-01T23:30:00.5Z","text":"t"}"#;
    // The flags, the environment, what is printed.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 5] = [
        (&["--timestamps", "short"], &[], "03-01 23:30:00 t\n"),
        (
            &["--timestamps", "full", "--timezone", "+02:00"],
            &[],
            "2024-03-02T01:30:00.500000000+02:00 t\n",
        ),
        (
            &["--timezone", "-05:30", "--time-format", "15:04 MST"],
            &[],
            "18:00 -0530 t\n",
        ),
        (
            &["--timezone", "Local"],
            &[("TZ", "IST-5:30")],
            "2024-03-02T05:00:00+05:30 t\n",
        ),
        (&["--timestamps", "none", "--instance"], &[], "(f-1) t\n"),
    ];
    for (flags, env, expected) in cases {
        let mut args = vec!["--stdin"];
        args.extend(flags);
        let mut child = command(&scratch(), &args, env)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(line).await.unwrap();
        drop(stdin);
        let out = within(child.wait_with_output()).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "{flags:?}");
    }
    let bad = run(&["--stdin", "--timezone", "Mars"]).await;
    assert_eq!(bad.code, Some(2));
    assert!(
        bad.stderr.contains("use UTC, Local or an offset"),
        "{}",
        bad.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_writes_each_line_with_its_fields_and_details() {
    let store = LogStore::new();
    let at = Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap();
    let mut details = faas_logs::Details::default();
    details.severity = Some("ERROR".into());
    details.trace_id = Some("5b8efff798038103d269b633813fc60c".into());
    details.attributes.insert("user".into(), "ada".into());
    store
        .append(
            Message::new("tpl", at, "payment failed\n")
                .with_namespace("team")
                .with_instance("tpl-1")
                .with_stream(faas_logs::OutputStream::Stderr)
                .with_details(details),
        )
        .unwrap();
    store
        .append(
            Message::new("tpl", at + chrono::Duration::seconds(1), "ok")
                .with_namespace("team")
                .with_instance("tpl-2"),
        )
        .unwrap();
    let addr = provider(&store, Duration::from_secs(30)).await;
    let template = "{{ time }} {{ namespace }}/{{ name }} {{ instance }} {{ stream or 'none' }} \
                    [{{ severity | default('-') }}] {{ text | upper }} user={{ attributes.user }} \
                    trace={{ (trace_id or '')[:8] }} at={{ timestamp }}";
    let expected = "03-01 13:00:00 team/tpl tpl-1 stderr [ERROR] PAYMENT FAILED user=ada trace=5b8efff7 at=2024-03-01T12:00:00Z\n\
                    03-01 13:00:01 team/tpl tpl-2 none [-] OK user= trace= at=2024-03-01T12:00:01Z\n";
    let gateway = url(addr);
    let flags = [
        "--template",
        template,
        "--timestamps",
        "short",
        "--timezone",
        "+01:00",
    ];
    let mut live = vec!["tpl", "-n", "team", "--gateway", &gateway, "--tail=false"];
    live.extend(flags);
    let from_provider = run(&live).await;
    assert_eq!(
        (from_provider.code, from_provider.text().as_str()),
        (Some(0), expected),
        "{}",
        from_provider.stderr
    );
    // The same from a saved copy.
    let saved = run(&[
        "tpl",
        "-n",
        "team",
        "--gateway",
        &gateway,
        "--tail=false",
        "-o",
        "json",
    ])
    .await;
    let mut saved_args = vec!["--stdin"];
    saved_args.extend(flags);
    let from_stdin = run_with_input(&saved_args, &saved.stdout).await;
    assert_eq!(from_stdin.text(), expected);

    // A template that fails on a line says so once and exits 1; one that does not
    // compile is a bad command line.
    let failing = run_with_input(&["--stdin", "--template", "{{ text + 1 }}"], &saved.stdout).await;
    assert_eq!(failing.code, Some(1));
    assert_eq!(
        failing
            .stderr
            .matches("--template failed on a line")
            .count(),
        1,
        "{}",
        failing.stderr
    );
    assert!(
        failing.stderr.contains("--template failed on 2 lines"),
        "{}",
        failing.stderr
    );
    let broken = run(&["--stdin", "--template", "{{ text"]).await;
    assert_eq!(broken.code, Some(2));
    assert!(
        broken.stderr.contains("the template does not compile"),
        "{}",
        broken.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regex_and_all_choose_functions_from_the_provider_s_list_or_a_gateway_s() {
    let provider = Provider::start(
        "memory",
        &["--listen", "127.0.0.1:0", "--run", "idle=sleep 60"],
    );
    let pushed: String = [("web-a", 0, "a0"), ("worker", 1, "w1"), ("web-b", 2, "b2"), ("web-a", 3, "a3")]
        .iter()
        .map(|(name, s, text)| {
            format!(r#"{{"name":"{name}","instance":"{name}-1","timestamp":"2024-03-01T12:00:0{s}Z","text":"{text}"}}"#) + "\n"
        })
        .collect();
    let (status, body) = send_whole(
        provider.addr,
        "POST",
        "/system/logs/push",
        pushed.as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let gateway = url(provider.addr);
    let read = |flags: &[&str]| {
        let mut args = vec!["-g", &gateway, "--tail=false", "--time-format="];
        args.extend(flags);
        args.iter().map(|a| a.to_string()).collect::<Vec<String>>()
    };
    let run_owned = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args).await
    };
    let web = run_owned(read(&["--regex", "^web-"])).await;
    assert_eq!(
        (web.code, web.text().as_str()),
        (
            Some(0),
            "web-a (web-a-1) a0\nweb-b (web-b-1) b2\nweb-a (web-a-1) a3\n"
        ),
        "{}",
        web.stderr
    );
    let all = run_owned(read(&[
        "--all",
        "-n",
        "openfaas-fn",
        "--exclude-instance",
        "^idle-",
    ]))
    .await;
    assert_eq!(
        all.text(),
        "web-a (web-a-1) a0\nworker (worker-1) w1\nweb-b (web-b-1) b2\nweb-a (web-a-1) a3\n",
        "{}",
        all.stderr
    );
    let none = run_owned(read(&["--regex", "^nope"])).await;
    assert_eq!(none.code, Some(1));
    assert!(
        none.stderr
            .contains("no function of the provider's matches ^nope"),
        "{}",
        none.stderr
    );
    let elsewhere = run_owned(read(&["--regex", "^web-", "-n", "team"])).await;
    assert_eq!(elsewhere.code, Some(1), "{}", elsewhere.stderr);

    // A gateway: no list of this crate's, OpenFaaS' /system/functions instead.
    let store = LogStore::builder().default_namespace("team").build();
    let at = Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap();
    for (i, name) in ["web-x", "db", "web-y"].iter().enumerate() {
        let m = Message::new(
            *name,
            at + chrono::Duration::seconds(i as i64),
            format!("{name} says hi"),
        )
        .with_namespace("team")
        .with_instance(format!("{name}-1"));
        store.append(m).unwrap();
    }
    let asked = Arc::new(Mutex::new(Vec::new()));
    let handler = LogHandler::new(store, Duration::from_secs(30));
    let gateway_addr = {
        let asked = asked.clone();
        serve_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let (handler, asked) = (handler.clone(), asked.clone());
            async move {
                let uri = req.uri().clone();
                asked.lock().unwrap().push(uri.to_string());
                use http_body_util::Either;
                let list = r#"[{"name":"web-x","namespace":"team","replicas":1},{"name":"db","namespace":"team"},{"name":"web-y","namespace":"team"}]"#;
                match uri.path() {
                    "/system/logs" => handler.handle(req).await.map(Either::Left),
                    "/system/functions" => {
                        hyper::Response::new(Either::Right(Full::new(bytes::Bytes::from_static(list.as_bytes()))))
                    }
                    _ => hyper::Response::builder()
                        .status(404)
                        .body(Either::Right(Full::new(bytes::Bytes::new())))
                        .unwrap(),
                }
            }
        })
        .await
    };
    let gateway = url(gateway_addr);
    let args = [
        "--regex",
        "^web-",
        "-n",
        "team",
        "-g",
        &gateway,
        "--tail=false",
        "--time-format=",
    ];
    let from_gateway = run(&args).await;
    assert_eq!(
        from_gateway.text(),
        "web-x (web-x-1) web-x says hi\nweb-y (web-y-1) web-y says hi\n",
        "{}",
        from_gateway.stderr
    );
    let asked = asked.lock().unwrap().clone();
    assert!(
        asked.contains(&"/system/logs/functions".to_owned()),
        "{asked:?}"
    );
    assert!(
        asked.contains(&"/system/functions?namespace=team".to_owned()),
        "{asked:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regex_follows_the_functions_that_appear_while_it_follows() {
    let provider = Provider::start(
        "memory",
        &["--listen", "127.0.0.1:0", "--run", "idle=sleep 60"],
    );
    let push = |name: &'static str, text: &'static str| async move {
        let line = format!(r#"{{"name":"{name}","instance":"{name}-1","text":"{text}"}}"#);
        let (status, body) =
            send_whole(provider.addr, "POST", "/system/logs/push", line.as_bytes()).await;
        assert_eq!(status, 200, "{body}");
    };
    push("web-a", "first").await;
    let gateway = url(provider.addr);
    let args = [
        "--regex",
        "^web-",
        "-g",
        &gateway,
        "--relist",
        "50ms",
        "--time-format=",
    ];
    let mut child = command(&scratch(), &args, &[]).spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut got = Vec::new();
    read_until(&mut lines, &mut got, |got| !got.is_empty()).await;
    // A function that did not exist when the command started, and one that does not match.
    push("worker", "not this one").await;
    push("web-b", "new here").await;
    read_until(&mut lines, &mut got, |got| got.len() == 2).await;
    push("web-a", "second").await;
    read_until(&mut lines, &mut got, |got| got.len() == 3).await;
    assert_eq!(
        got,
        [
            "web-a (web-a-1) first",
            "web-b (web-b-1) new here",
            "web-a (web-a-1) second"
        ]
    );
    interrupt(&child);
    let status = within(child.wait()).await.unwrap();
    assert_eq!(status.code(), Some(130));

    // Nothing matches yet: a follow says so and waits; reading history is an error.
    let args = [
        "--regex",
        "^late-",
        "-g",
        &gateway,
        "--relist",
        "50ms",
        "--time-format=",
    ];
    let history = run(&[&args[..], &["--tail=false"]].concat()).await;
    assert_eq!(history.code, Some(1));
    assert!(
        history
            .stderr
            .contains("no function of the provider's matches ^late-"),
        "{}",
        history.stderr
    );
    let mut child = command(&scratch(), &args, &[]).spawn().unwrap();
    let mut said = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let notice = within(said.next_line()).await.unwrap().unwrap();
    assert!(
        notice.contains("no function of the provider's matches ^late- yet; waiting for one"),
        "{notice}"
    );
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut got = Vec::new();
    push("late-one", "here at last").await;
    read_until(&mut lines, &mut got, |got| !got.is_empty()).await;
    assert_eq!(got, ["late-one (late-one-1) here at last"]);
    interrupt(&child);
    let status = within(child.wait()).await.unwrap();
    assert_eq!(status.code(), Some(130));
}

/// The colour and weight of each character a terminal shows, read from tmux's
/// `capture-pane -e` (which writes the screen's attributes as SGR sequences of its own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Pen {
    /// The foreground as its SGR code: `31`, `94`, `38;5;39`; empty is the default.
    fg: String,
    bold: bool,
}

/// Each line of a capture, its characters with the pen they were drawn with.
fn screen(capture: &str) -> Vec<Vec<(char, Pen)>> {
    let mut lines = Vec::new();
    let mut pen = Pen::default();
    for line in capture.lines() {
        let mut cells = Vec::new();
        let mut rest = line;
        while let Some(c) = rest.chars().next() {
            if let Some(sgr) = rest.strip_prefix("\u{1b}[") {
                let end = sgr.find('m').expect("an SGR sequence ends in m");
                let codes: Vec<&str> = sgr[..end].split(';').collect();
                let mut i = 0;
                while i < codes.len() {
                    match codes[i] {
                        "" | "0" => pen = Pen::default(),
                        "1" => pen.bold = true,
                        "22" => pen.bold = false,
                        "39" => pen.fg.clear(),
                        "38" => {
                            pen.fg = codes[i..i + 3].join(";");
                            i += 2;
                        }
                        code if code.len() == 2
                            && (code.starts_with('3') || code.starts_with('9')) =>
                        {
                            pen.fg = code.to_owned();
                        }
                        _ => {}
                    }
                    i += 1;
                }
                rest = &sgr[end + 1..];
                continue;
            }
            cells.push((c, pen.clone()));
            rest = &rest[c.len_utf8()..];
        }
        lines.push(cells);
    }
    lines
}

/// The pen `word` was drawn with on the screen line that contains `on`.
fn pen_of(screen: &[Vec<(char, Pen)>], on: &str, word: &str) -> Pen {
    for line in screen {
        let text: String = line.iter().map(|(c, _)| c).collect();
        if !text.contains(on) {
            continue;
        }
        let at = text
            .find(word)
            .unwrap_or_else(|| panic!("no {word:?} in {text:?}"));
        let at = text[..at].chars().count();
        let pens: Vec<&Pen> = line[at..at + word.chars().count()]
            .iter()
            .map(|(_, p)| p)
            .collect();
        assert!(
            pens.windows(2).all(|w| w[0] == w[1]),
            "{word:?} in one pen: {pens:?}"
        );
        return pens[0].clone();
    }
    panic!("no line with {on:?} on the screen")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_a_terminal_levels_instances_and_stderr_are_coloured_and_the_end_is_explained() {
    let tmux_there = std::process::Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok();
    if !common::needs(
        "at_a_terminal_levels_instances",
        tmux_there,
        "tmux is not installed",
    ) {
        return;
    }
    let store = LogStore::new();
    let lines: [(&str, Option<&str>, bool, &str); 8] = [
        ("f-1", None, false, "ERROR db connection refused"),
        ("f-2", None, false, "2026/12/04 WARN disk almost full"),
        ("f-1", None, false, "level=info msg=started"),
        ("f-2", None, false, "[DEBUG] cache miss"),
        ("f-1", None, false, r#"{"level":"error","msg":"boom"}"#),
        ("f-2", None, false, "no level here"),
        ("f-1", None, true, "oops ERROR on stderr"),
        ("f-2", Some("WARN"), false, "from otel"),
    ];
    for (i, (instance, severity, stderr, text)) in lines.iter().enumerate() {
        let mut m = Message::new(
            "f",
            base() + chrono::Duration::milliseconds(i as i64),
            *text,
        )
        .with_instance(*instance);
        if *stderr {
            m.stream = Some(faas_logs::OutputStream::Stderr);
        }
        if let Some(severity) = severity {
            let mut details = faas_logs::Details::default();
            details.severity = Some((*severity).to_owned());
            m.details = Some(Box::new(details));
        }
        store.append(m).unwrap();
    }
    // The provider ends each follow after a second: the command then says so.
    let gateway = url(provider(&store, Duration::from_secs(1)).await);
    let socket = format!("faas-logs-test-{}", std::process::id());
    let home = scratch();
    let run = format!(
        "env -u NO_COLOR HOME={} TERM=xterm-256color {BIN} f --instance -g {gateway} --time-format= ; echo __ended__; sleep 60",
        home.display()
    );
    let tmux = |args: &[&str]| {
        let out = std::process::Command::new("tmux")
            .args(["-L", &socket])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    struct Server(String);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = std::process::Command::new("tmux")
                .args(["-L", &self.0, "kill-server"])
                .output();
        }
    }
    tmux(&["new-session", "-d", "-x", "160", "-y", "40", &run]);
    let _server = Server(socket.clone());
    let capture = within(async {
        loop {
            let capture = tmux(&["capture-pane", "-p", "-e", "-J"]);
            if capture.contains("__ended__") {
                return capture;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    let screen = screen(&capture);
    let pen = |on: &str, word: &str| pen_of(&screen, on, word);
    let red_bold = Pen {
        fg: "31".into(),
        bold: true,
    };
    assert_eq!(pen("db connection", "ERROR"), red_bold);
    assert_eq!(pen("disk almost", "WARN").fg, "33");
    assert_eq!(pen("msg=started", "info").fg, "94");
    assert_eq!(pen("cache miss", "DEBUG").fg, "90");
    assert_eq!(pen("boom", "error"), red_bold);
    assert_eq!(pen("no level", "no level here"), Pen::default());
    // stderr's text is red, its level red and bold.
    assert_eq!(pen("on stderr", "oops").fg, "31");
    assert_eq!(pen("on stderr", "ERROR"), red_bold);
    // A level only the severity says is shown before the text, as the viewer's badge.
    assert_eq!(pen("from otel", "WARN").fg, "33");
    // Each instance its colour.
    let (one, two) = (pen("db connection", "(f-1)"), pen("disk almost", "(f-2)"));
    assert!(
        one.fg.starts_with("38;5;") && two.fg.starts_with("38;5;"),
        "{one:?} {two:?}"
    );
    assert_ne!(one, two);
    assert!(
        capture.contains("the provider ended the stream (its timeout); --forever follows on"),
        "{capture}"
    );

    // Not at a terminal: the same lines, no colour, no badge, no word about the end.
    let piped = run_in(
        &home,
        &["f", "--instance", "-g", &gateway, "--time-format="],
        &[],
    )
    .await;
    assert_eq!(piped.code, Some(0));
    assert!(!piped.text().contains('\u{1b}'), "{}", piped.text());
    assert!(
        piped.text().contains("(f-2) from otel\n"),
        "{}",
        piped.text()
    );
    assert!(piped.stderr.is_empty(), "{}", piped.stderr);
}
