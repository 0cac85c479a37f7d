//! The hot loops of t-SNE and PCA are compiled twice, for the baseline x86-64 target and for AVX2,
//! and chosen at run time. The loops spell out their vector lanes and never fuse a multiply
//! and an add, so both builds perform the same operations in the same order and give the
//! same bits.

/// Whether this CPU can run the AVX2 builds.
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx2() -> bool {
    std::is_x86_feature_detected!("avx2")
}
