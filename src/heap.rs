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
