//! A cached object's body, compressed against the first body cached of its kind.
//!
//! The children Oksa makes of one kind share almost all their text: the keys, the API server's
//! defaults, one template for every branch of a project. Names, UIDs, hashes, timestamps and
//! images differ. LZ4 with the first body of the kind as its dictionary keeps a Deployment's
//! 2.5 KB of JSON in about 350 bytes and a Service's 1 KB in under 200 (issue 23: the bodies were
//! most of the caches). Reading one back costs a few microseconds, and a reconcile reads a few.
//!
//! The dictionary of a kind is fixed for the life of the process: every packed body keeps a
//! handle to the one it was packed against, so no body is ever read with another.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex};

#[derive(Clone)]
pub struct Packed {
    dictionary: Arc<[u8]>,
    bytes: Box<[u8]>,
}

/// The dictionary of each kind: the first body packed of it.
static DICTIONARIES: LazyLock<Mutex<HashMap<String, Arc<[u8]>>>> = LazyLock::new(Default::default);

impl Packed {
    /// Packs `text`, a body of `kind`.
    pub fn new(kind: &str, text: &str) -> Self {
        let dictionary = {
            let mut dictionaries = DICTIONARIES.lock().unwrap_or_else(|e| e.into_inner());
            match dictionaries.get(kind) {
                Some(dictionary) => dictionary.clone(),
                None => {
                    let first: Arc<[u8]> = Arc::from(text.as_bytes());
                    dictionaries.insert(kind.to_string(), first.clone());
                    first
                }
            }
        };
        let bytes = lz4_flex::block::compress_prepend_size_with_dict(text.as_bytes(), &dictionary)
            .into_boxed_slice();
        Packed { dictionary, bytes }
    }

    /// The text as it was packed. Fails only if the bytes were damaged, which safe code cannot do.
    pub fn text(&self) -> Result<String, String> {
        let bytes =
            lz4_flex::block::decompress_size_prepended_with_dict(&self.bytes, &self.dictionary)
                .map_err(|error| format!("a cached body could not be unpacked: {error}"))?;
        String::from_utf8(bytes).map_err(|error| format!("a cached body is not text: {error}"))
    }

    /// The bytes it holds (without the shared dictionary).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
}

impl fmt::Debug for Packed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.text() {
            Ok(text) => f.write_str(&text),
            Err(error) => f.write_str(&error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_was_packed_and_later_bodies_are_small() {
        let kind = "packed-test-kind";
        let first = r#"{"spec":{"replicas":1,"template":{"spec":{"containers":[{"name":"web","image":"shop:1","imagePullPolicy":"IfNotPresent","terminationMessagePath":"/dev/termination-log"}]}}}}"#;
        let second = first.replace("shop:1", "shop:2").replace("web", "worker");
        let packed_first = Packed::new(kind, first);
        let packed_second = Packed::new(kind, &second);
        assert_eq!(packed_first.text().unwrap(), first);
        assert_eq!(packed_second.text().unwrap(), second);
        assert!(
            packed_second.len() * 3 < second.len(),
            "{} bytes for {}",
            packed_second.len(),
            second.len()
        );
    }

    #[test]
    fn kinds_keep_their_own_dictionary() {
        let a = Packed::new("packed-test-a", r#"{"a":"the first of a"}"#);
        let b = Packed::new("packed-test-b", r#"{"b":"the first of b"}"#);
        let a2 = Packed::new("packed-test-a", r#"{"a":"the second of a"}"#);
        assert_eq!(a.text().unwrap(), r#"{"a":"the first of a"}"#);
        assert_eq!(b.text().unwrap(), r#"{"b":"the first of b"}"#);
        assert_eq!(a2.text().unwrap(), r#"{"a":"the second of a"}"#);
    }
}
