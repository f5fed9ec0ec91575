//! `faas-logs activations ...`: the activation commands OpenWhisk users know from `wsk`,
//! `ops` and `doctl`, with their flags and their output.

use std::fmt::Write as _;
use std::io::Write;
use std::time::Duration;

use chrono::{Local, TimeZone};
use clap::{Args, Subcommand};
use faas_logs::openwhisk::{
    parse_line, ActivationPoller, ActivationStatus, ActivationSummary, ListOptions,
    OpenWhiskClient, PollSettings, WskProps, MAX_LIMIT,
};
use serde::Serialize;

use crate::logs::Failure;

const EXAMPLES: &str = "\
Examples:
  faas-logs activations list                      the 30 newest activations, as wsk lists them
  faas-logs activations list sample/hello -l 5    the newest 5 of one action
  faas-logs activations logs --last --strip       the newest activation's lines, text only
  faas-logs activations result ID                 what it returned
  faas-logs activations poll hello --since-minutes 10 --exit 60

The API host and key: --apihost/--auth, else __OW_API_HOST/__OW_API_KEY, else
~/.wskprops (APIHOST=, AUTH=; or the file WSK_CONFIG_FILE names), as wsk reads them.";

/// The activation commands of OpenWhisk (`wsk activation`, `ops activation`, `doctl
/// serverless activations`).
#[derive(Args, Debug)]
#[command(after_help = EXAMPLES)]
pub(crate) struct ActivationsArgs {
    #[command(subcommand)]
    command: ActivationCommand,
    /// The OpenWhisk API host (`https://host`, or a bare host for https).
    #[arg(long, global = true, value_name = "HOST")]
    apihost: Option<String>,
    /// The API key, UUID:KEY.
    #[arg(
        short = 'u',
        long,
        global = true,
        value_name = "KEY",
        hide_env_values = true
    )]
    auth: Option<String>,
    /// Accept any certificate (a test deployment only).
    #[arg(short = 'i', long, global = true)]
    insecure: bool,
}

#[derive(Subcommand, Debug)]
enum ActivationCommand {
    /// List activations, newest first.
    List {
        /// An action (`hello`, `package/hello`, `/namespace/package/hello`) or a namespace
        /// (`/namespace`).
        name: Option<String>,
        /// At most this many (up to 200).
        #[arg(short, long, default_value_t = 30)]
        limit: u32,
        /// Leave out this many of the newest.
        #[arg(short, long, default_value_t = 0)]
        skip: u32,
        /// Only those that started at or after this (epoch milliseconds).
        #[arg(long, value_name = "MS")]
        since: Option<i64>,
        /// Only those that started at or before this (epoch milliseconds).
        #[arg(long, value_name = "MS")]
        upto: Option<i64>,
        /// Whole records, as JSON.
        #[arg(short, long)]
        full: bool,
    },
    /// One activation's record.
    Get(Pick),
    /// One activation's log lines.
    Logs {
        #[command(flatten)]
        pick: Pick,
        /// Only the text: no time, no stream.
        #[arg(short = 'r', long)]
        strip: bool,
    },
    /// One activation's result.
    Result(Pick),
    /// Print the logs of activations as they finish, until Ctrl-C.
    Poll {
        /// An action, or a namespace (`/namespace`); every action when absent.
        name: Option<String>,
        /// Stop after this many seconds.
        #[arg(short, long, value_name = "SECONDS", default_value_t = 0)]
        exit: u64,
        /// Start this many seconds back (with the other --since-* flags, added up).
        #[arg(long, default_value_t = 0)]
        since_seconds: u64,
        /// Start this many minutes back.
        #[arg(long, default_value_t = 0)]
        since_minutes: u64,
        /// Start this many hours back.
        #[arg(long, default_value_t = 0)]
        since_hours: u64,
        /// Start this many days back.
        #[arg(long, default_value_t = 0)]
        since_days: u64,
        /// Seconds between polls.
        #[arg(long, default_value_t = 2)]
        interval: u64,
    },
}

/// An activation: by id, or the newest.
#[derive(Args, Debug)]
struct Pick {
    /// The activation id.
    #[arg(required_unless_present = "last")]
    id: Option<String>,
    /// The newest activation instead.
    #[arg(short, long, conflicts_with = "id")]
    last: bool,
}

pub(crate) async fn run(args: ActivationsArgs) -> Result<(), Failure> {
    let (apihost, auth) = WskProps::resolve(args.apihost, args.auth).map_err(fail)?;
    let mut builder = OpenWhiskClient::builder(apihost, auth);
    if let Some(namespace) = WskProps::load().map_err(fail)?.namespace {
        builder = builder.namespace(namespace);
    }
    if args.insecure {
        builder = builder.danger_accept_invalid_certs();
    }
    let client = builder.build().map_err(fail)?;
    let mut out = std::io::stdout().lock();
    match args.command {
        ActivationCommand::List {
            name,
            limit,
            skip,
            since,
            upto,
            full,
        } => {
            let (client, entity) = target(&client, name.as_deref());
            let mut options = ListOptions::new()
                .with_limit(limit.min(MAX_LIMIT))
                .with_skip(skip);
            if let Some(entity) = entity {
                options = options.with_name(entity);
            }
            if let Some(since) = since {
                options = options.with_since(since);
            }
            if let Some(upto) = upto {
                options = options.with_upto(upto);
            }
            if full {
                let records = client.list_full(&options).await.map_err(fail)?;
                writeln!(out, "activations").map_err(io)?;
                for record in &records {
                    write_json(&mut out, &WskActivation::of(record))?;
                }
            } else {
                let rows = client.list(&options).await.map_err(fail)?;
                out.write_all(table(&rows).as_bytes()).map_err(io)?;
            }
        }
        ActivationCommand::Get(pick) => {
            let id = pick.resolve(&client).await?;
            let record = client.get(&id).await.map_err(fail)?;
            writeln!(out, "ok: got activation {id}").map_err(io)?;
            write_json(&mut out, &WskActivation::of(&record))?;
        }
        ActivationCommand::Logs { pick, strip } => {
            let id = pick.resolve(&client).await?;
            for line in client.logs(&id).await.map_err(fail)? {
                let text = if strip { strip_line(&line) } else { &line };
                writeln!(out, "{text}").map_err(io)?;
            }
        }
        ActivationCommand::Result(pick) => {
            let id = pick.resolve(&client).await?;
            let response = client.result(&id).await.map_err(fail)?;
            write_json(&mut out, &response.result.unwrap_or_default())?;
        }
        ActivationCommand::Poll {
            name,
            exit,
            since_seconds,
            since_minutes,
            since_hours,
            since_days,
            interval,
        } => {
            let back = since_seconds + 60 * (since_minutes + 60 * (since_hours + 24 * since_days));
            let (client, entity) = target(&client, name.as_deref());
            let settings = PollSettings::default().with_interval(Duration::from_secs(interval));
            drop(out);
            poll(client, entity, settings, back, exit).await?;
        }
    }
    Ok(())
}

impl Pick {
    /// The id given, or the newest activation's (`--last`, as `wsk` finds it).
    async fn resolve(self, client: &OpenWhiskClient) -> Result<String, Failure> {
        if let Some(id) = self.id {
            return Ok(id);
        }
        let newest = client
            .list(&ListOptions::new().with_limit(1))
            .await
            .map_err(fail)?;
        newest
            .into_iter()
            .next()
            .map(|row| row.activation_id)
            .ok_or_else(|| Failure::Error("there are no activations in this namespace".into()))
    }
}

/// `wsk`'s names: `/namespace/[package/]action` or `/namespace` carry the namespace;
/// `action` and `package/action` are in the client's.
fn target(client: &OpenWhiskClient, name: Option<&str>) -> (OpenWhiskClient, Option<String>) {
    match name.map(|n| (n, n.strip_prefix('/'))) {
        None => (client.clone(), None),
        Some((_, Some(qualified))) => match qualified.split_once('/') {
            Some((namespace, entity)) => {
                (client.with_namespace(namespace), Some(entity.to_owned()))
            }
            None => (client.with_namespace(qualified), None),
        },
        Some((name, None)) => (client.clone(), Some(name.to_owned())),
    }
}

/// `wsk activation poll`: a banner per activation, then its lines, oldest first.
async fn poll(
    client: OpenWhiskClient,
    entity: Option<String>,
    settings: PollSettings,
    back_seconds: u64,
    exit_after: u64,
) -> Result<(), Failure> {
    println!("Enter Ctrl-c to exit.");
    let mut poller = if back_seconds == 0 {
        ActivationPoller::after_existing(client, entity, settings)
            .await
            .map_err(fail)?
    } else {
        let back = i64::try_from(back_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
        let since = chrono::Utc::now().timestamp_millis().saturating_sub(back);
        ActivationPoller::since(client, entity, settings, since)
    };
    println!("Polling for activation logs");
    let deadline =
        (exit_after > 0).then(|| tokio::time::Instant::now() + Duration::from_secs(exit_after));
    let forever = std::future::pending::<()>();
    let until_exit = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => forever.await,
        }
    };
    tokio::pin!(until_exit);
    loop {
        let found = tokio::select! {
            found = poller.next() => found.map_err(fail)?,
            () = &mut until_exit => return Ok(()),
            _ = tokio::signal::ctrl_c() => {
                println!("Poll terminated");
                return Err(Failure::Interrupted);
            }
        };
        let mut out = std::io::stdout().lock();
        for activation in found {
            writeln!(
                out,
                "\nActivation: '{}' ({})",
                activation.name, activation.activation_id
            )
            .map_err(io)?;
            for line in activation.logs.unwrap_or_default() {
                writeln!(out, "{line}").map_err(io)?;
            }
        }
        out.flush().map_err(io)?;
    }
}

/// The line's text without its time and stream, as `wsk --strip` prints it.
fn strip_line(line: &str) -> &str {
    let parsed = parse_line(line);
    if parsed.time.is_some() {
        parsed.text
    } else {
        line
    }
}

/// `wsk activation list`'s table: Kind and Status as wide as their longest value, times
/// in the local zone, durations as Go prints them.
fn table(rows: &[ActivationSummary]) -> String {
    let status = |row: &ActivationSummary| {
        row.status_code
            .map_or(ActivationStatus::Success, ActivationStatus::from_code)
            .as_str()
    };
    let kind = |row: &ActivationSummary| row.annotations.kind().unwrap_or("unknown").to_owned();
    let kind_width = rows.iter().map(|r| kind(r).len()).max().unwrap_or(0).max(4);
    let status_width = rows
        .iter()
        .map(|r| status(r).len())
        .max()
        .unwrap_or(0)
        .max(6);
    if rows.is_empty() {
        return "activations\n".to_owned();
    }
    let mut out = format!(
        "{:<19} {:<32} {:<kind_width$} {:<6}{:<10} {:<status_width$} {:<6}\n",
        "Datetime", "Activation ID", "Kind", "Start", "Duration", "Status", "Entity"
    );
    for row in rows {
        let start = Local
            .timestamp_millis_opt(row.start)
            .single()
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        let duration = match row.duration {
            None | Some(0) => 0,
            Some(_) => row.end.unwrap_or(row.start) - row.start,
        };
        let entity = format!(
            "{}/{}:{}",
            truncate(&row.namespace, 20),
            truncate(&row.name, 30),
            truncate(row.version.as_deref().unwrap_or(""), 20)
        );
        let cold = if row.annotations.is_cold_start() {
            "cold"
        } else {
            "warm"
        };
        let _ = writeln!(
            out,
            "{start} {:<32} {:<kind_width$} {cold:<5} {:<10} {:<status_width$} {entity}",
            row.activation_id,
            kind(row),
            go_duration(duration),
            status(row),
        );
    }
    out
}

/// `wsk`'s `TruncateStr`: the middle of a long text replaced by `...`.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max || !text.is_ascii() {
        return text.to_owned();
    }
    let mut head = max / 2;
    let tail_from = text.len() - head + 3;
    if max % 2 != 0 {
        head += 1;
    }
    format!("{}...{}", &text[..head], &text[tail_from..])
}

/// Milliseconds as Go's `time.Duration` prints them: `0s`, `5ms`, `1.5s`, `2m3.004s`,
/// `1h0m0s`.
fn go_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_owned();
    }
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    if ms < 1000 {
        return format!("{sign}{ms}ms");
    }
    let (hours, minutes) = (ms / 3_600_000, ms / 60_000 % 60);
    let (seconds, millis) = (ms / 1000 % 60, ms % 1000);
    let fraction = if millis == 0 {
        String::new()
    } else {
        format!(".{millis:03}").trim_end_matches('0').to_owned()
    };
    match (hours, minutes) {
        (0, 0) => format!("{sign}{seconds}{fraction}s"),
        (0, m) => format!("{sign}{m}m{seconds}{fraction}s"),
        (h, m) => format!("{sign}{h}h{m}m{seconds}{fraction}s"),
    }
}

/// A record as `wsk` prints it: its Go client's `Activation`, fields in that struct's
/// order, absent ones as Go's zero values, fields the struct does not have left out.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WskActivation<'a> {
    namespace: &'a str,
    name: &'a str,
    version: &'a str,
    subject: &'a str,
    activation_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cause: Option<&'a str>,
    start: i64,
    end: i64,
    duration: i64,
    status_code: i64,
    response: WskResponse<'a>,
    logs: Option<&'a [String]>,
    annotations: &'a faas_logs::openwhisk::Annotations,
    #[serde(skip_serializing_if = "Option::is_none")]
    publish: Option<bool>,
}

/// A record's response as `wsk` prints it (its Go client's `Response`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WskResponse<'a> {
    status: &'a str,
    status_code: i64,
    success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a serde_json::Value>,
}

impl<'a> WskActivation<'a> {
    fn of(record: &'a faas_logs::openwhisk::Activation) -> Self {
        let code = |extra: &serde_json::Map<String, serde_json::Value>| {
            extra
                .get("statusCode")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(0)
        };
        let response = record.response.as_ref();
        WskActivation {
            namespace: &record.namespace,
            name: &record.name,
            version: record.version.as_deref().unwrap_or_default(),
            subject: record.subject.as_deref().unwrap_or_default(),
            activation_id: &record.activation_id,
            cause: record.cause.as_deref(),
            start: record.start,
            end: record.end.unwrap_or(0),
            duration: record.duration.unwrap_or(0),
            status_code: code(&record.extra),
            response: WskResponse {
                status: response
                    .and_then(|r| r.status.as_deref())
                    .unwrap_or_default(),
                status_code: response.map_or(0, |r| code(&r.extra)),
                success: response.and_then(|r| r.success).unwrap_or(false),
                result: response.and_then(|r| r.result.as_ref()),
            },
            logs: record.logs.as_deref(),
            annotations: &record.annotations,
            publish: record.publish,
        }
    }
}

/// JSON indented by four spaces, as `wsk` prints it.
fn write_json(out: &mut impl Write, value: &impl Serialize) -> Result<(), Failure> {
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut *out, formatter);
    value
        .serialize(&mut serializer)
        .map_err(|e| Failure::Error(format!("cannot print: {e}")))?;
    writeln!(out).map_err(io)
}

/// A failure of the API or of its settings, as the sentence the command prints.
fn fail(e: impl std::fmt::Display) -> Failure {
    Failure::Error(e.to_string())
}

fn io(e: std::io::Error) -> Failure {
    Failure::Error(format!("cannot print: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_prints_them() {
        let cases = [
            (0, "0s"),
            (5, "5ms"),
            (999, "999ms"),
            (1000, "1s"),
            (1500, "1.5s"),
            (1234, "1.234s"),
            (61_000, "1m1s"),
            (123_004, "2m3.004s"),
            (3_600_000, "1h0m0s"),
            (-5, "-5ms"),
        ];
        for (ms, text) in cases {
            assert_eq!(go_duration(ms), text, "{ms}");
        }
    }

    #[test]
    fn long_names_lose_their_middle_as_in_wsk() {
        assert_eq!(truncate("short", 20), "short");
        assert_eq!(
            truncate("abcdefghijklmnopqrstuvwxyz", 20),
            "abcdefghij...tuvwxyz"
        );
        assert_eq!(
            truncate("abcdefghijklmnopqrstuvwxyz", 21),
            "abcdefghijk...tuvwxyz"
        );
    }
}
