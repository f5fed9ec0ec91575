//! [`DiskReader`]: one query's position in a function's segments.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fs::File;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use chrono::{DateTime, Utc};
use futures_core::Stream;

use super::segment::{Step, Window};
use super::{Function, FunctionState};
use crate::request::Filter;
use crate::store::lock;
use crate::{Error, Event, Message, Request, SharedStr};

/// Messages one refill gives at most: bounds a reader's memory.
const READ_BATCH: usize = 256;
/// Records one refill looks at at most, matching or not: bounds the time between yields.
const SCAN_LIMIT: usize = 4096;

/// A reader of one function's segments: history from where the query starts, then
/// [`Event::HistoryEnd`], then (with follow) every line written after the query. Lines
/// deleted under it (retention) or lost to damage come as one [`Event::Gap`] each.
pub struct DiskReader {
    function: Arc<Function>,
    id: u64,
    filter: Filter,
    follow: bool,
    /// The sequence number of the next line to read.
    next: u64,
    /// Where history ends, until the mark has been sent.
    history_end: Option<u64>,
    /// The segment being read and the offset of the record of `next` (or before it).
    at: Option<Position>,
    window: Window,
    /// Whether the record at the position is where good records resumed after damage
    /// (its number may jump the lines lost).
    resumed: bool,
    ready: VecDeque<Event>,
    /// The last instance name read, shared by the lines that repeat it.
    instance: SharedStr,
}

struct Position {
    first_seq: u64,
    file: Arc<File>,
    offset: u64,
}

impl std::fmt::Debug for DiskReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskReader")
            .field("next", &self.next)
            .field("history_end", &self.history_end)
            .field("follow", &self.follow)
            .finish_non_exhaustive()
    }
}

/// Where the next refill reads, decided under the function's lock.
struct Plan {
    first_seq: u64,
    file: Arc<File>,
    offset: u64,
    /// Read no further than this offset, nor past this line.
    limit_len: u64,
    limit_seq: u64,
    path: std::path::PathBuf,
}

impl DiskReader {
    pub(super) fn start(
        function: Arc<Function>,
        id: u64,
        filter: Filter,
        request: &Request,
    ) -> Result<DiskReader, Error> {
        let (since_start, end) = {
            let state = lock(&function.state);
            let sorted = state.sorted();
            (since_start(&state, request.since, sorted), state.end_seq)
        };
        let mut reader = DiskReader {
            function,
            id,
            filter,
            follow: request.follow,
            next: since_start,
            history_end: Some(end),
            at: None,
            window: Window::default(),
            resumed: false,
            ready: VecDeque::new(),
            instance: SharedStr::default(),
        };
        if let Some(tail) = request.tail {
            reader.next = reader.tail_start(tail, since_start, end)?;
        }
        Ok(reader)
    }

    /// Where history must start for the handler to find the newest `tail` wanted lines
    /// by time, which it keeps from what it is given: blocks of the index are read
    /// backwards, keeping the newest `tail` lines seen, until every line before the
    /// block is older than all of them (each index entry knows the newest time before
    /// it). In time order that is the block holding the `tail`-th newest line; lines
    /// written out of order only make it read further back. `floor` when history holds
    /// fewer.
    fn tail_start(&mut self, tail: usize, floor: u64, end: u64) -> Result<u64, Error> {
        // The newest `tail` wanted lines seen so far, oldest on top.
        let mut newest: BinaryHeap<Reverse<(DateTime<Utc>, u64)>> = BinaryHeap::new();
        let mut before = end; // lines from here on have been looked at
        while before > floor {
            // The block holding the line before `before`: its bounds, its file, and the
            // newest time of every line before it.
            let block = {
                let state = lock(&self.function.state);
                let i = state.segments.partition_point(|s| s.end_seq < before);
                let Some(segment) = state.segments.get(i) else {
                    break;
                };
                if segment.first_seq >= before {
                    break; // lines before it were deleted
                }
                let e = segment.entries.partition_point(|e| e.seq < before);
                let (start, first, newest_in_segment) = match e.checked_sub(1) {
                    Some(e) => {
                        let entry = &segment.entries[e];
                        (entry.offset, entry.seq, entry.newest_before)
                    }
                    None => (super::format::HEADER_LEN as u64, segment.first_seq, None),
                };
                let newest_before = state.segments.iter().take(i).filter_map(|s| s.max_ts).max();
                let end_offset = segment
                    .entries
                    .get(e)
                    .map_or(segment.len, |next| next.offset);
                let file = segment.file().map_err(|e| read_error(&segment.path, &e))?;
                let newest_before = newest_before.max(newest_in_segment);
                (
                    file,
                    start,
                    end_offset,
                    first,
                    newest_before,
                    segment.path.clone(),
                )
            };
            let (file, mut offset, end_offset, first, newest_before, path) = block;
            self.window.clear();
            let (mut expected, mut resumed) = (first, false);
            loop {
                match self.window.step(&file, offset, end_offset, first) {
                    Ok(Step::Record(r, size)) if follows(r.seq, expected, resumed) => {
                        offset += size as u64;
                        (expected, resumed) = (r.seq + 1, false);
                        if r.seq >= floor
                            && r.seq < before
                            && self.filter.wants(&r.timestamp, r.instance)
                        {
                            newest.push(Reverse((r.timestamp, r.seq)));
                            if newest.len() > tail {
                                newest.pop();
                            }
                        }
                    }
                    Ok(Step::Record(r, size)) if r.seq < expected => offset += size as u64,
                    Ok(Step::Record(..)) => {
                        match self.window.resync(&file, offset, end_offset, expected) {
                            Ok(Some(resume)) => (offset, resumed) = (resume, true),
                            Ok(None) => break,
                            Err(e) => return Err(read_error(&path, &e)),
                        }
                    }
                    Ok(Step::Damaged {
                        resume: Some(resume),
                        ..
                    }) => (offset, resumed) = (resume, true),
                    Ok(Step::Damaged { resume: None, .. } | Step::End) => break,
                    Err(e) => return Err(read_error(&path, &e)),
                }
            }
            self.window.clear();
            before = first;
            let full = newest.len() == tail;
            let older_before = match (newest.peek(), newest_before) {
                (Some(Reverse((oldest_kept, _))), Some(newest_before)) => {
                    newest_before < *oldest_kept
                }
                (_, None) => true, // nothing before
                (None, Some(_)) => false,
            };
            if full && older_before {
                break;
            }
        }
        // No wanted line at all: history has nothing to give.
        Ok(newest
            .iter()
            .map(|Reverse((_, seq))| *seq)
            .min()
            .map_or(end, |seq| seq.max(floor)))
    }

    /// Decides where to read next, or answers for this poll: the history mark, a gap, or
    /// waiting for the next line.
    fn plan(&mut self, cx: &Context<'_>) -> Result<Option<Plan>, Error> {
        let function = Arc::clone(&self.function);
        let mut state = lock(&function.state);
        let end = state.end_seq;
        let limit_seq = self.history_end.unwrap_or(end);
        if self.next >= limit_seq {
            if self.history_end.take().is_some() {
                self.ready.push_back(Event::HistoryEnd);
            } else {
                state.waiting.insert(self.id, cx.waker().clone());
                // Up to date: a follower holds no read buffer while it waits.
                self.window.release();
            }
            return Ok(None);
        }
        let i = state.segments.partition_point(|s| s.end_seq <= self.next);
        let Some(segment) = state.segments.get_mut(i) else {
            // Every line from `next` on was deleted.
            drop(state);
            self.gap(limit_seq - self.next, None);
            return Ok(None);
        };
        if segment.first_seq > self.next {
            let lost = segment.first_seq.min(limit_seq) - self.next;
            let timestamp = segment.min_ts;
            drop(state);
            self.gap(lost, timestamp);
            return Ok(None);
        }
        let reuse = self
            .at
            .as_ref()
            .filter(|at| at.first_seq == segment.first_seq);
        let (file, offset) = match reuse {
            Some(at) => (Arc::clone(&at.file), at.offset),
            None => {
                let file = segment.file().map_err(|e| read_error(&segment.path, &e))?;
                self.window.clear();
                self.resumed = false;
                (file, segment.offset_for_seq(self.next))
            }
        };
        Ok(Some(Plan {
            first_seq: segment.first_seq,
            file,
            offset,
            limit_len: segment.len,
            limit_seq: limit_seq.min(segment.end_seq),
            path: segment.path.clone(),
        }))
    }

    fn gap(&mut self, lost: u64, timestamp: Option<DateTime<Utc>>) {
        tracing::warn!(
            lost,
            function = &*self.function.name,
            "a log reader lost lines under it: retention deleted them, or they were damaged"
        );
        self.next += lost;
        self.ready.push_back(Event::Gap {
            lost,
            timestamp: timestamp.unwrap_or_else(Utc::now),
        });
    }

    /// Reads the next lines into `ready`. `Ok(false)`: nothing more now (waiting, or
    /// done).
    fn refill(&mut self, cx: &Context<'_>) -> Result<bool, Error> {
        if self.history_end.is_none() && !self.follow {
            return Ok(false);
        }
        let Some(plan) = self.plan(cx)? else {
            return Ok(!self.ready.is_empty());
        };
        let Plan {
            first_seq,
            file,
            mut offset,
            limit_len,
            limit_seq,
            path,
        } = plan;
        let mut scanned = 0;
        let mut given = 0;
        let mut segment_done = false;
        while scanned < SCAN_LIMIT && given < READ_BATCH {
            match self
                .window
                .step(&file, offset, limit_len, self.next)
                .map_err(|e| read_error(&path, &e))?
            {
                Step::Record(r, size) => {
                    if r.seq < self.next {
                        // Before the line asked for: the index's entry was earlier.
                        offset += size as u64;
                        scanned += 1;
                        continue;
                    }
                    if r.seq > self.next && self.resumed {
                        // Lines lost to damage; the record is read again after the gap.
                        let lost = r.seq.min(limit_seq) - self.next;
                        let timestamp = r.timestamp;
                        self.gap(lost, Some(timestamp));
                        break;
                    }
                    if r.seq > self.next {
                        // Not the next line, and not where lines resumed after damage:
                        // damage that happens to check out.
                        let resume = self
                            .window
                            .resync(&file, offset, limit_len, self.next)
                            .map_err(|e| read_error(&path, &e))?;
                        match resume {
                            Some(resume) => (offset, self.resumed) = (resume, true),
                            None => {
                                segment_done = true;
                                break;
                            }
                        }
                        continue;
                    }
                    self.resumed = false;
                    offset += size as u64;
                    scanned += 1;
                    self.next = r.seq + 1;
                    if self.filter.wants(&r.timestamp, r.instance) {
                        if *self.instance != *r.instance {
                            self.instance = r.instance.into();
                        }
                        let m = Message {
                            name: self.function.name.clone(),
                            namespace: self.function.namespace.clone(),
                            instance: self.instance.clone(),
                            timestamp: r.timestamp,
                            text: r.text.to_owned(),
                            stream: r.stream,
                            details: r.details.and_then(read_details),
                        };
                        self.ready.push_back(Event::Message(m));
                        given += 1;
                    }
                }
                Step::Damaged { at, resume } => {
                    tracing::warn!(
                        path = %path.display(),
                        offset = at,
                        "a damaged record in a log segment is skipped"
                    );
                    match resume {
                        // The next record's number tells how many lines were lost.
                        Some(resume) => (offset, self.resumed) = (resume, true),
                        None => {
                            segment_done = true;
                            break;
                        }
                    }
                }
                Step::End => {
                    // The segment ends before the lines it should hold.
                    segment_done = self.next < limit_seq;
                    break;
                }
            }
        }
        if given == 0 && scanned >= SCAN_LIMIT {
            // A long run of lines this reader filters out: yield, then scan on.
            cx.waker().wake_by_ref();
            self.at = Some(Position {
                first_seq,
                file,
                offset,
            });
            return Ok(false);
        }
        if segment_done {
            // Nothing good after the damage: the rest of the segment is lost.
            let lost = limit_seq.saturating_sub(self.next);
            if lost > 0 {
                self.gap(lost, None);
            }
            self.at = None;
        } else {
            self.at = Some(Position {
                first_seq,
                file,
                offset,
            });
        }
        Ok(true)
    }
}

/// Whether a record numbered `seq` can follow where `expected` is next: it is that line,
/// or the first good one after damage (which may jump the lines lost).
fn follows(seq: u64, expected: u64, resumed: bool) -> bool {
    seq == expected || (resumed && seq > expected)
}

fn read_error(path: &std::path::Path, e: &std::io::Error) -> Error {
    Error::other(format!(
        "could not read the log segment {}: {e}",
        path.display()
    ))
}

/// The sequence number a query with `since` starts reading at: in a sorted function, a
/// little before the first line not older than `since` (the reader skips the older
/// ones); otherwise the start of the first segment with a line that new.
fn since_start(state: &FunctionState, since: Option<DateTime<Utc>>, sorted: bool) -> u64 {
    let oldest = state.oldest_seq();
    let Some(since) = since else {
        return oldest;
    };
    let i = state
        .segments
        .iter()
        .position(|s| s.max_ts.is_some_and(|max| max >= since));
    let Some(i) = i else {
        return state.end_seq;
    };
    let segment = &state.segments[i];
    if !sorted {
        return segment.first_seq;
    }
    let e = segment.entries.partition_point(|e| e.timestamp < since);
    e.checked_sub(1)
        .map_or(segment.first_seq, |e| segment.entries[e].seq)
}

impl Stream for DiskReader {
    type Item = Result<Event, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Poll::Ready(Some(Ok(event)));
            }
            match self.refill(cx) {
                Ok(true) => {}
                Ok(false) if self.history_end.is_none() && !self.follow => {
                    return Poll::Ready(None)
                }
                Ok(false) => return Poll::Pending,
                Err(e) => {
                    // A broken stream must look broken: the error ends it.
                    self.follow = false;
                    self.history_end = None;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }
}

impl Drop for DiskReader {
    fn drop(&mut self) {
        lock(&self.function.state).waiting.remove(&self.id);
    }
}

/// A record's details, read back; damage a checksum missed leaves the line without them.
fn read_details(json: &str) -> Option<Box<crate::Details>> {
    match serde_json::from_str::<crate::Details>(json) {
        Ok(details) => (!details.is_empty()).then(|| Box::new(details)),
        Err(e) => {
            tracing::warn!(error = %e, "a stored line's details do not read");
            None
        }
    }
}
