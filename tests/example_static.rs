//! The `static` example as a user runs it: start the binary, read its address, query it
//! over HTTP, and stop it with Ctrl-C while a follow stream is open.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::*;

/// `cargo test` builds the examples next to the test binaries' folder.
fn example_path(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    profile_dir.join("examples").join(name)
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_static_example_serves_logs_and_ends_follow_streams_on_ctrl_c() {
    let mut child = Running(
        Command::new(example_path("static"))
            .arg("127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the static example is built by cargo test"),
    );
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    // "listening on http://127.0.0.1:PORT/system/logs?name=hello"
    let addr: std::net::SocketAddr = first
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|rest| rest.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"));

    let (response, mut lines) = get(addr, "/system/logs?name=hello&tail=2").await;
    assert_eq!(response.status(), 200);
    let got = lines.messages().await;
    assert_eq!(got.len(), 2);
    assert!(got[0].timestamp <= got[1].timestamp);
    assert_eq!(got[1].instance, "hello-2");

    let (response, _) = get(addr, "/system/logs?name=other").await;
    assert_eq!(response.status(), 404);

    let (_, mut follow) = get(addr, "/system/logs?name=hello&follow=true&tail=1").await;
    follow.next_message().await;
    let pid = child.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    // The open follow stream ends cleanly, and the process exits by itself.
    assert_eq!(follow.rest().await.unwrap(), Vec::<String>::new());
    let status = within(tokio::task::spawn_blocking(move || child.0.wait())).await;
    assert!(status.unwrap().unwrap().success());
}
