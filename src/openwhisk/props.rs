//! [`WskProps`]: the API host and key where `wsk` and `ops` keep them.

use std::fmt;
use std::path::PathBuf;

use crate::Error;

/// The settings `wsk` reads from `~/.wskprops` (or the file `WSK_CONFIG_FILE` names):
/// `KEY=VALUE` lines, of which `APIHOST`, `AUTH` and `NAMESPACE` matter here.
///
/// ```
/// use faas_logs::openwhisk::WskProps;
///
/// let props = WskProps::parse("APIHOST=https://openwhisk.example.com\nAUTH=23bc46b1:123zO3xZ\n");
/// assert_eq!(props.apihost.as_deref(), Some("https://openwhisk.example.com"));
/// assert_eq!(props.auth.as_deref(), Some("23bc46b1:123zO3xZ"));
/// assert!(!format!("{props:?}").contains("123zO3xZ"), "the key never shows");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WskProps {
    /// `APIHOST`.
    pub apihost: Option<String>,
    /// `AUTH`: the API key, `UUID:KEY`.
    pub auth: Option<String>,
    /// `NAMESPACE`.
    pub namespace: Option<String>,
}

impl fmt::Debug for WskProps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WskProps")
            .field("apihost", &self.apihost)
            .field("auth", &self.auth.as_ref().map(|_| "<hidden>"))
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl WskProps {
    /// Reads the lines of a props file; others than the three are ignored, empty values
    /// count as absent.
    #[must_use]
    pub fn parse(text: &str) -> Self {
        let mut props = WskProps::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = Some(value.trim().to_owned()).filter(|v| !v.is_empty());
            match key.trim() {
                "APIHOST" => props.apihost = value,
                "AUTH" => props.auth = value,
                "NAMESPACE" => props.namespace = value,
                _ => {}
            }
        }
        props
    }

    /// Where `wsk` looks: `WSK_CONFIG_FILE`, else `~/.wskprops`.
    #[must_use]
    pub fn path() -> Option<PathBuf> {
        match std::env::var_os("WSK_CONFIG_FILE") {
            Some(file) if !file.is_empty() => Some(PathBuf::from(file)),
            _ => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".wskprops")),
        }
    }

    /// The props file's settings; none when there is no file.
    pub fn load() -> Result<Self, Error> {
        let Some(path) = Self::path() else {
            return Ok(WskProps::default());
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(WskProps::parse(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(WskProps::default()),
            Err(e) => Err(Error::other(format!("cannot read {}", path.display())).with_source(e)),
        }
    }

    /// The API host and key to use: each from the value given (a flag), else the
    /// environment (`__OW_API_HOST`, `__OW_API_KEY`, as an action sees them), else the
    /// props file. Fails, naming the three places, when one is nowhere.
    pub fn resolve(
        apihost: Option<String>,
        auth: Option<String>,
    ) -> Result<(String, String), Error> {
        let from_env = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
        let mut apihost = apihost.or_else(|| from_env("__OW_API_HOST"));
        let mut auth = auth.or_else(|| from_env("__OW_API_KEY"));
        if apihost.is_none() || auth.is_none() {
            let props = WskProps::load()?;
            apihost = apihost.or(props.apihost);
            auth = auth.or(props.auth);
        }
        let missing = |what: &str, flag: &str, env: &str, key: &str| {
            Error::invalid(
                what,
                format!(
                    "no OpenWhisk {what}: give {flag}, set {env}, or write {key}= in ~/.wskprops"
                ),
            )
        };
        let apihost =
            apihost.ok_or_else(|| missing("apihost", "--apihost", "__OW_API_HOST", "APIHOST"))?;
        let auth = auth.ok_or_else(|| missing("auth", "--auth", "__OW_API_KEY", "AUTH"))?;
        Ok((apihost, auth))
    }
}
