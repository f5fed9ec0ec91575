//! A line's level, found as the viewer finds it (`src/server/viewer.html`, `levelOf`):
//! the message's severity (OpenTelemetry's), else in the text a JSON line's `level`,
//! `severity`, `lvl`, `levelname`, `log.level` or `@l`, a `level=` pair, glog's
//! `E1204 10:00:00` prefix, or a word such as `ERROR`, `[WARN]`, `Info:`. Printed in
//! colour: error red, warn yellow, info blue, debug and trace grey.

use std::ops::Range;
use std::sync::LazyLock;

use anstyle::{AnsiColor, Color, Style};
use regex::Regex;

/// A line's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

impl Level {
    /// How the level is coloured, the viewer's colours in the terminal's palette.
    pub(crate) fn style(self) -> Style {
        let colour = |c| Style::new().fg_color(Some(Color::Ansi(c)));
        match self {
            Level::Error => colour(AnsiColor::Red).bold(),
            Level::Warn => colour(AnsiColor::Yellow),
            Level::Info => colour(AnsiColor::BrightBlue),
            Level::Debug => colour(AnsiColor::BrightBlack),
        }
    }

    /// What a level's word (`ERROR`, `warning`, `I`) or number (OpenTelemetry's 1-24,
    /// pino's 10-60) says.
    fn of_word(word: &str) -> Option<Level> {
        if let Ok(n) = word.parse::<u32>() {
            return Some(Level::of_number(n));
        }
        let level = match word.to_ascii_lowercase().as_str() {
            "fatal" | "panic" | "crit" | "critical" | "alert" | "emerg" | "emergency" | "error"
            | "err" | "e" => Level::Error,
            "warning" | "warn" | "w" => Level::Warn,
            "info" | "information" | "informational" | "notice" | "i" => Level::Info,
            "debug" | "dbg" | "d" | "trace" | "verbose" => Level::Debug,
            _ => return None,
        };
        Some(level)
    }

    fn of_number(n: u32) -> Level {
        match n {
            50.. | 17..=24 => Level::Error,
            40..=49 | 13..=16 => Level::Warn,
            30..=39 | 9..=12 => Level::Info,
            _ => Level::Debug,
        }
    }
}

/// The patterns, in the order they are tried on the start of the text.
static PATTERNS: LazyLock<[Regex; 4]> = LazyLock::new(|| {
    [
        r#"^\{.*?"(?:level|severity|lvl|levelname|log\.level|@l)"\s*:\s*"?([A-Za-z]+|\d+)"#,
        r#"(?i)\b(?:level|lvl|severity)=["']?([a-z]+)"#,
        r"^([EWID])\d{4} \d\d:\d\d:\d\d",
        r#"(?:^|[\s\[(|:"'])(FATAL|PANIC|CRITICAL|CRIT|ERROR|ERR|WARNING|WARN|INFO|NOTICE|DEBUG|DBG|TRACE|Error|Warning|Warn|Info|Debug|Trace)(?:$|[\s\]):|,'"-])"#,
    ]
    .map(|p| Regex::new(p).expect("the level patterns compile"))
});

/// How far into the text a level is looked for.
const LOOK: usize = 300;

/// The line's level, and where the text says it (none when only the severity does).
pub(crate) fn level_of(
    severity: Option<&str>,
    text: &str,
) -> Option<(Level, Option<Range<usize>>)> {
    if let Some(level) = severity
        .map(|s| s.trim_end_matches(|c: char| c.is_ascii_digit()))
        .and_then(Level::of_word)
    {
        return Some((level, None));
    }
    let mut end = text.len().min(LOOK);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let start = &text[..end];
    PATTERNS.iter().find_map(|pattern| {
        let word = pattern.captures(start)?.get(1)?;
        Level::of_word(word.as_str()).map(|level| (level, Some(word.range())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_the_viewer_knows() {
        let cases = [
            (None, "ERROR db connection refused", Some(Level::Error)),
            (
                None,
                "2026/12/04 10:00:00 WARN disk almost full",
                Some(Level::Warn),
            ),
            (None, "level=info msg=started", Some(Level::Info)),
            (None, "[DEBUG] cache miss", Some(Level::Debug)),
            (
                None,
                r#"{"level":"error","msg":"boom"}"#,
                Some(Level::Error),
            ),
            (
                None,
                r#"{"severity":"WARNING","msg":"slow"}"#,
                Some(Level::Warn),
            ),
            (None, r#"{"level":30,"msg":"pino"}"#, Some(Level::Info)),
            (
                None,
                "E1204 10:00:00.000 1 main.go:1] glog",
                Some(Level::Error),
            ),
            (Some("INFO"), "from otel", Some(Level::Info)),
            (Some("Error2"), "numbered", Some(Level::Error)),
            (None, "no level here", None),
            (None, "terrors and informants", None),
        ];
        for (severity, text, want) in cases {
            assert_eq!(level_of(severity, text).map(|(l, _)| l), want, "{text}");
        }
        let (_, at) = level_of(None, "x [WARN] y").unwrap();
        assert_eq!(at, Some(3..7));
        // Multi-byte text near the look-ahead's end is cut on a character.
        let long = format!("{}é ERROR", "a".repeat(LOOK - 1));
        assert_eq!(level_of(None, &long), None);
    }
}
