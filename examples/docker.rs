//! A log provider for functions that run as Docker containers, on nothing but the
//! crate's public API: what a provider of your own looks like when a backend of the
//! crate does the reading.
//!
//! ```text
//! cargo run --features docker --example docker                   # 127.0.0.1:8080
//! cargo run --features docker --example docker -- --listen 127.0.0.1:0 --timeout 10
//! docker run -d -l com.openfaas.function=hello busybox sh -c 'while :; do date; sleep 1; done'
//! curl -s 'http://127.0.0.1:8080/system/logs?name=hello&tail=2'
//! curl -s 'http://127.0.0.1:8080/system/logs?name=hello&follow=true'
//! ```
//!
//! A function's containers are those labelled `com.openfaas.function=<name>` (another
//! label with `--label`); the engine is the one `DOCKER_HOST` names, or the local
//! socket. Every replica's lines come merged by time; `follow` attaches replicas that
//! start while the stream is open. The page at `/` is the log viewer. Ctrl-C ends open
//! streams cleanly and stops the server. `faas-logs serve docker` is the same provider
//! with basic auth and the server flags operators need.

use std::time::Duration;

use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use faas_logs::docker::DockerRequester;
use faas_logs::server::{viewer_response, LogHandler, FUNCTIONS_PATH};

/// Where to listen, which engine label names a function, and how long a response lasts.
#[derive(clap::Parser, Debug)]
#[command(name = "docker")]
struct Args {
    /// Address to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Seconds a response may last: a follow stream ends cleanly then.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// The container label whose value is the function's name.
    #[arg(long, default_value = "com.openfaas.function")]
    label: String,
}

#[tokio::main]
async fn main() {
    let args = <Args as clap::Parser>::parse();
    if let Err(e) = run(args).await {
        // A sentence for the operator, with its causes, not a debug dump.
        eprintln!("docker example: {}", faas_logs::Error::describe(&*e));
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let docker = DockerRequester::from_env()?.with_function_label(args.label);
    eprintln!("reading container logs from {}", docker.host());
    let handler = LogHandler::new(docker, Duration::from_secs(args.timeout));

    let functions = {
        let handler = handler.clone();
        // The function list is an async fn of the handler: call it in a handler of axum's.
        move || async move { handler.functions().await }
    };
    let app = Router::new()
        .route_service("/system/logs", handler.clone())
        .route(FUNCTIONS_PATH, get(functions))
        .route("/healthz", get(|| async { "OK" }))
        .route("/", get(|| async { viewer_response() }));

    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!("listening on http://{}/", listener.local_addr()?);
    // A live line goes out at once, not after the client's delayed ACK of the last one.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            // Follow streams never end by themselves: end them, so that each closes
            // cleanly and the server can stop.
            handler.shutdown();
        })
        .await?;
    Ok(())
}
