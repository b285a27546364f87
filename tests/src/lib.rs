//! End-to-end test support.

/// How many incremental chunks the `crash-writer` child gathers before it
/// compacts the document. Small, so that compactions happen many times per
/// run and kills land inside them; the crash test uses it to bound how many
/// chunks may be left behind.
pub const CRASH_COMPACT_AFTER: usize = 7;
