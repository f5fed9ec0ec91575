//! The command line: reading logs (the flags are in `logs_args`), OpenWhisk's
//! activations, and `serve`.

use clap::{Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  faas-logs NAME                             follow NAME until the provider ends the stream
  faas-logs logs NAME                        the same, as faas-cli spells it
  faas-logs NAME --tail=false --lines=5      the last 5 lines, then exit
  faas-logs NAME --tail=false --since=10m    the last ten minutes
  faas-logs NAME --since-time=2024-01-01T00:00:00Z -o json
  faas-logs NAME --forever                   follow across the provider's timeouts until Ctrl-C
  faas-logs web worker --name                two functions merged by time, coloured per instance
  faas-logs --regex '^web-' -n openfaas-fn   every function whose name starts with web-
  faas-logs NAME --only-instance=NAME-5d8f   one instance's lines (--instance prints it)
  faas-logs NAME --include='ERROR|WARN' --exclude=healthz
  faas-logs NAME --highlight='timeout|refused' colour matches (levels are coloured too)
  faas-logs NAME -g https://gw.example.com -k $TOKEN --time-format=15:04:05.000
  faas-logs NAME --tail=false -o json > saved.ndjson; faas-logs --stdin -o raw < saved.ndjson
                                             saved lines, read with every filter and format
  faas-logs NAME --template '{{ time }} {{ instance }} [{{ severity | default(\"-\") }}] {{ text }}'
  faas-logs serve                            run a provider on 127.0.0.1:8080 (serve --help)

Exit status: 0 when the provider ends the stream cleanly, 1 when it cannot be reached,
answers with an error or breaks the stream off, 2 for a bad command line, 130 on Ctrl-C.";

/// Read the logs of OpenFaaS functions from any provider or gateway: faas-cli's `logs`
/// command, flag for flag and byte for byte, and what it lacks.
#[derive(Parser, Debug)]
#[command(
    name = "faas-logs",
    version,
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    #[cfg(feature = "cli")]
    #[command(flatten)]
    pub(crate) logs: crate::logs_args::LogsArgs,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Fetch logs for functions (the same as without `logs`, as faas-cli spells it).
    #[cfg(feature = "cli")]
    #[command(after_help = EXAMPLES)]
    Logs(Box<crate::logs_args::LogsArgs>),
    /// OpenWhisk's activations: list, get, logs, result, poll (as `wsk activation`).
    #[cfg(feature = "cli")]
    #[command(visible_aliases = ["activation", "actv"])]
    Activations(crate::activations::ActivationsArgs),
    /// Run a log provider: the in-memory store (the default), on disk, NATS JetStream,
    /// Docker, OpenWhisk or a telemetry extension, serving `/system/logs` and the viewer.
    Serve(Box<crate::serve::ServeArgs>),
    /// A containerd log driver (as faasd's `collect`): writes a container's output to
    /// the journal, or to a provider's push endpoint.
    Collect(Box<crate::collect::Args>),
}
