//! The hot loops of t-SNE and PCA are compiled twice, for the baseline x86-64 target and for AVX2,
//! and chosen at run time. The loops spell out their vector lanes and never fuse a multiply
//! and an add, so both builds perform the same operations in the same order and give the
//! same bits.

/// Whether this CPU can run the AVX2 builds.
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx2() -> bool {
    std::is_x86_feature_detected!("avx2")
}

/// 1 + dx^2 + dy^2 per lane, added in that order: the Student-t denominator of t-SNE, for
/// the AVX2 kernels.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) fn one_plus_squares(
    dx: std::arch::x86_64::__m256,
    dy: std::arch::x86_64::__m256,
) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    _mm256_add_ps(
        _mm256_add_ps(_mm256_set1_ps(1.0), _mm256_mul_ps(dx, dx)),
        _mm256_mul_ps(dy, dy),
    )
}
