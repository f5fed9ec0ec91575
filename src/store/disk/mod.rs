//! [`DiskStore`]: the embedded default on local disk, whose lines survive restarts,
//! crashes and full disks. The files, what survives what and memory are told on
//! [`DiskStore`].

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};

mod commit;
pub(crate) mod format;
mod reader;
mod retention;
mod segment;

pub use commit::Fsync;
pub use reader::DiskReader;

use self::commit::Committer;
use self::format::{Record, MAX_PAYLOAD};
use self::segment::Segment;
use super::lock;
use super::table::Table;
use crate::request::Filter;
use crate::{
    async_trait, Batch, Capabilities, Error, FunctionName, LogSink, LogStream, Message, Request,
    Requester, SharedStr,
};

/// The settings of a [`DiskStore`], for [`DiskStore::open`].
///
/// ```
/// use std::time::Duration;
/// use faas_logs::store::{DiskConfig, Fsync};
///
/// let config = DiskConfig::default()
///     .with_fsync(Fsync::Always)
///     .with_max_total_bytes(10 << 30)
///     .with_max_age(Some(Duration::from_secs(7 * 24 * 3600)));
/// assert_eq!(config.fsync, Fsync::Always);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DiskConfig {
    /// When lines are flushed to disk (default [`Fsync::Batch`]).
    pub fsync: Fsync,
    /// A function's newest segment is sealed, and a new one started, past this size
    /// (default 16 MiB). Retention deletes whole segments, so this is its granularity.
    pub segment_bytes: u64,
    /// The most bytes all functions' segments hold together (default 4 GiB); past it,
    /// the oldest sealed segments of any function are deleted.
    pub max_total_bytes: u64,
    /// The most bytes one function's segments hold (default: no bound but the total);
    /// past it, its oldest sealed segments are deleted.
    pub max_function_bytes: Option<u64>,
    /// Segments whose newest line was written longer ago than this are deleted (default
    /// none).
    pub max_age: Option<Duration>,
    /// The most functions the store holds; a line of a new function beyond them is
    /// refused (default 1,024).
    pub max_functions: usize,
    /// The namespace of messages and requests without one (default `openfaas-fn`).
    pub default_namespace: String,
}

impl Default for DiskConfig {
    fn default() -> Self {
        DiskConfig {
            fsync: Fsync::Batch,
            segment_bytes: 16 << 20,
            max_total_bytes: 4 << 30,
            max_function_bytes: None,
            max_age: None,
            max_functions: 1024,
            default_namespace: "openfaas-fn".into(),
        }
    }
}

impl DiskConfig {
    /// With `fsync`.
    #[must_use]
    pub fn with_fsync(mut self, fsync: Fsync) -> Self {
        self.fsync = fsync;
        self
    }

    /// With segments of about `bytes` (at least 4 KiB).
    #[must_use]
    pub fn with_segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// With the total bound.
    #[must_use]
    pub fn with_max_total_bytes(mut self, bytes: u64) -> Self {
        self.max_total_bytes = bytes;
        self
    }

    /// With a bound per function.
    #[must_use]
    pub fn with_max_function_bytes(mut self, bytes: Option<u64>) -> Self {
        self.max_function_bytes = bytes;
        self
    }

    /// With an age bound.
    #[must_use]
    pub fn with_max_age(mut self, age: Option<Duration>) -> Self {
        self.max_age = age;
        self
    }

    /// With a bound on the number of functions.
    #[must_use]
    pub fn with_max_functions(mut self, functions: usize) -> Self {
        self.max_functions = functions;
        self
    }

    /// With the default namespace.
    #[must_use]
    pub fn with_default_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.default_namespace = namespace.into();
        self
    }
}

/// A log store on local disk, with the contract of [`LogStore`](super::LogStore): it is
/// a [`Requester`] (every `tail`, `since`, `instance` and `follow` semantic, readers as
/// positions so that nothing is lost or repeated at the switch to live, a gap line where
/// retention or damage removed lines under a reader) and a [`LogSink`] whose `Ok` means
/// written and, unless [`Fsync::Never`], flushed to disk.
///
/// Clones share the store; the folder is locked while any clone is alive.
///
/// # On disk
///
/// ```text
/// DIR/faas-logs-store          "faas-logs store format 1": refused if it names another
/// DIR/lock                     held (flock) by the process that has the store open
/// DIR/functions/NS/NAME/
///     00000000000000000000.seg segment files, named by their first line's number
///     00000000000000000000.idx the sparse index of a sealed segment (rebuilt if lost)
/// ```
///
/// Each function (namespace and name) has its own segments; appends go to its newest one,
/// which is sealed and followed by a new one once it reaches
/// [`DiskConfig::segment_bytes`]. A segment is a header (`FAASLOGS`, the format number)
/// and records, each a length, a CRC32C of the length and payload, and the payload: the
/// line's sequence number, timestamp, stream, instance and text (the README's section
/// on the store on disk gives the exact bytes). A file of another format is refused
/// with a message saying so, never misread.
///
/// # What survives what
///
/// - **The process killed** (`kill -9`, a panic, out of memory): nothing written is lost,
///   whatever [`Fsync`]; a record cut short by the crash is cut off at the next start.
/// - **Power loss or a kernel crash:** nothing acknowledged under [`Fsync::Always`] and
///   [`Fsync::Batch`]; under [`Fsync::Never`] what the system had not yet written out.
/// - **A damaged byte** in a segment: the record holding it is skipped, with a warning
///   naming the file and offset, and readers get a gap line counting what it held.
/// - **A full disk:** writes are refused ([`Error::InsufficientStorage`], 507) and nothing
///   is half-written; reads go on; writes are accepted again once there is room.
///
/// # Memory
///
/// Per segment the store keeps its range, times and a sparse index (one entry per 64 KiB),
/// under 1 KiB per MiB of history; lines are read from the files (the system's cache)
/// when asked for. Start-up reads each sealed segment's index and reads through only the
/// segments without one (the newest), so it does not grow with the history.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), faas_logs::Error> {
/// use chrono::Utc;
/// use faas_logs::store::{DiskConfig, DiskStore};
/// use faas_logs::{LogSink, Message};
///
/// let dir = std::env::temp_dir().join(format!("faas-logs-doc-{}", std::process::id()));
/// let store = DiskStore::open(&dir, DiskConfig::default())?;
/// store.write(Message::new("hello", Utc::now(), "ready").with_instance("hello-1")).await?;
/// drop(store);
///
/// // Opened again, it has the line.
/// let store = DiskStore::open(&dir, DiskConfig::default())?;
/// assert_eq!(store.lines("", "hello"), Some(1));
/// # drop(store);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DiskStore {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    config: DiskConfig,
    functions: Table<Function>,
    committer: Committer,
    next_reader: AtomicU64,
    /// Bytes of every segment together.
    total_bytes: AtomicU64,
    recovery: Recovery,
    /// Held (flock) while the store is open, so that two processes never write one store.
    _lock: File,
    /// Ends the retention thread when the store goes.
    retention: retention::Handle,
}

impl std::fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStore")
            .field("root", &self.inner.root)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// One function's segments.
struct Function {
    namespace: SharedStr,
    name: SharedStr,
    dir: PathBuf,
    state: Mutex<FunctionState>,
}

struct FunctionState {
    /// Oldest first; appends go to the last.
    segments: VecDeque<Segment>,
    /// The sequence number of the next line.
    end_seq: u64,
    /// Bytes of its segments together.
    bytes: u64,
    /// Readers waiting for the next line, by reader id.
    waiting: HashMap<u64, Waker>,
    /// The time the store last gave lines that came without one.
    stamped: Option<DateTime<Utc>>,
}

impl FunctionState {
    /// The sequence number of the oldest line kept: lines before it are gone.
    fn oldest_seq(&self) -> u64 {
        self.segments.front().map_or(self.end_seq, |s| s.first_seq)
    }

    /// Whether its lines, segment after segment, never go back in time (so `since` and
    /// `tail` can seek).
    fn sorted(&self) -> bool {
        let mut max: Option<DateTime<Utc>> = None;
        for s in &self.segments {
            if !s.sorted || matches!((max, s.min_ts), (Some(max), Some(min)) if min < max) {
                return false;
            }
            max = s.max_ts.or(max);
        }
        true
    }
}

/// What [`DiskStore::open`] found wrong on disk and repaired or stepped around; also
/// logged as warnings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// Torn last records (a crash mid-write) cut off: where each file now ends, and how
    /// many bytes were cut.
    pub cut: Vec<Damage>,
    /// Damaged records found in the segments that were read through, each skipped (its
    /// readers get a gap line): where each is, and the bytes skipped. Damage in a segment
    /// that was not read through (one with an index) is found, and skipped the same way,
    /// when it is read.
    pub damaged: Vec<Damage>,
    /// Segments read through because they had no index that matched them (the newest of
    /// each function, usually).
    pub scanned: usize,
}

/// A place in a segment file, and a length in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Damage {
    /// The segment file.
    pub path: PathBuf,
    /// Where in it.
    pub offset: u64,
    /// How many bytes.
    pub bytes: u64,
}

/// The marker file at the store's root, and what it holds.
const MARKER: &str = "faas-logs-store";

fn marker_text() -> String {
    format!("faas-logs store format {}\n", format::FORMAT)
}

impl DiskStore {
    /// Opens (or creates) the store in `dir`: checks the format, locks the folder, cuts
    /// off a torn last record, and loads each function's segments (their index files, or
    /// reading the segments that have none).
    ///
    /// Fails with a message that says what to do when the folder belongs to another
    /// format or program, is in use by another process, or cannot be read.
    pub fn open(dir: impl AsRef<Path>, config: DiskConfig) -> Result<DiskStore, Error> {
        let root = dir.as_ref().to_path_buf();
        let config = DiskConfig {
            segment_bytes: config.segment_bytes.max(4096),
            max_functions: config.max_functions.max(1),
            ..config
        };
        std::fs::create_dir_all(root.join("functions"))
            .map_err(|e| fs_error("could not create the log store's folder", &root, e))?;
        check_marker(&root)?;
        let folder_lock = lock_folder(&root)?;
        let mut recovery = Recovery::default();
        let functions = load_functions(&root, &mut recovery)?;
        let functions = Table::new(
            config.default_namespace.clone(),
            config.max_functions,
            functions,
        );
        let total: u64 = functions.all().iter().map(|f| lock(&f.state).bytes).sum();
        let committer = Committer::start()
            .map_err(|e| Error::other("could not start the log store's flusher").with_source(e))?;
        let inner = Arc::new_cyclic(|weak| Inner {
            root,
            config,
            functions,
            committer,
            next_reader: AtomicU64::new(0),
            total_bytes: AtomicU64::new(total),
            _lock: folder_lock,
            recovery,
            retention: retention::Handle::start(weak.clone()),
        });
        let store = DiskStore { inner };
        tracing::info!(
            path = %store.inner.root.display(),
            functions = store.function_names().len(),
            bytes = total,
            "log store opened"
        );
        Ok(store)
    }

    /// The folder the store is in.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.inner.root
    }

    /// What opening it found wrong on disk and repaired or stepped around.
    #[must_use]
    pub fn recovery(&self) -> &Recovery {
        &self.inner.recovery
    }

    /// Its settings.
    #[must_use]
    pub fn config(&self) -> &DiskConfig {
        &self.inner.config
    }

    /// Bytes of every segment together.
    #[must_use]
    pub fn total_bytes(&self) -> u64 {
        self.inner.total_bytes.load(Ordering::Relaxed)
    }

    /// How many lines a function has on disk (retention deletes whole segments, so this
    /// counts from its oldest segment), or `None` for a function the store does not know.
    #[must_use]
    pub fn lines(&self, namespace: &str, name: &str) -> Option<u64> {
        let function = self.function(namespace, name)?;
        let state = lock(&function.state);
        Some(state.end_seq - state.oldest_seq())
    }

    /// What the whole store holds ([`StoreTotals`](crate::store::StoreTotals)); each
    /// function is looked at in turn, so call it when asked (a scrape), not per line.
    #[must_use]
    pub fn totals(&self) -> crate::store::StoreTotals {
        let functions = self.inner.functions.all();
        let mut totals = crate::store::StoreTotals {
            functions: functions.len(),
            bytes: self.total_bytes(),
            ..Default::default()
        };
        for function in functions {
            let state = lock(&function.state);
            totals.lines += state.end_seq - state.oldest_seq();
            totals.evicted += state.oldest_seq();
        }
        totals
    }

    /// Every function the store holds, sorted by namespace and name.
    #[must_use]
    pub fn function_names(&self) -> Vec<FunctionName> {
        self.inner.functions.names()
    }

    /// The namespace of messages and requests without one.
    #[must_use]
    pub fn default_namespace(&self) -> &str {
        self.inner.functions.default_namespace()
    }

    fn namespace<'a>(&'a self, namespace: &'a str) -> &'a str {
        self.inner.functions.namespace(namespace)
    }

    fn function(&self, namespace: &str, name: &str) -> Option<Arc<Function>> {
        self.inner.functions.get(namespace, name)
    }

    /// Makes a function known before its first line, so that a query for it follows
    /// instead of answering 404. Writing does this by itself.
    pub fn register(&self, namespace: &str, name: &str) -> Result<(), Error> {
        self.function_or_create(namespace, name).map(drop)
    }

    fn function_or_create(&self, namespace: &str, name: &str) -> Result<Arc<Function>, Error> {
        if let Some(function) = self.function(namespace, name) {
            return Ok(function);
        }
        folder_name("namespace", self.namespace(namespace))?;
        folder_name("name", name)?;
        self.inner
            .functions
            .get_or_make(namespace, name, |namespace, name| {
                let dir = self.inner.root.join("functions").join(namespace).join(name);
                std::fs::create_dir_all(&dir).map_err(|e| write_error(&dir, e, 0))?;
                if self.inner.config.fsync != Fsync::Never {
                    // The new folders' names are on disk before a line of theirs is
                    // acknowledged.
                    for folder in [dir.parent(), dir.parent().and_then(Path::parent)]
                        .into_iter()
                        .flatten()
                    {
                        File::open(folder)
                            .and_then(|f| f.sync_all())
                            .map_err(|e| write_error(folder, e, 0))?;
                    }
                }
                Ok(Function::new(namespace, name, dir, VecDeque::new()))
            })
    }

    /// Writes `messages`, all of one function, as one write: all of them or none; those
    /// `stamp` marks are stamped now, in the function's order of writes. Returns the file
    /// to flush.
    fn append(
        &self,
        function: &Function,
        messages: &mut [Message],
        stamp: &[bool],
    ) -> Result<Arc<File>, Error> {
        let config = &self.inner.config;
        let details: Vec<Option<String>> = messages
            .iter()
            .map(|m| {
                m.details
                    .as_ref()
                    .and_then(|d| serde_json::to_string(d).ok())
            })
            .collect();
        let len = |(m, d): (&Message, &Option<String>)| {
            format::record_len(&m.instance, d.as_deref(), &m.text)
        };
        for m in messages.iter().zip(&details) {
            if len(m) > MAX_PAYLOAD {
                let m = m.0;
                return Err(Error::invalid(
                    "text",
                    format!(
                        "a line of {} bytes is longer than the store keeps",
                        m.text.len()
                    ),
                ));
            }
        }
        let (file, waiting, written, function_bytes) = {
            let mut state = lock(&function.state);
            let roll = state
                .segments
                .back()
                .is_none_or(|s| s.len >= config.segment_bytes);
            if roll {
                let first = state.end_seq;
                if let Some(sealed) = state.segments.back_mut() {
                    sealed.seal();
                }
                let segment = Segment::create(&function.dir, first, config.fsync != Fsync::Never)
                    .map_err(|e| write_error(&function.dir, e, messages.len()))?;
                state.bytes += segment.len;
                self.inner
                    .total_bytes
                    .fetch_add(segment.len, Ordering::Relaxed);
                state.segments.push_back(segment);
            }
            if stamp.contains(&true) {
                // Never before the last line stamped here, whatever the clock does.
                let now = state
                    .stamped
                    .map_or_else(Utc::now, |last| last.max(Utc::now()));
                state.stamped = Some(now);
                for (m, _) in messages.iter_mut().zip(stamp).filter(|(_, s)| **s) {
                    m.timestamp = now;
                }
            }
            let mut bytes = Vec::with_capacity(messages.iter().zip(&details).map(len).sum());
            let first_seq = state.end_seq;
            for (seq, (m, details)) in (first_seq..).zip(messages.iter().zip(&details)) {
                format::encode(
                    &Record {
                        seq,
                        timestamp: m.timestamp,
                        stream: m.stream,
                        instance: &m.instance,
                        details: details.as_deref(),
                        text: &m.text,
                    },
                    &mut bytes,
                );
            }
            let segment = state.segments.back_mut().expect("made above");
            let file = segment
                .file()
                .map_err(|e| write_error(&segment.path, e, messages.len()))?;
            let start = segment.len;
            if let Err(e) = file.write_all_at(&bytes, start) {
                // Nothing half-written: whatever part of the write landed goes again.
                if let Err(cut) = file.set_len(start) {
                    tracing::error!(error = %cut, path = %segment.path.display(), "a failed write could not be cut off; the next start will");
                }
                return Err(write_error(&segment.path, e, messages.len()));
            }
            let mut offset = start;
            for (seq, m) in (first_seq..).zip(messages.iter().zip(&details)) {
                segment.note(offset, seq, m.0.timestamp);
                offset += len(m) as u64;
            }
            segment.len = offset;
            segment.modified = SystemTime::now();
            state.end_seq = first_seq + messages.len() as u64;
            state.bytes += bytes.len() as u64;
            let waiting = std::mem::take(&mut state.waiting);
            (file, waiting, bytes.len() as u64, state.bytes)
        };
        let total = self.inner.total_bytes.fetch_add(written, Ordering::Relaxed) + written;
        for waker in waiting.into_values() {
            waker.wake();
        }
        if total > config.max_total_bytes
            || config
                .max_function_bytes
                .is_some_and(|max| function_bytes > max)
        {
            self.inner.retention.poke();
        }
        Ok(file)
    }

    /// Waits until `file`'s writes are on disk, as [`DiskConfig::fsync`] says.
    async fn flush(&self, file: Arc<File>, path: &Path, lines: usize) -> Result<(), Error> {
        let flushed = match self.inner.config.fsync {
            Fsync::Never => return Ok(()),
            Fsync::Batch => self.inner.committer.flush(file).await,
            Fsync::Always => tokio::task::spawn_blocking(move || file.sync_data())
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)))
                .map_err(Arc::new),
        };
        flushed.map_err(|e| {
            Error::unavailable(format!(
                "{lines} lines were written but could not be flushed to disk ({}): {e}",
                path.display()
            ))
        })
    }

    /// Starts a reader, as [`Requester::query`] does, with the store's own stream type.
    pub fn read(&self, request: &Request) -> Result<DiskReader, Error> {
        let Some(function) = self.function(&request.namespace, &request.name) else {
            return Err(Error::not_found(format!(
                "no logs for function {:?} in namespace {:?}",
                request.name,
                self.namespace(&request.namespace)
            )));
        };
        let id = self.inner.next_reader.fetch_add(1, Ordering::Relaxed);
        reader::DiskReader::start(function, id, Filter::new(request), request)
    }
}

impl Function {
    fn new(namespace: &str, name: &str, dir: PathBuf, segments: VecDeque<Segment>) -> Function {
        let end_seq = segments.back().map_or(0, |s| s.end_seq);
        let bytes = segments.iter().map(|s| s.len).sum();
        Function {
            namespace: namespace.into(),
            name: name.into(),
            dir,
            state: Mutex::new(FunctionState {
                segments,
                end_seq,
                bytes,
                waiting: HashMap::new(),
                stamped: None,
            }),
        }
    }
}

/// `value` as a folder name: a valid OpenFaaS name that is not `.` or `..`.
fn folder_name<'a>(param: &'static str, value: &'a str) -> Result<&'a str, Error> {
    crate::request::valid_name(param, value.into(), "")?;
    if value.is_empty() || value == "." || value == ".." {
        return Err(Error::invalid(
            param,
            format!("{value:?} is not a function's name"),
        ));
    }
    Ok(value)
}

/// A failed write or file creation: a full disk is [`Error::InsufficientStorage`], the
/// rest [`Error::Unavailable`].
fn write_error(path: &Path, e: std::io::Error, lines: usize) -> Error {
    let full = matches!(e.raw_os_error(), Some(28 | 122)); // ENOSPC, EDQUOT
    if full {
        Error::insufficient_storage(format!(
            "the log store's disk is full ({}): {lines} lines were not stored; free some space, \
             or lower the store's size bounds, and send them again",
            path.display()
        ))
        .with_source(e)
    } else {
        Error::unavailable(format!(
            "the log store could not write {} ({lines} lines not stored): {e}",
            path.display()
        ))
        .with_source(e)
    }
}

fn fs_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::other(format!("{what} {}: {e}", path.display())).with_source(e)
}

/// Writes the marker of an empty folder, or checks the one there.
fn check_marker(root: &Path) -> Result<(), Error> {
    let path = root.join(MARKER);
    match std::fs::read_to_string(&path) {
        Ok(text) if text == marker_text() => Ok(()),
        Ok(text) => Err(Error::other(format!(
            "{} holds a log store of another format ({:?}); this faas-logs reads format {}: \
             run the faas-logs that wrote it, or choose another folder",
            root.display(),
            text.trim(),
            format::FORMAT
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let others = std::fs::read_dir(root)
                .map_err(|e| fs_error("could not read", root, e))?
                .filter_map(Result::ok)
                .any(|entry| !matches!(entry.file_name().to_str(), Some("functions" | "lock")));
            if others {
                return Err(Error::other(format!(
                    "{} holds other files and no faas-logs store: choose an empty folder",
                    root.display()
                )));
            }
            let empty = std::fs::read_dir(root.join("functions"))
                .map_err(|e| fs_error("could not read", root, e))?
                .next()
                .is_none();
            if !empty {
                return Err(Error::other(format!(
                    "{} has functions but no {MARKER} file: restore it, or choose another folder",
                    root.display()
                )));
            }
            std::fs::write(&path, marker_text()).map_err(|e| fs_error("could not write", &path, e))
        }
        Err(e) => Err(fs_error("could not read", &path, e)),
    }
}

fn lock_folder(root: &Path) -> Result<File, Error> {
    let path = root.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| fs_error("could not open", &path, e))?;
    // A store closing (its last threads ending) or a process exiting lets go within
    // moments: worth waiting that long before refusing.
    for _ in 0..40 {
        if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok() {
            return Ok(file);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(Error::other(format!(
        "{} is in use by another faas-logs: stop it, or give this one another --data-dir",
        root.display()
    )))
}

type Functions = HashMap<String, HashMap<String, Arc<Function>>>;

fn load_functions(root: &Path, report: &mut Recovery) -> Result<Functions, Error> {
    let mut functions: Functions = HashMap::new();
    let base = root.join("functions");
    for namespace in subfolders(&base)? {
        for name in subfolders(&base.join(&namespace))? {
            let dir = base.join(&namespace).join(&name);
            let segments = load_segments(&dir, report)?;
            let function = Function::new(&namespace, &name, dir, segments);
            functions
                .entry(namespace.clone())
                .or_default()
                .insert(name, Arc::new(function));
        }
    }
    Ok(functions)
}

fn subfolders(dir: &Path) -> Result<Vec<String>, Error> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| fs_error("could not read", dir, e))? {
        let entry = entry.map_err(|e| fs_error("could not read", dir, e))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
    }
    Ok(names)
}

fn load_segments(dir: &Path, report: &mut Recovery) -> Result<VecDeque<Segment>, Error> {
    let mut firsts = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| fs_error("could not read", dir, e))? {
        let entry = entry.map_err(|e| fs_error("could not read", dir, e))?;
        if let Some(first) = entry
            .file_name()
            .to_str()
            .and_then(segment::parse_file_name)
        {
            firsts.push(first);
        }
    }
    firsts.sort_unstable();
    let mut segments = VecDeque::with_capacity(firsts.len());
    for (i, &first) in firsts.iter().enumerate() {
        let last = i + 1 == firsts.len();
        let path = dir.join(segment::file_name(first));
        segments.push_back(Segment::load(path, first, last, report)?);
    }
    Ok(segments)
}

#[async_trait]
impl LogSink for DiskStore {
    /// Writes each function's lines of the batch with one write, then waits for the
    /// flush that [`DiskConfig::fsync`] asks for: `Ok` means on disk.
    async fn store(&self, batch: Batch) -> Vec<Result<(), Error>> {
        let mut outcomes: Vec<Option<Result<(), Error>>> = Vec::new();
        outcomes.resize_with(batch.messages.len(), || None);
        // Each function's lines, in the batch's order, with their places in it.
        let mut groups: Vec<(Arc<Function>, Vec<usize>, Vec<Message>)> = Vec::new();
        let mut stamp = vec![false; batch.messages.len()];
        for &i in &batch.stamped_on_arrival {
            if let Some(stamp) = stamp.get_mut(i) {
                *stamp = true;
            }
        }
        for (i, mut m) in batch.messages.into_iter().enumerate() {
            // A batch is mostly of one function: found among the groups first.
            let namespace = self.namespace(&m.namespace);
            let known = groups
                .iter_mut()
                .find(|(f, _, _)| *f.name == *m.name && *f.namespace == *namespace);
            if let Some((function, places, messages)) = known {
                if m.namespace.is_empty() {
                    m.namespace = function.namespace.clone();
                }
                places.push(i);
                messages.push(m);
                continue;
            }
            match self.function_or_create(&m.namespace, &m.name) {
                Ok(function) => {
                    if m.namespace.is_empty() {
                        m.namespace = function.namespace.clone();
                    }
                    groups.push((function, vec![i], vec![m]));
                }
                Err(e) => outcomes[i] = Some(Err(e)),
            }
        }
        let mut flushes = Vec::new();
        for (function, places, mut messages) in groups {
            let stamp: Vec<bool> = places.iter().map(|&i| stamp[i]).collect();
            match self.append(&function, &mut messages, &stamp) {
                Ok(file) => flushes.push((file, function, places)),
                Err(e) => {
                    let message = e.to_string();
                    let kind = |e: &Error| match e {
                        Error::InsufficientStorage { .. } => {
                            Error::insufficient_storage(message.clone())
                        }
                        Error::InvalidRequest { param, reason, .. } => {
                            Error::invalid(param.clone(), reason.clone())
                        }
                        _ => Error::unavailable(message.clone()),
                    };
                    for i in places {
                        outcomes[i] = Some(Err(kind(&e)));
                    }
                }
            }
        }
        for (file, function, places) in flushes {
            let outcome = self.flush(file, &function.dir, places.len()).await;
            for i in places {
                outcomes[i] = Some(match &outcome {
                    Ok(()) => Ok(()),
                    Err(e) => Err(Error::unavailable(e.to_string())),
                });
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(Error::other("no outcome for this line"))))
            .collect()
    }
}

#[async_trait]
impl Requester for DiskStore {
    async fn query(&self, request: Request) -> Result<LogStream, Error> {
        Ok(Box::pin(self.read(&request)?))
    }

    /// History ends with the mark; the reader gives the function's lines alone, applies
    /// `since` and `instance`, and finds where `tail` starts by seeking, with the handler
    /// keeping the newest `tail`.
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
            .with_marks_history_end()
            .with_selects_function()
            .with_selects_instance()
    }

    async fn functions(&self) -> Result<Option<Vec<FunctionName>>, Error> {
        Ok(Some(self.function_names()))
    }

    fn default_namespace(&self) -> Option<String> {
        Some(self.inner.config.default_namespace.clone())
    }
}
