//! [`ActivationPoller`]: new activations as they finish, by polling the list (OpenWhisk
//! has no stream), with retries that back off.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::api::{ListOptions, OpenWhiskClient, MAX_LIMIT};
use super::error::{OpenWhiskError, Retry};
use super::record::{Activation, ActivationSummary};
use crate::Error;

/// What `.../logs` answers for an activation whose logs the deployment does not keep.
const NOT_AVAILABLE: &str = "Logs are not available.";

/// How often and how far back a poller looks, and how long it keeps trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PollSettings {
    /// Between two polls (default 2 s, as `wsk activation poll`).
    pub interval: Duration,
    /// How far back each poll lists (default 5 min, OpenWhisk's largest standard time
    /// limit): an activation appears only once it has finished, so one that started this
    /// long before it finished is still found. Longer costs larger lists.
    pub overlap: Duration,
    /// How long calls may fail (429, 5xx, unreachable) before the poller gives up with
    /// an error (default 60 s). Failures back off from half a second to 30 s, and a
    /// `Retry-After` is honoured.
    pub give_up_after: Duration,
}

impl Default for PollSettings {
    fn default() -> Self {
        PollSettings {
            interval: Duration::from_secs(2),
            overlap: Duration::from_secs(300),
            give_up_after: Duration::from_secs(60),
        }
    }
}

impl PollSettings {
    /// With this [`PollSettings::with_interval`].
    #[must_use]
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// With this [`PollSettings::with_overlap`].
    #[must_use]
    pub fn with_overlap(mut self, overlap: Duration) -> Self {
        self.overlap = overlap;
        self
    }

    /// With this [`PollSettings::with_give_up_after`].
    #[must_use]
    pub fn with_give_up_after(mut self, give_up_after: Duration) -> Self {
        self.give_up_after = give_up_after;
        self
    }
}

/// Calls `call` until it succeeds, fails for good, or has failed for `give_up_after`.
/// An unreachable server is retried only when `unreachable_too`.
pub(crate) async fn retrying<T, F, Fut>(
    give_up_after: Duration,
    unreachable_too: bool,
    mut call: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, OpenWhiskError>>,
{
    let mut first_failure: Option<Instant> = None;
    let mut backoff = Duration::from_millis(500);
    loop {
        let failure = match call().await {
            Ok(value) => return Ok(value),
            Err(failure) => failure,
        };
        let wait = match failure.retry() {
            Retry::Never => return Err(failure.into()),
            Retry::Unreachable if !unreachable_too => return Err(failure.into()),
            Retry::Busy(Some(said)) => said.max(backoff),
            Retry::Busy(None) | Retry::Unreachable => backoff,
        };
        let since = *first_failure.get_or_insert_with(Instant::now);
        let left = give_up_after.saturating_sub(since.elapsed());
        if left.is_zero() {
            return Err(Error::unavailable(format!(
                "gave up after the OpenWhisk API failed for {give_up_after:?}: {failure}"
            ))
            .with_source(Error::from(failure)));
        }
        tracing::warn!(error = %failure, ?wait, "OpenWhisk call failed; trying again");
        tokio::time::sleep(wait.min(left)).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Every item of a listing: `page(skip)` asked for page after page (200 a page, as
/// OpenWhisk's lists give at most), until a page comes back short.
pub(crate) async fn every_page<T, F, Fut>(mut page: F) -> Result<Vec<T>, Error>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<Vec<T>, Error>>,
{
    let mut all = Vec::new();
    loop {
        let skip = u32::try_from(all.len()).unwrap_or(u32::MAX);
        let got = page(skip).await?;
        let last_page = got.len() < MAX_LIMIT as usize;
        all.extend(got);
        if last_page {
            return Ok(all);
        }
    }
}

/// Fills in an activation's logs from `.../logs` where its inline logs are empty (some
/// log stores keep them only there).
pub(crate) async fn with_logs(
    client: &OpenWhiskClient,
    mut activation: Activation,
    give_up_after: Duration,
) -> Result<Activation, Error> {
    let inline_empty = match activation.logs.as_deref() {
        None | Some([]) => true,
        Some([only]) => only == NOT_AVAILABLE,
        Some(_) => false,
    };
    if inline_empty {
        let id = activation.activation_id.clone();
        // Listed a moment ago: a connection that fails now is worth trying again.
        let fetched = retrying(give_up_after, true, || client.logs(&id)).await;
        match fetched {
            Ok(logs) => activation.logs = Some(logs),
            // Listed a moment ago: a 404 now means its logs are gone, not the activation.
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(activation)
}

/// New activations of one action (or of a whole namespace), oldest first, as they
/// finish: the engine of a follow, and of `faas-logs activations poll`.
///
/// Each poll lists the last [`PollSettings::with_overlap`] of summaries, keeps those whose id
/// it has not delivered, and reads their full records (and their logs from `.../logs`
/// where the inline ones are empty). An activation that finishes late is delivered
/// once, when it appears; the ids it remembers are only those inside the overlap, so
/// the memory stays bounded.
///
/// Order: within a poll, by start; an activation that appears late (it ran long, or
/// the list lagged) comes after those delivered before it.
///
/// ```no_run
/// # async fn run(client: faas_logs::openwhisk::OpenWhiskClient) -> Result<(), faas_logs::Error> {
/// use faas_logs::openwhisk::{ActivationPoller, PollSettings};
///
/// let mut poller = ActivationPoller::after_existing(client, Some("hello".into()), PollSettings::default()).await?;
/// loop {
///     for activation in poller.next().await? {
///         println!("{} {:?}", activation.activation_id, activation.logs);
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct ActivationPoller {
    client: OpenWhiskClient,
    name: Option<String>,
    settings: PollSettings,
    floor: i64,
    delivered: HashMap<String, i64>,
    /// Whether the next poll goes at once instead of after the interval.
    poll_now: bool,
    /// Whether everything since `floor` has been listed once; until then a poll lists
    /// from `floor` itself, not only the last overlap.
    caught_up: bool,
}

impl ActivationPoller {
    /// A poller that delivers only activations that appear from now on: those listed
    /// now count as seen (`wsk activation poll` without `--since-*`).
    pub async fn after_existing(
        client: OpenWhiskClient,
        name: Option<String>,
        settings: PollSettings,
    ) -> Result<Self, Error> {
        let mut poller = Self::since(client, name, settings, i64::MIN);
        poller.poll_now = false;
        poller.caught_up = true;
        let window = poller.window_start();
        // An API that cannot be reached at all fails at once, not after give_up_after.
        for row in poller.list_window(window, false).await? {
            poller.delivered.insert(row.activation_id, row.start);
        }
        Ok(poller)
    }

    /// A poller that delivers every activation that started at or after `since_ms`
    /// (epoch milliseconds), those that exist already first.
    #[must_use]
    pub fn since(
        client: OpenWhiskClient,
        name: Option<String>,
        settings: PollSettings,
        since_ms: i64,
    ) -> Self {
        ActivationPoller {
            client,
            name,
            settings,
            floor: since_ms,
            delivered: HashMap::new(),
            poll_now: true,
            caught_up: false,
        }
    }

    /// Counts these activations as delivered (a history sent before the poll began).
    pub fn mark_delivered<'a>(&mut self, activations: impl IntoIterator<Item = (&'a str, i64)>) {
        let window = self.window_start();
        for (id, start) in activations {
            if start >= window {
                self.delivered.insert(id.to_owned(), start);
            }
        }
    }

    /// Waits for the next poll (at once for the first of a [`since`](Self::since)
    /// poller), and returns the activations that appeared, with their logs, oldest
    /// first; often none. An error is final: the API failed for longer than
    /// [`PollSettings::with_give_up_after`], or refused the key.
    pub async fn next(&mut self) -> Result<Vec<Activation>, Error> {
        if !std::mem::take(&mut self.poll_now) {
            tokio::time::sleep(self.settings.interval).await;
        }
        // The first poll of a `since` poller lists everything since its floor, however
        // far back; later polls the overlap.
        let window = if self.caught_up {
            self.window_start()
        } else {
            self.floor
        };
        self.delivered.retain(|_, start| *start >= window);
        let fresh: HashMap<String, i64> = self
            .list_window(window, true)
            .await?
            .into_iter()
            .filter(|row| !self.delivered.contains_key(&row.activation_id))
            .map(|row| (row.activation_id, row.start))
            .collect();
        let mut found = self.records_of(&fresh).await?;
        self.caught_up = true;
        found.sort_by(|a, b| (a.start, &a.activation_id).cmp(&(b.start, &b.activation_id)));
        let mut out = Vec::with_capacity(found.len());
        for activation in found {
            self.delivered
                .insert(activation.activation_id.clone(), activation.start);
            out.push(with_logs(&self.client, activation, self.settings.give_up_after).await?);
        }
        Ok(out)
    }

    fn window_start(&self) -> i64 {
        let overlap = i64::try_from(self.settings.overlap.as_millis()).unwrap_or(i64::MAX);
        self.floor.max(
            chrono::Utc::now()
                .timestamp_millis()
                .saturating_sub(overlap),
        )
    }

    fn options(&self) -> ListOptions {
        let options = ListOptions::new().with_limit(MAX_LIMIT);
        match &self.name {
            Some(name) => options.with_name(name.clone()),
            None => options,
        }
    }

    /// Every summary that started at or after `since`, page by page.
    async fn list_window(
        &self,
        since: i64,
        unreachable_too: bool,
    ) -> Result<Vec<ActivationSummary>, Error> {
        every_page(|skip| {
            let options = self.options().with_since(since).with_skip(skip);
            async move {
                retrying(self.settings.give_up_after, unreachable_too, || {
                    self.client.list(&options)
                })
                .await
            }
        })
        .await
    }

    /// The full records of `fresh`: one list over the span of their starts, then any
    /// the list missed one by one.
    async fn records_of(&self, fresh: &HashMap<String, i64>) -> Result<Vec<Activation>, Error> {
        let (Some(&low), Some(&high)) = (fresh.values().min(), fresh.values().max()) else {
            return Ok(Vec::new());
        };
        let mut found = Vec::with_capacity(fresh.len());
        let mut missing: HashSet<&str> = fresh.keys().map(String::as_str).collect();
        let mut skip = 0;
        loop {
            let options = self
                .options()
                .with_since(low)
                .with_upto(high)
                .with_skip(skip);
            let page: Vec<Activation> = retrying(self.settings.give_up_after, true, || {
                self.client.list_full(&options)
            })
            .await?;
            skip += u32::try_from(page.len()).unwrap_or(u32::MAX);
            let full = page.len() >= MAX_LIMIT as usize;
            for activation in page {
                if missing.remove(activation.activation_id.as_str()) {
                    found.push(activation);
                }
            }
            if !full || missing.is_empty() {
                break;
            }
        }
        for id in missing {
            let one = retrying(self.settings.give_up_after, true, || self.client.get(id)).await;
            match one {
                Ok(activation) => found.push(activation),
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(found)
    }
}
