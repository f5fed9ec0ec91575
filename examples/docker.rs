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

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use clap::Parser;
use common::{error, json, Body};
use faas_logs::{DockerRequester, LogHandler};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use subtle::ConstantTimeEq;

/// A log provider for functions that run as Docker containers.
#[derive(Parser, Debug)]
#[command(name = "docker")]
struct Args {
    /// Address to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Longest a log response may last, in seconds; ends follow streams.
    #[arg(long, env = "LOGS_TIMEOUT", default_value_t = 60)]
    timeout: u64,
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
    /// Require basic auth on /system/logs, with the OpenFaaS secret files.
    #[arg(long, env = "basic_auth", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    basic_auth: bool,
    /// Where `basic-auth-user` and `basic-auth-password` are read from.
    #[arg(
        long,
        env = "secret_mount_path",
        default_value = "/var/openfaas/secrets"
    )]
    secret_mount_path: PathBuf,
}

/// The one user and password allowed in.
struct Credentials {
    user: Vec<u8>,
    password: Vec<u8>,
}

impl Credentials {
    fn read(dir: &std::path::Path) -> Result<Self, String> {
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read_to_string(&path)
                .map(|s| s.trim().as_bytes().to_vec())
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        let credentials = Credentials {
            user: read("basic-auth-user")?,
            password: read("basic-auth-password")?,
        };
        if credentials.user.is_empty() || credentials.password.is_empty() {
            return Err(format!(
                "empty basic-auth user or password in {}",
                dir.display()
            ));
        }
        Ok(credentials)
    }

    /// Whether the request carries these credentials, compared in constant time.
    fn allow(&self, req: &Request<Incoming>) -> bool {
        let given = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b64| {
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .ok()
            });
        let Some(given) = given else {
            return false;
        };
        let Some(colon) = given.iter().position(|&b| b == b':') else {
            return false;
        };
        let user_ok = given[..colon].ct_eq(&self.user);
        let password_ok = given[colon + 1..].ct_eq(&self.password);
        bool::from(user_ok & password_ok)
    }
}

async fn route(
    req: Request<Incoming>,
    handler: LogHandler<DockerRequester>,
    credentials: Option<Arc<Credentials>>,
) -> Response<Body> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => json(StatusCode::OK, &serde_json::json!({ "status": "ok" })),
        (_, "/system/logs") => {
            if credentials.as_ref().is_some_and(|c| !c.allow(&req)) {
                let mut denied = error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized: basic auth required",
                );
                denied.headers_mut().insert(
                    hyper::header::WWW_AUTHENTICATE,
                    hyper::header::HeaderValue::from_static("Basic realm=\"faas-logs\""),
                );
                return denied;
            }
            handler.handle(req).await.map(Either::Left)
        }
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
    let credentials = if args.basic_auth {
        Some(Arc::new(Credentials::read(&args.secret_mount_path)?))
    } else {
        None
    };
    let docker = DockerRequester::from_env()?
        .function_label(&args.function_label)
        .namespace_label(&args.namespace_label);
    tracing::info!(host = %docker.host(), basic_auth = args.basic_auth, "reading logs from Docker");
    let handler = LogHandler::new(docker, Duration::from_secs(args.timeout));

    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!("listening on http://{}/system/logs", listener.local_addr()?);
    let route = {
        let handler = handler.clone();
        move |req| route(req, handler.clone(), credentials.clone())
    };
    common::serve(listener, route, || handler.shutdown()).await;
    Ok(())
}
