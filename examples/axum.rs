//! A backend of your own that serves live lines, mounted in axum with the function list
//! and the viewer: the function `clock` writes a line a second, and a follower gets its
//! history, then each new line as it is written.
//!
//! ```text
//! cargo run --example axum                        # listens on 127.0.0.1:8080
//! curl -sN 'http://127.0.0.1:8080/system/logs?name=clock&tail=3&follow=true'
//! curl -s http://127.0.0.1:8080/system/logs/functions
//! ```
//!
//! and <http://127.0.0.1:8080/> in a browser shows the viewer. Ctrl-C ends open follow
//! streams cleanly and stops the server.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use chrono::Utc;
use faas_logs::server::{viewer_response, LogHandler, FUNCTIONS_PATH};
use faas_logs::{async_trait, Error, Event, FunctionName, LogStream, Message, Request, Requester};
use futures_util::StreamExt;
use tokio::sync::broadcast;

/// The most lines the clock keeps; older ones are forgotten.
const HISTORY: usize = 1000;

/// A function whose lines are kept in memory and sent to every follower as they come.
#[derive(Clone)]
struct Clock {
    history: Arc<Mutex<VecDeque<Message>>>,
    live: broadcast::Sender<Message>,
}

impl Clock {
    fn new() -> Self {
        Clock {
            history: Arc::default(),
            live: broadcast::channel(256).0,
        }
    }

    /// Writes a line: into the history and to every follower, under one lock, so that a
    /// query sees each line exactly once, either in its history or live.
    fn write(&self, text: String) {
        let line = Message::new("clock", Utc::now(), text)
            .with_namespace("openfaas-fn")
            .with_instance("clock-1");
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(line.clone());
        // No follower is not an error.
        let _ = self.live.send(line);
    }
}

#[async_trait]
impl Requester for Clock {
    async fn query(&self, request: Request) -> Result<LogStream, Error> {
        if request.name != "clock" {
            return Err(Error::not_found(format!(
                "no function named {:?}: this provider only has \"clock\"",
                request.name
            )));
        }
        // Subscribed under the writer's lock: nothing written falls between the two.
        let (history, live) = {
            let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
            let live = request.follow.then(|| self.live.subscribe());
            (history.iter().cloned().collect::<Vec<_>>(), live)
        };
        // The handler applies tail, since and instance to the history; HistoryEnd tells
        // it where the history ends, so that `tail` counts only that and a request
        // without follow ends there.
        let history = futures_util::stream::iter(history)
            .map(|line| Ok(Event::Message(line)))
            .chain(futures_util::stream::iter([Ok(Event::HistoryEnd)]));
        let Some(live) = live else {
            return Ok(Box::pin(history));
        };
        let live = futures_util::stream::unfold(live, |mut live| async move {
            let event = match live.recv().await {
                Ok(line) => Event::Message(line),
                // A follower too slow for the channel is told how much it missed.
                Err(broadcast::error::RecvError::Lagged(lost)) => Event::Gap {
                    lost,
                    timestamp: Utc::now(),
                },
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((Ok(event), live))
        });
        Ok(Box::pin(history.chain(live)))
    }

    async fn functions(&self) -> Result<Option<Vec<FunctionName>>, Error> {
        Ok(Some(vec![FunctionName::new("openfaas-fn", "clock")]))
    }
}

/// Where to listen, and how long a response may last.
#[derive(clap::Parser, Debug)]
#[command(name = "axum")]
struct Args {
    /// Address to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Seconds a response may last: a follow stream ends cleanly then.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Milliseconds between two lines of the clock.
    #[arg(long, default_value_t = 1000)]
    every: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = <Args as clap::Parser>::parse();
    let clock = Clock::new();
    let handler = LogHandler::new(clock.clone(), Duration::from_secs(args.timeout));

    let functions = {
        let handler = handler.clone();
        // The list is an async fn of the handler: call it in a handler of axum's.
        move || async move { handler.functions().await }
    };
    let app = Router::new()
        .route_service("/system/logs", handler.clone())
        .route(FUNCTIONS_PATH, get(functions))
        .route("/", get(|| async { viewer_response() }));

    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(args.every));
        for n in 1u64.. {
            every.tick().await;
            clock.write(format!("tick {n} at {}", Utc::now().format("%H:%M:%S%.3f")));
        }
    });

    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!("listening on http://{}/", listener.local_addr()?);
    // A live line goes out at once, not after the client's delayed ACK of the last one.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            // Follow streams never end by themselves: end them, so that each closes
            // cleanly and the server can stop.
            handler.shutdown();
        })
        .await?;
    Ok(())
}
