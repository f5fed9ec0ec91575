//! The `/system/logs` endpoint: [`LogHandler`] parses the request and queries the
//! backend, the shaping stage makes the backend's stream exactly what the request asked
//! for (`since`, `instance`, `tail`, the switch to live), and [`LogBody`] encodes it into
//! the response under the deadline.

mod body;
mod handler;
mod shaping;

pub use body::LogBody;
pub use handler::{LogHandler, MAX_BODY_BYTES};
