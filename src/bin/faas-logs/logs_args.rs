//! The flags of `faas-cli logs`, spelled and parsed as faas-cli parses them (Go bool and
//! duration flags), and the flags faas-cli lacks.

use chrono::{DateTime, FixedOffset};
use clap::{ArgAction, Args, ValueEnum};

/// Where faas-cli looks when neither `--gateway`, a stack file nor `OPENFAAS_URL` says.
pub(crate) const DEFAULT_GATEWAY: &str = "http://127.0.0.1:8080";

/// The flags of `faas-cli logs`, and faas-logs' own.
#[derive(Args, Debug)]
pub(crate) struct LogsArgs {
    /// The functions: one, as faas-cli takes it, or several merged by time. With
    /// --stdin, the functions whose lines are printed (all when none is named).
    #[arg(required_unless_present_any = ["stdin", "regex", "all"], value_name = "NAME")]
    pub(crate) names: Vec<String>,

    /// Also every function whose name matches REGEX, from the provider's function list
    /// (or an OpenFaaS gateway's), as stern selects pods: `--regex '^web-'`. A follow
    /// picks up functions that appear later, and waits when none matches yet.
    #[arg(long, value_name = "REGEX")]
    pub(crate) regex: Option<regex::Regex>,

    /// Every function the provider lists (of the namespace -n names, when given).
    #[arg(long)]
    pub(crate) all: bool,

    /// While following, how often --regex and --all read the function list again, to
    /// follow the functions that appear (from their first line).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = go_duration)]
    pub(crate) relist: chrono::Duration,

    /// Read the lines from standard input instead of a provider: NDJSON of messages, as
    /// a provider sends them or the viewer downloads them; every filter and format
    /// applies (`faas-logs --stdin -o raw --include=ERROR < billing.ndjson`). A line
    /// that is not a message is reported with its number, and the command exits 1 at the
    /// end.
    #[arg(long, conflicts_with_all = ["gateway", "yaml", "tail", "forever", "regex", "all"])]
    pub(crate) stdin: bool,

    /// Gateway URL starting with http(s):// [env: OPENFAAS_URL] [default: http://127.0.0.1:8080]
    #[arg(short, long, value_name = "URL")]
    pub(crate) gateway: Option<String>,

    /// Namespace of the function.
    #[arg(short, long, default_value = "")]
    pub(crate) namespace: String,

    /// Disable TLS validation.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_parser = go_bool,
          action = ArgAction::Set)]
    pub(crate) tls_no_verify: bool,

    /// Return logs newer than a relative duration like 5s (Go durations: 300ms, 1h30m).
    #[arg(long, value_name = "DURATION", value_parser = go_duration, allow_hyphen_values = true)]
    pub(crate) since: Option<chrono::Duration>,

    /// Include logs since the given timestamp (RFC3339); wins over --since.
    #[arg(long, value_name = "TIMESTAMP", value_parser = rfc3339)]
    pub(crate) since_time: Option<DateTime<FixedOffset>>,

    /// Number of recent log lines to display; unlimited if <= 0 (0 sends no tail).
    #[arg(long, value_name = "N", default_value_t = -1, allow_negative_numbers = true)]
    pub(crate) lines: i64,

    /// Tail logs and continue printing new logs until the end of the request (follow).
    #[arg(short = 't', long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "true", default_missing_value = "true", value_parser = go_bool,
          action = ArgAction::Set)]
    pub(crate) tail: bool,

    /// A bearer token (JWT) to use instead of basic auth.
    #[arg(
        short = 'k',
        long,
        value_name = "TOKEN",
        env = "OPENFAAS_TOKEN",
        hide_env_values = true
    )]
    pub(crate) token: Option<String>,

    /// Basic auth as USER:PASSWORD, instead of the login faas-cli saved.
    #[arg(
        short = 'u',
        long,
        value_name = "USER:PASSWORD",
        env = "OPENFAAS_USER",
        hide_env_values = true
    )]
    pub(crate) user: Option<String>,

    /// Output logs as (plain|keyvalue|json|raw); json is each line as the provider sent
    /// it, raw its text alone.
    #[arg(
        short,
        long,
        value_name = "FORMAT",
        default_value = "plain",
        ignore_case = true
    )]
    pub(crate) output: Format,

    /// Write each line with a Jinja2 template instead of --output, its fields `name`,
    /// `namespace`, `instance`, `timestamp` (RFC 3339), `time` (as --time-format,
    /// --timestamps and --timezone write it), `text`, `stream`, `severity`, `trace_id`,
    /// `span_id` and `attributes`: `--template '{{ time }} {{ instance }}
    /// [{{ severity or "-" }}] {{ text }}'`; filters such as `upper`, `replace`,
    /// `default("-")` apply.
    #[arg(long, value_name = "TEMPLATE", conflicts_with_all = ["output", "json"],
          value_parser = crate::template::LineTemplate::new)]
    pub(crate) template: Option<crate::template::LineTemplate>,

    /// String format for the timestamp: any Go time layout or a Go layout name (rfc3339,
    /// rfc3339nano, ansic, kitchen, ...); empty prints no timestamp.
    #[arg(
        long,
        value_name = "LAYOUT",
        default_value = "2006-01-02T15:04:05Z07:00"
    )]
    pub(crate) time_format: String,

    /// Timestamps as stern writes them, instead of --time-format: `short` (01-02
    /// 15:04:05), `full` (nanoseconds and the zone) or `none`.
    #[arg(long, value_name = "STYLE")]
    pub(crate) timestamps: Option<Timestamps>,

    /// The zone timestamps are written in: UTC (faas-cli's), Local (this machine's), or
    /// an offset such as +02:00.
    #[arg(long, value_name = "ZONE", default_value = "UTC", allow_hyphen_values = true,
          value_parser = crate::layout::Zone::parse)]
    pub(crate) timezone: crate::layout::Zone,

    /// Print the function name.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_parser = go_bool,
          action = ArgAction::Set)]
    pub(crate) name: bool,

    /// Print the function instance name/id (a display toggle: --only-instance filters).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_parser = go_bool,
          action = ArgAction::Set)]
    pub(crate) instance: bool,

    /// Output logs as JSON (equivalent to --output=json).
    #[arg(short, long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_parser = go_bool,
          action = ArgAction::Set)]
    pub(crate) json: bool,

    /// Path to a stack file whose provider.gateway gives the gateway (default: stack.yaml
    /// or stack.yml here, when there is one).
    #[arg(short = 'f', long = "yaml", value_name = "FILE")]
    pub(crate) yaml: Option<std::path::PathBuf>,

    /// Only this instance's lines: sent as the provider's `instance` filter.
    #[arg(long, value_name = "INSTANCE")]
    pub(crate) only_instance: Option<String>,

    /// Follow past the provider's timeout: reconnect from the last line seen (every line
    /// once, in order) until Ctrl-C.
    #[arg(long)]
    pub(crate) forever: bool,

    /// With --forever, failures in a row (provider gone, stream broken) before giving
    /// up; pauses grow from 100 ms to 5 s.
    #[arg(long, value_name = "N", default_value_t = 10, requires = "forever")]
    pub(crate) retries: u32,

    /// Only lines whose text matches REGEX (repeatable: any of them).
    #[arg(long, value_name = "REGEX")]
    pub(crate) include: Vec<regex::Regex>,

    /// No line of an instance whose name matches REGEX (repeatable), as stern's
    /// --exclude-pod: `--exclude-instance '-canary-'`.
    #[arg(long, value_name = "REGEX")]
    pub(crate) exclude_instance: Vec<regex::Regex>,

    /// Colour what matches REGEX in the text, filtering nothing (repeatable; on a
    /// terminal, or with --color=always).
    #[arg(long, value_name = "REGEX")]
    pub(crate) highlight: Vec<regex::Regex>,

    /// No line whose text matches REGEX (repeatable).
    #[arg(long, value_name = "REGEX")]
    pub(crate) exclude: Vec<regex::Regex>,

    /// Colour each instance's name, stderr's text and levels (ERROR, WARN, INFO, DEBUG,
    /// `level=`, a JSON line's `level`, an OTLP severity, as the viewer finds them): auto
    /// is on a terminal that shows colours, unless NO_COLOR is set (CLICOLOR_FORCE
    /// forces them).
    #[arg(long, value_name = "WHEN", default_value = "auto")]
    pub(crate) color: ColorWhen,

    /// Longest line accepted from the provider, in bytes; a longer one is an error.
    #[arg(long, value_name = "BYTES", default_value_t = faas_logs::codec::DEFAULT_MAX_JSON_LINE)]
    pub(crate) max_line: usize,

    /// Trust the certificates in this PEM file too (a gateway's self-signed one).
    #[arg(long, value_name = "FILE")]
    pub(crate) cacert: Option<std::path::PathBuf>,
}

/// An output format of faas-cli.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// `TIME NAME (INSTANCE) TEXT`, each part as asked.
    Plain,
    /// `timestamp="TIME" name="NAME" instance="INSTANCE" text="TEXT" `.
    Keyvalue,
    /// The provider's NDJSON line unchanged.
    Json,
    /// The text alone.
    Raw,
}

/// A `--timestamps` style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Timestamps {
    /// `01-02 15:04:05`.
    Short,
    /// `2006-01-02T15:04:05.000000000Z07:00`.
    Full,
    /// No timestamp.
    None,
}

impl Timestamps {
    /// The Go layout of the style.
    pub(crate) fn layout(self) -> &'static str {
        match self {
            Timestamps::Short => "01-02 15:04:05",
            Timestamps::Full => "2006-01-02T15:04:05.000000000Z07:00",
            Timestamps::None => "",
        }
    }
}

/// When to colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorWhen {
    /// On a terminal that shows colours, unless NO_COLOR is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// A Go bool flag value, as `strconv.ParseBool` reads it.
fn go_bool(value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("invalid boolean {value:?} (use true or false)")),
    }
}

/// A Go duration (`time.ParseDuration`): `300ms`, `-1.5h`, `2h45m`; `0` alone.
fn go_duration(value: &str) -> Result<chrono::Duration, String> {
    let invalid = || format!("invalid duration {value:?} (such as 30s, 5m, 1h30m)");
    let (negative, mut rest) = match value.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, value.strip_prefix('+').unwrap_or(value)),
    };
    if rest == "0" {
        return Ok(chrono::Duration::zero());
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];
        nanos += number * unit;
    }
    if nanos > i64::MAX as f64 {
        return Err(format!("duration {value:?} is too long"));
    }
    // Whole nanoseconds, as Go keeps them.
    let nanos = nanos.round() as i64;
    Ok(chrono::Duration::nanoseconds(if negative {
        -nanos
    } else {
        nanos
    }))
}

/// An RFC 3339 timestamp, as Go's `time.Parse(time.RFC3339, ...)` accepts it.
fn rfc3339(value: &str) -> Result<DateTime<FixedOffset>, String> {
    DateTime::parse_from_rfc3339(value).map_err(|e| {
        format!("invalid RFC3339 timestamp {value:?} ({e}), such as 2024-01-02T15:04:05Z")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_go_reads_them() {
        let ms = |d: chrono::Duration| d.num_milliseconds();
        assert_eq!(go_duration("5s").map(ms), Ok(5_000));
        assert_eq!(go_duration("1h30m").map(ms), Ok(5_400_000));
        assert_eq!(go_duration("1.5m").map(ms), Ok(90_000));
        assert_eq!(go_duration("300ms").map(ms), Ok(300));
        assert_eq!(go_duration("-2m").map(ms), Ok(-120_000));
        assert_eq!(go_duration("0").map(ms), Ok(0));
        for bad in ["", "5", "5x", "m", "1..5s", "-"] {
            assert!(go_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bools_read_as_go_reads_them() {
        assert_eq!(go_bool("T"), Ok(true));
        assert_eq!(go_bool("0"), Ok(false));
        assert!(go_bool("yes").is_err());
    }
}
