//! The contract over real HTTP on 127.0.0.1, against a backend that ignores every
//! parameter: tail, since, instance, order, follow, deadline, disconnect, errors.

use crate::common;

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use common::*;
use faas_logs::server::LogHandler;
use faas_logs::{Capabilities, Error, Event};

#[tokio::test]
async fn tail_sends_the_newest_messages_in_timestamp_order() {
    let history = big_history(5_000);
    let (addr, _) = start(Scripted::new(history.clone())).await;
    let (response, mut lines) = get(addr, "/system/logs?name=f&tail=100").await;
    assert_eq!(response.status(), 200);
    let got = lines.messages().await;
    assert_eq!(got, newest(&history, 100));
}

#[tokio::test]
async fn a_tail_longer_than_history_sends_all_of_it_sorted() {
    let history = big_history(2_000);
    let (addr, _) = start(Scripted::new(history.clone())).await;
    let (_, mut lines) = get(addr, "/system/logs?name=f&tail=1000000").await;
    let got = lines.messages().await;
    assert_eq!(got.len(), history.len());
    assert_eq!(got, newest(&history, history.len()));
}

#[tokio::test]
async fn without_tail_every_message_comes_once_in_backend_order() {
    let history = big_history(20_000);
    let (addr, _) = start(Scripted::new(history.clone())).await;
    for query in ["", "&tail=-1", "&tail=0", "&tail="] {
        let (_, mut lines) = get(addr, &format!("/system/logs?name=f{query}")).await;
        assert_eq!(lines.messages().await, history, "{query}");
    }
}

#[tokio::test]
async fn since_drops_older_messages_in_every_accepted_form() {
    let history = big_history(1_000);
    let (addr, _) = start(Scripted::new(history.clone())).await;
    let cut = base() + chrono::Duration::milliseconds(1_500);
    let want: Vec<_> = history
        .iter()
        .filter(|m| m.timestamp >= cut)
        .cloned()
        .collect();
    assert!(!want.is_empty() && want.len() < history.len());
    let plus_two = cut
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
        .to_rfc3339_opts(SecondsFormat::Nanos, false);
    let forms = [
        cut.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        plus_two.replace('+', "%2B"),
        // An unescaped `+` arrives as a space; it is still understood.
        plus_two.clone(),
        format!("{}.{:09}", cut.timestamp(), cut.timestamp_subsec_nanos()),
    ];
    for since in forms {
        let (response, mut lines) = get(addr, &format!("/system/logs?name=f&since={since}")).await;
        assert_eq!(response.status(), 200, "{since}");
        assert_eq!(lines.messages().await, want, "{since}");
    }
}

#[tokio::test]
async fn since_as_a_duration_counts_back_from_now() {
    let now = Utc::now();
    let history: Vec<_> = [-600, -400, -200, -100, -10]
        .iter()
        .map(|s| {
            let mut m = message("f-a", 0, &format!("{s}s"));
            m.timestamp = now + chrono::Duration::seconds(*s);
            m
        })
        .collect();
    let (addr, _) = start(Scripted::new(history)).await;
    let (_, mut lines) = get(addr, "/system/logs?name=f&since=5m").await;
    assert_eq!(texts(&lines.messages().await), ["-200s", "-100s", "-10s"]);
    let (_, mut lines) = get(addr, "/system/logs?name=f&since=1m30s&tail=1").await;
    assert_eq!(texts(&lines.messages().await), ["-10s"]);
}

#[tokio::test]
async fn since_and_tail_intersect() {
    let history = big_history(1_000);
    let (addr, _) = start(Scripted::new(history.clone())).await;
    let cut = base() + chrono::Duration::milliseconds(2_000);
    let after: Vec<_> = history
        .iter()
        .filter(|m| m.timestamp >= cut)
        .cloned()
        .collect();
    let since = cut.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    let (_, mut lines) = get(addr, &format!("/system/logs?name=f&since={since}&tail=50")).await;
    assert_eq!(lines.messages().await, newest(&after, 50));
}

#[tokio::test]
async fn instance_sends_only_that_instances_messages() {
    let history = big_history(1_000);
    let (addr, _) = start(Scripted::new(history.clone())).await;
    let only_b: Vec<_> = history
        .iter()
        .filter(|m| m.instance == "f-b")
        .cloned()
        .collect();
    let (_, mut lines) = get(addr, "/system/logs?name=f&instance=f-b").await;
    assert_eq!(lines.messages().await, only_b);
    let (_, mut lines) = get(addr, "/system/logs?name=f&instance=f-b&tail=7").await;
    assert_eq!(lines.messages().await, newest(&only_b, 7));
    let (_, mut lines) = get(addr, "/system/logs?name=f&instance=f-z").await;
    assert_eq!(lines.messages().await, vec![]);
}

#[tokio::test]
async fn the_backend_receives_the_parsed_request() {
    let backend = std::sync::Arc::new(Scripted::new(vec![]));
    let addr = serve(LogHandler::from_arc(
        backend.clone(),
        Duration::from_secs(30),
    ))
    .await;
    let (_, mut lines) = get(
        addr,
        "/system/logs?name=f&namespace=team-a&instance=f-1&tail=3&since=1700000000.5&follow=0&color=red",
    )
    .await;
    lines.rest().await.unwrap();
    let request = backend.last_request.lock().unwrap().clone().unwrap();
    let want = faas_logs::Request {
        name: "f".into(),
        namespace: "team-a".into(),
        instance: "f-1".into(),
        since: chrono::DateTime::from_timestamp(1_700_000_000, 500_000_000),
        tail: Some(3),
        follow: false,
    };
    assert_eq!(request, want);
}

#[tokio::test]
async fn follow_sends_tail_of_history_then_live_messages_in_arrival_order() {
    let history = big_history(500);
    let (backend, live) = Scripted::new(history.clone()).marked().live();
    let (addr, _) = start(backend).await;
    let since = base().to_rfc3339();
    let (_, mut lines) = get(
        addr,
        &format!("/system/logs?name=f&follow=true&tail=3&since={since}"),
    )
    .await;
    for want in newest(&history, 3) {
        assert_eq!(lines.next_message().await, want);
    }
    // Live messages are passed on one at a time, as they come, whatever their timestamps.
    for (i, ms) in [50_000, 10, 60_000].into_iter().enumerate() {
        let m = message("f-c", ms, &format!("live {i}"));
        live.send(Ok(Event::Message(m.clone()))).unwrap();
        assert_eq!(lines.next_message().await, m);
    }
    // Live messages are filtered too.
    live.send(Ok(Event::Message(message("f-c", -10, "before since"))))
        .unwrap();
    drop(live);
    // The backend ended: so does the response, cleanly.
    assert_eq!(lines.rest().await.unwrap(), Vec::<String>::new());
}

#[tokio::test]
async fn a_backend_that_applies_tail_itself_has_its_history_passed_on_as_it_comes() {
    // Without the capability the handler would hold these until history ends (the mark
    // below), and the first reads would time out.
    let (backend, live) = Scripted::new(Vec::new()).exact().open().live();
    let (addr, _) = start(backend).await;
    let (_, mut lines) = get(addr, "/system/logs?name=f&tail=2&follow=true").await;
    for (i, ms) in [(0, 20), (1, 10)] {
        let m = message("f-a", ms, &format!("history {i}"));
        live.send(Ok(Event::Message(m.clone()))).unwrap();
        assert_eq!(lines.next_message().await, m, "in the backend's order");
    }
    live.send(Ok(Event::HistoryEnd)).unwrap();
    let m = message("f-a", 30, "live");
    live.send(Ok(Event::Message(m.clone()))).unwrap();
    assert_eq!(lines.next_message().await, m);
}

#[tokio::test]
async fn a_gap_is_a_visible_line_of_the_function_in_its_place_in_time() {
    let (mut backend, live) = Scripted::new(Vec::new()).open().live();
    backend.capabilities = Capabilities::NONE.with_marks_history_end();
    let (addr, _) = start(backend).await;
    let (_, mut lines) = get(
        addr,
        "/system/logs?name=f&namespace=openfaas-fn&instance=f-a&tail=2&follow=true",
    )
    .await;
    let gap = |lost, ms| Event::Gap {
        lost,
        timestamp: base() + chrono::Duration::milliseconds(ms),
    };
    let notice = |lost, ms| {
        let text = format!("[faas-logs] {lost} lines lost here: this reader fell behind the store");
        message("f-a", ms, &text)
    };
    // History: the gap is held with the tail and sorted by its timestamp.
    live.send(Ok(Event::Message(message("f-a", 0, "oldest"))))
        .unwrap();
    live.send(Ok(gap(900, 15))).unwrap();
    live.send(Ok(Event::Message(message("f-a", 10, "newer"))))
        .unwrap();
    live.send(Ok(Event::HistoryEnd)).unwrap();
    assert_eq!(lines.next_message().await, message("f-a", 10, "newer"));
    assert_eq!(lines.next_message().await, notice(900, 15));
    // Live: as it comes, carrying the request's function, namespace and instance.
    live.send(Ok(gap(3, 20))).unwrap();
    assert_eq!(lines.next_message().await, notice(3, 20));
}

#[tokio::test]
async fn follow_without_a_history_mark_ends_history_when_the_backend_goes_quiet() {
    let history = big_history(500);
    let (backend, live) = Scripted::new(history.clone()).live();
    let (addr, _) = start(backend.open()).await;
    let (_, mut lines) = get(addr, "/system/logs?name=f&follow=1&tail=2").await;
    for want in newest(&history, 2) {
        assert_eq!(lines.next_message().await, want);
    }
    let m = message("f-a", 90_000, "live after quiet");
    live.send(Ok(Event::Message(m.clone()))).unwrap();
    assert_eq!(lines.next_message().await, m);
}

#[tokio::test]
async fn follow_without_a_history_mark_ends_history_at_the_first_message_stamped_after_the_request()
{
    let history = big_history(200);
    let (backend, live) = Scripted::new(history.clone()).live();
    let mut fresh = message("f-b", 0, "written after the request");
    fresh.timestamp = Utc::now() + chrono::Duration::hours(1);
    live.send(Ok(Event::Message(fresh.clone()))).unwrap();
    // A quiet period that never comes: only the timestamp can end history here.
    let handler = LogHandler::new(backend.open(), Duration::from_secs(30))
        .with_history_quiet(Duration::from_secs(3600));
    let addr = serve(handler).await;
    let (_, mut lines) = get(addr, "/system/logs?name=f&follow=true&tail=3").await;
    for want in newest(&history, 3) {
        assert_eq!(lines.next_message().await, want);
    }
    assert_eq!(lines.next_message().await, fresh);
}

#[tokio::test]
async fn a_history_message_after_the_quiet_guess_is_sent_as_live_not_lost() {
    let history = big_history(10);
    let (backend, live) = Scripted::new(history.clone()).live();
    let (addr, _) = start(backend.open()).await;
    let (_, mut lines) = get(addr, "/system/logs?name=f&follow=true&tail=1").await;
    assert_eq!(lines.next_message().await, newest(&history, 1)[0]);
    // The backend was quiet, so history was taken as complete; a late old line still comes.
    let late = message("f-a", 5, "late history");
    live.send(Ok(Event::Message(late.clone()))).unwrap();
    assert_eq!(lines.next_message().await, late);
}

#[tokio::test]
async fn without_follow_a_backend_that_streams_on_is_cut_at_its_first_live_message() {
    // This backend ignores follow=false: history, then a line written after the request,
    // then it stays open for ever. The response must still end, with history only.
    let history = big_history(300);
    let (backend, live) = Scripted::new(history.clone()).live();
    let mut fresh = message("f-a", 0, "written after the request");
    fresh.timestamp = Utc::now() + chrono::Duration::hours(1);
    live.send(Ok(Event::Message(fresh))).unwrap();
    let backend = backend.open();
    let dropped = backend.dropped.clone();
    let (addr, _) = start(backend).await;
    let (_, mut lines) = get(addr, "/system/logs?name=f&tail=4").await;
    assert_eq!(lines.messages().await, newest(&history, 4));
    dropped.wait().await;
}

#[tokio::test]
async fn without_follow_the_history_mark_ends_the_response() {
    let history = big_history(10);
    let backend = Scripted::new(history.clone()).marked().open();
    let dropped = backend.dropped.clone();
    let (addr, _) = start(backend).await;
    let (_, mut lines) = get(addr, "/system/logs?name=f").await;
    assert_eq!(lines.messages().await, history);
    dropped.wait().await;
}

#[tokio::test]
async fn a_backend_that_always_marks_history_is_trusted_over_timestamps() {
    // A line stamped after the request (a clock ahead of ours) inside the history: a
    // guess would end history there; the trusted mark keeps all of it.
    let mut history = big_history(5);
    let mut ahead = message("f-a", 0, "stamped by a clock that runs ahead");
    ahead.timestamp = Utc::now() + chrono::Duration::seconds(5);
    history.insert(7, ahead);
    let (addr, _) = start(Scripted::new(history.clone()).trusted().open()).await;
    let (_, mut lines) = get(addr, "/system/logs?name=f").await;
    assert_eq!(lines.messages().await, history);
    // The same backend without the promise is cut at that line.
    let (addr, _) = start(Scripted::new(history.clone()).marked().open()).await;
    let (_, mut lines) = get(addr, "/system/logs?name=f").await;
    assert_eq!(lines.messages().await, history[..7]);
}

#[tokio::test]
async fn the_deadline_ends_a_follow_stream_cleanly_and_drops_the_backend() {
    let history = big_history(100);
    let backend = Scripted::new(history.clone()).marked().open();
    let dropped = backend.dropped.clone();
    let handler = LogHandler::new(backend, Duration::from_millis(300));
    let addr = serve(handler).await;
    let started = std::time::Instant::now();
    let (_, mut lines) = get(addr, "/system/logs?name=f&follow=true").await;
    // A clean end: every line whole, then the final chunk (no error).
    let got = lines.rest().await.expect("a clean end at the deadline");
    assert_eq!(got.len(), history.len());
    assert!(started.elapsed() >= Duration::from_millis(300));
    dropped.wait().await;
}

#[tokio::test]
async fn the_deadline_aborts_an_unfinished_non_follow_response() {
    // History never ends (no mark, no live line, never closes): the response is incomplete.
    let backend = Scripted::new(big_history(10)).open();
    let handler = LogHandler::new(backend, Duration::from_millis(200));
    let addr = serve(handler).await;
    let (_, mut lines) = get(addr, "/system/logs?name=f&tail=5").await;
    assert!(lines.rest().await.is_err());
}

#[tokio::test]
async fn a_client_that_leaves_drops_the_backend_stream() {
    let backend = Scripted::new(big_history(10)).marked().open();
    let dropped = backend.dropped.clone();
    let (addr, _) = start(backend).await;
    let (_, mut lines) = get(addr, "/system/logs?name=f&follow=true").await;
    lines.next_message().await;
    assert!(!dropped.is_set());
    drop(lines); // closes the TCP connection
    dropped.wait().await;
}

#[tokio::test]
async fn a_backend_error_mid_stream_aborts_the_body() {
    let history = big_history(3);
    let (backend, live) = Scripted::new(history.clone()).marked().live();
    let (addr, _) = start(backend).await;
    let (response, mut lines) = get(addr, "/system/logs?name=f&follow=true").await;
    assert_eq!(response.status(), 200);
    for want in &history {
        assert_eq!(&lines.next_message().await, want);
    }
    live.send(Err(Error::other("disk on fire"))).unwrap();
    assert!(
        lines.next().await.is_err(),
        "a broken stream must not end cleanly"
    );
}

#[tokio::test]
async fn lines_sent_before_an_error_still_arrive() {
    // Ready messages and the error come in one burst: the lines go out, then the abort.
    let (backend, live) = Scripted::new(vec![]).marked().live();
    for i in 0..5 {
        live.send(Ok(Event::Message(message("f-a", i, &format!("{i}")))))
            .unwrap();
    }
    live.send(Err(Error::other("backend crashed"))).unwrap();
    let (addr, _) = start(backend).await;
    let (_, mut lines) = get(addr, "/system/logs?name=f&follow=true").await;
    for i in 0..5 {
        assert_eq!(lines.next_message().await.text, i.to_string());
    }
    assert!(lines.next().await.is_err());
}

#[tokio::test]
async fn headers_arrive_before_any_message() {
    let backend = Scripted::new(vec![]).marked().open();
    let (addr, _) = start(backend).await;
    let (response, _lines) = get(addr, "/system/logs?name=f&follow=true").await;
    // The backend has sent nothing, yet the head is here.
    assert_eq!(response.status(), 200);
    let h = response.headers();
    assert_eq!(h["content-type"], "application/x-ndjson");
    assert_eq!(h["cache-control"], "no-cache");
    assert_eq!(h["x-accel-buffering"], "no");
    assert!(h.get("connection").is_none());
    assert_eq!(h["transfer-encoding"], "chunked"); // chosen by hyper for HTTP/1.1
}

#[tokio::test]
async fn shutdown_ends_open_follow_streams_cleanly() {
    let backend = Scripted::new(big_history(2)).marked().open();
    let dropped = backend.dropped.clone();
    let (addr, handler) = start(backend).await;
    let (_, mut lines) = get(addr, "/system/logs?name=f&follow=true").await;
    for _ in 0..6 {
        lines.next_message().await;
    }
    handler.shutdown();
    assert_eq!(lines.rest().await.unwrap(), Vec::<String>::new());
    dropped.wait().await;
    let (response, _) = get(addr, "/system/logs?name=f").await;
    assert_eq!(response.status(), 503);
}

#[tokio::test]
async fn text_is_one_line_without_its_newline() {
    let history = vec![
        message("f-a", 0, "unix\n"),
        message("f-a", 1, "dos\r\n"),
        message("f-a", 2, "a\nb"),
    ];
    let (addr, _) = start(Scripted::new(history)).await;
    let (_, mut lines) = get(addr, "/system/logs?name=f").await;
    assert_eq!(texts(&lines.messages().await), ["unix", "dos", "a\nb"]);
}

#[tokio::test]
async fn a_backend_that_answers_every_function_is_held_to_the_one_asked_for() {
    // Lines of every function and namespace, whatever is asked: the handler keeps the
    // requested function's, in the requested namespace (the provider's default when the
    // request names none), and fills in a missing namespace.
    let line = |name: &str, namespace: &str, ms: i64| {
        message("f-1", ms, &format!("{name} in {namespace:?}"))
            .with_name(name)
            .with_namespace(namespace)
    };
    let all = vec![
        line("f", "openfaas-fn", 0),
        line("f", "team-b", 1),
        line("f", "", 2),
        line("g", "team-b", 3),
        line("g", "openfaas-fn", 4),
        line("f", "team-a", 5),
    ];
    let texts_of = |got: &[faas_logs::Message]| {
        got.iter()
            .map(|m| format!("{} {} {}", m.name, m.namespace, m.text))
            .collect::<Vec<_>>()
    };
    let (addr, _) = start(Scripted::new(all.clone())).await;
    let (_, mut lines) = get(addr, "/system/logs?name=f&namespace=team-b").await;
    assert_eq!(
        texts_of(&lines.messages().await),
        [r#"f team-b f in "team-b""#, r#"f team-b f in """#]
    );
    let (_, mut lines) = get(addr, "/system/logs?name=f").await;
    assert_eq!(
        texts_of(&lines.messages().await),
        [
            r#"f openfaas-fn f in "openfaas-fn""#,
            r#"f openfaas-fn f in """#
        ]
    );
    // A provider whose default namespace is another.
    let handler = LogHandler::new(Scripted::new(all), Duration::from_secs(5))
        .with_default_namespace("team-a");
    let addr = serve(handler).await;
    let (_, mut lines) = get(addr, "/system/logs?name=f&follow=false").await;
    assert_eq!(
        texts_of(&lines.messages().await),
        [r#"f team-a f in """#, r#"f team-a f in "team-a""#]
    );
}
