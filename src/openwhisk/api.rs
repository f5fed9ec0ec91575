//! [`OpenWhiskClient`]: the activations API, over reqwest with rustls.

use std::fmt;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::Url;
use serde::de::DeserializeOwned;

use super::error::OpenWhiskError;
use super::record::{Activation, ActivationResponse, ActivationSummary, LogsAnswer};

/// The most activations one list answers (OpenWhisk's `max-list-limit`).
pub const MAX_LIMIT: u32 = 200;

/// The largest answer read (a page of 200 records of 10 MB logs would be 2 GB).
const DEFAULT_MAX_ANSWER: usize = 256 << 20;

/// A client of one OpenWhisk API host, for one API key and namespace.
///
/// ```no_run
/// # async fn run() -> Result<(), faas_logs::openwhisk::OpenWhiskError> {
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
    pub fn root_certificate(mut self, pem: &[u8]) -> Result<Self, OpenWhiskError> {
        let certificate =
            reqwest::Certificate::from_pem(pem).map_err(|e| OpenWhiskError::InvalidSetting {
                setting: "cacert",
                reason: "not a PEM certificate".to_owned(),
                source: Some(e),
            })?;
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
    pub fn build(self) -> Result<OpenWhiskClient, OpenWhiskError> {
        let Some((user, key)) = self.auth.split_once(':') else {
            return Err(OpenWhiskError::InvalidSetting {
                setting: "auth",
                reason: "an OpenWhisk API key is UUID:KEY (as in ~/.wskprops' AUTH)".to_owned(),
                source: None,
            });
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
            .ok_or_else(|| OpenWhiskError::InvalidSetting {
                setting: "apihost",
                reason: format!("{:?} is not an http or https host", self.apihost),
                source: None,
            })?;
        let http = self
            .http
            .connect_timeout(self.timeout)
            .timeout(self.timeout)
            .build()
            .map_err(|e| OpenWhiskError::InvalidSetting {
                setting: "tls",
                reason: "cannot set up an https client".to_owned(),
                source: Some(e),
            })?;
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
    pub async fn list(
        &self,
        options: &ListOptions,
    ) -> Result<Vec<ActivationSummary>, OpenWhiskError> {
        self.list_as(options, false).await
    }

    /// Full records with their inline logs, newest first.
    pub async fn list_full(
        &self,
        options: &ListOptions,
    ) -> Result<Vec<Activation>, OpenWhiskError> {
        self.list_as(options, true).await
    }

    /// One activation's full record.
    pub async fn get(&self, id: &str) -> Result<Activation, OpenWhiskError> {
        self.activation(id, None).await
    }

    /// One activation's lines, from `.../activations/{id}/logs`: the authoritative
    /// source, which answers even where a record's inline logs are empty.
    pub async fn logs(&self, id: &str) -> Result<Vec<String>, OpenWhiskError> {
        let answer: LogsAnswer = self.activation(id, Some("logs")).await?;
        Ok(answer.logs)
    }

    /// One activation's response, from `.../activations/{id}/result`.
    pub async fn result(&self, id: &str) -> Result<ActivationResponse, OpenWhiskError> {
        self.activation(id, Some("result")).await
    }

    async fn list_as<T: DeserializeOwned>(
        &self,
        options: &ListOptions,
        docs: bool,
    ) -> Result<Vec<T>, OpenWhiskError> {
        let url = self.url(&["activations"]);
        let what = "the list of activations";
        let body = self.fetch(url, &options.pairs(docs), what).await?;
        read_json(&body, what)
    }

    async fn activation<T: DeserializeOwned>(
        &self,
        id: &str,
        part: Option<&str>,
    ) -> Result<T, OpenWhiskError> {
        let url = match part {
            Some(part) => self.url(&["activations", id, part]),
            None => self.url(&["activations", id]),
        };
        let what = format!("activation {id}");
        let body = self.fetch(url, &[], &what).await?;
        read_json(&body, &what)
    }

    /// One page of the namespace's actions, as `package/action` or `action`.
    pub(crate) async fn actions(&self, skip: u32) -> Result<Vec<String>, OpenWhiskError> {
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
    pub(crate) async fn action_exists(&self, entity: &str) -> Result<bool, OpenWhiskError> {
        let mut segments = vec!["actions"];
        segments.extend(entity.split('/'));
        let url = self.url(&segments);
        match self
            .fetch(url, &[("code", "false".to_owned())], "the action")
            .await
        {
            Ok(_) => Ok(true),
            Err(OpenWhiskError::NotFound { .. }) => Ok(false),
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
    ) -> Result<Bytes, OpenWhiskError> {
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
                let host = self.host.clone();
                let source = e.without_url();
                return Err(if source.is_timeout() {
                    OpenWhiskError::Timeout { host, source }
                } else {
                    OpenWhiskError::Unreachable { host, source }
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
                    return Err(OpenWhiskError::TooLarge {
                        what: what.to_owned(),
                        limit: self.max_answer,
                    });
                }
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => {
                    return Err(OpenWhiskError::BrokeOff {
                        host: self.host.clone(),
                        what: what.to_owned(),
                        source: e.without_url(),
                    })
                }
            }
        }
        let body = body.freeze();
        if status.is_success() {
            return Ok(body);
        }
        Err(OpenWhiskError::from_status(
            status,
            &body,
            what,
            retry_after,
        ))
    }
}

fn read_json<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, OpenWhiskError> {
    serde_json::from_slice(body).map_err(|reason| OpenWhiskError::Unreadable {
        what: what.to_owned(),
        reason,
    })
}
