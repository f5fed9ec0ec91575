//! The query string a client sends, written as faas-cli writes it, so that every
//! provider reads it: a Go provider parses `since` as RFC 3339 only.

use crate::Request;

/// `request` as faas-cli encodes a `logs.Request`: `follow` always, `namespace` and
/// `instance` when set, `since` in RFC 3339 (UTC, with the fraction only when there is
/// one), `tail` when set, keys sorted and values escaped as Go's `url.Values.Encode`
/// does. `unlimited_tail` is what to send as `tail` when the request has none.
pub(super) fn wire_query(request: &Request, unlimited_tail: Option<i64>) -> String {
    let mut pairs: Vec<(&str, String)> = vec![
        ("follow", request.follow.to_string()),
        ("name", request.name.clone()),
    ];
    if !request.namespace.is_empty() {
        pairs.push(("namespace", request.namespace.clone()));
    }
    if !request.instance.is_empty() {
        pairs.push(("instance", request.instance.clone()));
    }
    if let Some(since) = request.since {
        let text = since.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        pairs.push(("since", text));
    }
    match (request.tail, unlimited_tail) {
        (Some(tail), _) => pairs.push(("tail", tail.to_string())),
        (None, Some(unlimited)) => pairs.push(("tail", unlimited.to_string())),
        (None, None) => {}
    }
    pairs.sort_by_key(|(key, _)| *key);
    let mut query = String::new();
    for (key, value) in pairs {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(key);
        query.push('=');
        go_query_escape(&value, &mut query);
    }
    query
}

/// Go's `url.QueryEscape`: unreserved bytes as they are, a space as `+`, every other
/// byte as `%XX` in upper case.
fn go_query_escape(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn it_is_the_query_faas_cli_sends() {
        let request = Request {
            follow: false,
            ..Request::new("hist")
        };
        assert_eq!(
            wire_query(&request, Some(-1)),
            "follow=false&name=hist&tail=-1"
        );
        let request = Request {
            namespace: "openfaas-fn".into(),
            instance: "a b/c~*".into(),
            since: Some(Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap()),
            tail: Some(5),
            follow: true,
            ..Request::new("hello")
        };
        assert_eq!(
            wire_query(&request, Some(-1)),
            "follow=true&instance=a+b%2Fc~%2A&name=hello&namespace=openfaas-fn\
             &since=2024-01-02T03%3A04%3A05Z&tail=5"
        );
        let fraction = Request {
            since: Some(Utc.timestamp_opt(1_704_164_645, 500_000_000).unwrap()),
            ..Request::new("f")
        };
        assert_eq!(
            wire_query(&fraction, None),
            "follow=false&name=f&since=2024-01-02T03%3A04%3A05.500Z"
        );
    }
}
