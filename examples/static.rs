//! The smallest useful log provider: a fixed list of messages for one function, served
//! on 127.0.0.1 with hyper, on nothing but the crate's public API.
//!
//! ```text
//! cargo run --example static                                  # listens on 127.0.0.1:8080
//! cargo run --example static -- --listen 127.0.0.1:0 --timeout 10   # any free port
//! curl -s 'http://127.0.0.1:8080/system/logs?name=hello&tail=2'
//! curl -s 'http://127.0.0.1:8080/system/logs?name=hello&follow=true'   # ends at the timeout
//! ```
//!
//! Like the Go package's example, the requester ignores `tail`, `since`, `instance` and
//! `follow`; unlike it, the response is still right, and a follow stream ends at the
//! handler's timeout instead of hanging until the client gives up. Ctrl-C ends open
//! streams cleanly and stops the server. (`faas-logs serve` adds basic auth, header
//! and write timeouts and a server loop that survives running out of file descriptors.)

use std::convert::Infallible;
use std::time::Duration;

use chrono::{DateTime, Utc};
use faas_logs::server::{LogBody, LogHandler};
use faas_logs::{async_trait, Error, Event, LogStream, Message, Request, Requester};
use futures_util::StreamExt;
use hyper::body::Incoming;
use hyper::{Response, StatusCode};
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
            .map(|(instance, seconds, text)| {
                Message::new("hello", now + chrono::Duration::seconds(seconds), text)
                    .with_namespace("openfaas-fn")
                    .with_instance(instance)
            })
            .collect();
        StaticLogs { messages }
    }
}

#[async_trait]
impl Requester for StaticLogs {
    async fn query(&self, request: Request) -> Result<LogStream, Error> {
        // No namespace means the provider's default one, as in every backend here.
        let in_default = matches!(request.namespace.as_str(), "" | "openfaas-fn");
        if request.name != "hello" || !in_default {
            return Err(Error::not_found(format!(
                "no function named {:?} in namespace {:?} (this example only knows \"hello\" \
                 in \"openfaas-fn\")",
                request.name, request.namespace
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

/// The smallest log provider: a fixed history for the function `hello`.
#[derive(clap::Parser, Debug)]
#[command(name = "static")]
struct Args {
    /// Address to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Seconds a response may last: a follow stream ends cleanly then.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

async fn route(
    req: hyper::Request<Incoming>,
    handler: LogHandler<StaticLogs>,
) -> Response<LogBody> {
    if req.uri().path() == "/system/logs" {
        return handler.handle(req).await;
    }
    let mut not_found = Response::new(LogBody::empty());
    *not_found.status_mut() = StatusCode::NOT_FOUND;
    not_found
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = <Args as clap::Parser>::parse();
    let handler = LogHandler::new(
        StaticLogs::new(Utc::now()),
        Duration::from_secs(args.timeout),
    );

    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!(
        "listening on http://{}/system/logs?name=hello",
        listener.local_addr()?
    );
    let connections = GracefulShutdown::new();
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                // A live line goes out at once, not after the delayed ACK of the last.
                let _ = tcp.set_nodelay(true);
                let handler = handler.clone();
                let service = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(route(req, handler).await) }
                });
                let connection = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .into_owned();
                tokio::spawn(connections.watch(connection));
            }
            _ = &mut ctrl_c => break,
        }
    }
    // Follow streams never end by themselves: end them first, so that each closes
    // cleanly, then let the connections finish.
    handler.shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(5), connections.shutdown()).await;
    Ok(())
}
