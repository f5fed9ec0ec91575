//! Each line as faas-cli prints it (plain, keyvalue, json), with the text filters and,
//! for merged functions, a colour per instance.

use std::fmt::Write;

use faas_logs::client::LogLine;
use regex::Regex;

use crate::args::Format;
use crate::layout::Layout;

/// How lines are printed.
pub(crate) struct Printer {
    pub(crate) format: Format,
    /// The Go layout of the timestamp; empty prints none.
    pub(crate) time_layout: Layout,
    pub(crate) name: bool,
    pub(crate) instance: bool,
    pub(crate) include: Vec<Regex>,
    pub(crate) exclude: Vec<Regex>,
    /// Colour the name and instance, one colour per instance.
    pub(crate) colour: bool,
    scratch: String,
}

/// ANSI colours for instances: normal and bright red to cyan, never blue on black.
const COLOURS: [u8; 10] = [31, 32, 33, 35, 36, 91, 92, 93, 95, 96];

impl Printer {
    pub(crate) fn new(format: Format, time_layout: Layout) -> Self {
        Printer {
            format,
            time_layout,
            name: false,
            instance: false,
            include: Vec::new(),
            exclude: Vec::new(),
            colour: false,
            scratch: String::new(),
        }
    }

    /// Whether the filters keep this line.
    pub(crate) fn keeps(&self, text: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|r| r.is_match(text)))
            && !self.exclude.iter().any(|r| r.is_match(text))
    }

    /// Appends `line` as printed, with its newline, to `out`, unless a filter drops it.
    pub(crate) fn print(&mut self, line: &LogLine, out: &mut Vec<u8>) {
        let json = self.format == Format::Json;
        let filtered = !self.include.is_empty() || !self.exclude.is_empty();
        // The provider's line as it came: no message to build unless a filter reads it.
        if json && !filtered {
            out.extend_from_slice(line.bytes());
            out.push(b'\n');
            return;
        }
        let m = &line.message();
        if !self.keeps(&m.text) {
            return;
        }
        if json {
            out.extend_from_slice(line.bytes());
            out.push(b'\n');
            return;
        }
        let s = &mut self.scratch;
        s.clear();
        let colour = self
            .colour
            .then(|| COLOURS[fnv(m.name.as_str(), m.instance.as_str()) % COLOURS.len()]);
        let keyvalue = self.format == Format::Keyvalue;
        if !self.time_layout.is_empty() {
            s.push_str(if keyvalue { "timestamp=\"" } else { "" });
            self.time_layout.format(&m.timestamp, s);
            s.push_str(if keyvalue { "\" " } else { " " });
        }
        if let Some(code) = colour.filter(|_| self.name || self.instance) {
            // Writing to a String cannot fail.
            let _ = write!(s, "\x1b[{code}m");
        }
        if self.name {
            s.push_str(if keyvalue { "name=\"" } else { "" });
            s.push_str(&m.name);
            s.push_str(if keyvalue { "\" " } else { " " });
        }
        if self.instance {
            s.push_str(if keyvalue { "instance=\"" } else { "(" });
            s.push_str(&m.instance);
            s.push_str(if keyvalue { "\" " } else { ") " });
        }
        if colour.is_some() && (self.name || self.instance) {
            s.push_str("\x1b[0m");
        }
        if keyvalue {
            // faas-cli trims the text's trailing newlines and escapes nothing.
            s.push_str("text=\"");
            s.push_str(m.text.trim_end_matches('\n'));
            s.push_str("\" ");
        } else {
            // faas-cli trims trailing newlines from the whole line.
            s.push_str(&m.text);
            let kept = s.trim_end_matches('\n').len();
            s.truncate(kept);
        }
        out.extend_from_slice(s.as_bytes());
        out.push(b'\n');
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
