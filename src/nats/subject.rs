//! Subjects `<prefix>.<namespace>.<name>.<instance>`, each token encoded so that any name
//! the crate accepts fits NATS's token rules: dots separate tokens, `*` and `>` are
//! wildcards, whitespace ends a subject, and a token cannot be empty.
//!
//! The encoding keeps `A-Z a-z 0-9 -` as they are and writes every other byte as `_`
//! and two upper-case hex digits (`.` is `_2E`, `_` itself is `_5F`); an empty token is
//! a lone `_`. It is reversible, and a subject's tokens stay within the characters NATS
//! recommends.

use crate::FunctionName;

/// `text` as one subject token.
pub(crate) fn encode_token(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    if text.is_empty() {
        out.push('_');
        return;
    }
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push('_');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

/// The text of a token [`encode_token`] wrote, or `None` if no text encodes to it (the
/// tests' proof that the encoding is reversible, and how a subject names its function).
pub(crate) fn decode_token(token: &str) -> Option<String> {
    if token == "_" {
        return Some(String::new());
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'_' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            let decoded = u8::from_str_radix(hex, 16).ok()?;
            // Only the bytes the encoder escapes, in its upper-case hex.
            if decoded.is_ascii_alphanumeric() || decoded == b'-' || hex != hex.to_uppercase() {
                return None;
            }
            out.push(decoded);
            i += 3;
        } else if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(b);
            i += 1;
        } else {
            return None;
        }
    }
    if out.is_empty() {
        return None;
    }
    String::from_utf8(out).ok()
}

/// The subject of one instance's lines.
pub(crate) fn subject(prefix: &str, namespace: &str, name: &str, instance: &str) -> String {
    let mut s =
        String::with_capacity(prefix.len() + namespace.len() + name.len() + instance.len() + 8);
    s.push_str(prefix);
    for token in [namespace, name, instance] {
        s.push('.');
        encode_token(token, &mut s);
    }
    s
}

/// The subjects of a function's lines: one instance's, or (`instance` empty) every
/// instance's.
/// The function a line's subject names (`<prefix>.<namespace>.<name>.<instance>`), or
/// `None` for a subject of another shape.
pub(crate) fn function_of(prefix: &str, subject: &str) -> Option<FunctionName> {
    let rest = subject.strip_prefix(prefix)?.strip_prefix('.')?;
    let mut tokens = rest.split('.');
    let (namespace, name, _instance) = (tokens.next()?, tokens.next()?, tokens.next()?);
    if tokens.next().is_some() {
        return None;
    }
    Some(FunctionName::new(
        decode_token(namespace)?,
        decode_token(name)?,
    ))
}

pub(crate) fn filter(prefix: &str, namespace: &str, name: &str, instance: &str) -> String {
    if instance.is_empty() {
        let mut s = subject(prefix, namespace, name, "");
        s.pop(); // the empty instance's "_"
        s.push('*');
        s
    } else {
        subject(prefix, namespace, name, instance)
    }
}

/// Whether one of the stream's subject `patterns` (with NATS wildcards: `*` one token,
/// `>` the rest) matches `subject`.
pub(crate) fn covered(patterns: &[String], subject: &str) -> bool {
    patterns.iter().any(|pattern| {
        let mut tokens = subject.split('.');
        for wanted in pattern.split('.') {
            match (wanted, tokens.next()) {
                (">", Some(_)) => return true,
                ("*", Some(_)) => {}
                (wanted, Some(token)) if wanted == token => {}
                _ => return false,
            }
        }
        tokens.next().is_none()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_survives_the_round_trip_as_one_valid_token() {
        let names = [
            "",
            "hello",
            "figlet.openfaas-fn",
            "a.b.c",
            "under_score",
            "*",
            ">",
            "a b\tc",
            "_",
            "__",
            "_2E",
            "ünï 🎉",
            "%2E",
            "-",
            &"n".repeat(253),
        ];
        for name in names {
            let mut token = String::new();
            encode_token(name, &mut token);
            assert!(!token.is_empty(), "{name:?}");
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{name:?} -> {token:?}"
            );
            assert_eq!(decode_token(&token).as_deref(), Some(name), "{token:?}");
        }
        // Distinct names, distinct tokens (a few that a lazy encoding would merge).
        let mut seen = std::collections::HashSet::new();
        for name in ["a.b", "a_b", "a_2Eb", "a-b", "a*b", "ab"] {
            let mut token = String::new();
            encode_token(name, &mut token);
            assert!(seen.insert(token), "{name:?}");
        }
        for bad in ["", "a.b", "_2", "_zz", "_41", "_2e", "a b", "*"] {
            assert_eq!(decode_token(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn subjects_and_filters() {
        assert_eq!(
            subject("logs", "openfaas-fn", "fig.let", "fig.let-1"),
            "logs.openfaas-fn.fig_2Elet.fig_2Elet-1"
        );
        assert_eq!(filter("logs", "", "f", ""), "logs._.f.*");
        assert_eq!(filter("logs", "ns", "f", "i_1"), "logs.ns.f.i_5F1");
    }

    #[test]
    fn wildcards_cover_subjects_as_nats_matches_them() {
        let patterns = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let ok = patterns(&["logs.openfaas-fn.ok.>"]);
        assert!(covered(&ok, "logs.openfaas-fn.ok.ok-1"));
        assert!(!covered(&ok, "logs.openfaas-fn.ok"));
        assert!(!covered(&ok, "logs.openfaas-fn.bad.bad-1"));
        let star = patterns(&["a.*.c", "x"]);
        assert!(covered(&star, "a.b.c"));
        assert!(covered(&star, "x"));
        assert!(!covered(&star, "a.b.c.d"));
        assert!(!covered(&star, "a.b"));
        assert!(!covered(&[], "a"));
    }
}
