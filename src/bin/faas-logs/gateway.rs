//! Which gateway to ask and with which credentials, found where faas-cli finds them:
//! `--gateway`, a stack file's `provider.gateway`, `OPENFAAS_URL`; the login that
//! `faas-cli login` saved in `~/.openfaas/config.yml`.

use std::path::{Path, PathBuf};

use base64::Engine;
use yaml_rust2::{Yaml, YamlLoader};

use crate::logs_args::DEFAULT_GATEWAY;

/// How to authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Credentials {
    None,
    Basic { user: String, password: String },
    Bearer(String),
}

/// The gateway URL, in faas-cli's order: an explicit `--gateway`, the stack file's
/// `provider.gateway` (`-f FILE`, else `stack.yaml` or `stack.yml` here when one
/// parses), `OPENFAAS_URL`, the default; then lower-cased, without a trailing `/`, with
/// `http://` when no scheme is given, as faas-cli normalises it.
pub(crate) fn gateway_url(flag: Option<&str>, yaml: Option<&Path>) -> Result<String, String> {
    let chosen = match flag {
        Some(url) => url.to_owned(),
        None => {
            let from_stack = stack_gateway(yaml)?.filter(|g| !g.is_empty() && g != DEFAULT_GATEWAY);
            let from_env = std::env::var("OPENFAAS_URL").ok().filter(|g| !g.is_empty());
            from_stack
                .or(from_env)
                .unwrap_or_else(|| DEFAULT_GATEWAY.to_owned())
        }
    };
    let url = chosen.trim_end_matches('/').to_lowercase();
    Ok(if url.starts_with("http") {
        url
    } else {
        format!("http://{url}")
    })
}

/// `provider.gateway` of the stack file: the one named (an error when it cannot be read),
/// else `stack.yaml` or `stack.yml` in the working directory (ignored when it is not a
/// stack file).
fn stack_gateway(named: Option<&Path>) -> Result<Option<String>, String> {
    let (path, must) = match named {
        Some(path) => (path.to_owned(), true),
        None => match ["stack.yaml", "stack.yml"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
        {
            Some(path) => (path, false),
            None => return Ok(None),
        },
    };
    let read = std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|text| YamlLoader::load_from_str(&text).map_err(|e| e.to_string()));
    match read {
        Ok(docs) => Ok(docs
            .first()
            .and_then(|doc| doc["provider"]["gateway"].as_str())
            .map(envsubst)),
        Err(e) if must => Err(format!(
            "cannot read the stack file {}: {e}",
            path.display()
        )),
        Err(_) => Ok(None),
    }
}

/// `${VAR}`, `${VAR:-default}` and `$VAR` replaced from the environment, as faas-cli
/// substitutes stack files.
fn envsubst(text: &str) -> String {
    substitute(text, |name| std::env::var(name).ok())
}

/// [`envsubst`] with the variables from `var`.
fn substitute(text: &str, var: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(braced) = rest.strip_prefix('{') {
            if let Some(end) = braced.find('}') {
                let (name, default) = match braced[..end].split_once(":-") {
                    Some((name, default)) => (name, Some(default)),
                    None => (&braced[..end], None),
                };
                let value = var(name).filter(|v| !v.is_empty());
                out.push_str(&value.unwrap_or_else(|| default.unwrap_or("").to_owned()));
                rest = &braced[end + 1..];
                continue;
            }
        }
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if name_len == 0 {
            out.push('$');
        } else {
            out.push_str(&var(&rest[..name_len]).unwrap_or_default());
        }
        rest = &rest[name_len..];
    }
    out.push_str(rest);
    out
}

/// The directory faas-cli keeps its config in: `OPENFAAS_CONFIG`, else `.openfaas` here
/// when `CI` is `true` or `1`, else `~/.openfaas`.
fn config_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("OPENFAAS_CONFIG").filter(|d| !d.is_empty()) {
        return Some(expand_home(PathBuf::from(dir)));
    }
    if matches!(std::env::var("CI").as_deref(), Ok("true" | "1")) {
        return Some(PathBuf::from(".openfaas"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".openfaas"))
}

fn expand_home(path: PathBuf) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path,
    }
}

/// The credentials: `--token` (or `OPENFAAS_TOKEN`), `--user` (or `OPENFAAS_USER`), else
/// the login saved for `gateway` in faas-cli's config file (basic auth stored base64,
/// other kinds as a bearer token), else none.
pub(crate) fn credentials(
    gateway: &str,
    token: Option<&str>,
    user: Option<&str>,
) -> Result<Credentials, String> {
    if let Some(token) = token.filter(|t| !t.is_empty()) {
        return Ok(Credentials::Bearer(token.to_owned()));
    }
    if let Some(user) = user.filter(|u| !u.is_empty()) {
        let (user, password) = user.split_once(':').ok_or("--user takes USER:PASSWORD")?;
        return Ok(Credentials::Basic {
            user: user.to_owned(),
            password: password.to_owned(),
        });
    }
    let Some(file) = config_dir().map(|dir| dir.join("config.yml")) else {
        return Ok(Credentials::None);
    };
    let Ok(text) = std::fs::read_to_string(&file) else {
        return Ok(Credentials::None);
    };
    saved_login(&text, gateway).map_err(|e| format!("{}: {e}", file.display()))
}

/// The login saved in a faas-cli config file for `gateway`.
fn saved_login(config: &str, gateway: &str) -> Result<Credentials, String> {
    let docs = YamlLoader::load_from_str(config).map_err(|e| e.to_string())?;
    let auths = docs.first().map(|doc| &doc["auths"]);
    let Some(Yaml::Array(auths)) = auths else {
        return Ok(Credentials::None);
    };
    let Some(entry) = auths
        .iter()
        .find(|a| a["gateway"].as_str() == Some(gateway))
    else {
        return Ok(Credentials::None);
    };
    let token = entry["token"].as_str().unwrap_or_default();
    if entry["auth"].as_str() != Some("basic") {
        return Ok(if token.is_empty() {
            Credentials::None
        } else {
            Credentials::Bearer(token.to_owned())
        });
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|e| format!("the saved login for {gateway} is not base64: {e}"))?;
    let decoded = String::from_utf8(decoded)
        .map_err(|_| format!("the saved login for {gateway} is not text"))?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or_else(|| format!("the saved login for {gateway} is not USER:PASSWORD"))?;
    Ok(Credentials::Basic {
        user: user.to_owned(),
        password: password.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_login_is_found_by_its_gateway() {
        let config =
            "auths:\n- gateway: http://127.0.0.1:8080\n  auth: basic\n  token: YWRtaW46czNjcjN0\n\
                      - gateway: https://gw.example.com\n  auth: oauth2\n  token: eyJ.x\n";
        assert_eq!(
            saved_login(config, "http://127.0.0.1:8080"),
            Ok(Credentials::Basic {
                user: "admin".into(),
                password: "s3cr3t".into()
            })
        );
        assert_eq!(
            saved_login(config, "https://gw.example.com"),
            Ok(Credentials::Bearer("eyJ.x".into()))
        );
        assert_eq!(saved_login(config, "http://other"), Ok(Credentials::None));
        assert!(saved_login("auths:\n- gateway: g\n  auth: basic\n  token: '!!'\n", "g").is_err());
    }

    #[test]
    fn variables_in_a_stack_file_are_substituted() {
        // The environment is passed in: setting the process's would race other tests.
        let env = |name: &str| (name == "HOST").then(|| "gw.example.com".to_owned());
        assert_eq!(
            substitute("https://${HOST}:8080", env),
            "https://gw.example.com:8080"
        );
        assert_eq!(substitute("$HOST/x", env), "gw.example.com/x");
        assert_eq!(
            substitute("${NONE:-http://127.0.0.1:8080}", env),
            "http://127.0.0.1:8080"
        );
        assert_eq!(substitute("cost $5", env), "cost ");
    }
}
