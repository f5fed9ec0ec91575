//! `LogClient` against real providers on 127.0.0.1: a dump, errors with the provider's
//! text, broken streams, and a follow that resumes across the provider's timeouts.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::*;
use faas_logs::client::{ClientError, LogClient, Resume};
use faas_logs::codec::NdjsonError;
use faas_logs::server::LogHandler;
use faas_logs::store::LogStore;
use faas_logs::{Error, Event, Message, Request};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

fn line(i: usize) -> Message {
    Message::new("f", Utc::now(), format!("line {i}")).with_instance("f-1")
}

async fn collect(
    mut stream: faas_logs::client::MessageStream,
) -> (Vec<Message>, Option<ClientError>) {
    let mut got = Vec::new();
    while let Some(item) = within(stream.next()).await {
        match item {
            Ok(m) => got.push(m),
            Err(e) => return (got, Some(e)),
        }
    }
    (got, None)
}

#[tokio::test]
async fn a_dump_comes_whole_and_a_404_carries_the_providers_text() {
    let store = LogStore::new();
    for i in 0..1_000 {
        store.append(line(i)).unwrap();
    }
    let addr = serve(LogHandler::new(store.clone(), Duration::from_secs(30))).await;
    let client = LogClient::new(format!("http://{addr}/")).unwrap();
    let request = Request {
        tail: Some(100),
        ..Request::new("f")
    };
    let (got, error) = collect(client.logs(&request).await.unwrap()).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(
        texts(&got),
        (900..1_000)
            .map(|i| format!("line {i}"))
            .collect::<Vec<_>>()
    );

    let Err(ClientError::Status { status, message }) = client.logs(&Request::new("nobody")).await
    else {
        panic!("a 404 is an error before the stream");
    };
    assert_eq!(status, 404);
    assert!(
        message.starts_with("no logs for function \"nobody\""),
        "{message}"
    );
}

#[tokio::test]
async fn a_stream_broken_after_the_status_is_an_error_not_an_end() {
    let (backend, live) = Scripted::new(Vec::new()).trusted().open().live();
    let (addr, _) = start(backend).await;
    let client = LogClient::new(format!("http://{addr}")).unwrap();
    let stream = client
        .logs(&Request {
            follow: true,
            ..Request::new("f")
        })
        .await
        .unwrap();
    for i in 0..3 {
        live.send(Ok(Event::Message(message("f-1", i, &format!("live {i}")))))
            .unwrap();
    }
    live.send(Err(Error::unavailable("the backend went away")))
        .unwrap();
    let (got, error) = collect(stream).await;
    assert_eq!(texts(&got), ["live 0", "live 1", "live 2"]);
    assert!(
        matches!(error, Some(ClientError::Transport(_))),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_last_line_cut_mid_way_is_an_error_even_when_the_body_is_complete() {
    // A provider whose body, complete by HTTP's framing, stops inside a line.
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = tcp.accept().await.unwrap();
        let body = concat!(
            r#"{"name":"f","namespace":"","instance":"f-1","timestamp":"2024-03-01T12:00:00Z","text":"whole"}"#,
            "\n",
            r#"{"name":"f","namespace":"","instance":"f-1","timest"#
        );
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let mut buf = [0u8; 1024];
        let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body.as_bytes()).await.unwrap();
        stream.shutdown().await.unwrap();
    });
    let client = LogClient::new(format!("http://{addr}")).unwrap();
    let (got, error) = collect(client.logs(&Request::new("f")).await.unwrap()).await;
    assert_eq!(texts(&got), ["whole"]);
    assert!(
        matches!(
            error,
            Some(ClientError::Decode(NdjsonError::Truncated { line: 2 }))
        ),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_resumes_across_the_providers_timeouts_with_every_line_once_in_order() {
    const LINES: usize = 2_000;
    let store = LogStore::new();
    store.register("", "f").unwrap();
    // A provider whose follow streams end every 300 ms; its requests are counted (the
    // client keeps its connection alive between them).
    let handler = LogHandler::new(store.clone(), Duration::from_millis(300));
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&requests);
    let addr = serve_fn(move |req| {
        counted.fetch_add(1, Ordering::SeqCst);
        let handler = handler.clone();
        async move { handler.handle(req).await }
    })
    .await;
    // A writer that keeps writing while the client reconnects.
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(1));
            for i in 0..LINES {
                every.tick().await;
                store.append(line(i)).unwrap();
            }
        })
    };
    let client = LogClient::new(format!("http://{addr}")).unwrap();
    let mut follow = client.follow(Request::new("f"), Resume::default());
    let mut got = Vec::with_capacity(LINES);
    while got.len() < LINES {
        let message = within(follow.next())
            .await
            .expect("a line")
            .expect("no error");
        got.push(message.text);
    }
    writer.await.unwrap();
    assert_eq!(
        got,
        (0..LINES).map(|i| format!("line {i}")).collect::<Vec<_>>()
    );
    let reconnects = requests.load(Ordering::SeqCst) - 1;
    assert!(reconnects >= 5, "only {reconnects} reconnects");
}

#[tokio::test]
async fn following_a_provider_that_is_gone_gives_up_after_the_policys_failures() {
    let addr = {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        tcp.local_addr().unwrap()
    };
    let client = LogClient::new(format!("http://{addr}")).unwrap();
    let resume = Resume::default()
        .with_max_failures(3)
        .with_backoff(Duration::from_millis(1), Duration::from_millis(10));
    let mut follow = client.follow(Request::new("f"), resume);
    let error = within(follow.next()).await.unwrap().unwrap_err();
    let ClientError::GaveUp { failures, last } = error else {
        panic!("{error:?}");
    };
    assert_eq!(failures, 3);
    assert!(matches!(*last, ClientError::Transport(_)), "{last:?}");
    assert!(within(follow.next()).await.is_none());
}

#[tokio::test]
async fn several_functions_merge_into_one_stream_in_time_order() {
    let store = LogStore::new();
    let start = Utc::now() - chrono::Duration::seconds(10);
    for i in 0..200 {
        let name = if i % 2 == 0 { "f" } else { "g" };
        let at = start + chrono::Duration::milliseconds(i);
        store
            .append(
                Message::new(name, at, format!("{name} {i}")).with_instance(format!("{name}-1")),
            )
            .unwrap();
    }
    let addr = serve(LogHandler::new(store.clone(), Duration::from_secs(30))).await;
    let client = LogClient::new(format!("http://{addr}")).unwrap();
    let streams = vec![
        client.logs(&Request::new("f")).await.unwrap(),
        client.logs(&Request::new("g")).await.unwrap(),
    ];
    // A window longer than the test: the order comes from the merge, not from timing.
    let merged = faas_logs::client::merge_by_time(streams, Duration::from_secs(60));
    let (got, error) = collect(merged).await;
    assert!(error.is_none(), "{error:?}");
    let want: Vec<String> = (0..200)
        .map(|i| format!("{} {i}", if i % 2 == 0 { "f" } else { "g" }))
        .collect();
    assert_eq!(texts(&got), want);
    assert!(
        got.iter().all(|m| m.text.starts_with(m.name.as_str())),
        "each line says its function"
    );
    // logs_of does the same for names, and an unknown one is the query's error.
    let Err(ClientError::Status { status: 404, .. }) = client
        .logs_of(
            &["f", "nobody"],
            &Request::new("f"),
            Some(Resume::default()),
        )
        .await
    else {
        panic!("an unknown function is a 404");
    };
}
