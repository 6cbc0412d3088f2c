//! (in progress)

/// Entry points of the module's kernels.
pub(crate) fn entries() -> Vec<String> {
    Vec::new()
}
