//! History: each container's log put in timestamp order in a bounded window, and the
//! containers merged by timestamp.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};

use super::frames::Line;
use super::outbox::{next_line, Outbox};
use super::query::{Lines, Query, Tracked};
use crate::{Error, Event};

/// How many lines of one container's history are held to put them in timestamp order.
const REORDER: usize = 256;

/// A container's history in timestamp order. Docker writes stdout and stderr to its log
/// in the order its two copiers get there, which can put a line before an older one; a
/// window of the next [`REORDER`] lines, taken oldest first, puts such lines back in order
/// in bounded memory.
struct Ordered {
    index: usize,
    lines: Lines,
    /// Sorted by timestamp, oldest first; lines nearly always arrive in order, so an
    /// insertion from the back costs one comparison.
    window: VecDeque<Line>,
    done: bool,
}

impl Ordered {
    /// Reads until the window is full or the history ends.
    async fn fill(&mut self, out: &mut Outbox) -> Result<(), Error> {
        while !self.done && self.window.len() < REORDER {
            match next_line(&mut self.lines, out).await {
                Some(Ok(line)) => insert_in_order(&mut self.window, line),
                Some(Err(broken)) => return Err(broken.into()),
                None => self.done = true,
            }
        }
        Ok(())
    }

    fn oldest(&self) -> Option<DateTime<Utc>> {
        self.window.front().map(|l| l.timestamp)
    }
}

/// Inserts after every line not newer than `line`: timestamp order, ties in arrival order.
pub(super) fn insert_in_order(window: &mut VecDeque<Line>, line: Line) {
    let at = window
        .iter()
        .rposition(|l| l.timestamp <= line.timestamp)
        .map_or(0, |i| i + 1);
    window.insert(at, line);
}

/// Sends every container's history merged by timestamp (`sources` are indexes into
/// `tracked` with their history); false when the reader left.
pub(super) async fn merge_history(
    query: &Query,
    tracked: &mut [Tracked],
    sources: Vec<(usize, Lines)>,
    out: &mut Outbox,
) -> Result<bool, Error> {
    let mut sources: Vec<Ordered> = sources
        .into_iter()
        .map(|(index, lines)| Ordered {
            index,
            lines,
            window: VecDeque::with_capacity(REORDER),
            done: false,
        })
        .collect();
    for source in sources.iter_mut() {
        source.fill(out).await?;
    }
    loop {
        let oldest = sources
            .iter()
            .enumerate()
            .filter_map(|(k, s)| s.oldest().map(|ts| (ts, k)))
            .min();
        let Some((_, k)) = oldest else {
            return Ok(true);
        };
        let source = &mut sources[k];
        let Some(line) = source.window.pop_front() else {
            continue;
        };
        source.fill(out).await?;
        let container = &mut tracked[source.index];
        container.sent(line.timestamp);
        let message = query.message(&container.container, line);
        if !out.push(Ok(Event::Message(message))).await {
            return Ok(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OutputStream;

    #[test]
    fn the_window_orders_by_time_and_keeps_ties_in_arrival_order() {
        let base = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let mut window = VecDeque::new();
        for (ms, text) in [(5, "a"), (9, "b"), (7, "c"), (9, "d"), (1, "e"), (7, "f")] {
            let line = Line {
                timestamp: base + chrono::Duration::milliseconds(ms),
                stream: OutputStream::Stdout,
                text: text.into(),
            };
            insert_in_order(&mut window, line);
        }
        let texts: Vec<&str> = window.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["e", "a", "c", "f", "b", "d"]);
    }
}
