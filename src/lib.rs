//! The OpenFaaS `GET /system/logs` endpoint for providers written in Rust.
//!
//! A provider implements one trait, [`Requester`], for its log system, wraps it in a
//! [`LogHandler`](server::LogHandler), and mounts the handler in hyper or axum. The handler answers with
//! newline-delimited JSON that `faas-cli logs` and the OpenFaaS gateway read unchanged,
//! and it guarantees the request's semantics whatever the backend does:
//!
//! | parameter | guaranteed behaviour | bad value |
//! |---|---|---|
//! | `name` | required; `[a-zA-Z0-9._-]` | 422 |
//! | `namespace` | passed to the backend; empty is the provider's default | 422 |
//! | `instance` | only that instance's messages | 422 |
//! | `since` | no message older; RFC 3339, unix seconds, or a duration back (`5m`) | 422 |
//! | `tail` | at most this many history messages, the newest, in timestamp order; `<= 0` unlimited | 422 |
//! | `follow` | after history, live messages until the timeout, the client leaving, or the backend ending; Go's `ParseBool` set | 422 |
//!
//! Responses are `200` with `Content-Type: application/x-ndjson`, `Cache-Control:
//! no-cache` and `X-Accel-Buffering: no`. Ready messages are coalesced into large frames,
//! and a frame goes out as soon as the backend has nothing more ready. What a client sees
//! in every case:
//!
//! | what happens | the client sees |
//! |---|---|
//! | a bad parameter | 422 and `{"error": "..."}` naming it |
//! | the backend fails (or panics) before anything was sent: in `query`, at its first item, or while `tail` still holds history back | the error's status (404, 503, 500; see [`Error`]) and `{"error": "..."}` |
//! | the backend says nothing for [`LogHandler::with_status_wait`](server::LogHandler::with_status_wait) (250 ms) | `200` at once; what follows as below |
//! | the backend fails (or panics) after the `200` | the lines before it, then an aborted body (no final chunk): a broken stream never looks finished |
//! | the timeout or [`LogHandler::shutdown`](server::LogHandler::shutdown) while history is still being read | the history held so far (the newest `tail` seen), then an aborted body: the answer is incomplete |
//! | the timeout or a shutdown once history is complete | every history line, then a clean end |
//! | the client leaves | the backend's stream is dropped at once |
//!
//! However the backend behaves (even a stream that is always ready and never ends), the
//! timeout holds to within a few milliseconds, and one response never keeps a worker
//! thread from other requests: it yields after at most a few thousand items.
//!
//! # Where things are
//!
//! The contract every part shares is at the root: [`Message`] (and its [`SharedStr`]),
//! [`Request`], [`Error`], [`Requester`] and what it streams, [`Event`], and what it lists, [`FunctionName`]. Each part that builds on it is a module:
//!
//! | module | what it holds |
//! |---|---|
//! | [`server`] | [`LogHandler`](server::LogHandler), the endpoint over any requester, and its body [`LogBody`](server::LogBody); the log viewer page ([`viewer_response`](server::viewer_response)) and the function list it reads ([`LogHandler::functions`](server::LogHandler::functions)) |
//! | [`store`] | [`LogStore`](store::LogStore), the embedded default backend: an in-memory ring per function, filled by [`Capture`](store::Capture) from a process's output and by [`LogStore::ingest_ndjson`](store::LogStore::ingest_ndjson) from pushed logs |
//! | [`telemetry`] | [`TelemetryListener`](telemetry::TelemetryListener): Lambda's and FunctionGraph's telemetry pushes into a store, as lines and invocation records |
//! | [`client`] (feature `client`) | [`LogClient`]: reads any provider's `/system/logs` as a stream of messages, over http or https, and follows across the provider's timeouts |
//! | [`meter`] | the figures the crate keeps for operators (requests served, lines pushed and refused, gaps, backend errors), through the [`metrics`](https://docs.rs/metrics) facade: nothing is kept until a program installs a recorder, such as Prometheus' |
//! | [`codec`] | the bytes: Go's exact NDJSON encoder and a decoder, line framing, timestamps |
//! | [`docker`] (feature `docker`) | [`DockerRequester`], for functions that run as Docker containers, and decoders of Docker's log streams |
//! | [`journald`] (feature `journald`) | [`JournaldRequester`](journald::JournaldRequester), for functions whose logs are in the systemd journal (faasd, `faas-logs collect`, Docker's `journald` driver); journald's native protocol |
//! | [`kubernetes`] (feature `kubernetes`) | [`KubernetesRequester`](kubernetes::KubernetesRequester), for functions that run as pods, as faas-netes deploys them, read through the API server |
//! | [`openwhisk`] (feature `openwhisk`) | [`OpenWhiskRequester`]: logs from the activation records of OpenWhisk, OpenServerless and DigitalOcean Functions, polled for follow; the activations API's client and types |
//! | [`otlp`] (feature `otlp`) | [`OtlpReceiver`](otlp::OtlpReceiver): OpenTelemetry logs from any SDK over OTLP/HTTP (`POST /v1/logs`), protobuf or JSON, into any [`LogSink`] |
//! | [`nats`] (feature `nats`) | [`JetStreamLogs`]: one log store in a NATS JetStream stream that many providers share |
//!
//! # Example
//!
//! A complete provider: a requester over a fixed list, served with hyper on 127.0.0.1.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use chrono::Utc;
//! use faas_logs::server::LogHandler;
//! use faas_logs::{async_trait, Error, Event, LogStream, Message, Request, Requester};
//! use hyper_util::rt::{TokioExecutor, TokioIo};
//! use hyper_util::server::conn::auto;
//!
//! struct Hello;
//!
//! #[async_trait]
//! impl Requester for Hello {
//!     async fn query(&self, request: Request) -> Result<LogStream, Error> {
//!         if request.name != "hello" {
//!             return Err(Error::not_found(format!("no function named {:?}", request.name)));
//!         }
//!         let lines = ["starting", "listening on :8080", "ready"].map(|text| {
//!             let line = Message::new("hello", Utc::now(), text)
//!                 .with_namespace("openfaas-fn")
//!                 .with_instance("hello-1");
//!             Ok(Event::Message(line))
//!         });
//!         // The handler applies tail, since and instance; this backend ignores them.
//!         Ok(Box::pin(futures_util::stream::iter(lines)))
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::io::Result<()> {
//!     let handler = LogHandler::new(Hello, Duration::from_secs(30));
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//!     loop {
//!         let (tcp, _) = listener.accept().await?;
//!         let handler = handler.clone();
//!         tokio::spawn(async move {
//!             let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
//!                 let handler = handler.clone();
//!                 async move {
//!                     if req.uri().path() == "/system/logs" {
//!                         Ok::<_, std::convert::Infallible>(handler.handle(req).await)
//!                     } else {
//!                         let mut not_found = hyper::Response::new(faas_logs::server::LogBody::empty());
//!                         *not_found.status_mut() = hyper::StatusCode::NOT_FOUND;
//!                         Ok(not_found)
//!                     }
//!                 }
//!             });
//!             let _ = auto::Builder::new(TokioExecutor::new())
//!                 .serve_connection(TokioIo::new(tcp), service)
//!                 .await;
//!         });
//!     }
//! }
//! ```
//!
//! With axum, mount the handler as a service:
//!
//! ```
//! # use faas_logs::{async_trait, Error, LogStream, Request, Requester};
//! # use faas_logs::server::LogHandler;
//! # struct Hello;
//! # #[async_trait]
//! # impl Requester for Hello {
//! #     async fn query(&self, _: Request) -> Result<LogStream, Error> { Err(Error::not_found("none")) }
//! # }
//! let handler = LogHandler::new(Hello, std::time::Duration::from_secs(30));
//! let app: axum::Router = axum::Router::new().route_service("/system/logs", handler);
//! ```

// The feature-gated modules are linked where they are built (docs.rs builds them all),
// and to docs.rs where they are not.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(
    feature = "client",
    doc = "[`client`]: crate::client\n\n[`LogClient`]: crate::client::LogClient"
)]
#![cfg_attr(
    not(feature = "client"),
    doc = "[`client`]: https://docs.rs/faas-logs/latest/faas_logs/client/\n\n[`LogClient`]: https://docs.rs/faas-logs/latest/faas_logs/client/struct.LogClient.html"
)]
#![cfg_attr(
    feature = "docker",
    doc = "[`docker`]: crate::docker\n\n[`DockerRequester`]: crate::docker::DockerRequester"
)]
#![cfg_attr(
    not(feature = "docker"),
    doc = "[`docker`]: https://docs.rs/faas-logs/latest/faas_logs/docker/\n\n[`DockerRequester`]: https://docs.rs/faas-logs/latest/faas_logs/docker/struct.DockerRequester.html"
)]
#![cfg_attr(
    feature = "openwhisk",
    doc = "[`openwhisk`]: crate::openwhisk\n\n[`OpenWhiskRequester`]: crate::openwhisk::OpenWhiskRequester"
)]
#![cfg_attr(
    not(feature = "openwhisk"),
    doc = "[`openwhisk`]: https://docs.rs/faas-logs/latest/faas_logs/openwhisk/\n\n[`OpenWhiskRequester`]: https://docs.rs/faas-logs/latest/faas_logs/openwhisk/struct.OpenWhiskRequester.html"
)]
#![cfg_attr(
    feature = "nats",
    doc = "[`nats`]: crate::nats\n\n[`JetStreamLogs`]: crate::nats::JetStreamLogs"
)]
#![cfg_attr(
    not(feature = "nats"),
    doc = "[`nats`]: https://docs.rs/faas-logs/latest/faas_logs/nats/\n\n[`JetStreamLogs`]: https://docs.rs/faas-logs/latest/faas_logs/nats/struct.JetStreamLogs.html"
)]

#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod client;
pub mod codec;
#[cfg(feature = "docker")]
#[cfg_attr(docsrs, doc(cfg(feature = "docker")))]
pub mod docker;
mod error;
#[cfg(feature = "journald")]
#[cfg_attr(docsrs, doc(cfg(feature = "journald")))]
pub mod journald;
#[cfg(feature = "kubernetes")]
#[cfg_attr(docsrs, doc(cfg(feature = "kubernetes")))]
pub mod kubernetes;
/// The Kubernetes log reader alone, for the fuzz target (`cargo fuzz` sets `fuzzing`),
/// which is then built without kube and k8s-openapi: minutes less of `.ci/run`.
#[cfg(all(fuzzing, not(feature = "kubernetes")))]
#[doc(hidden)]
#[allow(dead_code, unreachable_pub)]
pub mod kubernetes {
    mod lines;
    pub use lines::{LogLine, LogReader};
}
mod message;
pub mod meter;
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub mod nats;
#[cfg(feature = "openwhisk")]
#[cfg_attr(docsrs, doc(cfg(feature = "openwhisk")))]
pub mod openwhisk;
mod ordered;
#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
pub mod otlp;
mod request;
mod requester;
pub mod server;
mod shared;
mod sink;
pub mod store;
pub mod telemetry;

pub use async_trait::async_trait;
pub use error::{BoxError, Error};
pub use message::{Details, Message, OutputStream};
pub use request::Request;
pub use requester::{Capabilities, Event, FunctionName, LogStream, Requester};
pub use shared::SharedStr;
pub use sink::{Batch, LogSink};

/// Compiles the README's Rust examples as doctests, so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
