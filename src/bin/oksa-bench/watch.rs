//! The benchmark's watches: each runs in a task of its own for the rest of the run.

use std::fmt::Debug;

use futures::TryStreamExt;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// Calls `on_object` with every version of every object `api` lists and watches with `config`.
pub fn each<K>(api: Api<K>, config: watcher::Config, mut on_object: impl FnMut(K) + Send + 'static)
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let stream = watcher(api, config).default_backoff().applied_objects();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        // An error (a watch expired, an API server too busy to answer) is retried by the backoff:
        // stopping at the first would leave the rest of the run blind (it did once at 5,000).
        loop {
            match stream.try_next().await {
                Ok(Some(object)) => on_object(object),
                Ok(None) => break,
                Err(error) => eprintln!("  a watch of the benchmark: {error} (retrying)"),
            }
        }
    });
}
