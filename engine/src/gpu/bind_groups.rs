//! Bind groups kept from one pass to the next. Creating a bind group is one of the
//! costly calls of a WebGPU pass (a validated object per dispatch, and in a browser a
//! JavaScript call or two), and extending a prompt one token at a time records the
//! same dispatches over the same buffers again and again: the buffer pool hands each
//! role the same buffer as last time, scratch bindings cover the whole pooled buffer
//! (so a prompt one token longer binds the same bytes), and the parameter blocks sit
//! at the same offsets of the same uniform buffer. Only the bind groups the last pass
//! used are kept, so what the cache holds on to stays bounded: one pass's buffers, kept
//! alive until the model's next pass (a dropped session's keys and values, and scratch
//! buffers the pool let go, included).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use super::kernels::Kernel;

/// Everything a bind group binds: the kernel (its layout), the parameter block's
/// buffer, offset and size (binding 0), and each storage binding's buffer and size.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BindKey {
    pub kernel: Kernel,
    pub params: (wgpu::Buffer, u64, u64),
    pub storage: Vec<(wgpu::Buffer, u64)>,
}

/// The bind groups of the last pass, by what they bind.
#[derive(Default)]
pub struct BindGroupCache {
    last_pass: RefCell<HashMap<BindKey, wgpu::BindGroup>>,
    last_stats: Cell<BindStats>,
}

/// Counts of one pass's lookups (for `DROPE_GPU_TRACE`, and the test that a run of
/// one-token passes creates none).
#[derive(Debug, Default, Clone, Copy)]
pub struct BindStats {
    /// Bind groups taken from the pass before (or from earlier in this pass).
    pub reused: usize,
    /// Bind groups created because nothing bound the same.
    pub created: usize,
}

impl BindGroupCache {
    /// The bind group for each key, in order: the last pass's when it bound the same,
    /// else a new one from `create`. Afterwards the cache holds exactly these.
    // wgpu's handles hash and compare by identity, which never changes, though in a
    // browser they wrap JavaScript objects (which clippy counts as interior mutability).
    #[allow(clippy::mutable_key_type)]
    pub fn take_or_create(
        &self,
        keys: Vec<BindKey>,
        mut create: impl FnMut(&BindKey) -> wgpu::BindGroup,
    ) -> (Vec<wgpu::BindGroup>, BindStats) {
        let mut previous = self.last_pass.take();
        let mut current: HashMap<BindKey, wgpu::BindGroup> = HashMap::with_capacity(keys.len());
        let mut stats = BindStats::default();
        let mut groups = Vec::with_capacity(keys.len());
        for key in keys {
            let group = if let Some(group) = current.get(&key) {
                stats.reused += 1;
                group.clone()
            } else if let Some(group) = previous.remove(&key) {
                stats.reused += 1;
                group
            } else {
                stats.created += 1;
                create(&key)
            };
            groups.push(group.clone());
            current.insert(key, group);
        }
        self.last_pass.replace(current);
        self.last_stats.set(stats);
        (groups, stats)
    }

    /// The counts of the last pass.
    pub fn last_pass_stats(&self) -> BindStats {
        self.last_stats.get()
    }
}
