//! The Docker log provider: `GET /system/logs` for functions that run as Docker
//! containers labelled `com.openfaas.function=<name>`.
//!
//! ```text
//! cargo run --features docker --example docker
//! cargo run --features docker --example docker -- --listen 0.0.0.0:8081 --timeout 120
//! DOCKER_HOST=tcp://127.0.0.1:2375 cargo run --features docker --example docker
//! basic_auth=true secret_mount_path=./secrets cargo run --features docker --example docker
//! ```
//!
//! With basic auth on, `/system/logs` wants the user and password read from the files
//! `basic-auth-user` and `basic-auth-password` under the secret mount path, as OpenFaaS
//! components do; `/healthz` stays open. Ctrl-C or SIGTERM end open follow streams
//! cleanly and stop the server.

mod common;

use clap::Parser;
use common::{error, json, Body, ServerArgs};
use faas_logs::docker::DockerRequester;
use faas_logs::server::LogHandler;
use http_body_util::Either;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

/// A log provider for functions that run as Docker containers.
#[derive(Parser, Debug)]
#[command(name = "docker")]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// The label whose value is a container's function name.
    #[arg(long, env = "FUNCTION_LABEL", default_value = "com.openfaas.function")]
    function_label: String,
    /// The label whose value is a container's namespace.
    #[arg(
        long,
        env = "NAMESPACE_LABEL",
        default_value = "com.openfaas.namespace"
    )]
    namespace_label: String,
    /// The namespace of containers without a namespace label, and of requests that name
    /// none.
    #[arg(long, env = "DEFAULT_NAMESPACE", default_value = "openfaas-fn")]
    namespace: String,
}

async fn route(req: Request<Incoming>, handler: LogHandler<DockerRequester>) -> Response<Body> {
    if let Some(answer) = common::viewer(&req, &handler).await {
        return answer;
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => json(StatusCode::OK, &serde_json::json!({ "status": "ok" })),
        (_, "/system/logs") => handler.handle(req).await.map(Either::Left),
        _ => error(
            StatusCode::NOT_FOUND,
            "not found: try GET /system/logs?name=...",
        ),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_tracing();
    let args = Args::parse();
    let credentials = args.server.credentials()?;
    let docker = DockerRequester::from_env()?
        .function_label(&args.function_label)
        .namespace_label(&args.namespace_label)
        .default_namespace(&args.namespace);
    tracing::info!(host = %docker.host(), basic_auth = args.server.basic_auth, "reading logs from Docker");
    let handler = LogHandler::new(docker, args.server.timeout());

    let listener = tokio::net::TcpListener::bind(&args.server.listen).await?;
    println!("listening on http://{}/system/logs", listener.local_addr()?);
    let route = {
        let handler = handler.clone();
        move |req| route(req, handler.clone())
    };
    common::serve(listener, &args.server, credentials, route, || {
        handler.shutdown()
    })
    .await;
    Ok(())
}
