//! Several streams as one, in timestamp order within a window.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_core::Stream;
use futures_util::StreamExt;
use tokio::time::Instant;

use super::{ClientError, LogLine};
use crate::ordered::TimeOrdered;
use crate::Message;

/// What a merge orders by.
pub(super) trait Timed {
    fn timestamp(&self) -> DateTime<Utc>;
}

impl Timed for Message {
    fn timestamp(&self) -> DateTime<Utc> {
        self.timestamp
    }
}

impl Timed for LogLine {
    fn timestamp(&self) -> DateTime<Utc> {
        LogLine::timestamp(self)
    }
}

type Input<T> = Pin<Box<dyn Stream<Item = Result<T, ClientError>> + Send>>;

/// `streams` as one: an item is held at most `window` after it arrives, so that a
/// slightly older one of another stream can go first; at the end everything held goes
/// out in order, then the first error if there was one.
pub(super) fn merge<T: Timed + Send + 'static>(
    streams: Vec<Input<T>>,
    window: Duration,
) -> Input<T> {
    /// A held item and when it arrived.
    type Held<T> = TimeOrdered<(Instant, T)>;
    struct Merge<T> {
        inputs: futures_util::stream::SelectAll<Input<T>>,
        held: BinaryHeap<Reverse<Held<T>>>,
        arrivals: u64,
        ended: bool,
        failed: Option<ClientError>,
    }
    let merge = Merge {
        inputs: futures_util::stream::select_all(streams),
        held: BinaryHeap::new(),
        arrivals: 0,
        ended: false,
        failed: None,
    };
    Box::pin(futures_util::stream::unfold(
        merge,
        move |mut m| async move {
            loop {
                // The oldest held item goes once it has waited its window, or at the end.
                let due = m.held.peek().map(|Reverse(h)| h.item.0 + window);
                if let Some(due) = due {
                    if m.ended || Instant::now() >= due {
                        let Reverse(held) = m.held.pop()?;
                        return Some((Ok(held.item.1), m));
                    }
                }
                if m.ended {
                    return m.failed.take().map(|e| (Err(e), m));
                }
                let next = async {
                    match due {
                        Some(due) => tokio::time::timeout_at(due, m.inputs.next()).await.ok(),
                        None => Some(m.inputs.next().await),
                    }
                };
                match next.await {
                    None => continue, // the oldest held item is due
                    Some(Some(Ok(item))) => {
                        let held = Held::new(item.timestamp(), m.arrivals, (Instant::now(), item));
                        m.held.push(Reverse(held));
                        m.arrivals += 1;
                    }
                    Some(Some(Err(e))) => {
                        m.failed = Some(e);
                        m.ended = true;
                    }
                    Some(None) => m.ended = true,
                }
            }
        },
    ))
}
