//! One segment file of a function: what the store knows of it (its range of sequence
//! numbers, its times, a sparse index), how it is read record by record past damage, and
//! how it is checked at start-up.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use chrono::{DateTime, Utc};

use super::format::{
    self, claimed_seq, decode, Checked, Decoded, Entry, Header, IndexFile, Record, HEADER_LEN,
    RECORD_HEAD, SEGMENT_MAGIC,
};
use super::{Damage, Recovery};
use crate::Error;

/// A sparse index entry is taken every this many bytes of a segment: `tail` and `since`
/// read at most about this much before the first line they answer with.
const INDEX_EVERY: u64 = 64 * 1024;

/// How much a reader reads from a file at once.
pub(super) const CHUNK: usize = 64 * 1024;

/// A segment's file name: its first sequence number, 20 digits, so that names sort.
pub(super) fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

/// The first sequence number a segment file's name gives, or `None` for another file.
pub(super) fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    let first: u64 = (digits.len() == 20)
        .then(|| digits.parse().ok())
        .flatten()?;
    // Far beyond what any store writes, and room left to count on from it.
    (first < 1 << 62).then_some(first)
}

/// What the store knows of one segment.
pub(super) struct Segment {
    pub(super) first_seq: u64,
    /// The sequence number after its last record.
    pub(super) end_seq: u64,
    /// Its length: readers read no further.
    pub(super) len: u64,
    pub(super) min_ts: Option<DateTime<Utc>>,
    pub(super) max_ts: Option<DateTime<Utc>>,
    /// Whether its timestamps never go backwards.
    pub(super) sorted: bool,
    pub(super) entries: Vec<Entry>,
    pub(super) path: PathBuf,
    /// Opened when first read (the active segment's is opened for writing too).
    file: Option<Arc<File>>,
    /// When it was last written, for retention by age.
    pub(super) modified: SystemTime,
}

impl Segment {
    /// A new, empty segment file in `dir`, whose first line will be `first_seq`; with
    /// `sync`, its existence is on disk before this returns.
    pub(super) fn create(dir: &Path, first_seq: u64, sync: bool) -> io::Result<Segment> {
        let path = dir.join(file_name(first_seq));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        let cleanup = |e: io::Error| {
            let _ = std::fs::remove_file(&path);
            e
        };
        file.write_all_at(&format::header(SEGMENT_MAGIC), 0)
            .map_err(cleanup)?;
        if sync {
            file.sync_data().map_err(cleanup)?;
            File::open(dir)?.sync_all()?;
        }
        Ok(Segment::empty(first_seq, path, SystemTime::now()).with_file(file))
    }

    /// A segment of no lines yet: its header alone.
    fn empty(first_seq: u64, path: PathBuf, modified: SystemTime) -> Segment {
        Segment {
            first_seq,
            end_seq: first_seq,
            len: HEADER_LEN as u64,
            min_ts: None,
            max_ts: None,
            sorted: true,
            entries: Vec::new(),
            path,
            file: None,
            modified,
        }
    }

    /// With the file that appends go to.
    fn with_file(mut self, file: File) -> Segment {
        self.file = Some(Arc::new(file));
        self
    }

    /// The segment's file: the one appends write to, or (a sealed segment) opened for
    /// the reader that asks, so that only readers keep sealed segments open.
    pub(super) fn file(&self) -> io::Result<Arc<File>> {
        match &self.file {
            Some(file) => Ok(Arc::clone(file)),
            None => File::open(&self.path).map(Arc::new),
        }
    }

    /// Seals it: writes its index and lets go of its file.
    pub(super) fn seal(&mut self) {
        self.write_index();
        self.file = None;
    }

    /// Notes a record written (or found) at `offset`.
    pub(super) fn note(&mut self, offset: u64, seq: u64, timestamp: DateTime<Utc>) {
        let due = self
            .entries
            .last()
            .is_none_or(|last| offset >= last.offset + INDEX_EVERY);
        if due {
            self.entries.push(Entry {
                seq,
                offset,
                timestamp,
                newest_before: self.max_ts,
            });
        }
        if self.max_ts.is_some_and(|max| timestamp < max) {
            self.sorted = false;
        }
        self.min_ts = Some(self.min_ts.map_or(timestamp, |min| min.min(timestamp)));
        self.max_ts = Some(self.max_ts.map_or(timestamp, |max| max.max(timestamp)));
        self.end_seq = seq + 1;
    }

    /// Where to start reading for the line `seq`: an offset at or before its record.
    pub(super) fn offset_for_seq(&self, seq: u64) -> u64 {
        let i = self.entries.partition_point(|e| e.seq <= seq);
        i.checked_sub(1)
            .map_or(HEADER_LEN as u64, |i| self.entries[i].offset)
    }

    /// Writes the index beside a sealed segment, so that the next start-up reads it
    /// instead of scanning the segment. A failure only costs that scan.
    pub(super) fn write_index(&self) {
        let index = IndexFile {
            segment_len: self.len,
            end_seq: self.end_seq,
            min_ts: self.min_ts,
            max_ts: self.max_ts,
            sorted: self.sorted,
            entries: self.entries.clone(),
        };
        let path = self.path.with_extension("idx");
        let temporary = self.path.with_extension("idx.new");
        let written = std::fs::write(&temporary, format::encode_index(&index))
            .and_then(|()| std::fs::rename(&temporary, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temporary);
            tracing::debug!(error = %e, path = %path.display(), "segment index not written");
        }
    }

    /// Loads a segment at start-up: from its index file when that describes the file as
    /// it is, else by reading it through. A torn last record (a crash mid-write) is cut
    /// off when `last` (the segment appends go to); damage elsewhere is logged and left
    /// for readers to skip with a gap.
    pub(super) fn load(
        path: PathBuf,
        first_seq: u64,
        last: bool,
        report: &mut Recovery,
    ) -> Result<Segment, Error> {
        let opened = if last {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
        } else {
            File::open(&path)
        };
        let file = opened.map_err(|e| io_error("could not open", &path, e))?;
        let meta = file
            .metadata()
            .map_err(|e| io_error("could not read", &path, e))?;
        let mut head = [0; HEADER_LEN];
        let head_len = file.read_at(&mut head, 0).unwrap_or(0);
        match format::read_header(&head[..head_len], SEGMENT_MAGIC) {
            Header::Current => {}
            Header::Format(n) => {
                return Err(Error::other(format!(
                "{} is in the log store's on-disk format {n}, and this faas-logs reads format {}: \
                     run the faas-logs that wrote it, or move the folder away to start afresh",
                path.display(),
                format::FORMAT
            )))
            }
            // A crash between creating the last segment and writing its header.
            Header::Foreign if last && meta.len() < HEADER_LEN as u64 => {
                tracing::warn!(path = %path.display(), "an unfinished segment file was started again");
                file.set_len(0)
                    .and_then(|()| file.write_all_at(&format::header(SEGMENT_MAGIC), 0))
                    .map_err(|e| io_error("could not repair", &path, e))?;
            }
            Header::Foreign => {
                return Err(Error::other(format!(
                    "{} is not a faas-logs segment file: move it out of the store's folder",
                    path.display()
                )))
            }
        }
        let modified = meta.modified().unwrap_or_else(|_| SystemTime::now());
        let mut segment = Segment::empty(first_seq, path, modified);
        let file_len = meta.len().max(HEADER_LEN as u64);
        let index = std::fs::read(segment.path.with_extension("idx"))
            .ok()
            .and_then(|bytes| format::decode_index(&bytes))
            .filter(|index| index.segment_len == file_len && index.plausible(first_seq));
        if let Some(index) = index {
            segment.end_seq = index.end_seq;
            segment.len = index.segment_len;
            segment.min_ts = index.min_ts;
            segment.max_ts = index.max_ts;
            segment.sorted = index.sorted;
            segment.entries = index.entries;
        } else {
            report.scanned += 1;
            segment.scan(&file, file_len, report)?;
            if last && segment.len < file_len {
                report.cut.push(Damage {
                    path: segment.path.clone(),
                    offset: segment.len,
                    bytes: file_len - segment.len,
                });
                tracing::warn!(
                    path = %segment.path.display(),
                    offset = segment.len,
                    bytes = file_len - segment.len,
                    "a torn last record (a crash mid-write) was cut off"
                );
                file.set_len(segment.len)
                    .map_err(|e| io_error("could not cut the torn record off", &segment.path, e))?;
            }
        }
        Ok(if last {
            segment.with_file(file)
        } else {
            segment
        })
    }

    /// Reads the whole file, noting each record; damage in the middle is logged (readers
    /// skip it with a gap), and `len` ends after the last good record.
    fn scan(&mut self, file: &File, file_len: u64, report: &mut Recovery) -> Result<(), Error> {
        let mut window = Window::default();
        let mut offset = HEADER_LEN as u64;
        let mut expected = self.first_seq;
        // Whether the record at `offset` is where good records resumed after damage.
        let mut resumed = false;
        loop {
            let step = window
                .step(file, offset, file_len, expected)
                .map_err(|e| io_error("could not read", &self.path, e))?;
            match step {
                Step::Record(record, size) => {
                    let (seq, timestamp) = (record.seq, record.timestamp);
                    // Records follow each other by one, or jump the lines lost to damage
                    // just skipped: any other number is damage that happens to check
                    // out, skipped like any other.
                    if seq == expected || (resumed && seq > expected) {
                        self.note(offset, seq, timestamp);
                        expected = seq + 1;
                        offset += size as u64;
                        resumed = false;
                        continue;
                    }
                    let resume = window
                        .resync(file, offset, file_len, expected)
                        .map_err(|e| io_error("could not read", &self.path, e))?;
                    let Some(resume) = resume else { break };
                    report.damaged.push(Damage {
                        path: self.path.clone(),
                        offset,
                        bytes: resume - offset,
                    });
                    offset = resume;
                    resumed = true;
                }
                Step::Damaged { at, resume } => {
                    let Some(resume) = resume else { break };
                    report.damaged.push(Damage {
                        path: self.path.clone(),
                        offset: at,
                        bytes: resume - at,
                    });
                    tracing::warn!(
                        path = %self.path.display(),
                        offset = at,
                        bytes = resume - at,
                        "a damaged record in a log segment is skipped; its readers are told of the gap"
                    );
                    offset = resume;
                    resumed = true;
                }
                Step::End => break,
            }
        }
        self.len = offset;
        Ok(())
    }
}

fn io_error(what: &str, path: &Path, e: io::Error) -> Error {
    Error::other(format!("{what} {}: {e}", path.display())).with_source(e)
}

/// What [`Window::step`] found at an offset.
pub(super) enum Step<'a> {
    /// A good record, and its size.
    Record(Record<'a>, usize),
    /// Damage from `at`: the next good record starts at `resume` (none: none follows
    /// before the limit). Its sequence number tells how many lines were lost.
    Damaged { at: u64, resume: Option<u64> },
    /// Nothing more before the limit.
    End,
}

/// Bytes of a file read ahead, to decode records from without a read per record.
#[derive(Default)]
pub(super) struct Window {
    buf: Vec<u8>,
    /// The file offset of `buf[0]`.
    start: u64,
}

impl Window {
    /// The bytes from `offset` on that are at hand, at least `need` of them (fewer only
    /// where `limit` comes first), reading from `file` when they are not.
    fn at(&mut self, file: &File, offset: u64, need: usize, limit: u64) -> io::Result<&[u8]> {
        let have =
            offset >= self.start && offset + need as u64 <= self.start + self.buf.len() as u64;
        if !have {
            let available = usize::try_from(limit.saturating_sub(offset)).unwrap_or(usize::MAX);
            let want = need.max(CHUNK).min(available);
            self.buf.resize(want, 0);
            file.read_exact_at(&mut self.buf, offset)?;
            self.start = offset;
        }
        Ok(&self.buf[(offset - self.start) as usize..])
    }

    /// Forgets what it holds (another file, or another place in it).
    pub(super) fn clear(&mut self) {
        self.buf.clear();
    }

    /// Forgets what it holds and gives its memory back.
    pub(super) fn release(&mut self) {
        self.buf = Vec::new();
    }

    /// Decodes the record at `offset`, reading no further than `limit`; past damage,
    /// finds where good records resume (of the line `expected` or a later one).
    pub(super) fn step(
        &mut self,
        file: &File,
        offset: u64,
        limit: u64,
        expected: u64,
    ) -> io::Result<Step<'_>> {
        if offset >= limit {
            return Ok(Step::End);
        }
        let mut need = RECORD_HEAD;
        let whole = loop {
            let bytes = self.at(file, offset, need, limit)?;
            match format::check(bytes) {
                Checked::Incomplete(size) if offset + size as u64 <= limit => need = size,
                Checked::Whole(size) => break Some(size),
                Checked::Incomplete(_) | Checked::Corrupt => break None,
            }
        };
        let Some(size) = whole else {
            let resume = self.resync(file, offset, limit, expected)?;
            return Ok(Step::Damaged { at: offset, resume });
        };
        let bytes = self.at(file, offset, size, limit)?;
        Ok(match format::decode_checked(bytes, size) {
            Some(record) => Step::Record(record, size),
            // Its checksum holds, so its length does: the damage is this record alone.
            None => Step::Damaged {
                at: offset,
                resume: Some(offset + size as u64),
            },
        })
    }

    /// The offset of the first good record after the damage at `at`, of the line
    /// `expected` or later.
    pub(super) fn resync(
        &mut self,
        file: &File,
        at: u64,
        limit: u64,
        expected: u64,
    ) -> io::Result<Option<u64>> {
        let mut offset = at + 1;
        while offset + RECORD_HEAD as u64 + 8 <= limit {
            let bytes = self.at(file, offset, RECORD_HEAD + 8, limit)?;
            // The lines lost in between took at least a record's smallest size each, so
            // a number further ahead than the damaged bytes could hold is not one.
            let most_ahead = (offset - at) / format::MIN_RECORD;
            let plausible = claimed_seq(bytes)
                .is_some_and(|seq| seq >= expected && seq - expected <= most_ahead);
            if plausible {
                let mut need = RECORD_HEAD;
                loop {
                    match decode(self.at(file, offset, need, limit)?) {
                        Decoded::Record(..) => return Ok(Some(offset)),
                        Decoded::Incomplete(size) if offset + size as u64 <= limit => need = size,
                        _ => break,
                    }
                }
            }
            offset += 1;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_sort_as_their_numbers() {
        assert_eq!(file_name(42), "00000000000000000042.seg");
        assert_eq!(parse_file_name(&file_name(1 << 40)), Some(1 << 40));
        assert_eq!(
            parse_file_name(&file_name(u64::MAX)),
            None,
            "no room to count on"
        );
        assert_eq!(parse_file_name("42.seg"), None);
        assert_eq!(parse_file_name("00000000000000000042.idx"), None);
    }
}
