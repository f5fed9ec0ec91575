//! One query's stream: the history the request asks for, read as few pages as it
//! needs, then (with follow) the poller's new activations.

use std::collections::{HashSet, VecDeque};

use chrono::{DateTime, Utc};

use super::api::{ListOptions, OpenWhiskClient, MAX_LIMIT};
use super::line::{line_times, messages, Labels};
use super::poll::{every_page, retrying, with_logs, ActivationPoller, PollSettings};
use super::record::{Activation, ActivationSummary};
use crate::{Error, Event, SharedStr};

/// What is left to read.
pub(crate) enum Stage {
    /// One activation, by id.
    Instance(String),
    /// The newest activations until they hold this many lines.
    Tail(usize),
    /// Every activation: first the starts of all of them (summaries, no logs)...
    Survey,
    /// ...then their records, oldest window first. Each window is the span of starts of
    /// about 200 activations, so only one window's records are held at a time.
    Windows(Vec<(i64, i64)>),
    /// New activations, from the poller.
    Live,
    /// Nothing more.
    Done,
}

pub(crate) struct Reader {
    pub(crate) client: OpenWhiskClient,
    /// `action` or `package/action`, as the list's `name` takes it.
    pub(crate) entity: String,
    /// The name messages carry: the one the request used.
    pub(crate) name: SharedStr,
    /// Lines older than this are not counted towards a tail (the handler drops them).
    pub(crate) since: Option<DateTime<Utc>>,
    /// The `since` sent to the API: earlier by the margin, as the API filters on start.
    pub(crate) list_since: Option<i64>,
    /// The moment the query began: history is what started until then.
    pub(crate) upto: i64,
    pub(crate) settings: PollSettings,
    pub(crate) stage: Stage,
    pub(crate) poller: Option<ActivationPoller>,
    pub(crate) queue: VecDeque<Event>,
    pub(crate) delivered_any: bool,
}

impl Reader {
    /// Reads the next part into the queue; `false` once there is nothing more.
    pub(crate) async fn fill(&mut self) -> Result<bool, Error> {
        match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Instance(id) => {
                let activation = self.activation(&id).await?;
                self.push(activation);
                // One activation's logs are complete once it is listed: nothing follows.
                self.end_history(false).await?;
            }
            Stage::Tail(lines) => self.tail(lines).await?,
            Stage::Survey => self.survey().await?,
            Stage::Windows(windows) => self.window(windows).await?,
            Stage::Live => {
                if let Some(poller) = &mut self.poller {
                    let found = poller.next().await?;
                    for activation in found {
                        self.push(activation);
                    }
                    self.stage = Stage::Live;
                }
            }
            Stage::Done => return Ok(!self.queue.is_empty()),
        }
        Ok(true)
    }

    async fn activation(&self, id: &str) -> Result<Activation, Error> {
        let give_up = self.settings.give_up_after;
        let activation = retrying(give_up, false, || self.client.get(id)).await?;
        let entity = activation.entity();
        if entity != self.entity && activation.name != self.entity {
            return Err(Error::not_found(format!(
                "activation {id} is one of {entity:?}, not of {:?}",
                self.entity
            )));
        }
        with_logs(&self.client, activation, give_up).await
    }

    /// Pages newest first until the activations read hold `lines` lines at or after
    /// `since`, and no further; then sends them oldest first.
    async fn tail(&mut self, lines: usize) -> Result<(), Error> {
        let mut kept: Vec<Activation> = Vec::new();
        let mut ids = HashSet::new();
        let mut counted = 0;
        let mut skip = 0;
        'pages: while counted < lines {
            let page = self.page(skip, None).await?;
            skip += u32::try_from(page.len()).unwrap_or(u32::MAX);
            let last_page = page.len() < MAX_LIMIT as usize;
            for activation in page {
                // A late finisher can shift a page by one: never take one twice.
                if !ids.insert(activation.activation_id.clone()) {
                    continue;
                }
                let activation =
                    with_logs(&self.client, activation, self.settings.give_up_after).await?;
                counted += self.countable(&activation);
                kept.push(activation);
                if counted >= lines {
                    break 'pages;
                }
            }
            if last_page {
                break;
            }
        }
        for activation in kept.into_iter().rev() {
            self.push(activation);
        }
        self.end_history(true).await
    }

    /// Lines of `activation` that a tail counts: those that become messages, at or after
    /// `since`.
    fn countable(&self, activation: &Activation) -> usize {
        let logs = activation.logs.as_deref().unwrap_or_default();
        let times = line_times(activation, logs);
        match self.since {
            None => times.count(),
            Some(since) => times.filter(|&t| t >= since).count(),
        }
    }

    async fn survey(&mut self) -> Result<(), Error> {
        // Only the starts are kept: one i64 per activation, however large the history.
        let reader = &*self;
        let mut starts: Vec<i64> = every_page(|skip| {
            let options = reader.options(skip, None);
            async move {
                let page: Vec<ActivationSummary> =
                    retrying(reader.settings.give_up_after, false, || {
                        reader.client.list(&options)
                    })
                    .await?;
                Ok(page.into_iter().map(|row| row.start).collect())
            }
        })
        .await?;
        // Newest first from the API; windows run oldest first.
        starts.reverse();
        let mut windows = windows_of(&starts);
        windows.reverse();
        self.window(windows).await
    }

    async fn window(&mut self, mut windows: Vec<(i64, i64)>) -> Result<(), Error> {
        let Some((low, high)) = windows.pop() else {
            return self.end_history(true).await;
        };
        let mut records = every_page(|skip| self.page(skip, Some((low, high)))).await?;
        // A late finisher can shift a page by one: never send one twice.
        records.sort_by(|a, b| (a.start, &a.activation_id).cmp(&(b.start, &b.activation_id)));
        records.dedup_by(|a, b| a.activation_id == b.activation_id);
        for activation in records {
            let activation =
                with_logs(&self.client, activation, self.settings.give_up_after).await?;
            self.push(activation);
        }
        self.stage = Stage::Windows(windows);
        Ok(())
    }

    fn options(&self, skip: u32, span: Option<(i64, i64)>) -> ListOptions {
        let options = ListOptions::new()
            .with_name(self.entity.clone())
            .with_limit(MAX_LIMIT)
            .with_skip(skip);
        match (span, self.list_since) {
            (Some((low, high)), _) => options.with_since(low).with_upto(high),
            (None, Some(since)) => options.with_since(since).with_upto(self.upto),
            (None, None) => options.with_upto(self.upto),
        }
    }

    async fn page(&self, skip: u32, span: Option<(i64, i64)>) -> Result<Vec<Activation>, Error> {
        let options = self.options(skip, span);
        retrying(self.settings.give_up_after, false, || {
            self.client.list_full(&options)
        })
        .await
    }

    fn push(&mut self, activation: Activation) {
        let labels = Labels::of(&activation, &self.name);
        let logs = activation.logs.as_deref().unwrap_or_default();
        self.queue
            .extend(messages(&activation, logs, &labels).map(Event::Message));
        if let Some(poller) = &mut self.poller {
            poller.mark_delivered([(activation.activation_id.as_str(), activation.start)]);
        }
        self.delivered_any = true;
    }

    /// Marks the end of history, after making sure that an empty one belongs to an
    /// action that exists; then live, when following.
    async fn end_history(&mut self, check_name: bool) -> Result<(), Error> {
        if check_name && !self.delivered_any {
            let give_up = self.settings.give_up_after;
            let exists =
                retrying(give_up, false, || self.client.action_exists(&self.entity)).await?;
            if !exists {
                return Err(Error::not_found(format!(
                    "no action {:?} in OpenWhisk namespace {:?}",
                    self.entity,
                    self.client.namespace()
                )));
            }
        }
        self.queue.push_back(Event::HistoryEnd);
        if self.poller.is_some() {
            self.stage = Stage::Live;
        }
        Ok(())
    }
}

/// Cuts ascending `starts` into inclusive spans of about 200 activations each. A span
/// ends only where the start changes, so no start (and so no activation) lies in two
/// spans; a span of one busy millisecond may hold more than 200.
fn windows_of(starts: &[i64]) -> Vec<(i64, i64)> {
    let mut windows = Vec::new();
    let mut rest = starts;
    while let (Some(&low), Some(&high)) = (
        rest.first(),
        rest.get(MAX_LIMIT as usize - 1).or(rest.last()),
    ) {
        let end = rest.partition_point(|&start| start <= high);
        windows.push((low, high));
        rest = &rest[end..];
    }
    windows
}

#[cfg(test)]
mod tests {
    use super::windows_of;

    #[test]
    fn windows_never_share_a_start() {
        let mut starts: Vec<i64> = (0..150).collect();
        starts.extend([150; 500]);
        starts.extend(151..400);
        let windows = windows_of(&starts);
        assert_eq!(windows, [(0, 150), (151, 350), (351, 399)]);
        assert_eq!(windows_of(&[7; 3]), [(7, 7)]);
        assert!(windows_of(&[]).is_empty());
    }
}
