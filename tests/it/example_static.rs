//! The `static` example as a user runs it: start the binary, read its address, query it
//! over HTTP, and stop it with Ctrl-C while a follow stream is open.

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
