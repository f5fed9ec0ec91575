//! [`Requester`]: the one trait a provider implements to connect its log system.

use std::pin::Pin;
use std::sync::Arc;

use futures_core::Stream;

use crate::{Error, Message, Request};

/// One item of a backend's answer: a message, or the mark that history is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A log line.
    Message(Message),
    /// Every message written before the query has been sent; whatever follows is live.
    ///
    /// Sending it is how a backend tells the handler exactly where history ends, so that
    /// `tail` counts only history and a non-follow response ends at once. A backend that
    /// never sends it still works; see [`Requester`] for what the handler assumes then.
    HistoryEnd,
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
/// [`LogHandler`](crate::LogHandler). The handler guarantees the contract of
/// `GET /system/logs` whatever the stream contains:
///
/// - messages older than `since`, or from another `instance` when one is named, are dropped;
/// - of the history, only the newest `tail` messages are sent, in timestamp order;
/// - without `follow` the response ends when history does; with it, live messages follow
///   until the handler's timeout, the client leaving, or the stream ending.
///
/// So a backend may ignore every field of the [`Request`] except `name` (and `namespace`),
/// though honouring them saves work.
///
/// **Where history ends.** The stream should send [`Event::HistoryEnd`] once it has sent
/// every message written before the query; a backend whose streams always do should say
/// so with [`marks_history_end`](Requester::marks_history_end), and the handler then
/// relies on the mark alone. Otherwise the handler also guesses: history ends at the
/// first message stamped at or after the moment the request arrived,
/// or when the stream ends; in a follow request with a `tail`, also when the stream has
/// been quiet for [`LogHandler::history_quiet`](crate::LogHandler::history_quiet)
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

    /// Whether this backend selects [`Request::instance`] itself, by a rule wider than the
    /// handler's exact match on [`Message::instance`] (Docker accepts a container name or
    /// an ID prefix). When true, the handler leaves instance filtering to the backend.
    /// The default is false: the handler keeps only messages whose instance is the one
    /// asked for.
    fn selects_instance(&self) -> bool {
        false
    }

    /// Whether every stream of this backend sends [`Event::HistoryEnd`]. When true the
    /// handler trusts the mark alone; when false (the default) it also guesses where
    /// history ends, as the trait's documentation says. Say true only if it holds: a
    /// non-follow response of a stream that never sends the mark then lasts until the
    /// stream ends or the timeout.
    fn marks_history_end(&self) -> bool {
        false
    }
}

#[async_trait::async_trait]
impl<R: Requester + ?Sized> Requester for Box<R> {
    async fn query(&self, request: Request) -> Result<LogStream, Error> {
        (**self).query(request).await
    }

    fn selects_instance(&self) -> bool {
        (**self).selects_instance()
    }

    fn marks_history_end(&self) -> bool {
        (**self).marks_history_end()
    }
}

#[async_trait::async_trait]
impl<R: Requester + ?Sized> Requester for Arc<R> {
    async fn query(&self, request: Request) -> Result<LogStream, Error> {
        (**self).query(request).await
    }

    fn selects_instance(&self) -> bool {
        (**self).selects_instance()
    }

    fn marks_history_end(&self) -> bool {
        (**self).marks_history_end()
    }
}
