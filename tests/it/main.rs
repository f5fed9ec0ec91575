//! The integration tests, one module per part, linked into one binary: each talks to the
//! crate over real HTTP on 127.0.0.1, and to the real components a part names (Docker,
//! nats-server, Chromium, the OpenWhisk JavaScript client) where they are installed.
//! Parts that start `faas-logs serve` or the command need `--features cli`.

mod common;

#[cfg(feature = "cli")]
mod cli;
#[cfg(feature = "client")]
mod client;
#[cfg(feature = "disk")]
mod disk_store;
#[cfg(feature = "docker")]
mod docker;
mod examples;
mod hostile;
#[cfg(feature = "cli")]
mod journald;
#[cfg(feature = "cli")]
mod kubernetes;
#[cfg(feature = "cli")]
mod metrics;
#[cfg(feature = "cli")]
mod nats;
#[cfg(feature = "cli")]
mod openwhisk;
#[cfg(feature = "cli")]
mod otlp;
mod requests;
mod semantics;
#[cfg(all(feature = "cli", feature = "disk"))]
mod serve_disk;
#[cfg(feature = "cli")]
mod serve_memory;
#[cfg(feature = "cli")]
mod serve_telemetry;
mod store;
mod telemetry;
#[cfg(feature = "cli")]
mod viewer;
