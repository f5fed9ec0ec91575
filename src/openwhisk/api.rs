//! [`OpenWhiskClient`]: the activations API, over reqwest with rustls.

use std::fmt;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;

use super::record::{Activation, ActivationResponse, ActivationSummary, LogsAnswer};
use crate::Error;

/// The most activations one list answers (OpenWhisk's `max-list-limit`).
pub const MAX_LIMIT: u32 = 200;

/// The largest answer read (a page of 200 records of 10 MB logs would be 2 GB).
const DEFAULT_MAX_ANSWER: usize = 256 << 20;

/// A client of one OpenWhisk API host, for one API key and namespace.
///
/// ```no_run
/// # async fn run() -> Result<(), faas_logs::Error> {
/// use faas_logs::openwhisk::{ListOptions, OpenWhiskClient};
///
/// let client = OpenWhiskClient::builder("https://faas-nyc1-2ef2e6cc.doserverless.co", "uuid:key").build()?;
/// for row in client.list(&ListOptions::new().with_name("sample/hello").with_limit(5)).await? {
///     println!("{} {}", row.activation_id, row.entity());
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct OpenWhiskClient {
    http: reqwest::Client,
    namespaces: Url,
    host: String,
    user: String,
    key: String,
    namespace: String,
    max_answer: usize,
}

/// Never shows the key.
impl fmt::Debug for OpenWhiskClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenWhiskClient")
            .field("host", &self.host)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// The settings of an [`OpenWhiskClient`], from [`OpenWhiskClient::builder`].
#[must_use]
pub struct OpenWhiskClientBuilder {
    apihost: String,
    auth: String,
    namespace: String,
    timeout: Duration,
    max_answer: usize,
    http: reqwest::ClientBuilder,
}

impl fmt::Debug for OpenWhiskClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenWhiskClientBuilder")
            .field("apihost", &self.apihost)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl OpenWhiskClientBuilder {
    /// The namespace to read (default `_`, the API key's own).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The longest wait for one answer (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest answer read, in bytes (default 256 MiB); a larger one is an error.
    pub fn max_answer(mut self, bytes: usize) -> Self {
        self.max_answer = bytes;
        self
    }

    /// Trusts this PEM certificate too (a deployment's self-signed one).
    pub fn root_certificate(mut self, pem: &[u8]) -> Result<Self, Error> {
        let certificate = reqwest::Certificate::from_pem(pem)
            .map_err(|e| Error::invalid("cacert", "not a PEM certificate").with_source(e))?;
        self.http = self.http.add_root_certificate(certificate);
        Ok(self)
    }

    /// Accepts any certificate, as `wsk --insecure` does: for a test deployment only.
    pub fn danger_accept_invalid_certs(mut self) -> Self {
        self.http = self.http.danger_accept_invalid_certs(true);
        self
    }

    /// The client. Fails on an API key that is not `UUID:KEY` or a host that is not a
    /// URL; a host without a scheme is reached over https, as `wsk` does.
    pub fn build(self) -> Result<OpenWhiskClient, Error> {
        let Some((user, key)) = self.auth.split_once(':') else {
            return Err(Error::invalid(
                "auth",
                "an OpenWhisk API key is UUID:KEY (as in ~/.wskprops' AUTH)",
            ));
        };
        let host = self.apihost.trim().trim_end_matches('/');
        let host = if host.contains("://") {
            host.to_owned()
        } else {
            format!("https://{host}")
        };
        let namespaces = Url::parse(&format!("{host}/api/v1/namespaces/"))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                Error::invalid(
                    "apihost",
                    format!("{:?} is not an http or https host", self.apihost),
                )
            })?;
        let http = self
            .http
            .connect_timeout(self.timeout)
            .timeout(self.timeout)
            .build()
            .map_err(|e| Error::other("cannot set up an https client").with_source(e))?;
        Ok(OpenWhiskClient {
            http,
            namespaces,
            host,
            user: user.to_owned(),
            key: key.to_owned(),
            namespace: self.namespace,
            max_answer: self.max_answer,
        })
    }
}

/// The query of a list of activations (`GET .../activations`).
///
/// ```
/// use faas_logs::openwhisk::ListOptions;
/// let page = ListOptions::new().with_name("sample/hello").with_limit(200).with_skip(400).with_since(1_700_000_000_000);
/// # let _ = page;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct ListOptions {
    pub(crate) name: Option<String>,
    pub(crate) limit: Option<u32>,
    pub(crate) skip: u32,
    pub(crate) since: Option<i64>,
    pub(crate) upto: Option<i64>,
}

impl ListOptions {
    /// All activations, the server's default page (30).
    pub fn new() -> Self {
        Self::default()
    }

    /// Only those of `action` or `package/action`.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into()).filter(|n: &String| !n.is_empty());
        self
    }

    /// At most this many (the server caps it at 200; `0` means 200).
    pub fn with_limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Leave out this many of the newest.
    pub fn with_skip(mut self, skip: u32) -> Self {
        self.skip = skip;
        self
    }

    /// Only those that started at or after this (epoch milliseconds).
    pub fn with_since(mut self, ms: i64) -> Self {
        self.since = Some(ms);
        self
    }

    /// Only those that started at or before this (epoch milliseconds).
    pub fn with_upto(mut self, ms: i64) -> Self {
        self.upto = Some(ms);
        self
    }

    fn pairs(&self, docs: bool) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::with_capacity(6);
        if let Some(name) = &self.name {
            pairs.push(("name", name.clone()));
        }
        if let Some(limit) = self.limit {
            pairs.push(("limit", limit.to_string()));
        }
        if self.skip > 0 {
            pairs.push(("skip", self.skip.to_string()));
        }
        if let Some(since) = self.since {
            pairs.push(("since", since.to_string()));
        }
        if let Some(upto) = self.upto {
            pairs.push(("upto", upto.to_string()));
        }
        if docs {
            pairs.push(("docs", "true".to_owned()));
        }
        pairs
    }
}

/// A failed call, and whether trying again may help.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: Error,
    pub(crate) retry: Retry,
}

/// Whether a failed call is worth repeating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// No: the answer will not change (a refused key, a bad query, not found).
    Never,
    /// The server is busy or failing (429, 5xx); after this long when it said so.
    Busy(Option<Duration>),
    /// The server could not be reached.
    Unreachable,
}

impl From<Failure> for Error {
    fn from(failure: Failure) -> Self {
        failure.error
    }
}

impl OpenWhiskClient {
    /// Settings for a client of the API at `apihost` (`https://host`, or a bare host as
    /// `wsk` takes it) with the API key `auth` (`UUID:KEY`).
    pub fn builder(apihost: impl Into<String>, auth: impl Into<String>) -> OpenWhiskClientBuilder {
        OpenWhiskClientBuilder {
            apihost: apihost.into(),
            auth: auth.into(),
            namespace: "_".to_owned(),
            timeout: Duration::from_secs(30),
            max_answer: DEFAULT_MAX_ANSWER,
            http: reqwest::Client::builder(),
        }
    }

    /// The API host, as given (with its scheme).
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The namespace this client reads (`_` is the API key's own).
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The same client, reading another namespace.
    #[must_use]
    pub fn with_namespace(&self, namespace: impl Into<String>) -> Self {
        OpenWhiskClient {
            namespace: namespace.into(),
            ..self.clone()
        }
    }

    /// Summary rows, newest first.
    pub async fn list(&self, options: &ListOptions) -> Result<Vec<ActivationSummary>, Error> {
        Ok(self.try_list(options, false).await?)
    }

    /// Full records with their inline logs, newest first.
    pub async fn list_full(&self, options: &ListOptions) -> Result<Vec<Activation>, Error> {
        Ok(self.try_list(options, true).await?)
    }

    /// One activation's full record.
    pub async fn get(&self, id: &str) -> Result<Activation, Error> {
        Ok(self.try_get(id).await?)
    }

    /// One activation's lines, from `.../activations/{id}/logs`: the authoritative
    /// source, which answers even where a record's inline logs are empty.
    pub async fn logs(&self, id: &str) -> Result<Vec<String>, Error> {
        Ok(self.try_logs(id).await?)
    }

    /// One activation's response, from `.../activations/{id}/result`.
    pub async fn result(&self, id: &str) -> Result<ActivationResponse, Error> {
        Ok(self.try_activation(id, Some("result")).await?)
    }

    pub(crate) async fn try_list<T: DeserializeOwned>(
        &self,
        options: &ListOptions,
        docs: bool,
    ) -> Result<Vec<T>, Failure> {
        let url = self.url(&["activations"]);
        let what = "the list of activations";
        let body = self.fetch(url, &options.pairs(docs), what).await?;
        read_json(&body, what)
    }

    pub(crate) async fn try_get(&self, id: &str) -> Result<Activation, Failure> {
        self.try_activation(id, None).await
    }

    pub(crate) async fn try_logs(&self, id: &str) -> Result<Vec<String>, Failure> {
        let answer: LogsAnswer = self.try_activation(id, Some("logs")).await?;
        Ok(answer.logs)
    }

    async fn try_activation<T: DeserializeOwned>(
        &self,
        id: &str,
        part: Option<&str>,
    ) -> Result<T, Failure> {
        let url = match part {
            Some(part) => self.url(&["activations", id, part]),
            None => self.url(&["activations", id]),
        };
        let what = format!("activation {id}");
        let body = self.fetch(url, &[], &what).await?;
        read_json(&body, &what)
    }

    /// One page of the namespace's actions, as `package/action` or `action`.
    pub(crate) async fn try_actions(&self, skip: u32) -> Result<Vec<String>, Failure> {
        #[derive(serde::Deserialize)]
        struct Row {
            /// `namespace`, or `namespace/package` for an action in a package.
            namespace: String,
            name: String,
        }
        let url = self.url(&["actions"]);
        let query = [("limit", MAX_LIMIT.to_string()), ("skip", skip.to_string())];
        let body = self.fetch(url, &query, "the list of actions").await?;
        let rows: Vec<Row> = read_json(&body, "the list of actions")?;
        Ok(rows
            .into_iter()
            .map(|row| match row.namespace.split_once('/') {
                Some((_, package)) => format!("{package}/{}", row.name),
                None => row.name,
            })
            .collect())
    }

    /// Whether the action `entity` (`action` or `package/action`) exists.
    pub(crate) async fn try_action_exists(&self, entity: &str) -> Result<bool, Failure> {
        let mut segments = vec!["actions"];
        segments.extend(entity.split('/'));
        let url = self.url(&segments);
        match self
            .fetch(url, &[("code", "false".to_owned())], "the action")
            .await
        {
            Ok(_) => Ok(true),
            Err(Failure {
                error: Error::NotFound { .. },
                ..
            }) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// `.../namespaces/{namespace}/{segments...}`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.namespaces.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push(&self.namespace).extend(segments);
        }
        url
    }

    async fn fetch(
        &self,
        url: Url,
        query: &[(&'static str, String)],
        what: &str,
    ) -> Result<Bytes, Failure> {
        let sent = self
            .http
            .get(url)
            .query(query)
            .basic_auth(&self.user, Some(&self.key))
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(e) => {
                let timed_out = e.is_timeout();
                return Err(Failure {
                    error: Error::unavailable(if timed_out {
                        format!("the OpenWhisk API at {} did not answer in time", self.host)
                    } else {
                        format!("cannot reach the OpenWhisk API at {}", self.host)
                    })
                    .with_source(e.without_url()),
                    retry: if timed_out {
                        Retry::Busy(None)
                    } else {
                        Retry::Unreachable
                    },
                });
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut body = BytesMut::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if body.len() + chunk.len() > self.max_answer => {
                    return Err(Failure {
                        error: Error::other(format!(
                            "the OpenWhisk API's answer for {what} is larger than {} bytes",
                            self.max_answer
                        )),
                        retry: Retry::Never,
                    });
                }
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    return Err(Failure {
                        error: Error::unavailable(format!(
                            "the OpenWhisk API at {} broke off its answer for {what}",
                            self.host
                        ))
                        .with_source(e.without_url()),
                        retry: Retry::Busy(None),
                    })
                }
            }
        }
        let body = body.freeze();
        if status.is_success() {
            return Ok(body);
        }
        Err(status_failure(status, &body, what, retry_after))
    }
}

fn status_failure(
    status: StatusCode,
    body: &[u8],
    what: &str,
    retry_after: Option<Duration>,
) -> Failure {
    // OpenWhisk answers `{"error": "...", "code": "<transaction id>"}`.
    let said = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    let (error, retry) = match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => (
            Error::unavailable(format!(
                "the OpenWhisk API refused the API key ({status}): check AUTH or --auth"
            )),
            Retry::Never,
        ),
        StatusCode::NOT_FOUND => (
            Error::not_found(format!("{what} was not found on the OpenWhisk API")),
            Retry::Never,
        ),
        StatusCode::TOO_MANY_REQUESTS => (
            Error::unavailable(format!(
                "the OpenWhisk API is throttling ({status}): {said}"
            )),
            Retry::Busy(retry_after),
        ),
        s if s.is_server_error() => (
            Error::unavailable(format!("the OpenWhisk API failed ({status}): {said}")),
            Retry::Busy(retry_after),
        ),
        _ => (
            Error::other(format!(
                "the OpenWhisk API refused the query for {what} ({status}): {said}"
            )),
            Retry::Never,
        ),
    };
    Failure { error, retry }
}

fn read_json<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, Failure> {
    serde_json::from_slice(body).map_err(|e| Failure {
        error: Error::other(format!(
            "the OpenWhisk API's answer for {what} cannot be read: {e}"
        )),
        retry: Retry::Never,
    })
}
