//! [`JournaldRequester`]: the logs of functions kept in the systemd journal, as faasd's
//! `collect`, `faas-logs collect` and Docker's `journald` log driver write them; and
//! [`JournalWriter`], journald's native protocol, which `faas-logs collect` writes with.
//!
//! The requester reads the journal through `journalctl --output=json`, one child process
//! per read, as faasd does, but with the contract's semantics where faasd has none:
//!
//! | | faasd's endpoint | `JournaldRequester` |
//! |---|---|---|
//! | no `since` | the last five minutes | the whole history |
//! | `tail=N` | `--lines=N` | the newest N across every instance, after `since` |
//! | history to live | one `--follow` | history, then the function's shared `--follow` from after the last entry read: none lost or repeated |
//! | `MESSAGE` that is not UTF-8 | dropped (journald prints it as bytes) | decoded, invalid bytes replaced |
//! | priority 0 to 3 | not shown | `stream: stderr` |
//! | lines over 4 KiB | `null` (no `--all`) | whole |
//! | `journalctl` missing, journal unreadable | 500 or an empty answer | 503 quoting `journalctl` |
//! | the follow's `journalctl` dies | the stream ends as if finished | the stream is aborted, so the client sees it broken |
//!
//! Every `journalctl` it starts is killed and waited for when the response ends, however
//! it ends: none outlives a request and none is left a zombie. The followers of one
//! function share one `journalctl --follow` (each would take one of the 128 inotify
//! instances Linux allows a user by default); a follower that falls 16,384 lines behind
//! the others follows on its own from its last line, so it loses nothing either.
//!
//! ```no_run
//! use std::time::Duration;
//! use faas_logs::journald::JournaldRequester;
//! use faas_logs::server::LogHandler;
//!
//! // The system journal; `with_args(["--directory=/var/log/journal"])` reads a folder.
//! let handler = LogHandler::new(JournaldRequester::new(), Duration::from_secs(60));
//! ```

mod entry;
mod hub;
mod journalctl;
mod native;

use std::cmp::Ordering;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use tokio::sync::mpsc;

pub use entry::{EntryError, JournalEntry, JournalFields};
pub use native::{JournalWriter, Priority, JOURNAL_SOCKET};

use hub::{cursor_order, Hubs, Item, Subscription};
use journalctl::{Journalctl, Line, Run};

use crate::requester::{Capabilities, FunctionName};
use crate::{Error, Event, LogStream, Request, Requester, SharedStr};

/// Reads function logs from the systemd journal with `journalctl`.
///
/// A function's lines are the entries whose [`JournalFields::function`] field
/// (`SYSLOG_IDENTIFIER` by default) is `<namespace>:<name>`, as faasd writes them. See
/// the [module](self) for what it guarantees beyond faasd's endpoint.
#[derive(Clone)]
pub struct JournaldRequester {
    journalctl: Journalctl,
    fields: JournalFields,
    default_namespace: String,
    hubs: Arc<Hubs>,
}

impl std::fmt::Debug for JournaldRequester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournaldRequester")
            .field("journalctl", &self.journalctl)
            .field("fields", &self.fields)
            .field("default_namespace", &self.default_namespace)
            .finish_non_exhaustive()
    }
}

impl Default for JournaldRequester {
    fn default() -> Self {
        Self::new()
    }
}

impl JournaldRequester {
    /// The system journal, through the `journalctl` on `PATH`, with the default
    /// [`JournalFields`] and the namespace `openfaas-fn`.
    #[must_use]
    pub fn new() -> Self {
        JournaldRequester {
            journalctl: Journalctl {
                program: PathBuf::from("journalctl"),
                common: Vec::new(),
            },
            fields: JournalFields::default(),
            default_namespace: "openfaas-fn".to_owned(),
            hubs: Arc::default(),
        }
    }

    /// Runs this program instead of the `journalctl` on `PATH`.
    #[must_use]
    pub fn with_journalctl(mut self, program: impl Into<PathBuf>) -> Self {
        self.journalctl.program = program.into();
        self
    }

    /// Arguments given to every `journalctl` run, before the requester's own: which
    /// journal to read (`--directory=DIR`, `--namespace=NS`, `--merge`, `--file=GLOB`).
    #[must_use]
    pub fn with_args<I, A>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<OsString>,
    {
        self.journalctl.common = args.into_iter().map(Into::into).collect();
        self
    }

    /// Which fields name a line's function and instance.
    #[must_use]
    pub fn with_fields(mut self, fields: JournalFields) -> Self {
        self.fields = fields;
        self
    }

    /// The namespace of requests that name none.
    #[must_use]
    pub fn with_default_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.default_namespace = namespace.into();
        self
    }

    /// The arguments that select a function's entries, and its instance's when asked:
    /// one group of matches per instance field, joined by `+` (or). The groups may match
    /// more than the instance's own entries (another field of the entry may name it);
    /// the read keeps only those whose instance is exactly the one asked for.
    fn matches(&self, identifier: &str, instance: Option<&str>) -> Vec<OsString> {
        let function = format!("{}={identifier}", self.fields.function);
        let Some(instance) = instance else {
            return vec![function.into()];
        };
        let mut args = Vec::new();
        for (i, field) in self.fields.instance.iter().enumerate() {
            if i > 0 {
                args.push("+".into());
            }
            args.push(function.clone().into());
            args.push(format!("{field}={instance}").into());
        }
        args
    }
}

/// What the handler can leave to this requester.
const CAPABILITIES: Capabilities = Capabilities::NONE.with_marks_history_end();

#[async_trait::async_trait]
impl Requester for JournaldRequester {
    async fn query(&self, request: Request) -> Result<LogStream, Error> {
        let namespace = if request.namespace.is_empty() {
            self.default_namespace.clone()
        } else {
            request.namespace.clone()
        };
        let identifier = format!("{namespace}:{}", request.name);
        let instance = Some(request.instance.clone()).filter(|i| !i.is_empty());
        let mut common = vec![
            OsString::from("--no-pager"),
            "--output=json".into(),
            // Without it, a field over 4 KiB is printed as null.
            "--all".into(),
            format!("--output-fields={}", self.fields.output_fields()).into(),
        ];
        let mut function_only = common.clone();
        function_only.extend(self.matches(&identifier, None));
        common.extend(self.matches(&identifier, instance.as_deref()));
        let (tx, mut rx) = mpsc::channel(1024);
        let read = Read {
            journalctl: self.journalctl.clone(),
            fields: self.fields.clone(),
            name: request.name.as_str().into(),
            namespace: namespace.as_str().into(),
            common,
            exact_instance: instance.filter(|_| self.fields.instance.len() > 1),
            since: request.since,
            tail: request.tail,
            follow: request.follow,
            last_time: None,
            others: 0,
            hubs: Arc::clone(&self.hubs),
            identifier,
            function_only,
            tx,
        };
        tokio::spawn(read.run());
        Ok(Box::pin(futures_util::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
        })))
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    /// The values of the function field that are `<namespace>:<name>` with valid names
    /// (`journalctl -F`).
    async fn functions(&self) -> Result<Option<Vec<FunctionName>>, Error> {
        let field = OsString::from(format!("--field={}", self.fields.function));
        let mut run = self.journalctl.start(&[field], "the list of functions")?;
        let mut names = Vec::new();
        loop {
            match run.next_line().await {
                Ok(Line::Entry(value)) => {
                    if let Some(name) = function_name(value) {
                        names.push(name);
                    }
                }
                Ok(Line::End) => break,
                Ok(Line::Cursor(_) | Line::TooLong) => {}
                Err(e) => {
                    run.kill().await;
                    return Err(e);
                }
            }
        }
        run.finish().await?;
        names.sort();
        names.dedup();
        Ok(Some(names))
    }

    fn default_namespace(&self) -> Option<String> {
        Some(self.default_namespace.clone())
    }
}

/// `<namespace>:<name>` with both valid names, as the function list shows it.
fn function_name(value: &[u8]) -> Option<FunctionName> {
    let value = std::str::from_utf8(value).ok()?;
    let (namespace, name) = value.split_once(':')?;
    let valid = |s: &str| crate::request::valid_name("name", s.into(), "").is_ok();
    (valid(namespace) && valid(name) && !name.is_empty() && !namespace.is_empty())
        .then(|| FunctionName::new(namespace, name))
}

/// One request's read of the journal, run as a task that sends what it reads.
struct Read {
    journalctl: Journalctl,
    fields: JournalFields,
    name: SharedStr,
    namespace: SharedStr,
    /// Output format and matches, shared by every run of this read.
    common: Vec<OsString>,
    /// The instance asked for, when the matches may give entries of others.
    exact_instance: Option<String>,
    since: Option<DateTime<Utc>>,
    tail: Option<usize>,
    follow: bool,
    /// The time of the last line sent, for the gap of a line that cannot be read.
    last_time: Option<DateTime<Utc>>,
    /// Entries of other instances the matches gave, left out.
    others: usize,
    /// Where followers share one `journalctl --follow` per function.
    hubs: Arc<Hubs>,
    identifier: String,
    /// The output format and the function's match, without the instance's.
    function_only: Vec<OsString>,
    tx: mpsc::Sender<Result<Event, Error>>,
}

/// Where a follow of its own starts.
enum Start {
    /// After this entry, one of the function's.
    After(String),
    /// At this entry, which is not one of the function's (or is older than `since`).
    From(String),
    /// At the journal's beginning (it was empty).
    Beginning,
}

/// How one run's output ended.
enum Ended {
    /// All of it was read; the last entry's cursor, and how many entries it printed.
    Output {
        cursor: Option<String>,
        entries: usize,
    },
    /// The response is gone: stop.
    Closed,
}

impl Read {
    async fn run(mut self) {
        let tx = self.tx.clone();
        let outcome = std::panic::AssertUnwindSafe(self.read())
            .catch_unwind()
            .await;
        let error = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e,
            Err(_) => Error::other("the journal reader failed unexpectedly"),
        };
        let _ = tx.send(Err(error)).await;
    }

    async fn read(&mut self) -> Result<(), Error> {
        // A follower joins the function's hub before history is read, so that what the
        // hub hands out from then on and what history holds overlap: nothing falls
        // between the two, and the overlap is skipped by cursor.
        let subscription = if self.follow {
            let join = self.hubs.join(
                &self.journalctl,
                &self.fields,
                &self.identifier,
                &self.function_only,
            );
            Some(join.await?)
        } else {
            None
        };
        let Some(history_cursor) = self.history().await? else {
            return Ok(());
        };
        if self.tx.send(Ok(Event::HistoryEnd)).await.is_err() {
            return Ok(());
        }
        match subscription {
            Some(subscription) => self.follow_shared(subscription, history_cursor).await,
            None => Ok(()),
        }
    }

    /// Live lines from the hub: those after history's last line.
    async fn follow_shared(
        &mut self,
        mut subscription: Subscription,
        history_cursor: Option<String>,
    ) -> Result<(), Error> {
        // The hub hands out what comes after its position when this follower joined.
        // History ended at `history_cursor`: when that is past the position, the hub
        // hands out the lines between again, and they are skipped.
        let mut skip_until = match (&history_cursor, &subscription.position) {
            (None, _) => None,
            (Some(last), Some(position)) => match cursor_order(last, position) {
                Some(Ordering::Less | Ordering::Equal) => None,
                Some(Ordering::Greater) => Some(last.clone()),
                // Another journal's cursor: follow alone, exactly after history.
                None => return self.follow_alone(Start::After(last.clone())).await,
            },
            (Some(last), None) => Some(last.clone()),
        };
        let mut last = history_cursor;
        loop {
            let item = tokio::select! {
                biased;
                () = self.tx.closed() => return Ok(()),
                item = subscription.items.recv() => item,
            };
            let event = match item {
                Ok(Item::Entry(entry)) => {
                    if let Some(until) = &skip_until {
                        match cursor_order(&entry.cursor, until) {
                            Some(Ordering::Less) => continue,
                            Some(Ordering::Equal) => {
                                skip_until = None;
                                continue;
                            }
                            _ => skip_until = None,
                        }
                    }
                    last = Some(entry.cursor.clone());
                    match self.event(JournalEntry::clone(&entry)) {
                        Some(event) => event,
                        None => continue,
                    }
                }
                Ok(Item::Unreadable) => self.gap(),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // Too far behind the others: on its own from its last line.
                    let start = match last {
                        Some(cursor) => Start::After(cursor),
                        None => subscription
                            .position
                            .clone()
                            .map_or(Start::Beginning, Start::From),
                    };
                    drop(subscription);
                    return self.follow_alone(start).await;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    return Err(subscription.hub.failure());
                }
            };
            if self.tx.send(Ok(event)).await.is_err() {
                return Ok(());
            }
        }
    }

    /// Live lines from a `journalctl --follow` of this follower's own.
    async fn follow_alone(&mut self, start: Start) -> Result<(), Error> {
        let mut args = self.common.clone();
        args.extend(["--follow".into(), "--no-tail".into()]);
        match start {
            // The last line read (one of this function's): live lines are after it.
            Start::After(cursor) => args.push(format!("--after-cursor={cursor}").into()),
            // Possibly another function's entry: live lines start there.
            // `--after-cursor` would be wrong: journalctl skips one entry past the
            // cursor's, and when that entry does not match, it skips the function's
            // first line instead.
            Start::From(cursor) => args.push(format!("--cursor={cursor}").into()),
            Start::Beginning => args.extend(self.since_arg()),
        }
        let mut run = self.journalctl.start(&args, "follow")?;
        match self.pump(&mut run, None).await {
            Ok(Ended::Closed) => {
                run.kill().await;
                Ok(())
            }
            Ok(Ended::Output { .. }) => Err(run.ended().await),
            Err(e) => {
                run.kill().await;
                Err(e)
            }
        }
    }

    /// Sends the history; `None` when the response went away, else the last entry's
    /// cursor (`None` inside when history had none).
    async fn history(&mut self) -> Result<Option<Option<String>>, Error> {
        // journalctl's `--since` with `--lines` gives the oldest N after `since`: with a
        // tail, the newest N are asked for and `since` is applied here.
        let limited = self.tail.filter(|&n| n > 0);
        if let (Some(tail), Some(_)) = (limited, &self.exact_instance) {
            // The matches may give lines of other instances, which would leave fewer
            // than N: read the newest N, and everything if some were not its own.
            self.others = 0;
            let mut kept = Vec::new();
            let Some((cursor, entries)) = self.history_run(Some(tail), Some(&mut kept)).await?
            else {
                return Ok(None);
            };
            if entries < tail || self.others == 0 {
                for event in kept {
                    if self.tx.send(Ok(event)).await.is_err() {
                        return Ok(None);
                    }
                }
                return Ok(Some(cursor));
            }
            return Ok(self
                .history_run(None, None)
                .await?
                .map(|(cursor, _)| cursor));
        }
        Ok(self
            .history_run(limited, None)
            .await?
            .map(|(cursor, _)| cursor))
    }

    /// One history run of `journalctl`, the newest `lines` or everything since `since`,
    /// sent (or kept in `keep`); `None` when the response went away, else the last
    /// entry's cursor and how many entries it printed.
    async fn history_run(
        &mut self,
        lines: Option<usize>,
        keep: Option<&mut Vec<Event>>,
    ) -> Result<Option<(Option<String>, usize)>, Error> {
        let mut args = self.common.clone();
        args.push("--show-cursor".into());
        match lines {
            Some(n) => args.push(format!("--lines={n}").into()),
            None => args.extend(self.since_arg()),
        }
        let mut run = self.journalctl.start(&args, "history")?;
        match self.pump(&mut run, keep).await {
            Ok(Ended::Closed) => {
                run.kill().await;
                Ok(None)
            }
            Ok(Ended::Output { cursor, entries }) => {
                run.finish().await?;
                Ok(Some((cursor, entries)))
            }
            Err(e) => {
                run.kill().await;
                Err(e)
            }
        }
    }

    /// `--since` to the second before `since` (the handler drops what is older).
    fn since_arg(&self) -> Option<OsString> {
        let since = self.since?;
        Some(format!("--since=@{}", since.timestamp()).into())
    }

    /// Reads one run's output to its end, sending its lines (or keeping them in `keep`).
    async fn pump(
        &mut self,
        run: &mut Run,
        mut keep: Option<&mut Vec<Event>>,
    ) -> Result<Ended, Error> {
        let mut cursor = None;
        let mut entries = 0;
        loop {
            let line = tokio::select! {
                biased;
                () = self.tx.closed() => return Ok(Ended::Closed),
                line = run.next_line() => line?,
            };
            let event = match line {
                Line::End => return Ok(Ended::Output { cursor, entries }),
                Line::Cursor(c) => {
                    cursor = Some(c.to_owned());
                    continue;
                }
                Line::TooLong => {
                    entries += 1;
                    tracing::warn!(
                        function = %self.name,
                        "a journal entry over {} MiB was skipped",
                        journalctl::MAX_LINE >> 20
                    );
                    self.gap()
                }
                Line::Entry(json) => {
                    entries += 1;
                    match JournalEntry::from_json(json, &self.fields) {
                        Ok(entry) => match self.event(entry) {
                            Some(event) => event,
                            None => continue,
                        },
                        Err(e) => {
                            tracing::warn!(function = %self.name, "{e}");
                            self.gap()
                        }
                    }
                }
            };
            match &mut keep {
                Some(kept) => kept.push(event),
                None => {
                    if self.tx.send(Ok(event)).await.is_err() {
                        return Ok(Ended::Closed);
                    }
                }
            }
        }
    }

    /// The line of an entry (a gap when its time cannot be a timestamp), or `None` for
    /// another instance's, which is counted.
    fn event(&mut self, entry: JournalEntry) -> Option<Event> {
        if let Some(instance) = &self.exact_instance {
            if entry.instance.as_deref() != Some(instance.as_str()) {
                self.others += 1;
                return None;
            }
        }
        match entry.into_message(&self.name, &self.namespace) {
            Some(message) => {
                self.last_time = Some(message.timestamp);
                Some(Event::Message(message))
            }
            None => Some(self.gap()),
        }
    }

    /// One entry that could not be read: a gap, so the reader knows.
    fn gap(&self) -> Event {
        Event::Gap {
            lost: 1,
            timestamp: self.last_time.unwrap_or_else(Utc::now),
        }
    }
}
