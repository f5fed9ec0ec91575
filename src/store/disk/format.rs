//! The bytes on disk: segment and index headers, and one record per line.
//!
//! A segment file is a 16-byte header and then records, each
//!
//! | bytes | what |
//! |---|---|
//! | 4 | payload length, u32 little-endian |
//! | 4 | CRC32C of the length's 4 bytes and the payload, u32 little-endian |
//! | 8 | sequence number of the line in its function, u64 |
//! | 8 | timestamp, seconds since the Unix epoch, i64 |
//! | 4 | the timestamp's nanoseconds, u32 |
//! | 1 | stream: 0 none, 1 stdout, 2 stderr; plus 16 when details follow |
//! | 2 | instance length, u16 |
//! | n | instance, UTF-8 |
//! | 4 | details length, u32 (only with the flag) |
//! | d | details, a JSON object (only with the flag) |
//! | rest | text, UTF-8 |
//!
//! Details (a structured record's severity, trace and attributes) came after the format's
//! first files, as a flag they never set: those files read as before, and a build from
//! before details takes a record with them for damage.
//!
//! The header is a magic string and the format number, so that a file of another format
//! is refused rather than misread.

use chrono::{DateTime, Utc};

use crate::OutputStream;

/// The format this build writes and reads.
pub(crate) const FORMAT: u32 = 1;

/// The first 8 bytes of a segment file.
pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"FAASLOGS";
/// The first 8 bytes of an index file.
pub(crate) const INDEX_MAGIC: &[u8; 8] = b"FAASLIDX";
/// Magic, format number, 4 reserved bytes.
pub(crate) const HEADER_LEN: usize = 16;

/// Length and checksum, before each payload.
pub(crate) const RECORD_HEAD: usize = 8;
/// The stream byte's flag for a record with details.
const HAS_DETAILS: u8 = 16;

/// A payload's fixed part: sequence, seconds, nanoseconds, stream, instance length.
const PAYLOAD_FIXED: usize = 8 + 8 + 4 + 1 + 2;
/// The smallest record: no instance, no text.
pub(crate) const MIN_RECORD: u64 = (RECORD_HEAD + PAYLOAD_FIXED) as u64;
/// The largest payload accepted: a line longer than this is refused, and a length
/// field above it is taken for damage.
pub(crate) const MAX_PAYLOAD: usize = 16 << 20;

/// The header of a file of `magic`.
pub(crate) fn header(magic: &[u8; 8]) -> [u8; HEADER_LEN] {
    let mut h = [0; HEADER_LEN];
    h[..8].copy_from_slice(magic);
    h[8..12].copy_from_slice(&FORMAT.to_le_bytes());
    h
}

/// What a file's first bytes say.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Header {
    /// This build's format.
    Current,
    /// Not a file of ours (or shorter than a header).
    Foreign,
    /// Ours, in another format.
    Format(u32),
}

/// Reads a header of `magic`.
pub(crate) fn read_header(bytes: &[u8], magic: &[u8; 8]) -> Header {
    if bytes.len() < HEADER_LEN || &bytes[..8] != magic {
        return Header::Foreign;
    }
    match u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) {
        FORMAT => Header::Current,
        other => Header::Format(other),
    }
}

/// One line as a record holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub(crate) seq: u64,
    pub(crate) timestamp: DateTime<Utc>,
    pub(crate) stream: Option<OutputStream>,
    pub(crate) instance: &'a str,
    /// The message's [`Details`](crate::Details) as JSON.
    pub(crate) details: Option<&'a str>,
    pub(crate) text: &'a str,
}

/// The size of `record` on disk.
pub(crate) fn record_len(instance: &str, details: Option<&str>, text: &str) -> usize {
    RECORD_HEAD + PAYLOAD_FIXED + instance.len() + details.map_or(0, |d| 4 + d.len()) + text.len()
}

/// Appends `record` to `out`. The caller has checked its size (see [`MAX_PAYLOAD`]) and
/// that the instance's length fits in 16 bits.
pub(crate) fn encode(record: &Record<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    let payload = record_len(record.instance, record.details, record.text) - RECORD_HEAD;
    let len = u32::try_from(payload).expect("checked against MAX_PAYLOAD");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&record.seq.to_le_bytes());
    out.extend_from_slice(&record.timestamp.timestamp().to_le_bytes());
    out.extend_from_slice(&record.timestamp.timestamp_subsec_nanos().to_le_bytes());
    let stream = match record.stream {
        None => 0,
        Some(OutputStream::Stdout) => 1,
        Some(OutputStream::Stderr) => 2,
    };
    out.push(
        stream
            | if record.details.is_some() {
                HAS_DETAILS
            } else {
                0
            },
    );
    let instance_len = u16::try_from(record.instance.len()).expect("names are short");
    out.extend_from_slice(&instance_len.to_le_bytes());
    out.extend_from_slice(record.instance.as_bytes());
    if let Some(details) = record.details {
        let len = u32::try_from(details.len()).expect("checked against MAX_PAYLOAD");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(details.as_bytes());
    }
    out.extend_from_slice(record.text.as_bytes());
    let crc = checksum(&out[start..start + 4], &out[start + RECORD_HEAD..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn checksum(len: &[u8], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(len), payload)
}

/// What the bytes at some offset hold.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded<'a> {
    /// A whole record, and its size on disk.
    Record(Record<'a>, usize),
    /// The bytes end inside a record that may be whole on disk: this many bytes hold it.
    Incomplete(usize),
    /// Not a record: a length out of bounds, a checksum that does not match, or a
    /// payload that does not parse.
    Corrupt,
}

/// Decodes the record at the start of `bytes`. Never panics, whatever the bytes.
pub(crate) fn decode(bytes: &[u8]) -> Decoded<'_> {
    match check(bytes) {
        Checked::Whole(size) => match parse_payload(&bytes[RECORD_HEAD..size]) {
            Some(record) => Decoded::Record(record, size),
            None => Decoded::Corrupt,
        },
        Checked::Incomplete(size) => Decoded::Incomplete(size),
        Checked::Corrupt => Decoded::Corrupt,
    }
}

/// What [`check`] found: [`Decoded`] without the record, so that it borrows nothing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Checked {
    /// A record of this size whose checksum matches.
    Whole(usize),
    /// As [`Decoded::Incomplete`].
    Incomplete(usize),
    /// As [`Decoded::Corrupt`], but for a payload that does not parse.
    Corrupt,
}

/// Checks the length and checksum of the record at the start of `bytes`; its payload is
/// then read with [`decode_checked`].
pub(crate) fn check(bytes: &[u8]) -> Checked {
    if bytes.len() < RECORD_HEAD {
        return Checked::Incomplete(RECORD_HEAD);
    }
    let len = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
    if !(PAYLOAD_FIXED..=MAX_PAYLOAD).contains(&len) {
        return Checked::Corrupt;
    }
    let size = RECORD_HEAD + len;
    if bytes.len() < size {
        return Checked::Incomplete(size);
    }
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if checksum(&bytes[..4], &bytes[RECORD_HEAD..size]) != crc {
        return Checked::Corrupt;
    }
    Checked::Whole(size)
}

/// The record of `size` bytes at the start of `bytes`, whose checksum [`check`] found
/// good; `None` when its payload does not parse.
pub(crate) fn decode_checked(bytes: &[u8], size: usize) -> Option<Record<'_>> {
    parse_payload(bytes.get(RECORD_HEAD..size)?)
}

fn parse_payload(p: &[u8]) -> Option<Record<'_>> {
    let seq = u64::from_le_bytes(p.get(0..8)?.try_into().ok()?);
    let secs = i64::from_le_bytes(p.get(8..16)?.try_into().ok()?);
    let nanos = u32::from_le_bytes(p.get(16..20)?.try_into().ok()?);
    let flags = *p.get(20)?;
    let stream = match flags & !HAS_DETAILS {
        0 => None,
        1 => Some(OutputStream::Stdout),
        2 => Some(OutputStream::Stderr),
        _ => return None,
    };
    let instance_len = u16::from_le_bytes(p.get(21..23)?.try_into().ok()?) as usize;
    let instance = std::str::from_utf8(p.get(23..23 + instance_len)?).ok()?;
    let mut rest = 23 + instance_len;
    let details = if flags & HAS_DETAILS == 0 {
        None
    } else {
        let len = u32::from_le_bytes(p.get(rest..rest + 4)?.try_into().ok()?) as usize;
        let details = std::str::from_utf8(p.get(rest + 4..(rest + 4).checked_add(len)?)?).ok()?;
        rest += 4 + len;
        Some(details)
    };
    let text = std::str::from_utf8(p.get(rest..)?).ok()?;
    Some(Record {
        seq,
        timestamp: DateTime::from_timestamp(secs, nanos)?,
        stream,
        instance,
        details,
        text,
    })
}

/// The sequence number a record at the start of `bytes` claims, read before its checksum
/// is checked: a cheap first test when looking for the next good record after damage.
pub(crate) fn claimed_seq(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(
        bytes.get(RECORD_HEAD..RECORD_HEAD + 8)?.try_into().ok()?,
    ))
}

/// A sparse index entry: where the record of `seq` starts, its timestamp, and the
/// newest timestamp of the segment's records before it (so that `tail` knows when the
/// lines before cannot be among the newest, even out of time order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) seq: u64,
    pub(crate) offset: u64,
    pub(crate) timestamp: DateTime<Utc>,
    /// `None` for the segment's first record.
    pub(crate) newest_before: Option<DateTime<Utc>>,
}

/// What a sealed segment's index file holds (see [`encode_index`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexFile {
    /// The segment file's length when the index was written.
    pub(crate) segment_len: u64,
    /// The sequence number after the segment's last record.
    pub(crate) end_seq: u64,
    pub(crate) min_ts: Option<DateTime<Utc>>,
    pub(crate) max_ts: Option<DateTime<Utc>>,
    /// Whether the segment's timestamps never go backwards.
    pub(crate) sorted: bool,
    pub(crate) entries: Vec<Entry>,
}

impl IndexFile {
    /// Whether it can describe a segment whose first line is `first_seq`: as many lines
    /// as its length can hold, and entries in order within it. Anything else is damage
    /// that happens to check out, and the segment is scanned instead.
    pub(crate) fn plausible(&self, first_seq: u64) -> bool {
        let most = self.segment_len.saturating_sub(HEADER_LEN as u64) / MIN_RECORD;
        let lines_fit = self
            .end_seq
            .checked_sub(first_seq)
            .is_some_and(|lines| lines <= most);
        let ordered = self
            .entries
            .windows(2)
            .all(|w| w[0].seq < w[1].seq && w[0].offset < w[1].offset);
        let within = self.entries.iter().all(|e| {
            (first_seq..self.end_seq).contains(&e.seq)
                && (HEADER_LEN as u64..self.segment_len).contains(&e.offset)
        });
        lines_fit && ordered && within
    }
}

const ENTRY_LEN: usize = 8 + 8 + 12 + 12;

fn put_ts(out: &mut Vec<u8>, ts: Option<DateTime<Utc>>) {
    // i64::MIN seconds stands for none: no line is stamped that long ago.
    let (secs, nanos) = ts.map_or((i64::MIN, 0), |t| {
        (t.timestamp(), t.timestamp_subsec_nanos())
    });
    out.extend_from_slice(&secs.to_le_bytes());
    out.extend_from_slice(&nanos.to_le_bytes());
}

/// An index file: header, fixed fields, entries, and a CRC32C of all of it.
pub(crate) fn encode_index(index: &IndexFile) -> Vec<u8> {
    let mut out = header(INDEX_MAGIC).to_vec();
    out.extend_from_slice(&index.segment_len.to_le_bytes());
    out.extend_from_slice(&index.end_seq.to_le_bytes());
    put_ts(&mut out, index.min_ts);
    put_ts(&mut out, index.max_ts);
    out.push(u8::from(index.sorted));
    out.extend_from_slice(&(index.entries.len() as u64).to_le_bytes());
    for e in &index.entries {
        out.extend_from_slice(&e.seq.to_le_bytes());
        out.extend_from_slice(&e.offset.to_le_bytes());
        put_ts(&mut out, Some(e.timestamp));
        put_ts(&mut out, e.newest_before);
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Reads an index file; `None` when it is damaged, of another format or not an index
/// (the segment is then scanned instead). Never panics, whatever the bytes.
pub(crate) fn decode_index(bytes: &[u8]) -> Option<IndexFile> {
    if read_header(bytes, INDEX_MAGIC) != Header::Current || bytes.len() < HEADER_LEN + 4 {
        return None;
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().ok()?) {
        return None;
    }
    let mut r = Cursor(&body[HEADER_LEN..]);
    let segment_len = r.u64()?;
    let end_seq = r.u64()?;
    let min_ts = r.ts()?;
    let max_ts = r.ts()?;
    let sorted = match r.take(1)?[0] {
        0 => false,
        1 => true,
        _ => return None,
    };
    let count = usize::try_from(r.u64()?).ok()?;
    if r.0.len() != count.checked_mul(ENTRY_LEN)? {
        return None;
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let seq = r.u64()?;
        let offset = r.u64()?;
        let timestamp = r.ts()??;
        let newest_before = r.ts()?;
        entries.push(Entry {
            seq,
            offset,
            timestamp,
            newest_before,
        });
    }
    Some(IndexFile {
        segment_len,
        end_seq,
        min_ts,
        max_ts,
        sorted,
        entries,
    })
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    /// A timestamp: `Some(None)` for the "none" mark, `None` for bytes that are not one.
    fn ts(&mut self) -> Option<Option<DateTime<Utc>>> {
        let secs = i64::from_le_bytes(self.take(8)?.try_into().ok()?);
        let nanos = u32::from_le_bytes(self.take(4)?.try_into().ok()?);
        if secs == i64::MIN {
            return Some(None);
        }
        DateTime::from_timestamp(secs, nanos).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(seq: u64, details: Option<&'a str>, text: &'a str) -> Record<'a> {
        Record {
            seq,
            timestamp: DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap(),
            stream: Some(OutputStream::Stderr),
            instance: "fn-1",
            details,
            text,
        }
    }

    #[test]
    fn a_record_reads_back_as_written_and_any_damage_is_seen() {
        for details in [None, Some(r#"{"severity":"ERROR"}"#)] {
            let mut bytes = Vec::new();
            encode(&record(7, details, "hello"), &mut bytes);
            assert_eq!(bytes.len(), record_len("fn-1", details, "hello"));
            assert_eq!(
                decode(&bytes),
                Decoded::Record(record(7, details, "hello"), bytes.len())
            );
            damage_is_seen(&bytes);
        }
    }

    fn damage_is_seen(bytes: &[u8]) {
        for cut in 0..bytes.len() {
            assert!(matches!(decode(&bytes[..cut]), Decoded::Incomplete(_)));
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.to_vec();
                damaged[i] ^= 1 << bit;
                assert!(
                    matches!(decode(&damaged), Decoded::Corrupt | Decoded::Incomplete(_)),
                    "byte {i} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn an_index_reads_back_as_written_and_a_damaged_one_is_refused() {
        let ts = DateTime::from_timestamp(1_700_000_000, 5).unwrap();
        let index = IndexFile {
            segment_len: 4096,
            end_seq: 30,
            min_ts: Some(ts),
            max_ts: None,
            sorted: true,
            entries: vec![Entry {
                seq: 3,
                offset: 16,
                timestamp: ts,
                newest_before: Some(ts),
            }],
        };
        let bytes = encode_index(&index);
        assert_eq!(decode_index(&bytes), Some(index));
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x10;
            assert_eq!(decode_index(&damaged), None, "byte {i}");
        }
    }

    #[test]
    fn another_format_number_is_told_apart_from_a_foreign_file() {
        let mut h = header(SEGMENT_MAGIC);
        assert_eq!(read_header(&h, SEGMENT_MAGIC), Header::Current);
        h[8] = 2;
        assert_eq!(read_header(&h, SEGMENT_MAGIC), Header::Format(2));
        assert_eq!(
            read_header(b"hello world12345", SEGMENT_MAGIC),
            Header::Foreign
        );
    }
}
