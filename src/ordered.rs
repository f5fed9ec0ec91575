//! [`TimeOrdered`]: an item held in timestamp order, ties in arrival order, for the heaps
//! that put messages back in time order (the handler's `tail`, the client's merge).

use chrono::{DateTime, Utc};

/// An item ordered by its timestamp, then by when it arrived, so that equal timestamps
/// keep the order they came in.
pub(crate) struct TimeOrdered<T> {
    timestamp: DateTime<Utc>,
    arrival: u64,
    pub(crate) item: T,
}

impl<T> TimeOrdered<T> {
    pub(crate) fn new(timestamp: DateTime<Utc>, arrival: u64, item: T) -> Self {
        TimeOrdered {
            timestamp,
            arrival,
            item,
        }
    }

    pub(crate) fn key(&self) -> (DateTime<Utc>, u64) {
        (self.timestamp, self.arrival)
    }
}

impl<T> PartialEq for TimeOrdered<T> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl<T> Eq for TimeOrdered<T> {}

impl<T> PartialOrd for TimeOrdered<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for TimeOrdered<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}
