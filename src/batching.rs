//! The dynamic batcher's settings, per served model: below both the server, which batches by
//! them, and export, which sizes the TensorRT profile from them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Per-model batching settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Most samples in one batch; 1 turns batching off.
    pub max_batch_size: usize,
    /// Longest a request waits for companions, from its arrival.
    pub max_queue_delay_ms: u64,
    /// Batch sizes worth leaving for at once, without waiting for the delay.
    pub preferred_batch_sizes: Vec<usize>,
    /// Most samples waiting; beyond it requests are refused with 503.
    pub queue_capacity: usize,
    /// Batches computed at the same time (one worker thread each).
    pub max_concurrent_batches: usize,
    /// Number of priority levels; 1 is the most urgent, requests default to the last.
    pub priority_levels: u8,
    /// Deadline of a request that sets none.
    pub request_timeout_ms: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_batch_size: 32,
            max_queue_delay_ms: 5,
            preferred_batch_sizes: Vec::new(),
            queue_capacity: 1024,
            max_concurrent_batches: 1,
            priority_levels: 2,
            request_timeout_ms: 30_000,
        }
    }
}

impl BatchConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_batch_size == 0 {
            return Err("max_batch_size must be at least 1".into());
        }
        if self.queue_capacity == 0 {
            return Err("queue_capacity must be at least 1".into());
        }
        if self.max_concurrent_batches == 0 {
            return Err("max_concurrent_batches must be at least 1".into());
        }
        if self.priority_levels == 0 {
            return Err("priority_levels must be at least 1".into());
        }
        if let Some(&p) = self
            .preferred_batch_sizes
            .iter()
            .find(|&&p| p == 0 || p > self.max_batch_size)
        {
            return Err(format!(
                "preferred batch size {p} must be between 1 and max_batch_size {}",
                self.max_batch_size
            ));
        }
        Ok(())
    }

    pub(crate) fn max_queue_delay(&self) -> Duration {
        Duration::from_millis(self.max_queue_delay_ms)
    }
}
