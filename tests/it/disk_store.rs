//! The store on disk (`DiskStore`): the in-memory store's answers over real HTTP, the
//! switch from history to live under concurrent writers, torn and damaged records, the
//! format's refusals, and retention under readers.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use common::*;
use faas_logs::server::LogHandler;
use faas_logs::store::{DiskConfig, DiskStore, Fsync, LogStore, StoreLimits};
use faas_logs::{Batch, Event, LogSink, Message, Request};
use futures::StreamExt;

/// A fresh folder under the system's temporary one, removed when dropped.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    pub(crate) fn new(what: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("faas-logs-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Small segments, so that a few hundred lines span many of them.
fn small() -> DiskConfig {
    DiskConfig::default()
        .with_fsync(Fsync::Never)
        .with_segment_bytes(4096)
}

async fn serve_disk(store: &DiskStore) -> std::net::SocketAddr {
    serve(LogHandler::new(store.clone(), Duration::from_secs(60))).await
}

/// Every line of function `f`, read whole over HTTP.
async fn all_lines(addr: std::net::SocketAddr, query: &str) -> Vec<Message> {
    let (response, mut lines) = get(addr, &format!("/system/logs?name=f{query}")).await;
    assert_eq!(response.status(), 200);
    lines.messages().await
}

/// The segment files of function `f` in `dir`, oldest first.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let folder = dir.join("functions/openfaas-fn/f");
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Line `i` of `f`, from one of three instances, `i` milliseconds after [`base`]; every
/// line is the same size on disk.
fn line(i: i64) -> Message {
    message(&format!("f-{}", i % 3), i, &format!("line {i:04}"))
}

/// Lines 0 to `n` (excluded).
fn history(n: i64) -> Vec<Message> {
    (0..n).map(line).collect()
}

async fn write_all(sink: &(impl LogSink + ?Sized), messages: &[Message]) {
    for chunk in messages.chunks(7) {
        for outcome in sink.store(Batch::new(chunk.to_vec())).await {
            outcome.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_since_and_instance_answer_as_the_memory_store_does_across_segments_and_restarts() {
    let scratch = Scratch::new("disk-same");
    let memory = LogStore::with_limits(StoreLimits {
        max_messages: 1 << 20,
        max_bytes: 1 << 30,
        ..StoreLimits::default()
    });
    let lines = history(600);
    write_all(&memory, &lines).await;
    let memory_addr = serve(LogHandler::new(memory.clone(), Duration::from_secs(60))).await;
    let queries = |lines: &[Message]| {
        let at = |i: usize| {
            lines[i]
                .timestamp
                .to_rfc3339_opts(SecondsFormat::Nanos, true)
        };
        vec![
            String::new(),
            "&tail=1".into(),
            "&tail=5".into(),
            "&tail=250".into(),
            "&tail=10000".into(),
            "&instance=f-1&tail=7".into(),
            "&instance=f-2".into(),
            format!("&since={}", at(0)),
            format!("&since={}", at(333)),
            format!("&since={}&tail=3", at(100)),
            format!("&since={}&tail=300", at(500)),
            format!("&since={}&instance=f-0&tail=4", at(590)),
            "&since=2099-01-01T00:00:00Z".into(),
        ]
    };
    let store = DiskStore::open(&scratch.0, small()).unwrap();
    write_all(&store, &lines).await;
    assert!(segments(&scratch.0).len() > 5, "the lines span segments");
    // A copy of the folder, taken while the store is open, is a crash's leftovers:
    // opened, it answers the same.
    let copy = Scratch::new("disk-same-copy");
    copy_dir(&scratch.0, &copy.0);
    std::fs::remove_file(copy.0.join("lock")).unwrap();
    let reopened = DiskStore::open(&copy.0, small()).unwrap();
    for store in [store, reopened] {
        let addr = serve_disk(&store).await;
        for query in queries(&lines) {
            assert_eq!(
                all_lines(addr, &query).await,
                all_lines(memory_addr, &query).await,
                "query {query:?} ({})",
                store.path().display()
            );
        }
    }

    // Out of time order: the newest by time are found wherever they were written.
    let scratch = Scratch::new("disk-disorder");
    let store = DiskStore::open(&scratch.0, small()).unwrap();
    let memory = LogStore::new();
    let mut shuffled = history(300);
    shuffled.reverse();
    shuffled.swap(10, 200);
    write_all(&store, &shuffled).await;
    write_all(&memory, &shuffled).await;
    let (addr, memory_addr) = (
        serve_disk(&store).await,
        serve(LogHandler::new(memory, Duration::from_secs(60))).await,
    );
    for query in queries(&lines) {
        if query.contains("tail") {
            assert_eq!(
                all_lines(addr, &query).await,
                all_lines(memory_addr, &query).await,
                "query {query:?} out of order"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_that_join_while_four_writers_write_see_every_line_once_in_order() {
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 400;
    let scratch = Scratch::new("disk-switch");
    let store = DiskStore::open(&scratch.0, small().with_fsync(Fsync::Batch)).unwrap();
    store.register("", "f").unwrap();
    let addr = serve_disk(&store).await;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in (0..PER_WRITER).step_by(4) {
                    let batch = (i..i + 4)
                        .map(|i| {
                            Message::new("f", Utc::now(), format!("{w}:{i}"))
                                .with_instance(format!("f-{w}"))
                        })
                        .collect();
                    for outcome in store.store(Batch::new(batch)).await {
                        outcome.unwrap();
                    }
                }
            })
        })
        .collect();
    // Followers join as the writers go: each one's history and live lines together
    // must be every line, each once, each writer's in order.
    let mut followers = Vec::new();
    for _ in 0..6 {
        let (_, lines) = get(addr, "/system/logs?name=f&follow=true").await;
        followers.push(lines);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for writer in writers {
        writer.await.unwrap();
    }
    for mut lines in followers {
        let mut next = [0usize; WRITERS];
        let mut seen = 0;
        while seen < WRITERS * PER_WRITER {
            let m = lines.next_message().await;
            let (w, i) = m.text.split_once(':').unwrap();
            let (w, i): (usize, usize) = (w.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next[w], "writer {w}'s lines once each, in order");
            next[w] += 1;
            seen += 1;
        }
    }
}

/// The lines a store in `dir` holds for `f`, read with the library's reader.
async fn stored(dir: &Path) -> (Vec<Message>, Vec<u64>) {
    let store = DiskStore::open(dir, small()).unwrap();
    let mut reader = store.read(&Request::new("f")).unwrap();
    let (mut messages, mut gaps) = (Vec::new(), Vec::new());
    while let Some(event) = reader.next().await {
        match event.unwrap() {
            Event::Message(m) => messages.push(m),
            Event::Gap { lost, .. } => gaps.push(lost),
            _ => {}
        }
    }
    (messages, gaps)
}

#[tokio::test]
async fn a_record_torn_at_any_byte_is_cut_off_reported_and_the_store_goes_on() {
    let scratch = Scratch::new("disk-torn");
    let lines = history(40);
    {
        let store = DiskStore::open(&scratch.0, DiskConfig::default()).unwrap();
        write_all(&store, &lines).await;
    }
    let segment = segments(&scratch.0).pop().unwrap();
    let full = std::fs::metadata(&segment).unwrap().len();
    // Where the last two records start: each line here is the same size.
    let record = (full - 16) / 40;
    for cut in (full - 2 * record)..full {
        let copy = Scratch::new("disk-torn-copy");
        copy_dir(&scratch.0, &copy.0);
        let torn = copy.0.join(segment.strip_prefix(&scratch.0).unwrap());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&torn)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let whole = ((cut - 16) / record) as usize;
        {
            let store = DiskStore::open(&copy.0, small()).unwrap();
            let report = store.recovery();
            let torn_bytes = cut - 16 - whole as u64 * record;
            assert_eq!(
                report.cut.iter().map(|c| c.bytes).sum::<u64>(),
                torn_bytes,
                "cut at {cut}: the torn record is cut off and reported"
            );
            // The store goes on after the cut: a new line follows the whole ones.
            store
                .write(Message::new("f", Utc::now(), "after").with_instance("f-9"))
                .await
                .unwrap();
        }
        let (messages, gaps) = stored(&copy.0).await;
        assert!(
            gaps.is_empty(),
            "cut at {cut}: no gap, the lost line was never whole"
        );
        assert_eq!(messages.len(), whole + 1, "cut at {cut}");
        assert_eq!(messages[..whole], lines[..whole], "cut at {cut}");
        assert_eq!(messages[whole].text, "after");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_byte_anywhere_costs_its_line_alone_with_a_gap_line_where_it_was() {
    let scratch = Scratch::new("disk-flip");
    let lines = history(1000);
    {
        let store = DiskStore::open(&scratch.0, small()).unwrap();
        write_all(&store, &lines).await;
    }
    let files = segments(&scratch.0);
    assert!(files.len() > 3);
    // One byte in a sealed segment's middle record (its text), one in the active
    // segment's first record's length, and one in another sealed segment's checksum.
    let flip = |path: &Path, at: u64| {
        let mut bytes = std::fs::read(path).unwrap();
        bytes[at as usize] ^= 0x5a;
        std::fs::write(path, bytes).unwrap();
    };
    let record = record_size(&files[1]);
    flip(&files[1], 16 + record * 5 + record - 3); // text of its 6th line
    flip(files.last().unwrap(), 16); // length of the active segment's first line
    flip(&files[3], 16 + record * 2 + 5); // checksum of its 3rd line
    let store = DiskStore::open(&scratch.0, small()).unwrap();
    assert_eq!(
        store.recovery().damaged.len(),
        1,
        "the active segment is read through at start: its damage is reported: {:?}",
        store.recovery()
    );
    let addr = serve_disk(&store).await;
    let answer = all_lines(addr, "").await;
    let gaps: Vec<&Message> = answer
        .iter()
        .filter(|m| m.text.starts_with("[faas-logs] 1 lines lost here"))
        .collect();
    assert_eq!(gaps.len(), 3, "one gap line per damaged record");
    let kept: Vec<&Message> = answer
        .iter()
        .filter(|m| !m.text.starts_with("[faas-logs]"))
        .collect();
    assert_eq!(kept.len(), lines.len() - 3, "every other line is served");
    let expected: Vec<&Message> = lines.iter().filter(|m| kept.contains(m)).collect();
    assert_eq!(kept, expected, "in order");
    // tail and since around the damage still answer.
    let tail = all_lines(addr, "&tail=5").await;
    assert_eq!(tail.len(), 5);
    assert_eq!(tail[4], lines[999]);
}

/// The size of each record of `path`, whose lines are all alike in size.
fn record_size(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    u64::from(u32::from_le_bytes(bytes[16..20].try_into().unwrap())) + 8
}

#[tokio::test]
async fn another_format_another_program_and_a_second_process_are_refused_in_sentences() {
    let scratch = Scratch::new("disk-refuse");
    {
        let store = DiskStore::open(&scratch.0, small()).unwrap();
        write_all(&store, &history(3)).await;
        let again = DiskStore::open(&scratch.0, small())
            .unwrap_err()
            .to_string();
        assert!(
            again.contains("in use by another faas-logs"),
            "a second opener is refused: {again}"
        );
    }
    let segment = segments(&scratch.0).pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[8] = 2; // format number 2
    std::fs::write(&segment, &bytes).unwrap();
    let e = DiskStore::open(&scratch.0, small())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("format 2") && e.contains("reads format 1"),
        "a newer format is refused, not misread: {e}"
    );
    std::fs::write(
        scratch.0.join("faas-logs-store"),
        "faas-logs store format 7\n",
    )
    .unwrap();
    let e = DiskStore::open(&scratch.0, small())
        .unwrap_err()
        .to_string();
    assert!(e.contains("another format"), "{e}");

    let foreign = Scratch::new("disk-foreign");
    std::fs::write(foreign.0.join("notes.txt"), "mine").unwrap();
    let e = DiskStore::open(&foreign.0, small())
        .unwrap_err()
        .to_string();
    assert!(e.contains("choose an empty folder"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_whole_oldest_segments_and_readers_behind_it_are_told_exactly() {
    const TOTAL: usize = 2_000;
    let scratch = Scratch::new("disk-retention");
    let config = small().with_max_total_bytes(16 * 1024);
    let store = DiskStore::open(&scratch.0, config).unwrap();
    let addr = serve_disk(&store).await;
    write_all(&store, &history(100)).await;
    // A follower that reads one line and stalls, and one over HTTP that keeps up.
    let follow = Request {
        follow: true,
        ..Request::new("f")
    };
    let mut stalled = store.read(&follow).unwrap();
    let Some(Ok(Event::Message(first))) = stalled.next().await else {
        panic!("the first line");
    };
    assert_eq!(first.text, "line 0000");
    let (_, mut live) = get(addr, "/system/logs?name=f&follow=true&tail=1").await;
    assert_eq!(live.next_message().await.text, "line 0099");
    let more: Vec<Message> = (100..TOTAL as i64).map(line).collect();
    for chunk in more.chunks(20) {
        write_all(&store, chunk).await;
        for expected in chunk {
            assert_eq!(
                live.next_message().await.text,
                expected.text,
                "the live follower loses nothing"
            );
        }
    }
    // Retention runs on its own thread: wait for it to bring the store under its bound.
    within(async {
        while store.total_bytes() > 16 * 1024 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let kept = store.lines("", "f").unwrap();
    assert!(kept < TOTAL as u64, "old segments were deleted");

    // History now starts at the oldest segment kept.
    let history = all_lines(addr, "").await;
    assert_eq!(history.len() as u64, kept);
    assert_eq!(history.last().unwrap().text, "line 1999");

    // The stalled follower: each line once, in order, and every line it missed counted
    // by the gap just before the line it next gets, which is the oldest line kept.
    let (mut received, mut lost, mut pending, mut last) = (1usize, 0usize, 0usize, 0usize);
    let mut after_gap = Vec::new();
    while last < TOTAL - 1 {
        match stalled.next().await.unwrap().unwrap() {
            Event::Gap { lost: n, .. } => pending += n as usize,
            Event::Message(m) => {
                let i: usize = m.text.strip_prefix("line ").unwrap().parse().unwrap();
                assert_eq!(
                    i,
                    last + 1 + pending,
                    "the gap counts exactly the lines skipped"
                );
                if pending > 0 {
                    after_gap.push(m.text.clone());
                }
                lost += pending;
                pending = 0;
                last = i;
                received += 1;
            }
            _ => {}
        }
    }
    assert!(lost > 0, "the stalled follower was behind retention");
    assert_eq!(received + lost, TOTAL);
    assert_eq!(
        after_gap,
        [history[0].text.clone()],
        "one gap, up to the oldest line kept"
    );
}

#[tokio::test]
async fn age_and_per_function_bounds_delete_the_oldest_segments() {
    let scratch = Scratch::new("disk-age");
    let store =
        DiskStore::open(&scratch.0, small().with_max_function_bytes(Some(8 * 1024))).unwrap();
    let mut other = history(400);
    for m in &mut other {
        m.name = "g".into();
    }
    write_all(&store, &history(400)).await;
    write_all(&store, &other).await;
    within(async {
        while store.lines("", "f").unwrap() == 400 || store.lines("", "g").unwrap() == 400 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    drop(store);
    let bytes: u64 = segments(&scratch.0)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(bytes <= 8 * 1024 + 4096, "f holds {bytes} bytes");

    let store = DiskStore::open(
        &scratch.0,
        small().with_max_age(Some(Duration::from_millis(200))),
    )
    .unwrap();
    within(async {
        while store.lines("", "f") != Some(0) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(
        store.function_names().len(),
        2,
        "the functions are still known, with no lines"
    );
    let reader = store.read(&Request::new("f")).unwrap();
    let events: Vec<_> = reader.collect().await;
    assert_eq!(events.len(), 1, "only the history mark: {events:?}");
}

#[tokio::test]
async fn one_batch_of_several_functions_and_namespaces_is_stored_each_in_its_own() {
    let scratch = Scratch::new("disk-mixed");
    let store = DiskStore::open(&scratch.0, small()).unwrap();
    let at = |ms| base() + chrono::Duration::milliseconds(ms);
    let batch = vec![
        Message::new("f", at(0), "f default 1"),
        Message::new("f", at(1), "f in team-b").with_namespace("team-b"),
        Message::new("g", at(2), "g default"),
        Message::new("..", at(3), "not a function"),
        Message::new("f", at(4), "f default 2").with_namespace("openfaas-fn"),
        Message::new("f", at(5), "f default 3"),
    ];
    let outcomes = store.store(Batch::new(batch)).await;
    let refused: Vec<bool> = outcomes.iter().map(Result::is_err).collect();
    assert_eq!(refused, [false, false, false, true, false, false]);
    assert_eq!(
        texts_of(&store, "", "f").await,
        ["f default 1", "f default 2", "f default 3"]
    );
    assert_eq!(texts_of(&store, "team-b", "f").await, ["f in team-b"]);
    assert_eq!(texts_of(&store, "", "g").await, ["g default"]);
    assert_eq!(store.function_names().len(), 3);
}

/// The texts of function `name` in `namespace` (empty: the default), checking that each
/// line says which namespace it is of.
async fn texts_of(store: &DiskStore, namespace: &str, name: &str) -> Vec<String> {
    let request = Request {
        namespace: namespace.into(),
        ..Request::new(name)
    };
    let mut reader = store.read(&request).unwrap();
    let expected = if namespace.is_empty() {
        "openfaas-fn"
    } else {
        namespace
    };
    let mut texts = Vec::new();
    while let Some(event) = reader.next().await {
        if let Event::Message(m) = event.unwrap() {
            assert_eq!(&*m.namespace, expected);
            texts.push(m.text);
        }
    }
    texts
}

#[tokio::test]
async fn lines_stamped_on_arrival_are_stamped_again_as_written_so_since_misses_none() {
    let scratch = Scratch::new("disk-stamp");
    let store = DiskStore::open(&scratch.0, small()).unwrap();
    // Two pushes without times: the one stamped first on arrival is written second, as
    // concurrent pushes can be. A line with a time of its own keeps it.
    let arrived = Utc::now();
    let push = |stamp: chrono::DateTime<Utc>, text: &str| {
        let mut batch = Batch::new(vec![Message::new("f", stamp, text)]);
        batch.stamped_on_arrival = vec![0];
        batch
    };
    let own = base();
    let outcomes = store
        .store(push(
            arrived + chrono::Duration::milliseconds(5),
            "second to arrive",
        ))
        .await;
    assert!(outcomes.iter().all(Result::is_ok));
    let outcomes = store.store(push(arrived, "first to arrive")).await;
    assert!(outcomes.iter().all(Result::is_ok));
    store
        .write(Message::new("f", own, "its own time"))
        .await
        .unwrap();
    let mut reader = store.read(&Request::new("f")).unwrap();
    let mut lines = Vec::new();
    while let Some(event) = reader.next().await {
        if let Event::Message(m) = event.unwrap() {
            lines.push(m);
        }
    }
    let texts: Vec<&str> = lines.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        texts,
        ["second to arrive", "first to arrive", "its own time"]
    );
    assert!(
        lines[0].timestamp <= lines[1].timestamp,
        "stamped in the order written"
    );
    assert_eq!(lines[2].timestamp, own, "a line's own time is kept");
    // A follower that saw the first line written resumes from its time and gets the
    // second.
    let since = Request {
        since: Some(lines[0].timestamp),
        ..Request::new("f")
    };
    let mut reader = store.read(&since).unwrap();
    let mut resumed = Vec::new();
    while let Some(event) = reader.next().await {
        if let Event::Message(m) = event.unwrap() {
            resumed.push(m.text);
        }
    }
    assert!(
        resumed.contains(&"first to arrive".to_owned()),
        "{resumed:?}"
    );
}
