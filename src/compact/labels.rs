//! An object's labels as one string, for the caches.
//!
//! As k8s-openapi keeps them (a `BTreeMap` of `String`s) the labels of a cached child cost about
//! 900 bytes: a 544-byte tree node however few they are, and two allocations per label. As text,
//! `key=value` a line, they cost one allocation of about their length. The API server's syntax
//! keeps `=` and line breaks out of label keys and `\n` out of values, so the text reads back
//! unambiguously.

use std::collections::BTreeMap;
use std::fmt;

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Labels(Box<str>);

impl Labels {
    pub fn from_map(labels: &BTreeMap<String, String>) -> Self {
        let mut text = String::with_capacity(
            labels
                .iter()
                .map(|(key, value)| key.len() + value.len() + 2)
                .sum(),
        );
        for (key, value) in labels {
            text.push_str(key);
            text.push('=');
            text.push_str(value);
            text.push('\n');
        }
        Labels(text.into_boxed_str())
    }

    /// Each label, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.lines().filter_map(|line| line.split_once('='))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, value)| value)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_it_was_given() {
        let map = BTreeMap::from([
            (
                "app.kubernetes.io/managed-by".to_string(),
                "oksa".to_string(),
            ),
            ("oksa.dev/release".to_string(), "feature-x".to_string()),
            ("empty".to_string(), String::new()),
        ]);
        let labels = Labels::from_map(&map);
        assert_eq!(labels.get("oksa.dev/release"), Some("feature-x"));
        assert_eq!(labels.get("empty"), Some(""));
        assert_eq!(
            labels.get("oksa.dev"),
            None,
            "a prefix of a key is not the key"
        );
        assert_eq!(labels.get("feature-x"), None, "a value is not a key");
        assert!(labels.contains_key("app.kubernetes.io/managed-by"));
        assert_eq!(labels.to_map(), map);
        assert!(Labels::from_map(&BTreeMap::new()).is_empty());
    }
}
