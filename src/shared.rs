//! [`SharedStr`]: the string type of a message's name, namespace and instance.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An immutable string shared by reference count: a copy costs one atomic increment, not
/// an allocation.
///
/// Every line of an instance carries the same function name, namespace and instance, so
/// [`Message`](crate::Message) holds them as `SharedStr`: copies of a message (a store
/// makes one per line for each reader) share them. It reads like a `&str` (it derefs to
/// one, compares with `str`, `&str` and `String`, prints and serializes as the text) and
/// is made from a `&str` or a `String` with `into()`.
///
/// ```
/// use faas_logs::SharedStr;
///
/// let name: SharedStr = "hello".into();
/// let copy = name.clone(); // no allocation
/// assert_eq!(copy, "hello");
/// assert!(copy.starts_with("he"));
/// assert_eq!(serde_json::to_string(&copy).unwrap(), r#""hello""#);
/// ```
#[derive(Clone, Default)]
pub struct SharedStr(
    /// `None` for the empty string, which is common (no namespace, no instance) and then
    /// costs no allocation and no shared counter.
    Option<Arc<str>>,
);

impl SharedStr {
    /// The text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }

    /// Whether both are the very same shared text (or both empty): equality without
    /// reading the text, for callers that remember a string they have checked.
    pub(crate) fn is_same(&self, other: &SharedStr) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }

    fn new(text: Arc<str>) -> Self {
        SharedStr((!text.is_empty()).then_some(text))
    }
}

impl Deref for SharedStr {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for SharedStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for SharedStr {
    fn eq(&self, other: &Self) -> bool {
        // The empty string is always `None`, so this is equality of the text, and
        // `Arc`'s comparison sees the same shared text without reading it.
        self.0 == other.0
    }
}

impl Eq for SharedStr {}

impl PartialOrd for SharedStr {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SharedStr {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for SharedStr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Display for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<&str> for SharedStr {
    fn from(text: &str) -> Self {
        SharedStr::new(text.into())
    }
}

impl From<String> for SharedStr {
    fn from(text: String) -> Self {
        SharedStr::new(text.into())
    }
}

impl From<&String> for SharedStr {
    fn from(text: &String) -> Self {
        SharedStr::new(text.as_str().into())
    }
}

impl From<Arc<str>> for SharedStr {
    fn from(text: Arc<str>) -> Self {
        SharedStr::new(text)
    }
}

impl From<SharedStr> for String {
    fn from(text: SharedStr) -> Self {
        text.as_str().to_owned()
    }
}

impl PartialEq<str> for SharedStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for SharedStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for SharedStr {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<SharedStr> for str {
    fn eq(&self, other: &SharedStr) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<SharedStr> for &str {
    fn eq(&self, other: &SharedStr) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<SharedStr> for String {
    fn eq(&self, other: &SharedStr) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Serialize for SharedStr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SharedStr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A visitor, not String: text read straight into the Arc, one allocation not two.
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = SharedStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<SharedStr, E> {
                Ok(SharedStr::from(text))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn empty_is_empty_whatever_it_was_made_from() {
        let made: [SharedStr; 4] = [
            SharedStr::default(),
            "".into(),
            String::new().into(),
            Arc::<str>::from("").into(),
        ];
        for s in &made {
            assert_eq!(s, &SharedStr::default());
            assert_eq!(s.as_str(), "");
            assert_eq!(serde_json::to_string(s).unwrap(), r#""""#);
        }
    }

    #[test]
    fn it_is_found_by_str_in_maps_and_orders_as_text() {
        let mut map = HashMap::new();
        map.insert(SharedStr::from("f-1"), 1);
        assert_eq!(map.get("f-1"), Some(&1));
        let mut names: Vec<SharedStr> = ["b", "", "a"].map(SharedStr::from).to_vec();
        names.sort();
        assert_eq!(names, ["", "a", "b"]);
        let back: SharedStr = serde_json::from_str(r#""hello""#).unwrap();
        assert_eq!(back, "hello");
    }
}
