//! A follow that survives the provider's timeouts and broken connections.

use chrono::{DateTime, Utc};
use futures_util::StreamExt;

use super::{ClientError, LineStream, LogClient, LogLine, Resume};
use crate::Request;

/// Where a follow has got to: the newest timestamp delivered, and how many lines with
/// exactly that timestamp (the provider's `since` includes it).
#[derive(Debug, Clone, Copy)]
struct Cursor {
    last: DateTime<Utc>,
    at_last: usize,
}

/// The state of [`LogClient::follow_lines`].
pub(super) struct Following {
    client: LogClient,
    request: Request,
    resume: Resume,
    cursor: Option<Cursor>,
    failures: u32,
    /// The open stream, and how many lines at the cursor it must still skip.
    current: Option<(LineStream, usize)>,
    done: bool,
}

impl Following {
    pub(super) fn new(client: LogClient, request: Request, resume: Resume) -> Self {
        Following {
            client,
            request: Request {
                follow: true,
                ..request
            },
            resume,
            cursor: None,
            failures: 0,
            current: None,
            done: false,
        }
    }

    pub(super) async fn next(&mut self) -> Option<Result<LogLine, ClientError>> {
        loop {
            if self.done {
                return None;
            }
            if self.current.is_none() {
                let mut request = self.request.clone();
                if let Some(cursor) = self.cursor {
                    // Everything since the newest line delivered; tail no longer applies.
                    request.since = Some(cursor.last);
                    request.tail = None;
                }
                match self.client.lines(&request).await {
                    Ok(stream) => {
                        let skip = self.cursor.map_or(0, |c| c.at_last);
                        self.current = Some((stream, skip));
                    }
                    Err(e) => {
                        if let Some(gave_up) = self.failed(e).await {
                            return Some(Err(gave_up));
                        }
                        continue;
                    }
                }
            }
            let Some((stream, skip)) = self.current.as_mut() else {
                continue;
            };
            match stream.next().await {
                Some(Ok(line)) => {
                    let at = line.timestamp();
                    if let Some(cursor) = self.cursor {
                        // Lines at the boundary were delivered before the reconnect.
                        if at < cursor.last {
                            continue;
                        }
                        if at == cursor.last && *skip > 0 {
                            *skip -= 1;
                            continue;
                        }
                    }
                    *skip = 0;
                    self.failures = 0;
                    self.cursor = Some(match self.cursor {
                        Some(c) if c.last == at => Cursor {
                            last: c.last,
                            at_last: c.at_last + 1,
                        },
                        _ => Cursor {
                            last: at,
                            at_last: 1,
                        },
                    });
                    return Some(Ok(line));
                }
                // The provider ended the stream (its timeout): reconnect at once.
                None => {
                    tracing::debug!("the provider ended the follow stream; resuming");
                    self.current = None;
                }
                Some(Err(e)) => {
                    self.current = None;
                    if let Some(gave_up) = self.failed(e).await {
                        return Some(Err(gave_up));
                    }
                }
            }
        }
    }

    /// Counts a failure and pauses; returns the error to end with when it is one too many.
    async fn failed(&mut self, e: ClientError) -> Option<ClientError> {
        self.failures += 1;
        if self.failures > self.resume.max_failures {
            self.done = true;
            return Some(ClientError::GaveUp {
                failures: self.failures - 1,
                last: Box::new(e),
            });
        }
        let doublings = (self.failures - 1).min(16);
        let pause = self
            .resume
            .first_backoff
            .saturating_mul(1 << doublings)
            .min(self.resume.max_backoff);
        tracing::debug!(error = %e, ?pause, "following failed; trying again");
        tokio::time::sleep(pause).await;
        None
    }
}
