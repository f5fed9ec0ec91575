//! A complete log provider on the embedded default backend, the in-memory `LogStore`.
//!
//! ```text
//! cargo run --example memory                          # runs a built-in demo function
//! curl -s 'http://127.0.0.1:8080/system/logs?name=demo&tail=5'
//!
//! cargo run --example memory -- --run hello='sh -c "while true; do date; sleep 1; done"'
//! curl -s 'http://127.0.0.1:8080/system/logs?name=hello&follow=true'
//!
//! printf '%s\n' '{"name":"pushed","text":"hello from curl"}' |
//!   curl -s --data-binary @- http://127.0.0.1:8080/system/logs/push
//! ```
//!
//! Routes: `GET`/`POST /system/logs` (the OpenFaaS log endpoint), `POST /system/logs/push`
//! (NDJSON of messages into the store), `GET /healthz`. Ctrl-C or SIGTERM end open follow
//! streams cleanly, stop the server and the commands it runs.

mod common;

use std::process::Stdio;
use std::time::Duration;

use chrono::Utc;
use clap::Parser;
use common::{error, json, Body};
use faas_logs::{capture_lines, LogHandler, LogStore, Message, StoreLimits};
use http_body_util::{BodyExt, Either, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

/// A log provider on the in-memory store: runs commands as functions, captures their
/// output, accepts pushed logs, and serves GET /system/logs.
#[derive(Parser, Debug)]
#[command(name = "memory")]
struct Args {
    /// Address to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Longest a log response may last, in seconds; ends follow streams.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Run a command as a function, NAME=COMMAND, with `sh -c`; its stdout and stderr
    /// become the function's logs, the instance named NAME-PID. Repeatable. Without any,
    /// a built-in demo function named `demo` runs.
    #[arg(long = "run", value_name = "NAME=COMMAND", value_parser = parse_run)]
    run: Vec<(String, String)>,
    /// The namespace that functions run and are queried in by default.
    #[arg(long, default_value = "openfaas-fn")]
    namespace: String,
    /// Most lines kept per function.
    #[arg(long, default_value_t = StoreLimits::default().max_messages)]
    max_lines: usize,
    /// Most bytes kept per function.
    #[arg(long, default_value_t = StoreLimits::default().max_bytes)]
    max_bytes: usize,
    /// Longest captured line kept whole; longer ones are cut with a visible marker.
    #[arg(long, default_value_t = faas_logs::DEFAULT_MAX_LINE)]
    max_line_bytes: usize,
    /// Largest body accepted by POST /system/logs/push.
    #[arg(long, default_value_t = 1 << 20)]
    max_push_bytes: usize,
}

fn parse_run(value: &str) -> Result<(String, String), String> {
    let (name, command) = value
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=COMMAND, got {value:?}"))?;
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid {
        return Err(format!(
            "{name:?} is not a function name: use a-z, A-Z, 0-9, '-', '_', '.'"
        ));
    }
    if command.trim().is_empty() {
        return Err(format!("no command given for {name}"));
    }
    Ok((name.to_owned(), command.to_owned()))
}

/// `POST /system/logs/push`: every good line is stored; 422 lists the bad ones.
async fn push(store: &LogStore, req: Request<Incoming>, limit: usize) -> Response<Body> {
    let body = match Limited::new(req.into_body(), limit).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("push body larger than {limit} bytes; nothing was stored"),
            )
        }
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("could not read the body: {e}"),
            )
        }
    };
    let report = store.ingest_ndjson(&body);
    let status = if report.rejected.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    json(status, &report)
}

async fn route(
    req: Request<Incoming>,
    handler: LogHandler<LogStore>,
    store: LogStore,
    push_limit: usize,
) -> Response<Body> {
    match (req.method(), req.uri().path()) {
        (_, "/system/logs") => handler.handle(req).await.map(Either::Left),
        (&Method::POST, "/system/logs/push") => push(&store, req, push_limit).await,
        (&Method::GET, "/healthz") => json(StatusCode::OK, &serde_json::json!({ "status": "ok" })),
        (_, "/system/logs/push") | (_, "/healthz") => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "not found: try GET /system/logs?name=...",
        ),
    }
}

/// Starts `sh -c command` in a process group of its own and captures its output as
/// function `name`'s logs. Returns the group's id, for [`stop_functions`].
fn run_function(
    store: &LogStore,
    namespace: &str,
    name: &str,
    command: &str,
    max_line: usize,
) -> std::io::Result<u32> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().unwrap_or_default();
    let instance = format!("{name}-{pid}");
    if let Err(e) = store.register(namespace, name) {
        tracing::warn!(error = %e, "function not registered");
    }
    tracing::info!(function = name, %instance, command, "running");
    let outputs = [
        child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        child
            .stderr
            .take()
            .map(|e| Box::new(e) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
    ];
    for output in outputs.into_iter().flatten() {
        let (store, namespace, name, instance) = (
            store.clone(),
            namespace.to_owned(),
            name.to_owned(),
            instance.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) =
                capture_lines(output, &store, &namespace, &name, &instance, max_line).await
            {
                tracing::warn!(error = %e, %instance, "capture ended");
            }
        });
    }
    tokio::spawn(async move {
        match child.wait().await {
            Ok(status) => tracing::info!(%instance, %status, "function process exited"),
            Err(e) => {
                tracing::warn!(%instance, error = %e, "could not wait for the function process")
            }
        }
    });
    Ok(pid)
}

/// Ends every process the functions started, children of their shells included.
fn stop_functions(groups: &[u32]) {
    for group in groups {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", "--", &format!("-{group}")])
            .stderr(Stdio::null())
            .status();
    }
}

/// The built-in demo function: a few lines at once, then one a second.
fn run_demo(store: &LogStore, namespace: &str) {
    let (store, namespace) = (store.clone(), namespace.to_owned());
    tokio::spawn(async move {
        let line = |text: String| Message {
            name: "demo".into(),
            namespace: namespace.clone(),
            instance: "demo-1".into(),
            timestamp: Utc::now(),
            text,
            stream: None,
        };
        for text in [
            "demo function started",
            "this line and one a second are kept in the in-memory store",
            "try: /system/logs?name=demo&follow=true",
        ] {
            let _ = store.append(line(text.into()));
        }
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        ticks.tick().await;
        for n in 1u64.. {
            ticks.tick().await;
            let _ = store.append(line(format!("tick {n}: handled {} requests", n * 3 % 7)));
        }
    });
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_tracing();
    let args = Args::parse();
    let store = LogStore::with_limits(StoreLimits {
        max_messages: args.max_lines,
        max_bytes: args.max_bytes,
        ..StoreLimits::default()
    })
    .with_default_namespace(args.namespace.clone());
    let handler = LogHandler::new(store.clone(), Duration::from_secs(args.timeout));

    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let local = listener.local_addr()?;
    println!("listening on http://{local}/system/logs");

    if args.run.is_empty() {
        run_demo(&store, &args.namespace);
        println!("try: curl -s 'http://{local}/system/logs?name=demo&tail=5'");
    }
    let mut groups = Vec::new();
    for (name, command) in &args.run {
        groups.push(run_function(
            &store,
            &args.namespace,
            name,
            command,
            args.max_line_bytes,
        )?);
    }

    let limit = args.max_push_bytes;
    let route = {
        let handler = handler.clone();
        move |req| route(req, handler.clone(), store.clone(), limit)
    };
    common::serve(listener, route, || {
        stop_functions(&groups);
        handler.shutdown();
    })
    .await;
    Ok(())
}
