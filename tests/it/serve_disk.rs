//! `faas-logs serve --data-dir`, as an operator runs it: killed with `kill -9` while
//! clients push and a command writes, restarted in a loop, and out of disk space for real
//! (a small tmpfs).

use crate::common;
use crate::disk_store::Scratch;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use faas_logs::Message;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// `faas-logs serve` on a free port, its logs in `dir`, with `args`.
fn provider(dir: &std::path::Path, args: &[&str]) -> Provider {
    let mut all = vec![
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    Provider::start("memory", &all)
}

/// Pushes `body`; the status and report, or `None` when the connection broke first (the
/// provider was killed).
async fn try_push(addr: SocketAddr, body: String) -> Option<(u16, String)> {
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .ok()?;
    tokio::spawn(conn);
    let request = hyper::Request::post("/system/logs/push")
        .header("host", "127.0.0.1")
        .body(Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let response = within(sender.send_request(request)).await.ok()?;
    let status = response.status().as_u16();
    let body = within(response.into_body().collect())
        .await
        .ok()?
        .to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The body of writer `w`'s batch `batch`: ten lines of function `f`, instance `w-W`.
fn batch_body(w: usize, batch: usize) -> String {
    (batch * 10..batch * 10 + 10)
        .map(|i| format!("{{\"name\":\"f\",\"instance\":\"w-{w}\",\"text\":\"w-{w} line {i}\"}}\n"))
        .collect()
}

/// Writer `w`: pushes its batches one after another until a push is not answered; returns
/// how many were answered 200.
fn spawn_writer(
    addr: SocketAddr,
    w: usize,
    progress: tokio::sync::watch::Sender<usize>,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut acknowledged = 0;
        loop {
            match try_push(addr, batch_body(w, acknowledged)).await {
                Some((200, _)) => {
                    acknowledged += 1;
                    progress.send_modify(|n| *n += 1);
                }
                Some((status, report)) => panic!("a push answered {status}: {report}"),
                None => return acknowledged,
            }
        }
    })
}

/// Every line of `name` the provider at `addr` holds, oldest first (none for a function
/// it does not know).
async fn everything(addr: SocketAddr, name: &str) -> Vec<Message> {
    let (response, mut lines) = get(addr, &format!("/system/logs?name={name}")).await;
    if response.status() == 404 {
        return Vec::new();
    }
    assert_eq!(response.status(), 200);
    lines.messages().await
}

fn texts_of(messages: &[Message], instance: &str) -> Vec<String> {
    messages
        .iter()
        .filter(|m| &*m.instance == instance)
        .map(|m| m.text.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_four_clients_push_and_a_command_writes_every_acknowledged_line_is_there_once()
{
    for fsync in ["always", "batch"] {
        let scratch = Scratch::new("serve-kill");
        let mut first = provider(
            &scratch.0,
            &[
                "--fsync",
                fsync,
                "--segment-bytes",
                "65536",
                "--run",
                "cap=i=0; while true; do echo \"c $i\"; i=$((i+1)); done",
            ],
        );
        let addr = first.addr;
        let (progress, _) = tokio::sync::watch::channel(0usize);
        let mut seen = progress.subscribe();
        let writers: Vec<_> = (0..4)
            .map(|w| spawn_writer(addr, w, progress.clone()))
            .collect();
        // A follower of the function from its first line (once the function exists).
        within(seen.wait_for(|n| *n >= 4)).await.unwrap();
        let (_, mut follower) = get(addr, "/system/logs?name=f&follow=true").await;
        let (_, mut captured) = get(addr, "/system/logs?name=cap&follow=true").await;
        let mut followed = Vec::new();
        while followed.len() < 50 {
            followed.push(follower.next_message().await);
        }
        captured.next_message().await;
        within(seen.wait_for(|n| *n >= 200)).await.unwrap();
        first.child.kill().unwrap(); // SIGKILL
        first.child.wait().unwrap();
        let mut acknowledged = Vec::new();
        for writer in writers {
            acknowledged.push(within(writer).await.unwrap());
        }
        // The follower read on until the provider died.
        while let Ok(Some(line)) = follower.next().await {
            followed.push(serde_json::from_str(&line).unwrap());
        }

        let second = provider(&scratch.0, &["--fsync", fsync, "--run", "idle=true"]);
        let stored = everything(second.addr, "f").await;
        for (w, &batches) in acknowledged.iter().enumerate() {
            let instance = format!("w-{w}");
            let got = texts_of(&stored, &instance);
            // Every acknowledged batch; the one in flight at the kill whole or not at all.
            assert!(
                got.len() == batches * 10 || got.len() == batches * 10 + 10,
                "{fsync}: {instance} has {} lines for {batches} acknowledged batches",
                got.len()
            );
            let expected: Vec<String> = (0..got.len())
                .map(|i| format!("{instance} line {i}"))
                .collect();
            assert_eq!(got, expected, "{fsync}: {instance} once each, in order");
        }
        let capture = everything(second.addr, "cap").await;
        assert!(!capture.is_empty());
        let expected: Vec<String> = (0..capture.len()).map(|i| format!("c {i}")).collect();
        let got: Vec<String> = capture.into_iter().map(|m| m.text).collect();
        assert_eq!(
            got, expected,
            "{fsync}: the command's lines, none lost or repeated"
        );

        // The follower resumes from the last timestamp it saw: with what it saw before,
        // that is the function's whole history, no line twice and none missing, though
        // four writers pushed at once (the store stamps their lines as it writes them).
        let last = followed.last().unwrap().timestamp;
        let since = last.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let (_, mut resumed) =
            get(second.addr, &format!("/system/logs?name=f&since={since}")).await;
        let resumed = resumed.messages().await;
        let mut joined = followed.clone();
        let already: Vec<&Message> = followed.iter().filter(|m| m.timestamp == last).collect();
        joined.extend(resumed.into_iter().filter(|m| !already.contains(&m)));
        assert_eq!(joined.len(), stored.len(), "{fsync}: the resumed follower");
        assert!(joined == stored, "{fsync}: the resumed follower");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_kills_and_restarts_under_two_writers_leave_the_store_whole() {
    const ROUNDS: usize = 100;
    let scratch = Scratch::new("serve-restarts");
    let mut stored_batches = [0usize; 2];
    for round in 0..=ROUNDS {
        let p = provider(
            &scratch.0,
            &["--segment-bytes", "4096", "--run", "idle=true"],
        );
        // After each kill: every acknowledged batch is there, once, in order, and a
        // batch in flight at the kill is whole or absent.
        let stored = everything(p.addr, "f").await;
        for (w, count) in stored_batches.iter_mut().enumerate() {
            let instance = format!("w-{w}");
            let got = texts_of(&stored, &instance);
            assert!(
                got.len() >= *count * 10,
                "round {round}: {instance} lost acknowledged lines"
            );
            assert_eq!(
                got.len() % 10,
                0,
                "round {round}: {instance} has half a batch"
            );
            let expected: Vec<String> = (0..got.len())
                .map(|i| format!("{instance} line {i}"))
                .collect();
            assert_eq!(got, expected, "round {round}: {instance}");
            // Each writer goes on from what is stored.
            *count = got.len() / 10;
        }
        if round == ROUNDS {
            break;
        }
        let (progress, _) = tokio::sync::watch::channel(0usize);
        let mut seen = progress.subscribe();
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let (addr, from, progress) = (p.addr, stored_batches[w], progress.clone());
                tokio::spawn(async move {
                    let mut n = from;
                    while let Some((200, _)) = try_push(addr, batch_body(w, n)).await {
                        n += 1;
                        progress.send_modify(|c| *c += 1);
                    }
                    n
                })
            })
            .collect();
        within(seen.wait_for(|n| *n >= 4 + round % 5))
            .await
            .unwrap();
        drop(p); // SIGKILL, whatever is in flight
        for (w, writer) in writers.into_iter().enumerate() {
            stored_batches[w] = within(writer).await.unwrap();
        }
    }
    assert!(stored_batches.iter().all(|&n| n >= 200));
}

/// A tmpfs of `size` mounted on a fresh folder, unmounted when dropped; `None` when this
/// machine cannot mount one (not root), which CI treats as a failure.
struct SmallDisk {
    scratch: Scratch,
}

impl SmallDisk {
    fn mount(test: &str, size: &str) -> Option<SmallDisk> {
        let scratch = Scratch::new("small-disk");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&scratch.0)
            .status()
            .is_ok_and(|s| s.success());
        needs(
            test,
            mounted,
            "a tmpfs cannot be mounted here (root is needed)",
        )
        .then_some(SmallDisk { scratch })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.scratch.0)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_507_stores_nothing_half_and_takes_writes_again_once_freed() {
    let Some(disk) = SmallDisk::mount("a_full_disk_answers_507", "1m") else {
        return;
    };
    let filler = disk.scratch.0.join("filler");
    std::fs::write(&filler, vec![0u8; 768 * 1024]).unwrap();
    let dir = disk.scratch.0.join("store");
    let log = Scratch::new("small-disk-log");
    let stderr = std::fs::File::create(log.0.join("stderr")).unwrap();
    let p = Provider::start_with(
        "memory",
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.to_str().unwrap(),
            "--run",
            "cap=i=0; while true; do echo \"captured line $i\"; i=$((i+1)); sleep 0.01; done",
        ],
        &[],
        stderr.into(),
    );
    // Pushes from two clients until the disk is full.
    let mut acknowledged: HashMap<usize, usize> = HashMap::new();
    let mut full = None;
    'filling: for batch in 0.. {
        for w in 0..2 {
            let (status, report) = try_push(p.addr, batch_body(w, batch)).await.unwrap();
            match status {
                200 => *acknowledged.entry(w).or_default() += 1,
                507 => {
                    full = Some(report);
                    break 'filling;
                }
                other => panic!("a push answered {other}: {report}"),
            }
        }
    }
    let report = full.unwrap();
    assert!(report.contains("disk is full"), "a clear message: {report}");
    // Reads go on, and hold every acknowledged line and nothing half-written.
    let check = |stored: &[Message], acknowledged: &HashMap<usize, usize>| {
        for (w, &batches) in acknowledged {
            let instance = format!("w-{w}");
            let got = texts_of(stored, &instance);
            let expected: Vec<String> = (0..batches * 10)
                .map(|i| format!("{instance} line {i}"))
                .collect();
            assert_eq!(got, expected, "{instance}: exactly the acknowledged lines");
        }
    };
    check(&everything(p.addr, "f").await, &acknowledged);
    let (status, _) = try_push(p.addr, batch_body(0, acknowledged[&0]))
        .await
        .unwrap();
    assert_eq!(status, 507, "still full");
    // The command goes on writing meanwhile; once its segment's last page is used up it
    // is refused too, and says so without stopping.
    let warned = "captured lines could not be stored";
    within(async {
        while !std::fs::read_to_string(log.0.join("stderr"))
            .unwrap()
            .contains(warned)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    // Space freed: writes are taken again, from where each writer was.
    std::fs::remove_file(&filler).unwrap();
    for w in 0..2 {
        let batch = acknowledged[&w];
        let (status, report) = try_push(p.addr, batch_body(w, batch)).await.unwrap();
        assert_eq!(status, 200, "{report}");
        *acknowledged.get_mut(&w).unwrap() += 1;
    }
    check(&everything(p.addr, "f").await, &acknowledged);
    let mut p = p;
    assert!(
        p.child.try_wait().unwrap().is_none(),
        "the provider is running"
    );
    p.child.kill().unwrap();
    p.child.wait().unwrap();
    // After a restart, the same: every acknowledged line, nothing half-written.
    let p = provider(&dir, &["--run", "idle=true"]);
    check(&everything(p.addr, "f").await, &acknowledged);
}
