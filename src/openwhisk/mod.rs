//! Logs from Apache OpenWhisk and the platforms built on it (Apache OpenServerless and
//! `ops`, DigitalOcean Functions and `doctl`, IBM Cloud Functions, Adobe I/O Runtime).
//!
//! OpenWhisk keeps no log stream: each invocation leaves an activation record whose
//! `logs` array holds its lines. [`OpenWhiskRequester`] answers `GET /system/logs` from
//! those records over the activations API, so a provider, gateway or dashboard built on
//! this crate serves an OpenWhisk deployment's logs with tail, since, follow and
//! instance:
//!
//! | request | what it reads |
//! |---|---|
//! | `name=hello`, `name=sample/hello` | the activations of that action (`package/action` for a packaged one, as `wsk` names it; `@` and spaces are accepted too, percent-encoded in the query) |
//! | `name=/guest/sample/hello` | the same, fully qualified: the first segment is the namespace |
//! | `namespace=guest` | that OpenWhisk namespace; empty is the API key's own (`_`) |
//! | `tail=N` | the newest activations, page by page (200 a page), until they hold `N` lines, and no further |
//! | `since=...` | activations that started up to [`OpenWhiskRequester::with_since_margin`] before it (a line can come after its activation's start); the handler drops older lines |
//! | `instance=ID` | that activation alone, fetched directly |
//! | `follow=true` | after history, new activations as they finish, by polling ([`PollSettings`]) |
//!
//! Each log line becomes one [`Message`](crate::Message): `name` the name asked for,
//! `namespace` the record's namespace, `instance` the activation id, `timestamp` the
//! line's own time (the activation's start for a line without one) and `stream` stdout
//! or stderr. The invoker's notices (logs truncated, logs missing, the action did not
//! run as expected) stay visible as the stderr lines they are; the end-of-activation
//! sentinel never shows.
//!
//! **Order.** An activation appears only once it has finished, so live lines come one
//! activation at a time: each poll sends the new activations ordered by start, each
//! with its lines in order, and an activation that finishes late comes after those sent
//! before it. History is ordered by activation start.
//!
//! **Where logs come from.** A listed record's inline logs, or, where they are empty,
//! `.../activations/{id}/logs`, which answers even with the log stores that keep no
//! logs in records (one more call for each activation that logged nothing).
//!
//! **Errors.** A refused API key (401, 403) says so and never shows the key; a name or
//! activation the API does not know is `404`; an unreachable host is `503`. Throttling
//! (429) and server errors (5xx) are retried with a backoff until
//! [`PollSettings::with_give_up_after`]; a follow that gives up ends as a broken stream.
//!
//! ```no_run
//! use std::time::Duration;
//! use faas_logs::openwhisk::{OpenWhiskClient, OpenWhiskRequester};
//! use faas_logs::server::LogHandler;
//!
//! # fn main() -> Result<(), faas_logs::Error> {
//! let client = OpenWhiskClient::builder("https://openwhisk.example.com", "uuid:key").build()?;
//! let handler = LogHandler::new(OpenWhiskRequester::new(client), Duration::from_secs(60));
//! # let _ = handler; Ok(()) }
//! ```

mod api;
mod error;
mod line;
mod poll;
mod props;
mod reader;
mod record;

use std::collections::VecDeque;
use std::time::Duration;

use chrono::Utc;

pub use api::{ListOptions, OpenWhiskClient, OpenWhiskClientBuilder, MAX_LIMIT};
pub use error::OpenWhiskError;
pub use line::{is_sentinel, parse_line, ActivationLine, SENTINEL};
pub use poll::{ActivationPoller, PollSettings};
pub use props::WskProps;
pub use record::{
    Activation, ActivationResponse, ActivationStatus, ActivationSummary, Annotation, Annotations,
    Limits,
};

use crate::{Capabilities, Error, FunctionName, LogStream, Request, Requester, SharedStr};
use reader::{Reader, Stage};

/// The characters of OpenWhisk names beyond the contract's own: `/` between package
/// and action, `@` and space.
const OPENWHISK_NAME_CHARS: &str = "/@ ";

/// A [`Requester`] over an OpenWhisk deployment's activations (see the
/// [module](self) for what each request reads).
#[derive(Debug, Clone)]
pub struct OpenWhiskRequester {
    client: OpenWhiskClient,
    settings: PollSettings,
    since_margin: Duration,
}

impl OpenWhiskRequester {
    /// A requester over `client`'s API host and key, with the default
    /// [`PollSettings`] and a 5 minute [`since_margin`](Self::with_since_margin).
    #[must_use]
    pub fn new(client: OpenWhiskClient) -> Self {
        OpenWhiskRequester {
            client,
            settings: PollSettings::default(),
            since_margin: Duration::from_secs(300),
        }
    }

    /// How a follow polls, and how long calls may fail before a query gives up.
    #[must_use]
    pub fn with_poll_settings(mut self, settings: PollSettings) -> Self {
        self.settings = settings;
        self
    }

    /// How long before a request's `since` the activations read may start (default
    /// 5 min): one that started earlier but logged after `since` is found when it ran
    /// no longer than this.
    #[must_use]
    pub fn with_since_margin(mut self, margin: Duration) -> Self {
        self.since_margin = margin;
        self
    }

    /// The client and the entity a request names: `/ns/pkg/action` carries its
    /// namespace; otherwise the request's namespace, or the client's.
    fn target(&self, request: &Request) -> Result<(OpenWhiskClient, String), Error> {
        let (namespace, entity) = match request.name.strip_prefix('/') {
            Some(qualified) => match qualified.split_once('/') {
                Some((namespace, entity)) => (namespace, entity),
                None => {
                    return Err(Error::invalid(
                        "name",
                        "a fully qualified OpenWhisk name is /NAMESPACE/[PACKAGE/]ACTION",
                    ))
                }
            },
            None => (request.namespace.as_str(), request.name.as_str()),
        };
        let segments = entity.split('/').count();
        if segments > 2 || entity.split('/').any(str::is_empty) {
            return Err(Error::invalid(
                "name",
                format!("{entity:?} is not an OpenWhisk action: use ACTION or PACKAGE/ACTION"),
            ));
        }
        let client = if namespace.is_empty() {
            self.client.clone()
        } else {
            self.client.with_namespace(namespace)
        };
        Ok((client, entity.to_owned()))
    }
}

#[async_trait::async_trait]
impl Requester for OpenWhiskRequester {
    async fn query(&self, request: Request) -> Result<LogStream, Error> {
        let (client, entity) = self.target(&request)?;
        let instance = request.instance.as_str();
        if !instance.is_empty() && !is_activation_id(instance) {
            return Err(Error::invalid(
                "instance",
                "an OpenWhisk activation id is 32 hexadecimal characters",
            ));
        }
        let poller = if request.follow && instance.is_empty() {
            let poller = ActivationPoller::after_existing(
                client.clone(),
                Some(entity.clone()),
                self.settings,
            )
            .await?;
            Some(poller)
        } else {
            None
        };
        let margin = i64::try_from(self.since_margin.as_millis()).unwrap_or(i64::MAX);
        let stage = match (instance, request.tail) {
            ("", Some(lines)) => Stage::Tail(lines),
            ("", None) => Stage::Survey,
            (id, _) => Stage::Instance(id.to_owned()),
        };
        let mut reader = Reader {
            client,
            entity,
            name: SharedStr::from(request.name.as_str()),
            since: request.since,
            list_since: request
                .since
                .map(|since| since.timestamp_millis().saturating_sub(margin)),
            upto: Utc::now().timestamp_millis(),
            settings: self.settings,
            stage,
            poller,
            queue: VecDeque::new(),
            delivered_any: false,
        };
        // The first part is read here, so that a refused key or an unknown name gets
        // its status instead of a broken 200.
        reader.fill().await?;
        let stream = futures_util::stream::unfold(Some(reader), |state| async move {
            let mut reader = state?;
            loop {
                if let Some(event) = reader.queue.pop_front() {
                    return Some((Ok(event), Some(reader)));
                }
                match reader.fill().await {
                    Ok(true) => {}
                    Ok(false) => return None,
                    Err(e) => return Some((Err(e), None)),
                }
            }
        });
        Ok(Box::pin(stream))
    }

    fn capabilities(&self) -> Capabilities {
        // `/guest/pkg/action` is answered with the action's records, named `pkg/action`
        // in namespace `guest`: the names differ from the request's by design.
        Capabilities::NONE
            .with_marks_history_end()
            .with_name_chars(OPENWHISK_NAME_CHARS)
            .with_selects_function()
    }

    /// The actions of the client's namespace (`package/action` for packaged ones), or
    /// `None` when the API has no list of actions (a 404: some deployments answer the
    /// activations API only), so that a viewer asks for a name.
    async fn functions(&self) -> Result<Option<Vec<FunctionName>>, Error> {
        let entities = poll::every_page(|skip| {
            poll::retrying(self.settings.give_up_after, false, move || {
                self.client.actions(skip)
            })
        })
        .await;
        let entities = match entities {
            Ok(entities) => entities,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut names: Vec<FunctionName> = entities
            .into_iter()
            .map(|entity| FunctionName::new("", entity))
            .collect();
        names.sort();
        Ok(Some(names))
    }
}

/// 32 hexadecimal characters, as OpenWhisk writes an activation id.
#[must_use]
pub fn is_activation_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit())
}
