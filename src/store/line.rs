//! How a ring holds a line: what its message carries beyond the function's name and
//! namespace, which the ring keeps once for all its lines.

use chrono::{DateTime, Utc};

use crate::{Details, Message, OutputStream, SharedStr};

/// Counted per stored line on top of its text, for the byte limits: the line itself, its
/// place in the store-wide order, and the text's allocation.
pub(super) const LINE_OVERHEAD: usize = std::mem::size_of::<StoredLine>() + 8 + 16;

/// One line of a ring.
pub(super) struct StoredLine {
    pub(super) timestamp: DateTime<Utc>,
    /// Shared with the ring's other lines of the instance (see [`RecentInstances`]).
    pub(super) instance: SharedStr,
    text: Text,
    pub(super) stream: Option<OutputStream>,
}

/// A line's text, with a structured record's details beside it when it has some: in
/// the room of the text's own pointer either way, so that the lines without details
/// (nearly all) cost nothing more for them.
enum Text {
    Plain(Box<str>),
    Detailed(Box<(Box<str>, Details)>),
}

impl StoredLine {
    /// Takes a message apart (its names are the ring's).
    pub(super) fn new(message: Message) -> Self {
        StoredLine {
            timestamp: message.timestamp,
            instance: message.instance,
            text: match message.details {
                None => Text::Plain(exact(message.text)),
                Some(details) => Text::Detailed(Box::new((exact(message.text), *details))),
            },
            stream: message.stream,
        }
    }

    /// The message again, with the ring's names.
    pub(super) fn message(&self, name: &SharedStr, namespace: &SharedStr) -> Message {
        let (text, details) = match &self.text {
            Text::Plain(text) => (text.to_string(), None),
            Text::Detailed(both) => (both.0.to_string(), Some(Box::new(both.1.clone()))),
        };
        Message {
            name: name.clone(),
            namespace: namespace.clone(),
            instance: self.instance.clone(),
            timestamp: self.timestamp,
            text,
            stream: self.stream,
            details,
        }
    }

    /// What the line counts against the byte limits.
    pub(super) fn bytes(&self) -> usize {
        let text = match &self.text {
            Text::Plain(text) => text.len(),
            // The box, its allocation's header, and the details as JSON would take them.
            Text::Detailed(both) => both.0.len() + 16 + 16 + both.1.json_len(),
        };
        LINE_OVERHEAD + text + self.instance.len()
    }
}

/// `text` in an allocation of its own size. A `String` with room to spare (from
/// `format!`, say) is copied rather than shrunk in place: shrinking would leave the spare
/// room as a hole between stored lines that later, larger texts cannot use.
fn exact(text: String) -> Box<str> {
    if text.len() == text.capacity() {
        text.into_boxed_str()
    } else {
        Box::from(text.as_str())
    }
}

/// The last few instances a ring stored, so that lines pushed with their own copy of an
/// instance's name (each decoded from its JSON line) share one.
#[derive(Default)]
pub(super) struct RecentInstances {
    names: [SharedStr; 4],
    next: usize,
}

impl RecentInstances {
    /// `instance`, or the same text as the ring already holds it.
    pub(super) fn share(&mut self, instance: SharedStr) -> SharedStr {
        if let Some(known) = self.names.iter().find(|known| **known == instance) {
            return known.clone();
        }
        self.names[self.next] = instance.clone();
        self.next = (self.next + 1) % self.names.len();
        instance
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counted_overhead_is_what_a_line_costs() {
        // The line in its ring, its order stamp, the text's allocation header.
        assert_eq!(
            LINE_OVERHEAD, 72,
            "update StoreLimits::max_bytes's documentation"
        );
    }
}
