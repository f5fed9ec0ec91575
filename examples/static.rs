//! The smallest useful log provider: a fixed list of messages for one function, served
//! on 127.0.0.1 with hyper.
//!
//! ```text
//! cargo run --example static                    # listens on 127.0.0.1:8080
//! cargo run --example static -- 127.0.0.1:0     # any free port; the address is printed
//! curl -s 'http://127.0.0.1:8080/system/logs?name=hello&tail=2'
//! curl -s 'http://127.0.0.1:8080/system/logs?name=hello&follow=true'   # ends after 10 s
//! ```
//!
//! Like the Go package's example, the requester ignores `tail`, `since`, `instance` and
//! `follow`; unlike it, the response is still right, and a follow stream ends at the
//! handler's timeout instead of hanging until the client gives up. Ctrl-C ends open
//! streams cleanly and stops the server.

use std::convert::Infallible;
use std::time::Duration;

use chrono::{DateTime, Utc};
use faas_logs::{
    async_trait, Error, Event, LogBody, LogHandler, LogStream, Message, Request, Requester,
};
use futures_util::StreamExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;

/// A fixed history for the function `hello`, written by two replicas.
struct StaticLogs {
    messages: Vec<Message>,
}

impl StaticLogs {
    fn new(now: DateTime<Utc>) -> Self {
        let lines = [
            ("hello-1", -50, "Forking - ./handler []"),
            ("hello-2", -48, "Forking - ./handler []"),
            ("hello-1", -45, "Started logging: stderr from function."),
            ("hello-2", -44, "Started logging: stderr from function."),
            (
                "hello-1",
                -30,
                "POST / - 200 OK - ContentLength: 12B (0.0021s)",
            ),
            (
                "hello-2",
                -10,
                "POST / - 200 OK - ContentLength: 12B (0.0019s)",
            ),
        ];
        let messages = lines
            .into_iter()
            .map(|(instance, seconds, text)| Message {
                name: "hello".into(),
                namespace: "openfaas-fn".into(),
                instance: instance.into(),
                timestamp: now + chrono::Duration::seconds(seconds),
                text: text.into(),
                stream: None,
            })
            .collect();
        StaticLogs { messages }
    }
}

#[async_trait]
impl Requester for StaticLogs {
    async fn query(&self, request: Request) -> Result<LogStream, Error> {
        if request.name != "hello" {
            return Err(Error::not_found(format!(
                "no function named {:?} (this example only knows \"hello\")",
                request.name
            )));
        }
        let history: Vec<_> = self
            .messages
            .iter()
            .cloned()
            .map(|m| Ok(Event::Message(m)))
            .collect();
        let history = futures_util::stream::iter(history);
        // After its history this log never gets a new line, yet it stays open, as a real
        // log does: the handler ends a follow stream at its timeout, and a non-follow one
        // at the HistoryEnd mark.
        let rest = futures_util::stream::iter([Ok(Event::HistoryEnd)])
            .chain(futures_util::stream::pending());
        Ok(Box::pin(history.chain(rest)))
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let handler = LogHandler::new(StaticLogs::new(Utc::now()), Duration::from_secs(10));

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let local = listener.local_addr()?;
    println!("listening on http://{local}/system/logs?name=hello");

    let server = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, _) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let handler = handler.clone();
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let handler = handler.clone();
                    async move {
                        if req.uri().path() == "/system/logs" {
                            return Ok::<_, Infallible>(handler.handle(req).await);
                        }
                        let mut not_found = hyper::Response::new(LogBody::empty());
                        *not_found.status_mut() = hyper::StatusCode::NOT_FOUND;
                        Ok(not_found)
                    }
                });
                let connection = server.serve_connection(TokioIo::new(tcp), service).into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = &mut ctrl_c => break,
        }
    }
    println!("shutting down");
    // Follow streams never end by themselves: end them, then let connections finish.
    handler.shutdown();
    if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close within 5 s");
    }
    Ok(())
}
