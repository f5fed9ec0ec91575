//! The examples as a user runs them: start the binary, read its address, query it over
//! HTTP, and stop it with Ctrl-C while a follow stream is open.

use crate::common;

use common::*;

#[tokio::test]
async fn the_static_example_serves_logs_and_ends_follow_streams_on_ctrl_c() {
    let example = Provider::start("static", &["--listen", "127.0.0.1:0"]);
    let addr = example.addr;

    let (response, mut lines) = get(addr, "/system/logs?name=hello&tail=2").await;
    assert_eq!(response.status(), 200);
    let got = lines.messages().await;
    assert_eq!(got.len(), 2);
    assert!(got[0].timestamp <= got[1].timestamp);
    assert_eq!(got[1].instance, "hello-2");

    let (response, _) = get(addr, "/system/logs?name=other").await;
    assert_eq!(response.status(), 404);
    let (response, _) = get(addr, "/system/logs?name=hello&namespace=openfaas-fn").await;
    assert_eq!(response.status(), 200);
    let (response, _) = get(addr, "/system/logs?name=hello&namespace=staging").await;
    assert_eq!(response.status(), 404);

    let (_, mut follow) = get(addr, "/system/logs?name=hello&follow=true&tail=1").await;
    follow.next_message().await;
    example.interrupt();
    // The open follow stream ends cleanly, and the process exits by itself.
    assert_eq!(follow.rest().await.unwrap(), Vec::<String>::new());
    assert!(example.exits_cleanly().await);
}

#[tokio::test]
async fn the_axum_example_serves_live_lines_its_function_list_and_the_viewer() {
    let example = Provider::start("axum", &["--listen", "127.0.0.1:0", "--every", "20"]);
    let addr = example.addr;

    let (status, list) = get_whole(addr, faas_logs::server::FUNCTIONS_PATH).await;
    assert_eq!(status, 200, "{list}");
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["functions"][0]["name"], "clock", "{list}");
    let (status, page) = get_whole(addr, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("<html"), "not the viewer: {page:.200}");

    // Live lines reach a follower in order, each once, numbered one after the other.
    let (response, mut follow) = get(addr, "/system/logs?name=clock&follow=true&tail=1").await;
    assert_eq!(response.status(), 200);
    let mut numbers = Vec::new();
    for _ in 0..10 {
        let line = follow.next_message().await;
        assert_eq!(line.instance, "clock-1");
        let n: u64 = line.text.split(' ').nth(1).unwrap().parse().unwrap();
        numbers.push(n);
    }
    let expected: Vec<u64> = (numbers[0]..numbers[0] + 10).collect();
    assert_eq!(numbers, expected);

    let (response, _) = get(addr, "/system/logs?name=other").await;
    assert_eq!(response.status(), 404);
    example.interrupt();
    // The lines written until then, and a clean end.
    let rest = follow.rest().await;
    assert!(rest.is_ok(), "the follow did not end cleanly: {rest:?}");
    assert!(example.exits_cleanly().await);
}
