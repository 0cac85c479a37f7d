//! Reused buffers for the kernels' intermediate matrices.
//!
//! A fresh allocation of a few megabytes comes from the system, and costs a page fault per
//! 4 KiB the first time it is written (glibc hands large blocks back on free, so every call
//! pays again). A buffer taken here keeps its pages between calls. The pool came in with the
//! row-wise transforms and was not timed apart from them.

use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

/// Buffers kept for reuse; more are dropped when returned.
const KEPT: usize = 32;

static POOL: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// A buffer of `len` values that holds whatever an earlier user left: every value must be
/// written before it is read.
pub(super) struct Scratch(Vec<f32>);

impl Scratch {
    pub(super) fn take(len: usize) -> Self {
        let mut pool = POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // The smallest buffer that fits, else the largest (grown once, then kept).
        let fits = (0..pool.len())
            .filter(|&i| pool[i].capacity() >= len)
            .min_by_key(|&i| pool[i].capacity());
        let pick = fits.or_else(|| (0..pool.len()).max_by_key(|&i| pool[i].capacity()));
        let mut buffer = pick.map(|i| pool.swap_remove(i)).unwrap_or_default();
        drop(pool);
        buffer.resize(len, 0.0);
        Self(buffer)
    }
}

impl Deref for Scratch {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let mut pool = POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if pool.len() < KEPT {
            pool.push(std::mem::take(&mut self.0));
        }
    }
}
