//! The OpenWhisk log provider: `GET /system/logs` from an OpenWhisk deployment's
//! activation records (OpenWhisk, OpenServerless, DigitalOcean Functions).
//!
//! ```text
//! faas-logs serve openwhisk --apihost https://openwhisk.example.com --auth UUID:KEY
//! faas-logs serve openwhisk        # the host and key of ~/.wskprops
//! __OW_API_HOST=... __OW_API_KEY=... faas-logs serve openwhisk --listen 0.0.0.0:8081
//! ```
//!
//! Then `faas-cli logs sample/hello --gateway http://127.0.0.1:8080` reads the action
//! `sample/hello`'s logs: history from its activations, then new ones as they finish.
//! The host and key come from the flags, else `__OW_API_HOST` and `__OW_API_KEY`, else
//! `~/.wskprops` (`APIHOST=`, `AUTH=`), as `wsk` and `ops` read them. Basic auth,
//! timeouts and `/healthz` are those of the other provider binaries.

use std::time::Duration;

use super::server;
use super::server::ServerArgs;
use faas_logs::openwhisk::{OpenWhiskClient, OpenWhiskRequester, PollSettings, WskProps};
use faas_logs::server::LogHandler;

/// A log provider over an OpenWhisk deployment's activations.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// The OpenWhisk API host (`https://host`, or a bare host for https).
    #[arg(long)]
    apihost: Option<String>,
    /// The API key, `UUID:KEY`.
    #[arg(long)]
    auth: Option<String>,
    /// The namespace of requests that name none (default: the API key's own).
    #[arg(long, env = "OPENWHISK_NAMESPACE")]
    namespace: Option<String>,
    /// Trust this PEM certificate too (a self-signed deployment's).
    #[arg(long)]
    cacert: Option<std::path::PathBuf>,
    /// Accept any certificate, as `wsk --insecure` (a test deployment only).
    #[arg(long, short = 'i')]
    insecure: bool,
    /// Seconds between two polls of a follow.
    #[arg(long, default_value_t = 2.0)]
    poll_interval: f64,
    /// Seconds the API may fail (429, 5xx) before a query gives up.
    #[arg(long, default_value_t = 60.0)]
    give_up_after: f64,
}

fn seconds(flag: &str, value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("--{flag}: {value} is not a number of seconds"))
}

pub(crate) async fn run(args: Args) -> Result<(), server::Failure> {
    let credentials = args.server.credentials()?;
    let (apihost, auth) = WskProps::resolve(args.apihost.clone(), args.auth.clone())?;
    let mut client = OpenWhiskClient::builder(apihost, auth);
    if let Some(namespace) = args.namespace.clone().or(WskProps::load()?.namespace) {
        client = client.namespace(namespace);
    }
    if let Some(path) = &args.cacert {
        client = client.root_certificate(&std::fs::read(path)?)?;
    }
    if args.insecure {
        client = client.danger_accept_invalid_certs();
    }
    let client = client.build()?;
    let settings = PollSettings::default()
        .with_interval(seconds("poll-interval", args.poll_interval)?)
        .with_give_up_after(seconds("give-up-after", args.give_up_after)?);
    tracing::info!(host = %client.host(), namespace = %client.namespace(), basic_auth = args.server.basic_auth, "reading logs from OpenWhisk");
    let handler = LogHandler::new(
        OpenWhiskRequester::new(client).with_poll_settings(settings),
        args.server.timeout(),
    );

    server::serve_logs(&args.server, credentials, handler).await?;
    Ok(())
}
