//! One query against the daemon: its containers, where each has been read up to, and a
//! container's log opened and read as lines.

use std::sync::Arc;

use bytes::BytesMut;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio_util::codec::Decoder;

use super::api::{Container, Inspect, Namespaces};
use super::engine::{ApiError, ByteStream, DockerApi, LogOptions};
use super::frames::{FrameError, Line, Multiplexed, Raw};
use crate::{Error, Message, Request, SharedStr};

/// Where a container's lines have been read up to: the newest timestamp sent and how many
/// lines carried exactly that timestamp (Docker's `since` includes it).
#[derive(Debug, Clone, Copy)]
pub(super) struct Cursor {
    last: DateTime<Utc>,
    at_last: usize,
}

/// A container of the query, with what its reading needs: one per container, so nothing
/// is kept in step by index.
#[derive(Debug)]
pub(super) struct Tracked {
    pub(super) container: Container,
    /// `None` until a line of it has been sent.
    pub(super) cursor: Option<Cursor>,
    /// Whether its follow stream is open.
    pub(super) attached: bool,
    /// Reopens in a row of its follow stream, reset by a line.
    pub(super) reopens: u32,
}

impl Tracked {
    pub(super) fn new(container: Container) -> Self {
        Tracked {
            container,
            cursor: None,
            attached: false,
            reopens: 0,
        }
    }

    /// Records that a line stamped `ts` was sent.
    pub(super) fn sent(&mut self, ts: DateTime<Utc>) {
        match &mut self.cursor {
            Some(c) if c.last == ts => c.at_last += 1,
            Some(c) if c.last > ts => {}
            cursor => {
                *cursor = Some(Cursor {
                    last: ts,
                    at_last: 1,
                })
            }
        }
    }
}

/// Why a container's log stopped before its end.
pub(super) enum Broken {
    /// The connection broke off: only the daemon can say whether the container still runs.
    Cut(Error),
    /// The stream itself was bad (a daemon error frame, a malformed frame).
    Bad(Error),
}

impl From<Broken> for Error {
    fn from(broken: Broken) -> Self {
        match broken {
            Broken::Cut(e) | Broken::Bad(e) => e,
        }
    }
}

/// Which part of a container's log to open.
#[derive(Debug, Clone, Copy)]
pub(super) enum Part {
    /// History, with the request's `since` and `tail`.
    History,
    /// Live lines, from the cursor (or the request's `since`).
    Follow(Option<Cursor>),
}

/// What a query needs once the stream runs: shared by its task.
pub(super) struct Query {
    pub(super) api: Arc<dyn DockerApi>,
    /// With its namespace resolved: never empty.
    pub(super) request: Request,
    /// The function's name, shared by every message.
    pub(super) name: SharedStr,
    pub(super) namespaces: Namespaces,
    /// The daemon's label filter for the function's containers.
    pub(super) labels: Vec<String>,
    /// When the start events were first subscribed to: a new subscription replays from
    /// there, so that no start falls into a gap.
    pub(super) subscribed_at: DateTime<Utc>,
}

impl Query {
    pub(super) async fn inspect(&self, id: &str) -> Result<Container, ApiError> {
        let info: Inspect = self.api.inspect(id).await?;
        Ok(Container {
            id: id.to_owned(),
            name: info.name.trim_start_matches('/').into(),
            namespace: self.namespaces.of(info.config.labels.as_ref()),
            running: info.state.running,
            tty: info.config.tty,
        })
    }

    /// Opens a part of a container's log.
    pub(super) async fn open(&self, container: &Container, part: Part) -> Result<Lines, ApiError> {
        let (follow, cursor) = match part {
            Part::History => (false, None),
            Part::Follow(cursor) => (true, cursor),
        };
        let tail = match (follow, self.request.tail) {
            (true, Some(0)) if cursor.is_none() => Some(0),
            (false, tail) => tail,
            (true, _) => None,
        };
        let options = LogOptions {
            follow,
            since: cursor.map(|c| c.last).or(self.request.since),
            tail,
        };
        let bytes = self.api.logs(&container.id, options).await?;
        let decoder: Box<dyn Decoder<Item = Line, Error = FrameError> + Send> = if container.tty {
            Box::new(Raw::new())
        } else {
            Box::new(Multiplexed::new())
        };
        Ok(Lines {
            bytes,
            decoder,
            buf: BytesMut::new(),
            skip: cursor.map_or(0, |c| c.at_last),
            skip_at: cursor.map(|c| c.last),
            ended: false,
            done: false,
        })
    }

    /// Whether a container is one the request asks for: in its namespace, and the instance
    /// named (by container name or ID prefix), if any.
    pub(super) fn wants(&self, namespace: &str, id: &str, name: &str) -> bool {
        let instance = &self.request.instance;
        namespace == self.request.namespace
            && (instance.is_empty() || name == instance || id.starts_with(instance.as_str()))
    }

    pub(super) fn message(&self, container: &Container, line: Line) -> Message {
        Message::new(self.name.clone(), line.timestamp, line.text)
            .with_namespace(container.namespace.clone())
            .with_instance(container.name.clone())
            .with_stream(line.stream)
    }
}

/// One container's log as lines.
pub(super) struct Lines {
    bytes: ByteStream,
    decoder: Box<dyn Decoder<Item = Line, Error = FrameError> + Send>,
    buf: BytesMut,
    /// Lines at `skip_at` still to drop: already sent before a re-attach.
    skip: usize,
    skip_at: Option<DateTime<Utc>>,
    /// The body has ended: what is left in `buf` is the last of it.
    ended: bool,
    /// Nothing more will come: the end, or an error was returned.
    done: bool,
}

impl Lines {
    pub(super) async fn next(&mut self) -> Option<Result<Line, Broken>> {
        while !self.done {
            let decoded = if self.ended {
                self.decoder.decode_eof(&mut self.buf)
            } else {
                self.decoder.decode(&mut self.buf)
            };
            match decoded {
                Ok(Some(line)) => {
                    if self.skip > 0 && Some(line.timestamp) == self.skip_at {
                        self.skip -= 1;
                        continue;
                    }
                    self.skip = 0;
                    return Some(Ok(line));
                }
                Ok(None) if self.ended => self.done = true,
                Ok(None) => match self.bytes.next().await {
                    Some(Ok(bytes)) => self.buf.extend_from_slice(&bytes),
                    Some(Err(e)) => {
                        self.done = true;
                        return Some(Err(Broken::Cut(e)));
                    }
                    None => self.ended = true,
                },
                Err(e) => {
                    self.done = true;
                    return Some(Err(Broken::Bad(Error::other(e.to_string()))));
                }
            }
        }
        None
    }
}
