//! When written lines reach the disk: [`Fsync`], and the group commit of `batch`.

use std::fs::File;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use tokio::sync::oneshot;

use crate::store::lock;

/// When a [`DiskStore`](super::DiskStore) flushes written lines to the disk, and so what a
/// power loss can take (a crash of the process alone loses nothing written: the lines are
/// in the operating system's cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Fsync {
    /// Each write is flushed on its own before it is acknowledged: a power loss loses
    /// nothing acknowledged. The slowest.
    Always,
    /// Group commit (the default): one flush covers every write made while the previous
    /// flush ran, and a write is acknowledged once its flush is done. A power loss loses
    /// nothing acknowledged.
    #[default]
    Batch,
    /// Never flushed by the store: the system writes the lines out within its own delay
    /// (about 30 s on Linux). A power loss can lose what was acknowledged in that time.
    Never,
}

impl std::str::FromStr for Fsync {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "always" => Ok(Fsync::Always),
            "batch" => Ok(Fsync::Batch),
            "never" => Ok(Fsync::Never),
            _ => Err(format!("{s:?} is not one of always, batch, never")),
        }
    }
}

impl std::fmt::Display for Fsync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Fsync::Always => "always",
            Fsync::Batch => "batch",
            Fsync::Never => "never",
        })
    }
}

/// What a flush answers a waiting writer: done, or the error that says why not.
pub(super) type Flushed = Result<(), Arc<std::io::Error>>;

#[derive(Default)]
struct Pending {
    files: Vec<Arc<File>>,
    waiting: Vec<oneshot::Sender<Flushed>>,
    stopped: bool,
}

/// The group committer: writers hand it their file and wait; one thread flushes every
/// file handed in since its last round, then answers them all. Dropping it ends the
/// thread once the writers waiting have their answer.
pub(super) struct Committer {
    shared: Arc<Shared>,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

impl Committer {
    /// A committer and its thread.
    pub(super) fn start() -> std::io::Result<Committer> {
        let shared = Arc::new(Shared {
            pending: Mutex::default(),
            wake: Condvar::new(),
        });
        let thread = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("faas-logs-fsync".into())
            .spawn(move || run(&thread))?;
        Ok(Committer { shared })
    }

    /// Waits until `file`'s writes so far are on disk.
    pub(super) async fn flush(&self, file: Arc<File>) -> Flushed {
        let (done, flushed) = oneshot::channel();
        {
            let mut pending = lock(&self.shared.pending);
            if !pending.files.iter().any(|f| Arc::ptr_eq(f, &file)) {
                pending.files.push(file);
            }
            pending.waiting.push(done);
        }
        self.shared.wake.notify_one();
        flushed.await.unwrap_or_else(|_| {
            Err(Arc::new(std::io::Error::other(
                "the log store was closed before the lines were flushed",
            )))
        })
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        lock(&self.shared.pending).stopped = true;
        self.shared.wake.notify_one();
    }
}

fn run(shared: &Shared) {
    loop {
        let round = {
            let mut pending = lock(&shared.pending);
            while pending.waiting.is_empty() && !pending.stopped {
                pending = shared.wake.wait(pending).unwrap_or_else(|e| e.into_inner());
            }
            if pending.waiting.is_empty() {
                return; // stopped, and no writer is waiting
            }
            Pending {
                files: std::mem::take(&mut pending.files),
                waiting: std::mem::take(&mut pending.waiting),
                stopped: false,
            }
        };
        let started = Instant::now();
        let mut outcome = Ok(());
        for file in &round.files {
            if let Err(e) = file.sync_data() {
                tracing::error!(error = %e, "the log store could not flush its lines to disk");
                outcome = Err(Arc::new(e));
                break;
            }
        }
        tracing::trace!(writers = round.waiting.len(), files = round.files.len(), took = ?started.elapsed(), "flushed");
        for waiting in round.waiting {
            let _ = waiting.send(outcome.clone());
        }
    }
}
