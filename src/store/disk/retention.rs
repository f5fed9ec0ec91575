//! Retention: a thread that deletes whole oldest segments past the store's bounds (total
//! bytes, bytes per function, age). It takes a function's lock only to take a segment
//! off its list; files are deleted after, so writers wait for no file system work.

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, SystemTime};

use super::{Function, Inner};
use crate::store::lock;

/// How often the bounds are checked without a write asking for it (age needs a clock).
const EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Signal {
    poked: bool,
    stopped: bool,
}

/// The retention thread's handle; dropping it ends the thread.
pub(super) struct Handle {
    signal: Arc<(Mutex<Signal>, Condvar)>,
}

impl Handle {
    pub(super) fn start(store: Weak<Inner>) -> Handle {
        let signal = Arc::new((Mutex::new(Signal::default()), Condvar::new()));
        let thread = Arc::clone(&signal);
        let spawned = std::thread::Builder::new()
            .name("faas-logs-retention".into())
            .spawn(move || run(&store, &thread));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "the log store's retention could not start; nothing will be deleted");
        }
        Handle { signal }
    }

    /// Asks for a check now: a write went past a bound.
    pub(super) fn poke(&self) {
        lock(&self.signal.0).poked = true;
        self.signal.1.notify_one();
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        lock(&self.signal.0).stopped = true;
        self.signal.1.notify_one();
    }
}

fn run(store: &Weak<Inner>, signal: &(Mutex<Signal>, Condvar)) {
    loop {
        {
            let mut s = lock(&signal.0);
            if !s.poked && !s.stopped {
                s = signal
                    .1
                    .wait_timeout(s, EVERY)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            if s.stopped {
                return;
            }
            s.poked = false;
        }
        let Some(inner) = store.upgrade() else {
            return;
        };
        enforce(&inner);
    }
}

/// Deletes segments until every bound holds.
pub(super) fn enforce(inner: &Inner) {
    let functions = inner.functions.all();
    let config = &inner.config;
    if let Some(age) = config.max_age {
        let cutoff = SystemTime::now().checked_sub(age);
        for f in &functions {
            // The newest segment goes too once it is that old: the function is idle.
            while remove_oldest(inner, f, |s, _| cutoff.is_some_and(|c| s.modified < c)) {}
        }
    }
    if let Some(max) = config.max_function_bytes {
        for f in &functions {
            while remove_oldest(inner, f, |_, state| {
                state.bytes > max && state.segments.len() > 1
            }) {}
        }
    }
    while inner.total_bytes.load(std::sync::atomic::Ordering::Relaxed) > config.max_total_bytes {
        // The oldest sealed segment of any function.
        let oldest = functions
            .iter()
            .filter_map(|f| {
                let state = lock(&f.state);
                let front = state
                    .segments
                    .front()
                    .filter(|_| state.segments.len() > 1)?;
                Some((front.modified, front.first_seq, Arc::clone(f)))
            })
            .min_by_key(|(modified, _, _)| *modified);
        let Some((_, first, f)) = oldest else { break };
        remove_oldest(inner, &f, |s, _| s.first_seq == first);
    }
}

/// Takes a function's oldest segment off its list when `doomed` says so, then deletes its
/// files; whether it did.
fn remove_oldest(
    inner: &Inner,
    function: &Function,
    doomed: impl FnOnce(&super::Segment, &super::FunctionState) -> bool,
) -> bool {
    let segment = {
        let mut state = lock(&function.state);
        let Some(front) = state.segments.front() else {
            return false;
        };
        if !doomed(front, &state) {
            return false;
        }
        let segment = state.segments.pop_front().expect("looked at it");
        state.bytes -= segment.len;
        segment
    };
    inner
        .total_bytes
        .fetch_sub(segment.len, std::sync::atomic::Ordering::Relaxed);
    // Readers in it keep their open file; they learn of the gap when they move on.
    for path in [segment.path.clone(), segment.path.with_extension("idx")] {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "a retired log segment could not be deleted")
            }
        }
    }
    tracing::debug!(
        function = &*function.name,
        path = %segment.path.display(),
        lines = segment.end_seq - segment.first_seq,
        "a log segment was retired"
    );
    true
}
