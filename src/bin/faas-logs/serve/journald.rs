//! The journald log provider: `GET /system/logs` for functions whose logs are in the
//! systemd journal, as faasd's `collect` and `faas-logs collect` write them
//! (`SYSLOG_IDENTIFIER=<namespace>:<name>`), or as Docker's `journald` log driver does
//! with `--log-opt tag=<namespace>:<name>`.
//!
//! ```text
//! faas-logs serve journald
//! faas-logs serve journald --listen 0.0.0.0:8081 --journal-arg=--directory=/var/log/journal
//! ```

use std::path::PathBuf;

use super::server;
use super::server::ServerArgs;
use faas_logs::journald::{JournalFields, JournaldRequester};
use faas_logs::server::LogHandler;

/// A log provider for functions whose logs are in the systemd journal.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// The journal field whose value is `<namespace>:<name>`.
    #[arg(long, env = "FUNCTION_FIELD", default_value = "SYSLOG_IDENTIFIER")]
    function_field: String,
    /// The journal fields that name the instance, the first one an entry has winning.
    #[arg(
        long,
        env = "INSTANCE_FIELDS",
        value_delimiter = ',',
        default_value = "CONTAINER_NAME,CONTAINER_ID,_PID"
    )]
    instance_field: Vec<String>,
    /// The namespace of requests that name none.
    #[arg(long, env = "DEFAULT_NAMESPACE", default_value = "openfaas-fn")]
    namespace: String,
    /// The journalctl to run.
    #[arg(long, env = "JOURNALCTL", default_value = "journalctl")]
    journalctl: PathBuf,
    /// An argument given to every journalctl run, to choose the journal
    /// (`--journal-arg=--directory=/var/log/journal`); repeat for more.
    #[arg(long = "journal-arg", allow_hyphen_values = true)]
    journal_args: Vec<String>,
}

pub(crate) async fn run(args: Args) -> Result<(), server::Failure> {
    let credentials = args.server.credentials()?;
    let fields = JournalFields {
        function: args.function_field,
        instance: args.instance_field,
    };
    let journal = JournaldRequester::new()
        .with_journalctl(&args.journalctl)
        .with_args(&args.journal_args)
        .with_fields(fields)
        .with_default_namespace(&args.namespace);
    tracing::info!(journalctl = %args.journalctl.display(), basic_auth = args.server.basic_auth, "reading logs from the journal");
    let handler = LogHandler::new(journal, args.server.timeout());
    server::serve_logs(&args.server, credentials, handler).await?;
    Ok(())
}
