//! `faas-logs serve`: the log providers an operator runs. Without a subcommand, the
//! embedded default (the in-memory store, or NATS JetStream with `--nats`); `docker`,
//! `journald`, `kubernetes`, `openwhisk` and `telemetry` serve the logs of those platforms. All share the server
//! flags of [`server::ServerArgs`] and answer `GET /metrics` ([`metrics`]).

mod docker;
mod journald;
#[cfg(feature = "kubernetes")]
mod kubernetes;
mod memory;
mod metrics;
#[cfg(feature = "openwhisk")]
mod openwhisk;
mod server;
mod telemetry;

use clap::Subcommand;

/// `faas-logs serve`'s flags: the in-memory provider's, or one of the other providers.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true, after_help = EXAMPLES)]
pub(crate) struct ServeArgs {
    #[command(subcommand)]
    provider: Option<Provider>,
    #[command(flatten)]
    memory: memory::Args,
}

const EXAMPLES: &str = "\
Examples:
  faas-logs serve                              127.0.0.1:8080, the in-memory store, a demo function
  faas-logs serve --run hello='while true; do date; sleep 1; done'
  faas-logs serve --nats nats://127.0.0.1:4222 the logs kept in NATS JetStream
  faas-logs serve --metrics-listen 127.0.0.1:9100   GET /metrics there too, without basic auth
  faas-logs serve docker                       functions that run as Docker containers
  faas-logs serve journald                     functions whose logs are in the systemd journal (faasd)
  faas-logs serve kubernetes                   functions that run as Kubernetes pods (faas-netes)
  faas-logs serve openwhisk --apihost HOST --auth UUID:KEY
  faas-logs serve telemetry                    a Lambda or FunctionGraph telemetry extension";

#[derive(Subcommand, Debug)]
enum Provider {
    /// Logs of functions that run as Docker containers labelled `com.openfaas.function`.
    Docker(docker::Args),
    /// Logs of functions kept in the systemd journal, as faasd and `faas-logs collect`
    /// write them.
    Journald(journald::Args),
    /// Logs of functions that run as Kubernetes pods, as faas-netes deploys them.
    #[cfg(feature = "kubernetes")]
    Kubernetes(kubernetes::Args),
    /// Logs from an OpenWhisk deployment's activation records.
    #[cfg(feature = "openwhisk")]
    Openwhisk(openwhisk::Args),
    /// A telemetry extension (AWS Lambda, Huawei FunctionGraph) that keeps the function's
    /// logs in memory and serves them.
    Telemetry(telemetry::Args),
}

/// Runs the chosen provider until Ctrl-C or SIGTERM; an error is printed as a sentence.
pub(crate) fn run(args: ServeArgs) -> std::process::ExitCode {
    server::init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return server::exit_with(Err(e.into())),
    };
    metrics::install();
    server::exit_with(runtime.block_on(async move {
        server::watch_for_shutdown();
        match args.provider {
            None => memory::run(args.memory).await,
            Some(Provider::Docker(args)) => docker::run(args).await,
            Some(Provider::Journald(args)) => journald::run(args).await,
            #[cfg(feature = "kubernetes")]
            Some(Provider::Kubernetes(args)) => kubernetes::run(args).await,
            #[cfg(feature = "openwhisk")]
            Some(Provider::Openwhisk(args)) => openwhisk::run(args).await,
            Some(Provider::Telemetry(args)) => telemetry::run(args).await,
        }
    }))
}
