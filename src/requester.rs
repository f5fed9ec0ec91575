//! [`Requester`]: the one trait a provider implements to connect its log system.

use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_core::Stream;

use crate::store::StoreReader;
use crate::{Error, Message, Request};

/// One item of a backend's answer: a message, the mark that history is over, or a gap.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A log line.
    Message(Message),
    /// Every message written before the query has been sent; whatever follows is live.
    ///
    /// Sending it is how a backend tells the handler exactly where history ends, so that
    /// `tail` counts only history and a non-follow response ends at once. A backend that
    /// never sends it still works; see [`Requester`] for what the handler assumes then.
    HistoryEnd,
    /// Lines were lost here: the reader fell behind its source (a slow client of a
    /// bounded store, say), which dropped them before they could be read.
    ///
    /// The handler shows it as a visible line of the function, so that neither a
    /// person nor a program takes the stream for complete:
    /// `[faas-logs] 1234 lines lost here: this reader fell behind the store`.
    Gap {
        /// How many lines were lost.
        lost: u64,
        /// Where the gap sits in timestamp order: when the first line after it was
        /// written (or now, when none is known).
        timestamp: DateTime<Utc>,
    },
}

impl From<Message> for Event {
    fn from(message: Message) -> Self {
        Event::Message(message)
    }
}

/// The stream a [`Requester`] answers with.
///
/// Dropping it is the cancellation: the handler drops it as soon as the client leaves,
/// the deadline passes or the response is complete, so whatever it holds (connections,
/// tasks, child processes) must be released in its `Drop`.
pub type LogStream = Pin<Box<dyn Stream<Item = Result<Event, Error>> + Send + 'static>>;

/// A provider's connection to its log system.
///
/// Implement [`query`](Requester::query) and hand the requester to
/// [`LogHandler`](crate::server::LogHandler). The handler guarantees the contract of
/// `GET /system/logs` whatever the stream contains:
///
/// - messages of another function are dropped: another `name`, or a `namespace` other
///   than the request's (the provider's default namespace for a request without one,
///   see [`Requester::default_namespace`]); a message with an empty namespace is taken
///   as the backend's answer for that namespace, which the handler fills in;
/// - messages older than `since`, or from another `instance` when one is named, are dropped;
/// - of the history, only the newest `tail` messages are sent, in timestamp order;
/// - without `follow` the response ends when history does; with it, live messages follow
///   until the handler's timeout, the client leaving, or the stream ending.
///
/// So a backend may ignore every field of the [`Request`], though honouring them saves
/// work (and a backend must answer 404 for a function it does not know).
///
/// **What it does itself.** [`capabilities`](Requester::capabilities) tells the handler
/// which of these a backend does already, so that it does not do them twice; see
/// [`Capabilities`].
///
/// **Where history ends.** The stream should send [`Event::HistoryEnd`] once it has sent
/// every message written before the query; a backend whose streams always do should say
/// so with [`Capabilities::marks_history_end`], and the handler then relies on the mark
/// alone. Otherwise the handler also guesses: history ends at the
/// first message stamped at or after the moment the request arrived,
/// or when the stream ends; in a follow request with a `tail`, also when the stream has
/// been quiet for [`LogHandler::with_history_quiet`](crate::server::LogHandler::with_history_quiet)
/// (100 ms by default). Without the mark, a backend's clock that runs ahead of the
/// handler's can end a non-follow history early, so send it when you can.
///
/// **Order.** Send history oldest first. When `tail` is set the handler sorts the history
/// it keeps by timestamp; without `tail` it cannot hold the whole history to sort it (that
/// would make memory grow with the history), so it passes messages on in stream order.
/// Live messages are passed on in arrival order.
///
/// ```
/// use faas_logs::{async_trait, Error, Event, LogStream, Message, Request, Requester};
///
/// struct Fixed(Vec<Message>);
///
/// #[async_trait]
/// impl Requester for Fixed {
///     async fn query(&self, request: Request) -> Result<LogStream, Error> {
///         let mine: Vec<_> = self.0.iter().filter(|m| m.name == request.name).cloned().collect();
///         if mine.is_empty() {
///             return Err(Error::not_found(format!("no function {:?}", request.name)));
///         }
///         // Everything we have is history; ending the stream ends a follow response too.
///         let events = mine.into_iter().map(|m| Ok(Event::Message(m)));
///         Ok(Box::pin(futures_util::stream::iter(events)))
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait Requester: Send + Sync + 'static {
    /// Starts a query and returns its stream of messages.
    ///
    /// An error here becomes the response's status (see [`Error`]); an error inside the
    /// stream aborts a response that has already started.
    async fn query(&self, request: Request) -> Result<LogStream, Error>;

    /// What this backend does itself, of what the handler would otherwise do; the
    /// default is nothing, which is always correct.
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }

    /// The functions this backend holds logs for, or `None` when it cannot list them
    /// (the default). A viewer shows the list, or asks for a name when there is none;
    /// [`LogHandler::functions`](crate::server::LogHandler::functions) serves it as JSON.
    async fn functions(&self) -> Result<Option<Vec<FunctionName>>, Error> {
        Ok(None)
    }

    /// The namespace this backend answers a request without one for, when it is not
    /// OpenFaaS's `openfaas-fn` (the default, `None`). The handler asks once, when it is
    /// made; [`LogHandler::with_default_namespace`](crate::server::LogHandler::with_default_namespace)
    /// sets it there instead.
    fn default_namespace(&self) -> Option<String> {
        None
    }

    /// For a requester whose logs are in a [`LogStore`](crate::store::LogStore): the
    /// store's reader for `request` ([`LogStore::read`](crate::store::LogStore::read)).
    /// The handler then serves the store's lines as the store encoded them, once for
    /// every follower, instead of copying and encoding each message per response; the
    /// bytes are the same either way. The default, `None`, means [`Requester::query`].
    ///
    /// A requester that wraps a store (one of several backends, say) forwards this for
    /// the requests the store answers.
    fn store_reader(&self, request: &Request) -> Option<Result<StoreReader, Error>> {
        let _ = request;
        None
    }
}

/// A function a backend holds logs for, from [`Requester::functions`].
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[non_exhaustive]
pub struct FunctionName {
    /// Its namespace, as a request names it; empty when the backend has none.
    pub namespace: String,
    /// Its name, as a request names it.
    pub name: String,
}

impl FunctionName {
    /// Function `name` of `namespace`.
    #[must_use]
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        FunctionName {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

/// What a [`Requester`] does itself, from [`Requester::capabilities`]; the handler skips
/// that work. Say only what holds for every stream of the backend.
///
/// Built from [`Capabilities::NONE`] with its `with_*` methods (it is `#[non_exhaustive]`,
/// so that the next fact does not break existing backends):
///
/// ```
/// use faas_logs::Capabilities;
///
/// let store_like = Capabilities::NONE.with_marks_history_end().with_applies_tail();
/// assert!(store_like.marks_history_end && store_like.applies_tail);
/// assert!(!store_like.selects_instance);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Capabilities {
    /// The backend selects [`Request::instance`] itself, by a rule wider than the
    /// handler's exact match on [`Message::instance`] (Docker accepts a container name
    /// or an ID prefix): the handler leaves instance filtering to it. When false, the
    /// handler keeps only messages whose instance is the one asked for.
    pub selects_instance: bool,
    /// Every stream sends [`Event::HistoryEnd`]: the handler trusts the mark alone and
    /// guesses nothing from timestamps or pauses. A non-follow response of a stream that
    /// never sends it would then last until the stream ends or the timeout.
    pub marks_history_end: bool,
    /// The history of every stream is exactly what `tail` asks for: at most `tail`
    /// messages, the newest of those that match `since` and `instance`, in timestamp
    /// order. The handler then passes history on as it comes instead of holding the
    /// newest `tail` in memory to sort them.
    pub applies_tail: bool,
    /// ASCII characters this backend accepts in `name` and `namespace` beyond the
    /// contract's `a-z A-Z 0-9 - _ .`; empty for most. OpenWhisk's names hold `/`
    /// (between package and action), `@` and spaces, so its requester accepts those and
    /// the handler lets them through instead of answering 422.
    pub name_chars: &'static str,
    /// The backend answers only the function asked for, by a rule wider than the
    /// handler's exact match on [`Message::name`] and [`Message::namespace`] (OpenWhisk
    /// takes `/namespace/package/action` and answers with the action's own name): the
    /// handler leaves name and namespace filtering to it. When false, the handler drops
    /// messages of another function (see [`Requester`]).
    pub selects_function: bool,
}

impl Capabilities {
    /// Nothing: the handler does all the work, whatever the backend.
    pub const NONE: Capabilities = Capabilities {
        selects_instance: false,
        marks_history_end: false,
        applies_tail: false,
        name_chars: "",
        selects_function: false,
    };

    /// With [`Capabilities::selects_instance`].
    #[must_use]
    pub const fn with_selects_instance(mut self) -> Self {
        self.selects_instance = true;
        self
    }

    /// With [`Capabilities::marks_history_end`].
    #[must_use]
    pub const fn with_marks_history_end(mut self) -> Self {
        self.marks_history_end = true;
        self
    }

    /// With [`Capabilities::applies_tail`].
    #[must_use]
    pub const fn with_applies_tail(mut self) -> Self {
        self.applies_tail = true;
        self
    }

    /// With [`Capabilities::selects_function`].
    #[must_use]
    pub const fn with_selects_function(mut self) -> Self {
        self.selects_function = true;
        self
    }

    /// With [`Capabilities::name_chars`]: `extra` (ASCII) is accepted in names and
    /// namespaces.
    #[must_use]
    pub const fn with_name_chars(mut self, extra: &'static str) -> Self {
        self.name_chars = extra;
        self
    }
}

#[async_trait::async_trait]
impl<R: Requester + ?Sized> Requester for Box<R> {
    async fn query(&self, request: Request) -> Result<LogStream, Error> {
        (**self).query(request).await
    }

    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }

    async fn functions(&self) -> Result<Option<Vec<FunctionName>>, Error> {
        (**self).functions().await
    }

    fn default_namespace(&self) -> Option<String> {
        (**self).default_namespace()
    }

    fn store_reader(&self, request: &Request) -> Option<Result<StoreReader, Error>> {
        (**self).store_reader(request)
    }
}

#[async_trait::async_trait]
impl<R: Requester + ?Sized> Requester for Arc<R> {
    async fn query(&self, request: Request) -> Result<LogStream, Error> {
        (**self).query(request).await
    }

    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }

    async fn functions(&self) -> Result<Option<Vec<FunctionName>>, Error> {
        (**self).functions().await
    }

    fn default_namespace(&self) -> Option<String> {
        (**self).default_namespace()
    }

    fn store_reader(&self, request: &Request) -> Option<Result<StoreReader, Error>> {
        (**self).store_reader(request)
    }
}
