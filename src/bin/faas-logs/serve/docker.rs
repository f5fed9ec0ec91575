//! The Docker log provider: `GET /system/logs` for functions that run as Docker
//! containers labelled `com.openfaas.function=<name>`.
//!
//! ```text
//! faas-logs serve docker
//! faas-logs serve docker --listen 0.0.0.0:8081 --timeout 120
//! DOCKER_HOST=tcp://127.0.0.1:2375 faas-logs serve docker
//! basic_auth=true secret_mount_path=./secrets faas-logs serve docker
//! ```
//!
//! With basic auth on, `/system/logs` wants the user and password read from the files
//! `basic-auth-user` and `basic-auth-password` under the secret mount path, as OpenFaaS
//! components do; `/healthz` stays open. Ctrl-C or SIGTERM end open follow streams
//! cleanly and stop the server.

use super::server;
use super::server::ServerArgs;
use faas_logs::docker::DockerRequester;
use faas_logs::server::LogHandler;

/// A log provider for functions that run as Docker containers.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
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

pub(crate) async fn run(args: Args) -> Result<(), server::Failure> {
    let credentials = args.server.credentials()?;
    let docker = DockerRequester::from_env()?
        .with_function_label(&args.function_label)
        .with_namespace_label(&args.namespace_label)
        .with_default_namespace(&args.namespace);
    tracing::info!(host = %docker.host(), basic_auth = args.server.basic_auth, "reading logs from Docker");
    let handler = LogHandler::new(docker, args.server.timeout());

    server::serve_logs(&args.server, credentials, handler).await?;
    Ok(())
}
