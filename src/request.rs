//! [`Request`]: what a client asks for, parsed and validated from a query string or a
//! JSON body.

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use crate::Error;

/// The longest name, namespace or instance accepted (a DNS subdomain's limit).
pub(crate) const MAX_NAME_LEN: usize = 253;

/// A log query, with the field names of Go's `faas-provider/logs.Request`.
///
/// The handler builds it from `GET /system/logs?name=...` or a `POST` JSON body with the
/// same fields, and passes it to [`Requester::query`](crate::Requester::query). A backend
/// may use every field to do less work, but need not: the handler enforces `since`,
/// `instance`, `tail` and `follow` on whatever the backend returns.
///
/// Not `#[non_exhaustive]`, on purpose: clients build it with a struct literal,
/// `Request { follow: true, ..Request::new("hello") }`, which that attribute would
/// forbid; a new field comes with a new major version.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// The function's name; never empty once parsed.
    pub name: String,
    /// The function's namespace; empty means the provider's default.
    pub namespace: String,
    /// Only this instance's messages; empty means every instance.
    pub instance: String,
    /// No message older than this.
    pub since: Option<DateTime<Utc>>,
    /// At most this many messages from history, the newest; `None` is unlimited. A query
    /// string's `tail <= 0` parses to `None`; `Some(0)` (which only code can ask for)
    /// means no history at all.
    pub tail: Option<usize>,
    /// After history, keep sending messages as they are written.
    pub follow: bool,
}

impl Request {
    /// A request for every message of one function, without follow.
    pub fn new(name: impl Into<String>) -> Self {
        Request {
            name: name.into(),
            ..Request::default()
        }
    }

    /// Parses a URL query string (without the `?`), as `GET /system/logs` receives it.
    ///
    /// When a key repeats the last value wins; an empty value counts as absent; unknown
    /// keys are ignored. A relative `since` (`5m`) counts back from now.
    ///
    /// ```
    /// let r = faas_logs::Request::from_query("name=hello&tail=-1&follow=true&since=5m").unwrap();
    /// assert_eq!((r.name.as_str(), r.tail, r.follow), ("hello", None, true));
    /// assert!(r.since.is_some());
    ///
    /// let e = faas_logs::Request::from_query("name=hello&follow=yes").unwrap_err();
    /// assert_eq!(e.status(), 422);
    /// ```
    pub fn from_query(query: &str) -> Result<Self, Error> {
        Self::from_query_at(query, Utc::now(), "")
    }

    /// Parses a JSON object with the fields of [`Request`] (the body of a `POST`).
    ///
    /// Values may be strings or the matching JSON type (`"tail": 5`, `"follow": true`);
    /// `null` counts as absent. The same validation applies as for a query string.
    pub fn from_json(body: &[u8]) -> Result<Self, Error> {
        Self::from_json_at(body, Utc::now(), "")
    }

    pub(crate) fn from_query_at(
        query: &str,
        now: DateTime<Utc>,
        name_chars: &str,
    ) -> Result<Self, Error> {
        Self::from_pairs(form_urlencoded::parse(query.as_bytes()), now, name_chars)
    }

    pub(crate) fn from_json_at(
        body: &[u8],
        now: DateTime<Utc>,
        name_chars: &str,
    ) -> Result<Self, Error> {
        // A map keeps the last of repeated keys, as a query string does.
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
            .map_err(|e| Error::invalid("body", format!("not a JSON object: {e}")))?;
        let mut pairs = Vec::with_capacity(object.len());
        for (key, value) in object {
            let text = match value {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) => s,
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Number(n) => n.to_string(),
                _ if !is_known(&key) => continue,
                _ => {
                    return Err(Error::invalid(
                        key,
                        "must be a string, a number or a boolean",
                    ))
                }
            };
            pairs.push((Cow::Owned(key), Cow::Owned(text)));
        }
        Self::from_pairs(pairs, now, name_chars)
    }

    /// The request as a query string, which [`Request::from_query`] reads back to the
    /// same request. `since` is written as unix seconds with nine fraction digits (RFC 3339
    /// before 1970, where unix seconds would be negative). `tail: Some(0)` has no form on
    /// the wire (`tail=0` means unlimited there) and is written as `tail=0`.
    ///
    /// ```
    /// let r = faas_logs::Request::from_query("name=hello&tail=5&since=2024-01-02T15:04:05.5Z").unwrap();
    /// assert_eq!(r.to_query(), "name=hello&since=1704207845.500000000&tail=5");
    /// assert_eq!(faas_logs::Request::from_query(&r.to_query()).unwrap(), r);
    /// ```
    #[must_use]
    pub fn to_query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in self.wire_pairs() {
            query.append_pair(key, &value);
        }
        query.finish()
    }

    /// The request as the JSON body of a `POST`, which [`Request::from_json`] reads back
    /// to the same request; values as in [`Request::to_query`].
    #[must_use]
    pub fn to_json(&self) -> String {
        let object: serde_json::Map<String, serde_json::Value> = self
            .wire_pairs()
            .into_iter()
            .map(|(key, value)| {
                let value = match key {
                    "tail" => serde_json::Value::from(self.tail.unwrap_or(0)),
                    "follow" => serde_json::Value::from(self.follow),
                    _ => serde_json::Value::from(value),
                };
                (key.to_owned(), value)
            })
            .collect();
        serde_json::Value::Object(object).to_string()
    }

    fn wire_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![("name", self.name.clone())];
        for (key, value) in [("namespace", &self.namespace), ("instance", &self.instance)] {
            if !value.is_empty() {
                pairs.push((key, value.clone()));
            }
        }
        if let Some(since) = self.since {
            let text = if since.timestamp() >= 0 {
                format!(
                    "{}.{:09}",
                    since.timestamp(),
                    since.timestamp_subsec_nanos()
                )
            } else {
                since.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
            };
            pairs.push(("since", text));
        }
        if let Some(tail) = self.tail {
            pairs.push(("tail", tail.to_string()));
        }
        if self.follow {
            pairs.push(("follow", "true".into()));
        }
        pairs
    }

    fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (Cow<'a, str>, Cow<'a, str>)>,
        now: DateTime<Utc>,
        name_chars: &str,
    ) -> Result<Self, Error> {
        let mut raw: [Option<Cow<'a, str>>; 6] = Default::default();
        for (key, value) in pairs {
            if let Some(i) = KEYS.iter().position(|k| *k == key) {
                raw[i] = (!value.is_empty()).then_some(value);
            }
        }
        let [name, namespace, instance, since, tail, follow] = raw;
        let name = name.ok_or_else(|| Error::invalid("name", "the function name is required"))?;
        Ok(Request {
            name: valid_name("name", name, name_chars)?,
            namespace: namespace.map_or(Ok(String::new()), |v| {
                valid_name("namespace", v, name_chars)
            })?,
            instance: instance.map_or(Ok(String::new()), |v| valid_name("instance", v, ""))?,
            since: since.map(|v| parse_since(&v, now)).transpose()?,
            tail: tail.map(|v| parse_tail(&v)).transpose()?.flatten(),
            follow: follow
                .map(|v| parse_follow(&v))
                .transpose()?
                .unwrap_or(false),
        })
    }
}

const KEYS: [&str; 6] = ["name", "namespace", "instance", "since", "tail", "follow"];

fn is_known(key: &str) -> bool {
    KEYS.contains(&key)
}

/// `extra` holds the ASCII characters a backend accepts beyond the contract's own.
pub(crate) fn valid_name(
    param: &'static str,
    value: Cow<'_, str>,
    extra: &str,
) -> Result<String, Error> {
    let ok = value.len() <= MAX_NAME_LEN
        && value.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'-' | b'_' | b'.')
                || (b.is_ascii() && extra.as_bytes().contains(&b))
        });
    if ok {
        return Ok(value.into_owned());
    }
    // Echo a short value back so the user sees the typo; not a 64 KiB one.
    let shown = if value.chars().count() > 64 {
        "the value".to_owned()
    } else {
        format!("{value:?}")
    };
    Err(Error::invalid(
        param,
        format!("{shown} is not a valid name: use at most {MAX_NAME_LEN} of a-z, A-Z, 0-9, '-', '_' and '.'"),
    ))
}

fn parse_tail(value: &str) -> Result<Option<usize>, Error> {
    let n: i64 = value.trim().parse().map_err(|_| {
        Error::invalid(
            "tail",
            format!("{value:?} is not an integer (use a count, or -1 for unlimited)"),
        )
    })?;
    // usize is at least 64 bits wherever tokio runs, so a positive i64 always fits.
    Ok((n > 0).then(|| usize::try_from(n).unwrap_or(usize::MAX)))
}

/// Go's `strconv.ParseBool` set, exactly.
fn parse_follow(value: &str) -> Result<bool, Error> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(Error::invalid(
            "follow",
            format!("{value:?} is not a boolean (use true or false, 1 or 0)"),
        )),
    }
}

/// RFC 3339, unix seconds with an optional fraction, or a duration back from `now`; a
/// time before year 0 is year 0, and a leap second (`23:59:60.5`) is the instant unix
/// time gives it (`00:00:00.5`), so that every `since` can be written back.
fn parse_since(value: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, Error> {
    parse_since_form(value, now).map(|since| without_leap_second(since).max(earliest()))
}

fn without_leap_second(t: DateTime<Utc>) -> DateTime<Utc> {
    match t.timestamp_subsec_nanos().checked_sub(1_000_000_000) {
        Some(nanos) => {
            DateTime::from_timestamp(t.timestamp().saturating_add(1), nanos).unwrap_or(t)
        }
        None => t,
    }
}

fn parse_since_form(value: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, Error> {
    let bad = || {
        Error::invalid(
            "since",
            format!(
                "{value:?} is not a time: use RFC 3339 (2024-01-02T15:04:05Z), \
                 unix seconds (1704207845.5) or a duration back from now (5m, 1h30m)"
            ),
        )
    };
    let value = value.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.with_timezone(&Utc));
    }
    // An unescaped `+` in a query string arrives as a space: `...T10:00:00 02:00`.
    if value.len() > 19 && value.contains(' ') {
        if let Ok(t) = DateTime::parse_from_rfc3339(&value.replace(' ', "+")) {
            return Ok(t.with_timezone(&Utc));
        }
    }
    if value.bytes().next().is_some_and(|b| b.is_ascii_digit())
        && value.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    {
        return parse_unix(value).ok_or_else(bad);
    }
    let back = parse_duration(value).ok_or_else(bad)?;
    Ok(now.checked_sub_signed(back).unwrap_or_else(earliest))
}

/// The earliest `since` kept: year 0, the first instant RFC 3339 can write. Anything
/// before it asks for the same thing (every message), and is clamped to it so that a
/// request can always be written back.
fn earliest() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("0000-01-01T00:00:00Z")
        .map_or(DateTime::<Utc>::MIN_UTC, |t| t.with_timezone(&Utc))
}

fn parse_unix(value: &str) -> Option<DateTime<Utc>> {
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    if frac.len() > 9 || frac.contains('.') {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let nanos = if frac.is_empty() {
        0
    } else {
        frac.parse::<u32>().ok()? * 10u32.pow(9 - frac.len() as u32)
    };
    DateTime::from_timestamp(secs, nanos)
}

/// Go's `time.ParseDuration` grammar without the sign: `300ms`, `1.5h`, `1h30m`.
fn parse_duration(value: &str) -> Option<chrono::Duration> {
    const UNITS: [(&str, f64); 9] = [
        ("ns", 1.0),
        ("us", 1e3),
        ("\u{b5}s", 1e3),
        ("\u{3bc}s", 1e3),
        ("ms", 1e6),
        ("s", 1e9),
        ("m", 60e9),
        ("h", 3600e9),
        ("d", 86400e9),
    ];
    let mut rest = value;
    let mut nanos = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let (_, scale) = UNITS.iter().find(|(u, _)| *u == &rest[..unit_len])?;
        rest = &rest[unit_len..];
        nanos += number * scale;
    }
    // Beyond ~292 years chrono cannot hold it; that far back is "everything" anyway.
    Some(chrono::Duration::nanoseconds(
        nanos.min(i64::MAX as f64) as i64
    ))
}

/// A request's `since` and `instance` conditions on a message.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    pub(crate) since: Option<DateTime<Utc>>,
    /// `None` when every instance is wanted.
    pub(crate) instance: Option<String>,
}

impl Filter {
    pub(crate) fn new(request: &Request) -> Self {
        Filter {
            since: request.since,
            instance: (!request.instance.is_empty()).then(|| request.instance.clone()),
        }
    }

    pub(crate) fn wanted(&self, m: &crate::Message) -> bool {
        self.wants(&m.timestamp, &m.instance)
    }

    /// Whether a line written at `timestamp` by `instance` is wanted.
    pub(crate) fn wants(&self, timestamp: &DateTime<Utc>, instance: &str) -> bool {
        self.since.is_none_or(|since| *timestamp >= since)
            && self.instance.as_deref().is_none_or(|i| instance == i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 2, 15, 4, 5).unwrap()
    }

    fn since(v: &str) -> Result<DateTime<Utc>, Error> {
        parse_since(v, now())
    }

    #[test]
    fn since_accepts_rfc3339_unix_and_durations() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(since("2024-01-02T15:04:05Z").unwrap(), now());
        assert_eq!(
            since("2024-01-02T17:04:05.5+02:00").unwrap(),
            t("2024-01-02T15:04:05.5Z")
        );
        assert_eq!(since("2024-01-02T17:04:05 02:00").unwrap(), now());
        assert_eq!(since("1704207845").unwrap(), now());
        assert_eq!(
            since("1704207845.000000001").unwrap(),
            now() + chrono::Duration::nanoseconds(1)
        );
        assert_eq!(since("5m").unwrap(), now() - chrono::Duration::minutes(5));
        assert_eq!(
            since("1h30m").unwrap(),
            now() - chrono::Duration::minutes(90)
        );
        assert_eq!(
            since("1.5h").unwrap(),
            now() - chrono::Duration::minutes(90)
        );
        assert_eq!(
            since("250ms").unwrap(),
            now() - chrono::Duration::milliseconds(250)
        );
        assert_eq!(
            since("100000000h").unwrap(),
            now() - chrono::Duration::nanoseconds(i64::MAX)
        );
        for bad in [
            "",
            "yesterday",
            "5x",
            "-5m",
            "1.2.3",
            "1704207845.1234567891",
            "m5",
        ] {
            let e = since(bad).unwrap_err();
            assert!(
                matches!(e, Error::InvalidRequest { ref param, .. } if param == "since"),
                "{bad}"
            );
        }
    }

    #[test]
    fn requests_are_written_back_in_forms_the_parser_reads_to_the_same_request() {
        for query in [
            "name=a",
            "name=a.b_c-1&namespace=ns&instance=a-1&tail=7&follow=true",
            "name=a&since=2024-01-02T15:04:05.123456789%2B02:00",
            "name=a&since=1900-06-01T00:00:00.5Z",
            "name=a&since=0",
            "name=a&since=99999999h",
        ] {
            let request = Request::from_query_at(query, now(), "").unwrap();
            let printed = request.to_query();
            assert_eq!(Request::from_query(&printed).unwrap(), request, "{printed}");
            let json = request.to_json();
            assert_eq!(
                Request::from_json(json.as_bytes()).unwrap(),
                request,
                "{json}"
            );
        }
    }

    #[test]
    fn a_since_before_year_zero_is_year_zero() {
        let year_zero = since("0000-01-01T00:00:00Z").unwrap();
        assert_eq!(since("0000-01-01T00:00:00+01:00").unwrap(), year_zero);
        assert_eq!(since("0000-01-01T00:00:00.5+00:01").unwrap(), year_zero);
        // A duration caps at about 292 years back, before any log line.
        assert!(since("99999999h").unwrap() < since("1800-01-01T00:00:00Z").unwrap());
    }

    #[test]
    fn repeated_keys_take_the_last_value() {
        let r = Request::from_query_at("name=a&tail=5&name=b&tail=7&follow=1&follow=0", now(), "")
            .unwrap();
        assert_eq!((r.name.as_str(), r.tail, r.follow), ("b", Some(7), false));
    }

    #[test]
    fn a_leap_second_since_is_unix_time_s_instant_and_writes_back() {
        // Found by the request fuzz target: a leap second (with an offset) had a
        // nanosecond count past one second, which unix seconds cannot write.
        let r = Request::from_query_at("name=x&since=2024-03-21T14:00:60.524-03:00", now(), "")
            .unwrap();
        let expected: DateTime<Utc> = "2024-03-21T17:01:00.524Z".parse().unwrap();
        assert_eq!(r.since, Some(expected));
        assert_eq!(Request::from_query_at(&r.to_query(), now(), "").unwrap(), r);
        assert_eq!(
            Request::from_json_at(r.to_json().as_bytes(), now(), "").unwrap(),
            r
        );
    }

    #[test]
    fn json_body_accepts_native_types_and_strings() {
        let r = Request::from_json_at(
            br#"{"name":"a","tail":"3","follow":true,"since":"2024-01-02T15:04:05Z","extra":[1]}"#,
            now(),
            "",
        )
        .unwrap();
        assert_eq!((r.tail, r.follow, r.since), (Some(3), true, Some(now())));
        let e = Request::from_json_at(br#"{"name":"a","tail":[3]}"#, now(), "").unwrap_err();
        assert!(e.to_string().starts_with("invalid tail"), "{e}");
    }
}
