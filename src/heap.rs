//! The allocator's own account of the heap, where it keeps one (jemalloc, the image's
//! allocator): the bytes the program holds, and the pages resident behind them. Their gap is
//! what the allocator keeps for reuse; a peak of resident memory without a peak of allocated
//! bytes is retention, not data.

/// Bytes allocated by the program and bytes of the allocator's resident pages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeapStats {
    pub allocated: u64,
    pub resident: u64,
}

/// The allocator's figures now; None when the allocator keeps none (musl's, glibc's).
#[cfg(feature = "jemalloc")]
pub fn stats() -> Option<HeapStats> {
    use tikv_jemalloc_ctl::{epoch, stats};
    // jemalloc refreshes its statistics only when the epoch advances.
    epoch::advance().ok()?;
    Some(HeapStats {
        allocated: stats::allocated::read().ok()? as u64,
        resident: stats::resident::read().ok()? as u64,
    })
}

#[cfg(not(feature = "jemalloc"))]
pub fn stats() -> Option<HeapStats> {
    None
}

/// `f`'s result, and the bytes the calling thread holds more after `f` than before: what `f`
/// left allocated (by size class, as the allocator hands it out). None without jemalloc.
#[cfg(feature = "jemalloc")]
pub fn retained_by<T>(f: impl FnOnce() -> T) -> (T, Option<i64>) {
    use tikv_jemalloc_ctl::thread::{allocatedp, deallocatedp};
    let counters = allocatedp::read().and_then(|a| Ok((a, deallocatedp::read()?)));
    let Ok((allocated, deallocated)) = counters else {
        return (f(), None);
    };
    let held = || allocated.get() as i64 - deallocated.get() as i64;
    let before = held();
    let value = f();
    (value, Some(held() - before))
}

#[cfg(not(feature = "jemalloc"))]
pub fn retained_by<T>(f: impl FnOnce() -> T) -> (T, Option<i64>) {
    (f(), None)
}

#[cfg(all(test, feature = "jemalloc"))]
mod tests {
    use super::*;

    #[test]
    fn retained_counts_what_stays_allocated_only() {
        let (kept, bytes) = retained_by(|| {
            let _scratch = vec![0u8; 100_000];
            vec![0u8; 4_096]
        });
        assert_eq!(kept.len(), 4_096);
        assert_eq!(bytes, Some(4_096));
    }
}
