//! The smallest useful log provider: a fixed list of messages for one function, served
//! on 127.0.0.1 with hyper.
//!
//! ```text
//! cargo run --example static                                  # listens on 127.0.0.1:8080
//! cargo run --example static -- --listen 127.0.0.1:0 --timeout 10   # any free port
//! curl -s 'http://127.0.0.1:8080/system/logs?name=hello&tail=2'
//! curl -s 'http://127.0.0.1:8080/system/logs?name=hello&follow=true'   # ends at the timeout
//! ```
//!
//! It shares its flags and server loop with the other provider binaries
//! (`examples/common`): basic auth, header and body timeouts, graceful shutdown.
//!
//! Like the Go package's example, the requester ignores `tail`, `since`, `instance` and
//! `follow`; unlike it, the response is still right, and a follow stream ends at the
//! handler's timeout instead of hanging until the client gives up. Ctrl-C ends open
//! streams cleanly and stops the server.

mod common;

use chrono::{DateTime, Utc};
use common::{error, Body, ServerArgs};
use faas_logs::server::LogHandler;
use faas_logs::{async_trait, Error, Event, LogStream, Message, Request, Requester};
use futures_util::StreamExt;
use http_body_util::Either;
use hyper::body::Incoming;
use hyper::{Response, StatusCode};

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
    #[command(flatten)]
    server: ServerArgs,
}

async fn route(req: hyper::Request<Incoming>, handler: LogHandler<StaticLogs>) -> Response<Body> {
    if req.uri().path() == "/system/logs" {
        return handler.handle(req).await.map(Either::Left);
    }
    error(
        StatusCode::NOT_FOUND,
        "not found: try GET /system/logs?name=hello",
    )
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    common::init_tracing();
    common::exit_with(run(<Args as clap::Parser>::parse()).await)
}

async fn run(args: Args) -> Result<(), common::Failure> {
    let credentials = args.server.credentials()?;
    let handler = LogHandler::new(StaticLogs::new(Utc::now()), args.server.timeout());

    let listener = common::listen(&args.server.listen, "--listen").await?;
    println!(
        "listening on http://{}/system/logs?name=hello",
        listener.local_addr()?
    );
    let route = {
        let handler = handler.clone();
        move |req| route(req, handler.clone())
    };
    // Follow streams never end by themselves: the shutdown ends them first.
    common::serve(listener, &args.server, credentials, route, || {
        handler.shutdown()
    })
    .await;
    Ok(())
}
