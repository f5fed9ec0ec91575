//! The in-memory store: delivery to many followers, the history-to-live switch, lagging
//! readers, tail and since on a full ring, and its bounds; over real HTTP where the
//! behaviour is HTTP.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use common::*;
use faas_logs::server::LogHandler;
use faas_logs::store::{LogStore, StoreLimits};
use faas_logs::{Event, Message, Request, Requester};
use futures::StreamExt;

fn limits(max_messages: usize, max_bytes: usize) -> StoreLimits {
    StoreLimits {
        max_messages,
        max_bytes,
        ..StoreLimits::default()
    }
}

async fn serve_store(store: &LogStore) -> std::net::SocketAddr {
    serve(LogHandler::new(store.clone(), Duration::from_secs(60))).await
}

/// A line of writer `w`, number `i`, stamped now.
fn written(w: usize, i: usize) -> Message {
    Message::new("f", Utc::now(), format!("{w}:{i}")).with_instance(format!("f-{w}"))
}

fn writer_and_count(m: &Message) -> (usize, usize) {
    let (w, i) = m.text.split_once(':').expect("a writer's line");
    (w.parse().unwrap(), i.parse().unwrap())
}

/// Spawns `writers` tasks appending `per_writer` lines each, yielding now and then so
/// that readers run in between.
fn spawn_writers(
    store: &LogStore,
    writers: usize,
    per_writer: usize,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..writers)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..per_writer {
                    store.append(written(w, i)).unwrap();
                    if i % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_followers_each_see_every_line_once_in_order_while_four_writers_append() {
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 500;
    let store = LogStore::new();
    store.register("", "f").unwrap();
    let addr = serve_store(&store).await;
    let mut followers = Vec::new();
    for _ in 0..100 {
        // The head arrives after the query has taken its position: all start at line 0.
        let (_, lines) = get(addr, "/system/logs?name=f&follow=true").await;
        followers.push(lines);
    }
    let writers = spawn_writers(&store, WRITERS, PER_WRITER);
    let readers: Vec<_> = followers
        .into_iter()
        .map(|mut lines| {
            tokio::spawn(async move {
                let mut got = Vec::new();
                while got.len() < WRITERS * PER_WRITER {
                    got.push(lines.next_message().await.text);
                }
                got
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let mut first: Option<Vec<String>> = None;
    for reader in readers {
        let got = reader.await.unwrap();
        // Each writer's lines once each, in its order.
        let mut next = [0usize; WRITERS];
        for text in &got {
            let (w, i) = text.split_once(':').unwrap();
            let (w, i): (usize, usize) = (w.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next[w], "writer {w}");
            next[w] += 1;
        }
        assert_eq!(next, [PER_WRITER; WRITERS]);
        // And every follower sees the store's one order.
        match &first {
            None => first = Some(got),
            Some(first) => assert_eq!(first, &got),
        }
    }
}

/// A requester that answers from a store through [`Requester::query`] alone, so that its
/// handler copies and encodes every message itself.
struct QueryOnly(LogStore);

#[faas_logs::async_trait]
impl Requester for QueryOnly {
    async fn query(&self, request: Request) -> Result<faas_logs::LogStream, faas_logs::Error> {
        self.0.query(request).await
    }

    fn capabilities(&self) -> faas_logs::Capabilities {
        self.0.capabilities()
    }
}

/// Lines whose encoding has something to get wrong: Go's escapes, line ends the handler
/// trims, stderr, several instances.
fn awkward(w: usize, i: usize) -> Message {
    let end = ["", "\n", "\r\n"][i % 3];
    let m = Message::new("f", Utc::now(), format!("{w}:{i} <b>&\"q\"\u{2028}\t{end}"))
        .with_instance(format!("f-{w}"));
    if i % 2 == 0 {
        m.with_stream(faas_logs::OutputStream::Stderr)
    } else {
        m
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_served_from_the_stores_encoded_lines_get_the_bytes_of_a_plain_stream() {
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 300;
    let store = LogStore::new();
    store.register("", "f").unwrap();
    let encoded = serve_store(&store).await;
    let plain = serve(LogHandler::new(
        QueryOnly(store.clone()),
        Duration::from_secs(60),
    ))
    .await;
    // Several followers of each kind, all instances and one, started before any line.
    let mut followers = Vec::new();
    for (addr, instance, copies) in [
        (encoded, "", 8),
        (encoded, "&instance=f-1", 2),
        (plain, "", 2),
        (plain, "&instance=f-1", 2),
    ] {
        for _ in 0..copies {
            let path = format!("/system/logs?name=f&follow=true{instance}");
            let (_, lines) = get(addr, &path).await;
            let want = if instance.is_empty() {
                WRITERS * PER_WRITER
            } else {
                PER_WRITER
            };
            followers.push((addr, instance, lines, want));
        }
    }
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..PER_WRITER {
                    store.append(awkward(w, i)).unwrap();
                    if i % 16 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    let readers: Vec<_> = followers
        .into_iter()
        .map(|(addr, instance, mut lines, want)| {
            tokio::spawn(async move {
                let mut got = Vec::new();
                while got.len() < want {
                    got.push(lines.next().await.unwrap().expect("a line"));
                }
                ((addr == encoded, instance), got)
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let mut by_query: HashMap<&str, Vec<(bool, Vec<String>)>> = HashMap::new();
    for reader in readers {
        let ((from_store, instance), got) = reader.await.unwrap();
        by_query
            .entry(instance)
            .or_default()
            .push((from_store, got));
    }
    for (instance, answers) in by_query {
        let (_, first) = &answers[0];
        for (from_store, got) in &answers {
            assert_eq!(
                got, first,
                "instance {instance:?}, encoded by the store: {from_store}"
            );
        }
        let texts: Vec<Message> = first
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(texts.iter().all(|m| !m.text.ends_with(['\n', '\r'])));
        assert_eq!(
            texts.iter().filter(|m| m.stream.is_some()).count(),
            first.len() / 2
        );
    }
    // History, while followers keep the newest lines encoded: the same bytes either way,
    // and a handler whose default namespace is not the store's finds none of them.
    for (query, count) in [("tail=700", 700), ("tail=5&instance=f-2", 5)] {
        let path = format!("/system/logs?name=f&{query}");
        let (status, from_store) = get_whole(encoded, &path).await;
        assert_eq!(status, 200);
        assert_eq!(from_store, get_whole(plain, &path).await.1, "{query}");
        assert_eq!(from_store.lines().count(), count);
    }
    let elsewhere = serve(
        LogHandler::new(store.clone(), Duration::from_secs(60)).with_default_namespace("other"),
    )
    .await;
    assert_eq!(
        get_whole(elsewhere, "/system/logs?name=f&tail=5").await,
        (200, String::new())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switch_from_history_to_live_loses_and_repeats_nothing_under_concurrent_appends() {
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 5_000;
    let store = LogStore::with_limits(limits(1_000_000, 1 << 30));
    store.register("", "f").unwrap();
    let addr = serve_store(&store).await;
    let writers = spawn_writers(&store, WRITERS, PER_WRITER);
    let mut readers = Vec::new();
    for k in 0..12 {
        // Join while the writers are busy: wait until they have written a little more.
        let target = (k as u64 + 1) * 1_000;
        while store.stats("", "f").unwrap().appended < target {
            tokio::task::yield_now().await;
        }
        let query = if k % 2 == 0 { "" } else { "&tail=50" };
        let (_, mut lines) = get(addr, &format!("/system/logs?name=f&follow=true{query}")).await;
        readers.push(tokio::spawn(async move {
            let mut seen: HashMap<usize, Vec<usize>> = HashMap::new();
            loop {
                let m = lines.next_message().await;
                if m.text == "done" {
                    return (query, seen);
                }
                let (w, i) = writer_and_count(&m);
                seen.entry(w).or_default().push(i);
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    // After every writer's last line, one more: each reader reads up to it.
    let mut done = written(0, 0);
    done.text = "done".into();
    store.append(done).unwrap();
    for reader in readers {
        let (query, seen) = reader.await.unwrap();
        if query.is_empty() {
            assert_eq!(
                seen.len(),
                WRITERS,
                "without tail, every writer's lines arrive"
            );
        }
        for (w, counts) in seen {
            let start = counts[0];
            let want: Vec<usize> = (start..PER_WRITER).collect();
            assert_eq!(
                counts, want,
                "writer {w}, query {query:?}: a line lost or repeated"
            );
            if query.is_empty() {
                assert_eq!(start, 0, "without tail, history starts at the first line");
            }
        }
    }
}

#[tokio::test]
async fn a_reader_that_falls_behind_the_ring_is_told_how_many_lines_it_lost() {
    let store = LogStore::with_limits(limits(100, 1 << 20));
    store.register("", "f").unwrap();
    let mut reader = store
        .read(&Request {
            follow: true,
            ..Request::new("f")
        })
        .unwrap();
    for i in 0..1_000 {
        store.append(written(0, i)).unwrap();
    }
    let Some(Ok(Event::Gap { lost, timestamp })) = reader.next().await else {
        panic!("expected the gap first");
    };
    assert_eq!(lost, 900);
    let oldest_left = store.read(&Request::new("f")).unwrap().next().await;
    let Some(Ok(Event::Message(oldest_left))) = oldest_left else {
        panic!("the ring holds lines");
    };
    assert_eq!(
        timestamp, oldest_left.timestamp,
        "the gap sits before the oldest line left"
    );
    assert_eq!(reader.next().await.unwrap().unwrap(), Event::HistoryEnd);
    for i in 900..1_000 {
        let Some(Ok(Event::Message(m))) = reader.next().await else {
            panic!("expected line {i}");
        };
        assert_eq!(m.text, format!("0:{i}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_http_follower_sees_a_visible_gap_and_every_line_it_was_not_told_about() {
    const TOTAL: usize = 40_000;
    let store = LogStore::with_limits(limits(100, 1 << 20));
    store.register("", "f").unwrap();
    let addr = serve_store(&store).await;
    let (_, mut lines) = get(addr, "/system/logs?name=f&follow=true").await;
    // The client reads nothing while 40 MB are written: far more than socket buffers hold.
    let pad = "x".repeat(1_000);
    for i in 0..TOTAL {
        let mut m = written(0, i);
        m.text.push_str(&pad);
        store.append(m).unwrap();
    }
    let mut received = 0;
    let mut lost = 0;
    let mut last = None;
    while last != Some(TOTAL - 1) {
        let m = lines.next_message().await;
        if let Some(rest) = m.text.strip_prefix("[faas-logs] ") {
            lost += rest.split(' ').next().unwrap().parse::<usize>().unwrap();
            continue;
        }
        let text = m.text.trim_end_matches('x').to_owned();
        let (_, i) = writer_and_count(&m.with_text(text));
        assert!(last.is_none_or(|l| i > l), "lines stay in order");
        last = Some(i);
        received += 1;
    }
    assert!(
        lost > 0,
        "the follower fell behind, so it must have been told"
    );
    assert_eq!(
        received + lost,
        TOTAL,
        "every line is either received or counted as lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_fast_and_stalled_of_a_small_ring_get_each_line_once_or_its_count_in_a_gap() {
    // A ring far smaller than the encoded window, four writers, and followers that read
    // at once or not at all until the writers are done: every follower sees each line at
    // most once, in each writer's order, and is told of every line it did not see.
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 3_000;
    let store = LogStore::with_limits(limits(100, 1 << 20));
    store.register("", "f").unwrap();
    let addr = serve_store(&store).await;
    let (writers_done, done) = tokio::sync::watch::channel(false);
    let mut followers = Vec::new();
    for k in 0..6 {
        let (_, mut lines) = get(addr, "/system/logs?name=f&follow=true").await;
        let mut done = done.clone();
        followers.push(tokio::spawn(async move {
            if k % 2 == 1 {
                done.wait_for(|done| *done).await.unwrap();
            }
            let (mut next, mut lost, mut received) = ([0usize; WRITERS], 0, 0);
            let mut finished = 0;
            while finished < WRITERS {
                let m = lines.next_message().await;
                if let Some(rest) = m.text.strip_prefix("[faas-logs] ") {
                    lost += rest.split(' ').next().unwrap().parse::<usize>().unwrap();
                    continue;
                }
                let text = m.text.trim_end_matches('x').to_owned();
                let (w, i) = writer_and_count(&m.with_text(text));
                assert!(i >= next[w], "writer {w}: line {i} after {}", next[w]);
                next[w] = i + 1;
                received += 1;
                if i == PER_WRITER - 1 {
                    finished += 1;
                }
            }
            (received, lost)
        }));
    }
    let pad = "x".repeat(200);
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (store, pad) = (store.clone(), pad.clone());
            tokio::spawn(async move {
                for i in 0..PER_WRITER {
                    let mut m = written(w, i);
                    m.text.push_str(&pad);
                    store.append(m).unwrap();
                    if i % 32 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    writers_done.send_replace(true);
    for follower in followers {
        let (received, lost) = follower.await.unwrap();
        assert_eq!(
            received + lost,
            WRITERS * PER_WRITER,
            "every line received or counted"
        );
    }
}

#[tokio::test]
async fn tail_and_since_on_a_full_ring() {
    let store = LogStore::with_limits(limits(1_000, 1 << 30));
    let t0 = base();
    for i in 0..5_000i64 {
        store
            .append(message(
                if i % 3 == 0 { "f-a" } else { "f-b" },
                i,
                &i.to_string(),
            ))
            .unwrap();
    }
    assert_eq!(store.stats("openfaas-fn", "f").unwrap().messages, 1_000);
    let addr = serve_store(&store).await;
    let numbers =
        |ms: Vec<Message>| -> Vec<i64> { ms.iter().map(|m| m.text.parse().unwrap()).collect() };
    let ts = |ms: i64| {
        (t0 + chrono::Duration::milliseconds(ms)).to_rfc3339_opts(SecondsFormat::AutoSi, true)
    };

    let (_, mut lines) = get(addr, "/system/logs?name=f&tail=10").await;
    assert_eq!(
        numbers(lines.messages().await),
        (4_990..5_000).collect::<Vec<_>>()
    );

    let (_, mut lines) = get(addr, &format!("/system/logs?name=f&since={}", ts(4_500))).await;
    assert_eq!(
        numbers(lines.messages().await),
        (4_500..5_000).collect::<Vec<_>>()
    );

    // Older than anything held: the whole ring, the oldest evicted lines gone.
    let (_, mut lines) = get(addr, &format!("/system/logs?name=f&since={}", ts(0))).await;
    assert_eq!(
        numbers(lines.messages().await),
        (4_000..5_000).collect::<Vec<_>>()
    );

    let (_, mut lines) = get(
        addr,
        &format!("/system/logs?name=f&since={}&tail=3", ts(4_500)),
    )
    .await;
    assert_eq!(numbers(lines.messages().await), [4_997, 4_998, 4_999]);

    let (_, mut lines) = get(addr, "/system/logs?name=f&tail=4&instance=f-a").await;
    assert_eq!(
        numbers(lines.messages().await),
        [4_989, 4_992, 4_995, 4_998]
    );

    let (_, mut lines) = get(
        addr,
        &format!(
            "/system/logs?name=f&since={}&instance=f-a&tail=100",
            ts(4_990)
        ),
    )
    .await;
    assert_eq!(numbers(lines.messages().await), [4_992, 4_995, 4_998]);
}

#[tokio::test]
async fn lines_appended_out_of_time_order_are_answered_in_timestamp_order() {
    let store = LogStore::new();
    for ms in [5, 1, 9, 3, 7, 2, 8] {
        store.append(message("f-a", ms, &ms.to_string())).unwrap();
    }
    let addr = serve_store(&store).await;
    let (_, mut lines) = get(addr, "/system/logs?name=f").await;
    assert_eq!(
        texts(&lines.messages().await),
        ["1", "2", "3", "5", "7", "8", "9"]
    );
    let (_, mut lines) = get(addr, "/system/logs?name=f&tail=3").await;
    assert_eq!(texts(&lines.messages().await), ["7", "8", "9"]);
    let since =
        (base() + chrono::Duration::milliseconds(5)).to_rfc3339_opts(SecondsFormat::AutoSi, true);
    let (_, mut lines) = get(addr, &format!("/system/logs?name=f&since={since}&tail=10")).await;
    assert_eq!(texts(&lines.messages().await), ["5", "7", "8", "9"]);
}

#[tokio::test]
async fn a_million_messages_through_a_small_ring_stay_within_its_bounds() {
    let store = LogStore::with_limits(limits(1_000, 64 * 1024));
    let mut most_bytes = 0;
    for i in 0..1_000_000usize {
        let mut m = written(i % 3, i);
        m.text.push_str(&"y".repeat(i % 300));
        store.append(m).unwrap();
        if i % 1_000 == 999 {
            let stats = store.stats("", "f").unwrap();
            assert!(stats.messages <= 1_000);
            most_bytes = most_bytes.max(stats.bytes);
        }
    }
    assert!(most_bytes <= 64 * 1024, "{most_bytes} bytes held");
    let stats = store.stats("", "f").unwrap();
    assert_eq!(stats.appended, 1_000_000);
    let mut reader = store
        .read(&Request {
            tail: Some(1),
            ..Request::new("f")
        })
        .unwrap();
    let Some(Ok(Event::Message(newest))) = reader.next().await else {
        panic!("the newest line is held");
    };
    assert_eq!(newest.text.trim_end_matches('y'), "0:999999");
}

#[tokio::test]
async fn unknown_functions_are_404_and_registered_ones_answer_empty() {
    let store = LogStore::new();
    let addr = serve_store(&store).await;
    let (response, _) = get(addr, "/system/logs?name=ghost").await;
    assert_eq!(response.status(), 404);
    store.register("", "quiet").unwrap();
    let (response, mut lines) = get(addr, "/system/logs?name=quiet").await;
    assert_eq!(response.status(), 200);
    assert_eq!(lines.messages().await, vec![]);
    // Namespaces are separate; the empty one is the store's default.
    let (response, _) = get(addr, "/system/logs?name=quiet&namespace=other").await;
    assert_eq!(response.status(), 404);
    let (response, _) = get(addr, "/system/logs?name=quiet&namespace=openfaas-fn").await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn functions_beyond_the_limit_are_refused_and_nothing_stored_is_lost() {
    let store = LogStore::with_limits(StoreLimits {
        max_functions: 2,
        ..StoreLimits::default()
    });
    for name in ["a", "b"] {
        let mut m = written(0, 1);
        m.name = name.into();
        store.append(m).unwrap();
    }
    let mut m = written(0, 1);
    m.name = "c".into();
    let e = store.append(m).unwrap_err();
    assert!(e.to_string().contains("limit of 2 functions"), "{e}");
    assert_eq!(store.stats("", "a").unwrap().messages, 1);
    assert!(store.stats("", "c").is_none());
}

#[tokio::test]
async fn a_follower_of_a_quiet_function_gets_its_first_line_at_once() {
    let store = LogStore::new();
    store.register("", "f").unwrap();
    let addr = serve_store(&store).await;
    let (_, mut lines) = get(addr, "/system/logs?name=f&follow=true&tail=5").await;
    store.append(written(1, 0)).unwrap();
    assert_eq!(lines.next_message().await.text, "1:0");
    store.append(written(1, 1)).unwrap();
    assert_eq!(lines.next_message().await.text, "1:1");
}

#[tokio::test]
async fn a_store_built_with_a_default_namespace_is_one_store_for_every_clone() {
    let store = LogStore::builder().default_namespace("team-a").build();
    let addr = serve_store(&store.clone()).await;
    store.clone().append(written(0, 1)).unwrap();
    assert_eq!(store.default_namespace(), "team-a");
    assert_eq!(store.stats("team-a", "f").unwrap().messages, 1);
    for query in ["", "&namespace=team-a"] {
        let (_, mut lines) = get(addr, &format!("/system/logs?name=f{query}")).await;
        let got = lines.messages().await;
        assert_eq!(texts(&got), ["0:1"], "{query}");
        assert_eq!(got[0].namespace, "team-a");
    }
    let (response, _) = get(addr, "/system/logs?name=f&namespace=openfaas-fn").await;
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn captured_lines_keep_their_function_instance_and_pipe_whatever_runs_at_once() {
    use faas_logs::store::Capture;
    use faas_logs::OutputStream;
    let store = LogStore::new();
    let addr = serve_store(&store).await;
    // Two pipes of two instances captured at once; the last line has no newline, and
    // one is longer than the cut.
    let outputs = [
        ("cap-1", OutputStream::Stdout, "a\r\nb\nc"),
        ("cap-1", OutputStream::Stderr, "oops\n"),
        ("cap-2", OutputStream::Stdout, "0123456789ABCDEF\nd\n"),
    ];
    let captures: Vec<_> = outputs
        .into_iter()
        .map(|(instance, stream, bytes)| {
            let store = store.clone();
            let capture = Capture::new("cap")
                .with_namespace("team-a")
                .with_instance(instance)
                .with_stream(stream)
                .with_max_line(10);
            tokio::spawn(async move { capture.lines(bytes.as_bytes(), &store).await })
        })
        .collect();
    let mut stored = 0;
    for capture in captures {
        stored += capture.await.unwrap().unwrap();
    }
    assert_eq!(stored, 6);

    let (response, mut lines) = get(addr, "/system/logs?name=cap&namespace=team-a").await;
    assert_eq!(response.status(), 200);
    let mut got: Vec<_> = lines
        .messages()
        .await
        .into_iter()
        .map(|m| (m.instance.to_string(), m.stream, m.text))
        .collect();
    got.sort();
    let out = Some(OutputStream::Stdout);
    let err = Some(OutputStream::Stderr);
    let cut = got
        .iter()
        .find(|(i, _, t)| i == "cap-2" && t.starts_with("0123456789"));
    assert!(
        cut.is_some_and(|(_, _, t)| t.len() > 10 && !t.contains("ABCDEF")),
        "the long line is cut with a marker: {got:?}"
    );
    got.retain(|(i, _, t)| !(i == "cap-2" && t.starts_with("0123456789")));
    assert_eq!(
        got,
        vec![
            ("cap-1".to_owned(), out, "a".to_owned()),
            ("cap-1".to_owned(), out, "b".to_owned()),
            ("cap-1".to_owned(), out, "c".to_owned()),
            ("cap-1".to_owned(), err, "oops".to_owned()),
            ("cap-2".to_owned(), out, "d".to_owned()),
        ]
    );
}
