//! The Kubernetes log provider: `GET /system/logs` for functions that run as pods, as
//! faas-netes deploys them (label `faas_function=<name>`), read through the API server.
//!
//! ```text
//! faas-logs serve kubernetes                      in a pod: its service account
//! faas-logs serve kubernetes --kubeconfig ~/.kube/config --context prod
//! ```

use std::path::PathBuf;

use super::server;
use super::server::ServerArgs;
use faas_logs::kubernetes::{Client, KubernetesRequester, FUNCTION_LABEL};
use faas_logs::server::LogHandler;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// A log provider for functions that run as Kubernetes pods.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// The kubeconfig to read; without it, `$KUBECONFIG` or `~/.kube/config`, else the
    /// service account of the pod this runs in.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig's context to use instead of its current one.
    #[arg(long)]
    context: Option<String>,
    /// The label whose value names a pod's function.
    #[arg(long, env = "FUNCTION_LABEL", default_value = FUNCTION_LABEL)]
    function_label: String,
    /// The namespace of requests that name none.
    #[arg(long, env = "DEFAULT_NAMESPACE", default_value = "openfaas-fn")]
    namespace: String,
    /// Also show, in history, the previous run's log of restarted containers, with the
    /// instance `<pod> (previous)`.
    #[arg(long)]
    previous: bool,
}

pub(crate) async fn run(args: Args) -> Result<(), server::Failure> {
    let credentials = args.server.credentials()?;
    let requester = match (&args.kubeconfig, &args.context) {
        (None, None) => KubernetesRequester::infer().await?,
        (path, context) => {
            let kubeconfig = match path {
                Some(path) => Kubeconfig::read_from(path).map_err(|e| {
                    format!("the kubeconfig {} cannot be read: {e}", path.display())
                })?,
                None => Kubeconfig::read()
                    .map_err(|e| format!("no kubeconfig to choose a context in: {e}"))?,
            };
            let options = KubeConfigOptions {
                context: context.clone(),
                ..KubeConfigOptions::default()
            };
            let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| format!("the kubeconfig cannot be used: {e}"))?;
            let client = Client::try_from(config)
                .map_err(|e| format!("no Kubernetes client could be made: {e}"))?;
            KubernetesRequester::new(client)
        }
    };
    let requester = requester
        .with_function_label(&args.function_label)
        .with_default_namespace(&args.namespace)
        .with_previous(args.previous);
    tracing::info!(label = %args.function_label, namespace = %args.namespace, basic_auth = args.server.basic_auth, "reading logs from Kubernetes pods");
    let handler = LogHandler::new(requester, args.server.timeout());
    server::serve_logs(&args.server, credentials, handler).await?;
    Ok(())
}
