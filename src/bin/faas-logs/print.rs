//! Each line as faas-cli prints it (plain, keyvalue, json; and raw, its text alone),
//! with the text filters and, on a terminal, a colour per instance, stderr's text in
//! red, and levels coloured as the viewer colours them.

use std::collections::HashMap;
use std::fmt::Write;

use anstyle::{Ansi256Color, AnsiColor, Color, Style};

use faas_logs::client::LogLine;
use regex::Regex;

use crate::layout::{Layout, Zone};
use crate::level::level_of;
use crate::logs_args::Format;
use crate::template::LineTemplate;

/// How lines are printed.
pub(crate) struct Printer {
    pub(crate) format: Format,
    /// The Go layout of the timestamp; empty prints none.
    pub(crate) time_layout: Layout,
    /// The zone the timestamp is written in.
    pub(crate) zone: Zone,
    pub(crate) name: bool,
    pub(crate) instance: bool,
    pub(crate) include: Vec<Regex>,
    pub(crate) exclude: Vec<Regex>,
    /// No line of an instance that matches one of these.
    pub(crate) exclude_instance: Vec<Regex>,
    /// What to colour in the text, where colours are on.
    pub(crate) highlight: Vec<Regex>,
    /// Each line written with this instead of the format.
    pub(crate) template: Option<LineTemplate>,
    /// Lines the template failed on.
    pub(crate) template_failures: usize,
    /// Colour the name and instance, one colour per instance, and stderr's text.
    pub(crate) colour: bool,
    /// The colour each instance got, in the order instances first appeared.
    colours: HashMap<(String, String), Style>,
    scratch: String,
}

/// Colours for instances (the 256-colour palette): seven hues far enough apart to tell
/// at a glance, none of them the red that marks stderr, none dark blue on black.
const PALETTE: [u8; 7] = [39, 208, 141, 113, 220, 44, 170];

/// How many instances keep the colour they first got; past it an instance's colour comes
/// from its name, so that memory stays bounded.
const REMEMBERED: usize = 10_000;

/// stderr's text.
const STDERR: Style = Style::new().fg_color(Some(Color::Ansi(AnsiColor::Red)));

impl Printer {
    pub(crate) fn new(format: Format, time_layout: Layout) -> Self {
        Printer {
            format,
            time_layout,
            zone: Zone::Utc,
            name: false,
            instance: false,
            include: Vec::new(),
            exclude: Vec::new(),
            exclude_instance: Vec::new(),
            highlight: Vec::new(),
            template: None,
            template_failures: 0,
            colour: false,
            colours: HashMap::new(),
            scratch: String::new(),
        }
    }

    /// Whether the filters keep a line of `instance` with `text`.
    pub(crate) fn keeps(&self, instance: &str, text: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|r| r.is_match(text)))
            && !self.exclude.iter().any(|r| r.is_match(text))
            && !self.exclude_instance.iter().any(|r| r.is_match(instance))
    }

    /// Appends `line` as printed, with its newline, to `out`, unless a filter drops it.
    pub(crate) fn print(&mut self, line: &LogLine, out: &mut Vec<u8>) {
        let json = self.format == Format::Json;
        let filtered = self.template.is_some()
            || !self.include.is_empty()
            || !self.exclude.is_empty()
            || !self.exclude_instance.is_empty();
        // The provider's line as it came: no message to build unless a filter reads it.
        if json && !filtered {
            out.extend_from_slice(line.bytes());
            out.push(b'\n');
            return;
        }
        let m = &line.message();
        if !self.keeps(&m.instance, &m.text) {
            return;
        }
        if let Some(template) = &self.template {
            let mut time = String::new();
            self.time_layout.format(&m.timestamp, self.zone, &mut time);
            match template.render(m, &time) {
                Ok(text) => {
                    out.extend_from_slice(text.as_bytes());
                    out.push(b'\n');
                }
                Err(e) => {
                    // Said once: the same template fails alike on the next lines.
                    if self.template_failures == 0 {
                        eprintln!("faas-logs: {e}");
                    }
                    self.template_failures += 1;
                }
            }
            return;
        }
        if json {
            out.extend_from_slice(line.bytes());
            out.push(b'\n');
            return;
        }
        let raw = self.format == Format::Raw;
        // Raw prints neither name nor instance: no colour for them.
        let colour = (self.colour && !raw && (self.name || self.instance))
            .then(|| self.colour_of(&m.name, &m.instance));
        let stderr = self.colour && m.stream == Some(faas_logs::OutputStream::Stderr);
        let highlight: &[Regex] = if self.colour { &self.highlight } else { &[] };
        let text = m.text.trim_end_matches('\n');
        let severity = m.details.as_ref().and_then(|d| d.severity.as_deref());
        let level = if self.colour {
            level_of(severity, text)
        } else {
            None
        };
        let s = &mut self.scratch;
        s.clear();
        let keyvalue = self.format == Format::Keyvalue;
        if !self.time_layout.is_empty() && !raw {
            s.push_str(if keyvalue { "timestamp=\"" } else { "" });
            self.time_layout.format(&m.timestamp, self.zone, s);
            s.push_str(if keyvalue { "\" " } else { " " });
        }
        if let Some(style) = colour {
            // Writing to a String cannot fail.
            let _ = write!(s, "{}", style.render());
        }
        if self.name && !raw {
            s.push_str(if keyvalue { "name=\"" } else { "" });
            s.push_str(&m.name);
            s.push_str(if keyvalue { "\" " } else { " " });
        }
        if self.instance && !raw {
            s.push_str(if keyvalue { "instance=\"" } else { "(" });
            s.push_str(&m.instance);
            s.push_str(if keyvalue { "\" " } else { ") " });
        }
        if let Some(style) = colour {
            let _ = write!(s, "{}", style.render_reset());
        }
        // A level that only the severity says is shown before the text, as the
        // viewer's badge; one the text says is coloured where it is.
        let mut spans: Vec<(usize, usize, Style)> = Vec::new();
        match level {
            Some((level, None)) => {
                let _ = write!(
                    s,
                    "{}{}{} ",
                    level.style().render(),
                    severity.unwrap_or_default(),
                    level.style().render_reset()
                );
            }
            Some((level, Some(at))) => spans.push((at.start, at.end, level.style())),
            None => {}
        }
        if stderr {
            let _ = write!(s, "{}", STDERR.render());
        }
        if keyvalue {
            // faas-cli trims the text's trailing newlines and escapes nothing.
            s.push_str("text=\"");
            push_text(s, text, highlight, spans, stderr);
            s.push_str("\" ");
        } else {
            // faas-cli trims trailing newlines from the whole line; the prefix ends
            // in none, so the text's own are those.
            push_text(s, text, highlight, spans, stderr);
        }
        if stderr {
            let _ = write!(s, "{}", STDERR.render_reset());
        }
        out.extend_from_slice(s.as_bytes());
        out.push(b'\n');
    }
}

/// What `--highlight` marks: black on yellow, bold.
const HIGHLIGHT: Style = Style::new()
    .fg_color(Some(Color::Ansi(AnsiColor::Black)))
    .bg_color(Some(Color::Ansi(AnsiColor::Yellow)))
    .bold();

/// `text`, with what any of `highlight` matches marked (overlapping matches as one)
/// and the other `spans` styled (a level's word) where no mark is; after each, stderr's
/// colour again where the line is stderr's.
fn push_text(
    s: &mut String,
    text: &str,
    highlight: &[Regex],
    mut spans: Vec<(usize, usize, Style)>,
    stderr: bool,
) {
    let marks = highlight
        .iter()
        .flat_map(|r| r.find_iter(text).map(|m| (m.start(), m.end(), HIGHLIGHT)))
        .filter(|(start, end, _)| start < end);
    let mut marks: Vec<(usize, usize, Style)> = marks.collect();
    // A mark wins over a level's colour where they meet.
    spans.retain(|&(start, end, _)| marks.iter().all(|&(s, e, _)| e <= start || end <= s));
    marks.append(&mut spans);
    if marks.is_empty() {
        s.push_str(text);
        return;
    }
    marks.sort_unstable_by_key(|&(start, end, _)| (start, end));
    let mut at = 0;
    for (start, end, style) in marks {
        if end <= at {
            continue;
        }
        let start = start.max(at);
        s.push_str(&text[at..start]);
        let _ = write!(
            s,
            "{}{}{}",
            style.render(),
            &text[start..end],
            style.render_reset()
        );
        if stderr {
            let _ = write!(s, "{}", STDERR.render());
        }
        at = end;
    }
    s.push_str(&text[at..]);
}

impl Printer {
    /// The colour of an instance: the next of the palette when it first appears, so that
    /// the first seven instances all differ.
    fn colour_of(&mut self, name: &str, instance: &str) -> Style {
        let key = (name.to_owned(), instance.to_owned());
        if let Some(style) = self.colours.get(&key) {
            return *style;
        }
        let index = if self.colours.len() < REMEMBERED {
            self.colours.len()
        } else {
            fnv(name, instance)
        };
        let style = Style::new().fg_color(Some(Color::Ansi256(Ansi256Color(
            PALETTE[index % PALETTE.len()],
        ))));
        if self.colours.len() < REMEMBERED {
            self.colours.insert(key, style);
        }
        style
    }
}

/// FNV-1a of a name and an instance: the same colour for an instance in every run.
fn fnv(name: &str, instance: &str) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes().chain([0]).chain(instance.bytes()) {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    hash as usize
}
