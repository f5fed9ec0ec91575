//! The contract against hostile backends, over real HTTP on 127.0.0.1: backends that are
//! always ready, that fail before the first line, that panic, or whose history is still
//! being held when the deadline comes.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use faas_logs::server::LogHandler;
use faas_logs::{async_trait, Capabilities, Error, Event, LogStream, Request, Requester};
use futures::StreamExt;
use http_body_util::BodyExt;

/// A backend that is always ready and never ends: an endless history of old lines from
/// instance `f-a` (after the `HistoryEnd` mark when `marked`, so they count as live).
struct Endless {
    marked: bool,
}

#[async_trait]
impl Requester for Endless {
    async fn query(&self, _: Request) -> Result<LogStream, Error> {
        let mark = futures::stream::iter(self.marked.then_some(Ok(Event::HistoryEnd)));
        let mut ms = 0;
        let lines = futures::stream::repeat_with(move || {
            ms += 1;
            Ok(Event::Message(message("f-a", ms, "old")))
        });
        Ok(Box::pin(mark.chain(lines)))
    }

    fn capabilities(&self) -> Capabilities {
        if self.marked {
            Capabilities::NONE.with_marks_history_end()
        } else {
            Capabilities::NONE
        }
    }
}

/// Serves `handler` from a runtime of its own with `workers` threads, as a provider
/// binary would run, so that a hogged server cannot stall the test's own client.
fn serve_on_own_runtime<R: Requester>(handler: LogHandler<R>, workers: usize) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            tx.send(serve(handler).await).unwrap();
            std::future::pending::<()>().await
        });
    });
    rx.recv().unwrap()
}

#[tokio::test]
async fn an_always_ready_backend_cannot_hold_a_response_past_its_deadline() {
    let timeout = Duration::from_millis(500);
    let unmarked = serve_on_own_runtime(LogHandler::new(Endless { marked: false }, timeout), 2);
    // History never ends: what is held (the newest five so far) goes out, then the body
    // is aborted, because the answer is incomplete.
    for query in ["tail=5", "tail=5&follow=true"] {
        let started = std::time::Instant::now();
        let (response, mut lines) = get(unmarked, &format!("/system/logs?name=f&{query}")).await;
        assert_eq!(response.status(), 200, "{query}");
        let mut held = Vec::new();
        let end = loop {
            match lines.next().await {
                Ok(Some(line)) => {
                    held.push(serde_json::from_str::<faas_logs::Message>(&line).unwrap())
                }
                other => break other,
            }
        };
        assert!(
            end.is_err(),
            "{query}: an incomplete history must not end cleanly"
        );
        assert_eq!(held.len(), 5, "{query}");
        assert!(held.windows(2).all(|w| w[0].timestamp < w[1].timestamp));
        assert!(started.elapsed() >= timeout);
    }
    let (_, mut lines) = get(unmarked, "/system/logs?name=f&instance=nobody").await;
    assert!(lines.rest().await.is_err());

    // History over and every live line filtered out: the deadline ends it cleanly.
    let marked = serve_on_own_runtime(LogHandler::new(Endless { marked: true }, timeout), 2);
    let (_, mut lines) = get(marked, "/system/logs?name=f&instance=nobody&follow=true").await;
    assert_eq!(lines.rest().await.unwrap(), Vec::<String>::new());
}

#[tokio::test]
async fn endless_responses_on_every_worker_do_not_delay_a_small_request() {
    let handler = LogHandler::new(Endless { marked: false }, Duration::from_secs(60));
    let addr = serve_on_own_runtime(handler, 2);
    // As many never-ending scans as the server has workers, each busy filtering out every
    // line of an always-ready backend.
    let mut hogs = Vec::new();
    for _ in 0..2 {
        hogs.push(get(addr, "/system/logs?name=f&instance=nobody").await);
    }
    let (status, error) = json_error(addr, "/system/logs?name=f&tail=1&follow=yes").await;
    assert_eq!(status, 422);
    assert!(error.starts_with("invalid follow"), "{error}");
    drop(hogs);
}

/// `(status, JSON error)` of a response that must be an error.
async fn json_error(addr: SocketAddr, query: &str) -> (u16, String) {
    let mut conn = Connection::open(addr).await;
    let response = conn.send("GET", query, b"").await;
    let status = response.status().as_u16();
    let body = within(response.into_body().collect()).await.unwrap();
    let json: serde_json::Value = serde_json::from_slice(&body.to_bytes()).unwrap();
    (status, json["error"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn an_error_before_anything_was_sent_gets_its_status_and_json() {
    // The very first item.
    let (backend, live) = Scripted::new(vec![]).live();
    live.send(Err(Error::unavailable("log system down")))
        .unwrap();
    let (addr, _) = start(backend).await;
    assert_eq!(
        json_error(addr, "/system/logs?name=f").await,
        (503, "log system down".into())
    );

    // Inside history that `tail` holds back: nothing was sent yet.
    for query in ["tail=5", "tail=5&follow=true"] {
        let (backend, live) = Scripted::new(big_history(50)).live();
        live.send(Err(Error::other("index corrupt"))).unwrap();
        let (addr, _) = start(backend).await;
        let got = json_error(addr, &format!("/system/logs?name=f&{query}")).await;
        assert_eq!(got, (500, "index corrupt".into()), "{query}");
    }

    // Right after an empty history, ready at once: still nothing sent.
    let (backend, live) = Scripted::new(vec![]).trusted().live();
    live.send(Err(Error::other("lost the log"))).unwrap();
    let (addr, _) = start(backend).await;
    let got = json_error(addr, "/system/logs?name=f&follow=true").await;
    assert_eq!(got, (500, "lost the log".into()));
}

#[tokio::test]
async fn an_error_after_the_status_breaks_the_body_visibly() {
    // Live, after an empty history: the head went out at once; the client must get it
    // and then a broken body, never an empty reply.
    let (backend, live) = Scripted::new(vec![]).trusted().live();
    let (addr, _) = start(backend).await;
    let (response, mut lines) = get(addr, "/system/logs?name=f&follow=true").await;
    assert_eq!(response.status(), 200);
    live.send(Err(Error::other("lost the log"))).unwrap();
    assert!(lines.rest().await.is_err());

    // After history, in a follow: the lines, then the break.
    let history = big_history(4);
    let (backend, live) = Scripted::new(history.clone()).trusted().live();
    live.send(Err(Error::other("lost the log"))).unwrap();
    let (addr, _) = start(backend).await;
    let (response, mut lines) = get(addr, "/system/logs?name=f&follow=true&tail=3").await;
    assert_eq!(response.status(), 200);
    for want in newest(&history, 3) {
        assert_eq!(lines.next_message().await, want);
    }
    assert!(lines.next().await.is_err());

    // A backend that says nothing for longer than the status wait, then fails: the 200
    // went out when the wait ran out; the failure breaks the body.
    let (backend, live) = Scripted::new(big_history(3)).live();
    let handler = LogHandler::new(backend, Duration::from_secs(30))
        .with_status_wait(Duration::from_millis(50))
        .with_history_quiet(Duration::from_secs(60));
    let addr = serve(handler).await;
    let (response, mut lines) = get(addr, "/system/logs?name=f&tail=2&follow=true").await;
    assert_eq!(response.status(), 200);
    live.send(Err(Error::other("gave up"))).unwrap();
    assert!(lines.rest().await.is_err());
}

/// Panics in `query` itself, or in its stream before or after the first message.
struct Panicking {
    when: &'static str,
}

#[async_trait]
impl Requester for Panicking {
    async fn query(&self, _: Request) -> Result<LogStream, Error> {
        let when = self.when;
        if when == "query" {
            panic!("query exploded");
        }
        let first = futures::stream::iter(
            (when == "mid-stream").then(|| Ok(Event::Message(message("f-a", 0, "first")))),
        );
        let boom = futures::stream::poll_fn(|_| -> std::task::Poll<Option<_>> {
            panic!("stream exploded")
        });
        Ok(Box::pin(
            first
                .chain(futures::stream::iter([Ok(Event::HistoryEnd)]))
                .chain(boom),
        ))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE.with_marks_history_end()
    }
}

#[tokio::test]
async fn a_panicking_backend_gets_500_before_the_stream_and_a_broken_body_after() {
    for when in ["query", "first poll"] {
        let (addr, _) = start(Panicking { when }).await;
        let (status, error) = json_error(addr, "/system/logs?name=f&follow=true").await;
        assert_eq!(status, 500, "{when}");
        assert!(error.contains("failed unexpectedly"), "{when}: {error}");
        // The server is still there.
        assert_eq!(json_error(addr, "/system/logs?name=f&tail=x").await.0, 422);
    }
    let (addr, _) = start(Panicking { when: "mid-stream" }).await;
    let (response, mut lines) = get(addr, "/system/logs?name=f&follow=true").await;
    assert_eq!(response.status(), 200);
    assert_eq!(lines.next_message().await.text, "first");
    assert!(lines.next().await.is_err());
}

#[tokio::test]
async fn history_still_held_at_the_deadline_is_sent_then_the_body_breaks() {
    // No history mark and a quiet guess longer than the timeout: at the deadline the
    // handler is still holding the newest `tail` lines back.
    let history = big_history(20);
    let backend = Scripted::new(history.clone()).open();
    let dropped = backend.dropped.clone();
    let handler = LogHandler::new(backend, Duration::from_millis(400))
        .with_history_quiet(Duration::from_secs(60))
        .with_status_wait(Duration::from_millis(10));
    let addr = serve(handler).await;
    for query in ["tail=5&follow=true", "tail=5"] {
        let (response, mut lines) = get(addr, &format!("/system/logs?name=f&{query}")).await;
        assert_eq!(response.status(), 200);
        for want in newest(&history, 5) {
            assert_eq!(lines.next_message().await, want, "{query}");
        }
        assert!(lines.next().await.is_err(), "{query}");
    }
    dropped.wait().await;
}

#[tokio::test]
async fn a_stream_that_reaches_the_deadline_while_sending_complete_history_ends_cleanly() {
    // History complete (marked) and larger than one frame; the deadline comes while the
    // live part is idle: everything arrives and the end is clean.
    let history = big_history(3_000);
    let backend = Scripted::new(history.clone()).trusted().open();
    let handler = LogHandler::new(backend, Duration::from_millis(300));
    let addr = serve(handler).await;
    let (_, mut lines) = get(addr, "/system/logs?name=f&tail=5000&follow=true").await;
    let got: Vec<faas_logs::Message> = lines
        .rest()
        .await
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got, newest(&history, 5000));
}

/// A follow backend that floods live lines numbered from 1 and counts its open streams.
struct Flood {
    open: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    closed: std::sync::Arc<tokio::sync::Notify>,
}

/// Counts a stream as open until it is dropped.
struct Open(
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    std::sync::Arc<tokio::sync::Notify>,
);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.1.notify_waiters();
    }
}

#[async_trait]
impl Requester for Flood {
    async fn query(&self, _: Request) -> Result<LogStream, Error> {
        self.open.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let open = Open(self.open.clone(), self.closed.clone());
        let mark = futures::stream::iter([Ok(Event::HistoryEnd)]);
        let mut n = 0u64;
        let lines = futures::stream::repeat_with(move || {
            let _open = &open;
            n += 1;
            Ok(Event::Message(faas_logs::Message::new(
                "f",
                chrono::Utc::now(),
                format!("live {n}"),
            )))
        });
        Ok(Box::pin(mark.chain(lines)))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE.with_marks_history_end()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_deadline_the_backend_goes_even_while_the_client_does_not_read() {
    let open = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let closed = std::sync::Arc::new(tokio::sync::Notify::new());
    let backend = Flood {
        open: open.clone(),
        closed: closed.clone(),
    };
    let timeout = Duration::from_secs(1);
    let addr = serve_on_own_runtime(LogHandler::new(backend, timeout), 2);
    // Five followers that read the head, then stop reading: the server's writes block.
    let mut followers = Vec::new();
    for _ in 0..5 {
        let (response, lines) = get_narrow(addr, "/system/logs?name=f&follow=true").await;
        assert_eq!(response.status(), 200);
        followers.push(lines);
    }
    // Every backend stream is dropped at the deadline, though no body is polled.
    within(async {
        loop {
            let notified = closed.notified();
            if open.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    })
    .await;
    // Reading late, each follower gets every line that was sent to it, in order, and a
    // clean end.
    for mut lines in followers {
        let mut expected = 1u64;
        while let Some(line) = lines.next().await.expect("a clean end, not a broken body") {
            let message: faas_logs::Message = serde_json::from_str(&line).unwrap();
            assert_eq!(message.text, format!("live {expected}"));
            expected += 1;
        }
        assert!(expected > 1, "the follower got lines");
    }
}
