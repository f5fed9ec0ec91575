//! The log viewer: one self-contained page (HTML, CSS and JavaScript, nothing loaded
//! from elsewhere) that lists a provider's functions and shows a function's lines as
//! they come, read from `/system/logs` like any client.

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};

use super::body::LogBody;

/// The page, as it is served: the provider binaries answer `GET /` with it.
///
/// It reads the function list from [`FUNCTIONS_PATH`] (a text field takes a name when
/// the backend cannot list), opens a function from the address too (`/#NAME`,
/// `/#NAMESPACE/NAME`), or several merged by time (`/#NS/A+NS/B`, or Ctrl-click in the
/// list), and reads `/system/logs` with `fetch` and a streaming NDJSON reader: history
/// (`tail` 100, 1,000 or all, and a `since`), then live lines, resuming by itself after
/// the provider's timeout or a dropped connection with `since` set to the last line
/// seen, never showing a line twice. Instances get stable colours and can be toggled (a
/// few chips, the rest in a menu with a search; long ids keep their end); levels are
/// found in the line's severity, a JSON line's `level` or `severity`, or the text, and
/// coloured; JSON lines and lines with details open into their fields; stderr lines
/// stand out, and either stream can be hidden; a regular-expression filter (case
/// optional; `/` focuses it, Esc clears it) highlights matches and can hide the rest;
/// every line has a link that opens the view at it; times show in local time or UTC,
/// with the date when it is not today; lines wrap or not; light and dark themes follow
/// the system until the reader picks one; pause holds new lines back; the view keeps to
/// the bottom until the reader scrolls up, and says how many lines wait below; at most
/// 2,000 lines are on the page and 100,000 kept (it says how many were dropped from
/// view); what is shown downloads as NDJSON; errors show as a message in the page.
pub const VIEWER_HTML: &str = include_str!("viewer.html");

/// Where the page reads the list of functions (see
/// [`LogHandler::functions`](super::LogHandler::functions)).
pub const FUNCTIONS_PATH: &str = "/system/logs/functions";

/// [`VIEWER_HTML`] as a response: `text/html`, not cached, and a content security
/// policy that lets the page load nothing but itself and talk only to its own origin.
#[must_use]
pub fn viewer_response() -> http::Response<LogBody> {
    let mut response =
        http::Response::new(LogBody::once(Bytes::from_static(VIEWER_HTML.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'",
        ),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}
