//! The lines of an activation's `logs`: `TIME STREAM: TEXT`, as OpenWhisk's invoker writes
//! them, and the messages they become.

use chrono::{DateTime, Utc};

use super::record::Activation;
use crate::codec::parse_rfc3339;
use crate::{Message, OutputStream, SharedStr};

/// The line a managed runtime prints after each activation on both outputs; the invoker
/// drops it, and so does this crate where a deployment lets one through.
pub const SENTINEL: &str = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX";

/// One line of an activation's `logs`, read by [`parse_line`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActivationLine<'a> {
    /// The line's own time; `None` when the line has none (then the activation's start
    /// stands for it).
    pub time: Option<DateTime<Utc>>,
    /// `stdout` or `stderr`, where the line says.
    pub stream: Option<OutputStream>,
    /// The text after the time and stream; the whole line when it has neither.
    pub text: &'a str,
}

/// Reads `TIME STREAM: TEXT`, the form of every line OpenWhisk stores.
///
/// The time is RFC 3339 in UTC padded with spaces to 30 characters, so a short one is
/// followed by several spaces (`2019-10-11T19:08:57.298Z       stdout: ...`); one space
/// after the colon belongs to the form. A line without the form is all text.
///
/// ```
/// use faas_logs::openwhisk::parse_line;
/// use faas_logs::OutputStream;
///
/// let line = parse_line("2024-02-17T20:01:31.901124753Z stdout: Hello");
/// assert_eq!((line.stream, line.text), (Some(OutputStream::Stdout), "Hello"));
/// assert_eq!(line.time.unwrap().to_rfc3339(), "2024-02-17T20:01:31.901124753+00:00");
///
/// let padded = parse_line("2019-10-11T19:08:57.298Z       stderr: oops");
/// assert_eq!((padded.stream, padded.text), (Some(OutputStream::Stderr), "oops"));
///
/// let bare = parse_line("printed by a blackbox image");
/// assert_eq!((bare.time, bare.text), (None, "printed by a blackbox image"));
/// ```
#[must_use]
pub fn parse_line(line: &str) -> ActivationLine<'_> {
    let whole = ActivationLine {
        time: None,
        stream: None,
        text: line,
    };
    let b = line.as_bytes();
    // The shortest time is `YYYY-MM-DDTHH:MM:SSZ` (20); the longest has nine digits (30).
    if b.len() < 21 || b[4] != b'-' || b[10] != b'T' {
        return whole;
    }
    let Some(z) = b[19..b.len().min(31)].iter().position(|&c| c == b'Z') else {
        return whole;
    };
    let time_end = 19 + z + 1;
    let rest = &line[time_end..];
    let spaces = rest.bytes().take_while(|&c| c == b' ').count();
    if spaces == 0 {
        return whole;
    }
    let Ok(time) = parse_rfc3339(&line[..time_end]) else {
        return whole;
    };
    let rest = &rest[spaces..];
    let (stream, text) = if let Some(text) = rest.strip_prefix("stdout:") {
        (Some(OutputStream::Stdout), text)
    } else if let Some(text) = rest.strip_prefix("stderr:") {
        (Some(OutputStream::Stderr), text)
    } else {
        (None, rest)
    };
    let text = match stream {
        Some(_) => text.strip_prefix(' ').unwrap_or(text),
        None => text,
    };
    ActivationLine {
        time: Some(time),
        stream,
        text,
    }
}

/// Whether a line is the end-of-activation sentinel, bare or in the stored form.
#[must_use]
pub fn is_sentinel(line: &str) -> bool {
    line.ends_with(SENTINEL) && (line == SENTINEL || parse_line(line).text == SENTINEL)
}

/// The lines of `logs` that become messages: all but sentinels.
fn shown(logs: &[String]) -> impl Iterator<Item = &String> {
    logs.iter().filter(|l| !is_sentinel(l))
}

/// The time of each message [`messages`] makes, without making them (a tail counts
/// lines this way).
pub(crate) fn line_times<'a>(
    activation: &Activation,
    logs: &'a [String],
) -> impl Iterator<Item = DateTime<Utc>> + 'a {
    let started = activation.started();
    shown(logs).map(move |raw| parse_line(raw).time.unwrap_or(started))
}

/// The three strings every message of one activation shares.
pub(crate) struct Labels {
    pub(crate) name: SharedStr,
    pub(crate) namespace: SharedStr,
    pub(crate) instance: SharedStr,
}

impl Labels {
    /// `name` is what the request asked for, so that a reader sees the name it used.
    pub(crate) fn of(activation: &Activation, name: &SharedStr) -> Self {
        Labels {
            name: name.clone(),
            namespace: SharedStr::from(activation.namespace.as_str()),
            instance: SharedStr::from(activation.activation_id.as_str()),
        }
    }
}

/// The messages of one activation's lines, in their order: each at its own time, or the
/// activation's start when it has none; sentinels left out.
pub(crate) fn messages<'a>(
    activation: &'a Activation,
    logs: &'a [String],
    labels: &'a Labels,
) -> impl Iterator<Item = Message> + 'a {
    let started = activation.started();
    shown(logs).map(move |raw| {
        let line = parse_line(raw);
        let mut message =
            Message::new(labels.name.clone(), line.time.unwrap_or(started), line.text)
                .with_namespace(labels.namespace.clone())
                .with_instance(labels.instance.clone());
        message.stream = line.stream;
        message
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_form_the_invoker_writes() {
        let cases = [
            (
                "2022-05-13T15:13:11.580825656Z stdout: Hello sammy",
                Some("2022-05-13T15:13:11.580825656Z"),
                Some(OutputStream::Stdout),
                "Hello sammy",
            ),
            (
                "2019-10-11T19:08:57.298Z       stdout: padded",
                Some("2019-10-11T19:08:57.298Z"),
                Some(OutputStream::Stdout),
                "padded",
            ),
            (
                "2019-10-11T19:08:57Z           stderr:  two spaces",
                Some("2019-10-11T19:08:57Z"),
                Some(OutputStream::Stderr),
                " two spaces",
            ),
            (
                "2019-10-11T19:08:57.1Z stdout:",
                Some("2019-10-11T19:08:57.1Z"),
                Some(OutputStream::Stdout),
                "",
            ),
            (
                "2019-10-11T19:08:57.1Z no stream",
                Some("2019-10-11T19:08:57.1Z"),
                None,
                "no stream",
            ),
            (
                "2019-10-11T19:08:57.1Zstdout: glued",
                None,
                None,
                "2019-10-11T19:08:57.1Zstdout: glued",
            ),
            (
                "2019-13-11T19:08:57.1Z stdout: bad month",
                None,
                None,
                "2019-13-11T19:08:57.1Z stdout: bad month",
            ),
            (
                "Logs are not available.",
                None,
                None,
                "Logs are not available.",
            ),
            ("", None, None, ""),
            // chrono reads (and cuts) a tenth digit; Kubernetes writes at most nine.
            (
                "2019-10-11T19:08:57.1234567890Z stdout: ten digits",
                Some("2019-10-11T19:08:57.123456789Z"),
                Some(OutputStream::Stdout),
                "ten digits",
            ),
            (
                "2019-10-11T19:08:5\u{e9}",
                None,
                None,
                "2019-10-11T19:08:5\u{e9}",
            ),
        ];
        for (raw, time, stream, text) in cases {
            let line = parse_line(raw);
            let time = time.map(|t| parse_rfc3339(t).unwrap());
            assert_eq!(
                (line.time, line.stream, line.text),
                (time, stream, text),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn sentinels_are_known_in_both_forms() {
        assert!(is_sentinel(SENTINEL));
        assert!(is_sentinel(&format!(
            "2024-02-17T20:01:31.9Z       stdout: {SENTINEL}"
        )));
        assert!(!is_sentinel(&format!(
            "2024-02-17T20:01:31.9Z stdout: say {SENTINEL}"
        )));
    }

    #[test]
    fn no_byte_string_panics() {
        // Every cut of a line with multi-byte characters near the time's end.
        let raw = "2024-02-17T20:01:31.9\u{e9}\u{1f600}Z  stdout: \u{e9}";
        for end in (0..=raw.len()).filter(|&i| raw.is_char_boundary(i)) {
            let _ = parse_line(&raw[..end]);
        }
    }
}
