//! A cached object's body, compressed against the first body its cache packed.
//!
//! The children Oksa makes of one kind share almost all their text: the keys, the API server's
//! defaults, one template for every branch of a project. Names, UIDs, hashes, timestamps and
//! images differ. LZ4 with the first body of the kind as its dictionary keeps a Deployment's
//! 2.5 KB of JSON in about 350 bytes and a Service's 1 KB in under 200 (issue 23: the bodies were
//! most of the caches). Reading one back costs a few microseconds, and a reconcile reads a few.
//!
//! Each cache (one per kind) has its own dictionary, set by the first body it packs and fixed
//! from then on: every packed body keeps a handle to the one it was packed against, so no body
//! is ever read with another. Being the cache's own, not the process's, it does not depend on
//! what else in the process packed a body of the kind first (a test's toy Deployment once
//! doubled the cost of every Deployment cached after it).

use std::fmt;
use std::sync::{Arc, OnceLock};

#[derive(Clone)]
pub struct Packed {
    dictionary: Arc<[u8]>,
    bytes: Box<[u8]>,
}

/// The dictionary of one cache: the first body packed with it. It stays in memory as long as
/// a body packed against it does, even after that first object is gone.
#[derive(Default)]
pub struct Dictionary(OnceLock<Arc<[u8]>>);

impl Packed {
    /// Packs `text` against `dictionary`, which it sets if it is the first.
    pub fn new(dictionary: &Dictionary, text: &str) -> Self {
        let dictionary = dictionary
            .0
            .get_or_init(|| Arc::from(text.as_bytes()))
            .clone();
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
        let dictionary = Dictionary::default();
        let first = r#"{"spec":{"replicas":1,"template":{"spec":{"containers":[{"name":"web","image":"shop:1","imagePullPolicy":"IfNotPresent","terminationMessagePath":"/dev/termination-log"}]}}}}"#;
        let second = first.replace("shop:1", "shop:2").replace("web", "worker");
        let packed_first = Packed::new(&dictionary, first);
        let packed_second = Packed::new(&dictionary, &second);
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
    fn caches_keep_their_own_dictionary() {
        let (for_a, for_b) = (Dictionary::default(), Dictionary::default());
        let a = Packed::new(&for_a, r#"{"a":"the first of a"}"#);
        let b = Packed::new(&for_b, r#"{"b":"the first of b"}"#);
        let a2 = Packed::new(&for_a, r#"{"a":"the second of a"}"#);
        assert_eq!(a.text().unwrap(), r#"{"a":"the first of a"}"#);
        assert_eq!(b.text().unwrap(), r#"{"b":"the first of b"}"#);
        assert_eq!(a2.text().unwrap(), r#"{"a":"the second of a"}"#);
    }
}
