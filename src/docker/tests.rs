//! The follow, replica and reconnect logic against [`FakeDocker`]: streams that break
//! off, replicas that start, event streams that end, a daemon that fails.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use futures_util::StreamExt;

use super::fake::FakeDocker;
use super::DockerRequester;
use crate::{Event, LogStream, Request, Requester};

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_700_000_000_000 + ms).unwrap()
}

async fn follow(fake: &Arc<FakeDocker>, function: &str) -> LogStream {
    let requester = DockerRequester::over(Arc::clone(fake) as _, "fake".into());
    let request = Request {
        follow: true,
        ..Request::new(function)
    };
    requester.query(request).await.expect("the query starts")
}

/// The next line's `instance text`, past the history mark.
async fn next_line(stream: &mut LogStream) -> String {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("a line within 10 s")
            .expect("the stream is open")
            .expect("no error");
        match next {
            Event::Message(m) => return format!("{} {}", m.instance, m.text),
            Event::HistoryEnd => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// The error the stream ends with, past the history mark; no line may come before it.
async fn broken_end(stream: &mut LogStream) -> crate::Error {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an end within 10 s")
            .expect("an error before the end");
        match next {
            Ok(Event::HistoryEnd) => continue,
            Ok(other) => panic!("{other:?} where the stream should break"),
            Err(e) => return e,
        }
    }
}

async fn lines(stream: &mut LogStream, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    for _ in 0..n {
        got.push(next_line(stream).await);
    }
    got
}

#[tokio::test]
async fn a_broken_stream_of_a_running_container_resumes_at_its_last_nanosecond() {
    let fake = Arc::new(FakeDocker::default());
    fake.add("a", "f");
    fake.add("b", "f");
    fake.write("a", at(1), "one");
    let mut stream = follow(&fake, "f").await;
    assert_eq!(lines(&mut stream, 1).await, ["a one"]);

    // Two replicas write at once; then a's stream breaks between two lines of the same
    // nanosecond, and the rest of that nanosecond comes after.
    fake.write("a", at(5), "five-a");
    fake.write("b", at(5), "b-five");
    let mut got = lines(&mut stream, 2).await;
    fake.break_follows("a");
    fake.write("a", at(5), "five-b");
    fake.write("a", at(6), "six");
    fake.write("b", at(6), "b-six");
    got.extend(lines(&mut stream, 3).await);
    got.sort();
    assert_eq!(
        got,
        ["a five-a", "a five-b", "a six", "b b-five", "b b-six"]
    );

    // Followed from the last line of history, reopened from the last line sent: each
    // from that line's own nanosecond, not a second before.
    let opened = fake
        .log_calls()
        .into_iter()
        .filter(|(id, o)| id == "a" && o.follow);
    let sinces: Vec<_> = opened.map(|(_, o)| o.since).collect();
    assert_eq!(sinces, [Some(at(1)), Some(at(5))]);
}

#[tokio::test]
async fn a_replica_that_starts_is_followed_from_its_first_line_once() {
    let fake = Arc::new(FakeDocker::default());
    fake.add("a", "f");
    fake.add("other", "g");
    let mut stream = follow(&fake, "f").await;
    fake.add("c", "f");
    fake.write("c", at(1), "first");
    fake.start("c");
    // A second start of a container already followed changes nothing.
    fake.start("c");
    fake.write("c", at(2), "second");
    fake.write("a", at(3), "a-third");
    // Each replica's lines in its own order; the two replicas interleave as they come.
    let got = lines(&mut stream, 3).await;
    let of_c: Vec<_> = got.iter().filter(|l| l.starts_with("c ")).collect();
    assert_eq!(of_c, ["c first", "c second"]);
    assert!(got.contains(&"a a-third".to_owned()), "{got:?}");
    let opened = fake
        .log_calls()
        .into_iter()
        .filter(|(id, o)| id == "c" && o.follow);
    assert_eq!(opened.count(), 1);
}

#[tokio::test]
async fn an_event_stream_that_ends_is_subscribed_again_and_replays_what_it_missed() {
    let fake = Arc::new(FakeDocker::default());
    fake.add("a", "f");
    let mut stream = follow(&fake, "f").await;
    fake.write("a", at(1), "before");
    assert_eq!(lines(&mut stream, 1).await, ["a before"]);
    // The event stream ends; a replica starts before the backend is back.
    fake.end_events();
    fake.add("d", "f");
    fake.write("d", at(2), "missed start");
    fake.start("d");
    assert_eq!(lines(&mut stream, 1).await, ["d missed start"]);
    let subscriptions = fake.subscriptions();
    assert_eq!(subscriptions.len(), 2, "{subscriptions:?}");
    assert!(subscriptions[0].is_none() && subscriptions[1].is_some());
}

#[tokio::test]
async fn a_daemon_that_fails_while_following_breaks_the_stream() {
    let fake = Arc::new(FakeDocker::default());
    fake.add("a", "f");
    let mut stream = follow(&fake, "f").await;
    fake.write("a", at(1), "one");
    assert_eq!(lines(&mut stream, 1).await, ["a one"]);
    // The stream breaks and the daemon cannot say whether the container still runs.
    fake.fail_inspect();
    fake.break_follows("a");
    let end = tokio::time::timeout(Duration::from_secs(10), stream.next()).await;
    let error = end
        .expect("an end within 10 s")
        .expect("an item")
        .unwrap_err();
    assert!(error.to_string().contains("down"), "{error}");
}

#[tokio::test]
async fn a_running_container_whose_stream_keeps_ending_is_given_up_as_broken() {
    let fake = Arc::new(FakeDocker::default());
    fake.add("a", "f");
    fake.write("a", at(1), "one");
    fake.end_follows_at_once();
    let mut stream = follow(&fake, "f").await;
    assert_eq!(lines(&mut stream, 1).await, ["a one"]);
    // Each reopen replays the last line's nanosecond, which the cursor skips: nothing
    // comes twice, and the fourth end in a row is an error.
    let error = broken_end(&mut stream).await;
    assert!(error.to_string().contains("3 times in a row"), "{error}");
}
