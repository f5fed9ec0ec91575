//! One `journalctl --follow` per function, shared by every follower of it.
//!
//! Each `journalctl --follow` takes an inotify instance, and Linux allows 128 per user by
//! default: a follower per process would refuse the 129th. The hub reads the function's
//! new entries once and hands them to every follower; a follower that falls too far
//! behind leaves it and follows on its own from its last line.

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::entry::{JournalEntry, JournalFields};
use super::journalctl::{Journalctl, Line};
use crate::Error;

/// How many entries a follower may be behind the hub before it leaves it.
const BACKLOG: usize = 16 * 1024;

/// What the hub hands to its followers.
#[derive(Clone)]
pub(crate) enum Item {
    Entry(Arc<JournalEntry>),
    /// An entry that could not be read: a gap of one line.
    Unreadable,
}

/// The hubs of one requester, by function identifier.
#[derive(Default)]
pub(crate) struct Hubs {
    hubs: Mutex<HashMap<String, Weak<Hub>>>,
}

/// A running `journalctl --follow` of one function.
pub(crate) struct Hub {
    state: Arc<Mutex<State>>,
    /// Weak: the reading task holds the only sender, so that followers see the end
    /// when `journalctl` ends.
    items: broadcast::WeakSender<Item>,
    stop: CancellationToken,
}

#[derive(Default)]
struct State {
    /// The cursor of the last entry handed out, or the entry the hub started after.
    position: Option<String>,
    /// Why `journalctl` stopped, once it has.
    failure: Option<String>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A follower's place at a hub.
pub(crate) struct Subscription {
    pub(crate) items: broadcast::Receiver<Item>,
    /// The hub's position when the follower joined: what the hub hands out next is
    /// after it.
    pub(crate) position: Option<String>,
    pub(crate) hub: Arc<Hub>,
}

impl Hub {
    fn subscribe(self: &Arc<Self>) -> Option<Subscription> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.failure.is_some() {
            return None;
        }
        let items = self.items.upgrade()?.subscribe();
        Some(Subscription {
            items,
            position: state.position.clone(),
            hub: Arc::clone(self),
        })
    }

    /// Why the hub's `journalctl` ended.
    pub(crate) fn failure(&self) -> Error {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let failure = state.failure.as_deref();
        Error::unavailable(failure.unwrap_or("journalctl stopped following the journal"))
    }
}

impl Hubs {
    /// Joins the hub of `identifier`, starting one ([`Hub::start`]) when there is none.
    pub(crate) async fn join(
        &self,
        journalctl: &Journalctl,
        fields: &JournalFields,
        identifier: &str,
        args: &[OsString],
    ) -> Result<Subscription, Error> {
        if let Some(subscription) = self.running(identifier) {
            return Ok(subscription);
        }
        // Started without the map locked, so that first followers of other functions
        // do not wait for this one's `journalctl`.
        let hub = Hub::start(journalctl, fields, args).await?;
        let mut hubs = self.hubs.lock().unwrap_or_else(PoisonError::into_inner);
        let running = hubs.get(identifier).and_then(Weak::upgrade);
        if let Some(subscription) = running.and_then(|hub| hub.subscribe()) {
            // Another follower started one meanwhile; this one stops as it is dropped.
            return Ok(subscription);
        }
        hubs.retain(|_, hub| hub.strong_count() > 0);
        hubs.insert(identifier.to_owned(), Arc::downgrade(&hub));
        Ok(hub.subscribe().expect("a new hub is running"))
    }

    /// A place at the running hub of `identifier`, if there is one.
    fn running(&self, identifier: &str) -> Option<Subscription> {
        let hubs = self.hubs.lock().unwrap_or_else(PoisonError::into_inner);
        hubs.get(identifier)
            .and_then(Weak::upgrade)
            .and_then(|hub| hub.subscribe())
    }
}

impl Hub {
    /// `journalctl` with `args` (the output format and the function's match) and
    /// `--follow`, from the journal's newest entry, read by a task of its own.
    async fn start(
        journalctl: &Journalctl,
        fields: &JournalFields,
        args: &[OsString],
    ) -> Result<Arc<Hub>, Error> {
        let start = journalctl.newest_cursor(&["--lines=0".into()]).await?;
        let mut args = args.to_vec();
        args.extend(["--follow".into(), "--no-tail".into()]);
        if let Some(start) = &start {
            // `--cursor`, not `--after-cursor`, which skips one entry past a cursor of
            // another function's entry: the entry itself is left out below.
            args.push(format!("--cursor={start}").into());
        }
        let run = journalctl.start(&args, "follow")?;
        let (sender, _) = broadcast::channel(BACKLOG);
        let state = Arc::new(Mutex::new(State {
            position: start.clone(),
            failure: None,
        }));
        let hub = Arc::new(Hub {
            state: Arc::clone(&state),
            items: sender.downgrade(),
            stop: CancellationToken::new(),
        });
        let reader = Reader {
            run,
            fields: fields.clone(),
            state,
            sender,
            stop: hub.stop.clone(),
            skip: start,
        };
        tokio::spawn(reader.run());
        Ok(hub)
    }
}

/// The hub's task: reads `journalctl`'s output and hands each entry out.
struct Reader {
    run: super::journalctl::Run,
    fields: JournalFields,
    state: Arc<Mutex<State>>,
    sender: broadcast::Sender<Item>,
    stop: CancellationToken,
    /// The entry `--cursor` starts at, which is not new.
    skip: Option<String>,
}

impl Reader {
    async fn run(mut self) {
        let failure = loop {
            let line = tokio::select! {
                biased;
                () = self.stop.cancelled() => {
                    self.run.kill().await;
                    return;
                }
                line = self.run.next_line() => line,
            };
            let item = match line {
                Ok(Line::Entry(json)) => match JournalEntry::from_json(json, &self.fields) {
                    Ok(entry) => {
                        if self.skip.take().is_some_and(|skip| skip == entry.cursor) {
                            continue;
                        }
                        Item::Entry(Arc::new(entry))
                    }
                    Err(e) => {
                        tracing::warn!("{e}");
                        Item::Unreadable
                    }
                },
                Ok(Line::TooLong) => Item::Unreadable,
                Ok(Line::Cursor(_)) => continue,
                Ok(Line::End) => break self.run.ended().await,
                Err(e) => {
                    self.run.kill().await;
                    break e;
                }
            };
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if let Item::Entry(entry) = &item {
                state.position = Some(entry.cursor.clone());
            }
            // No follower is not an error: the hub ends when its last one leaves.
            let _ = self.sender.send(item);
        };
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.failure = Some(failure.to_string());
        // Dropping the sender tells every follower.
    }
}

/// The order of two cursors of the same journal (`s=` the same): by their sequence
/// numbers (`i=`). `None` when they cannot be compared.
pub(crate) fn cursor_order(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    let parse = |cursor: &str| {
        let mut seqnum_id = None;
        let mut seqnum = None;
        for part in cursor.split(';') {
            if let Some(id) = part.strip_prefix("s=") {
                seqnum_id = Some(id.to_owned());
            } else if let Some(i) = part.strip_prefix("i=") {
                seqnum = u64::from_str_radix(i, 16).ok();
            }
        }
        Some((seqnum_id?, seqnum?))
    };
    let (a_id, a) = parse(a)?;
    let (b_id, b) = parse(b)?;
    (a_id == b_id).then(|| a.cmp(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn cursors_compare_by_sequence_number_within_one_journal() {
        let c = |s: &str, i: &str| format!("s={s};i={i};b=x;m=1;t=2;x=3");
        assert_eq!(
            cursor_order(&c("a", "ff"), &c("a", "100")),
            Some(Ordering::Less)
        );
        assert_eq!(
            cursor_order(&c("a", "10"), &c("a", "10")),
            Some(Ordering::Equal)
        );
        assert_eq!(cursor_order(&c("a", "10"), &c("b", "1")), None);
        assert_eq!(cursor_order("garbage", &c("a", "1")), None);
    }
}
