//! The instance pool: wasmtime's pooling allocator sized from the host configuration
//! ([`HostConfig::instance_pool`]), and the wait for a free slot when every one is taken.
//!
//! A pooled instance takes slots reserved when the engine is made instead of mapping its
//! memory, tables and fiber stack and unmapping them when it ends: for a short process that
//! mapping (page faults, TLB shootdowns of `munmap` across threads) was most of its cost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;
use wasmtime::{
    Enabled, InstanceAllocationStrategy, PoolConcurrencyLimitError, PoolingAllocationConfig,
};

use crate::config::HostConfig;

/// Linear memories an instance may take from the pool, on average: a plugin's own and the
/// small one of its memory-image accessor.
const MEMORIES_PER_INSTANCE: u32 = 2;
/// Core instances per plugin instance, on average (a Python plugin links a dozen modules).
const CORE_INSTANCES_PER_INSTANCE: u32 = 16;
/// Tables per plugin instance, on average (adapter shims each have one).
const TABLES_PER_INSTANCE: u32 = 4;
/// The most elements one table may have: an interpreter's function table is large.
const TABLE_ELEMENTS: usize = 100_000;
/// The most a core instance's or a component instance's context may take, in bytes.
const CONTEXT_BYTES: usize = 4 << 20;
/// A WebAssembly page.
const WASM_PAGE: usize = 64 << 10;
/// How much of a freed slot's linear memory stays resident, reset in place (only its dirty
/// pages, found with Linux's `PAGEMAP_SCAN` where the kernel has it) rather than given back
/// with `madvise`: the next instance in the slot then takes no page faults on it, and the
/// host no TLB shootdowns across threads. A small plugin's memory (about 1 MiB) fits; more
/// than this is given back. What this keeps is bounded by the slots in use at once (wasmtime
/// reuses the slots a plugin used last) times this.
const MEMORY_KEEP_RESIDENT: usize = 4 << 20;
/// As [`MEMORY_KEEP_RESIDENT`], for a slot's tables.
const TABLE_KEEP_RESIDENT: usize = 64 << 10;
/// Slots whose memory is given back (beyond what stays resident) in one batch of `madvise`
/// calls rather than one by one.
const DECOMMIT_BATCH: usize = 16;

/// Make `wasm`'s instances come from a pool, if `config` asks for one.
///
/// Memories are reserved at [`HostConfig::max_memory`], not wasmtime's 4 GiB, so that a
/// pool of a thousand instances reserves some hundreds of GB of address space rather than
/// terabytes (a process may embed several hosts); memory accesses then carry a bounds check,
/// which measured within noise on the benchmark's loops.
pub(super) fn configure(wasm: &mut wasmtime::Config, config: &HostConfig) {
    let instances = config.instance_pool;
    if instances == 0 {
        return;
    }
    let memory = memory_size(config);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(CORE_INSTANCES_PER_INSTANCE))
        .total_memories(instances.saturating_mul(MEMORIES_PER_INSTANCE))
        .total_tables(instances.saturating_mul(TABLES_PER_INSTANCE))
        // One call at a time runs on an instance, so one fiber stack each is enough.
        .total_stacks(instances)
        .max_memories_per_module(2)
        .max_tables_per_module(2)
        .table_elements(TABLE_ELEMENTS)
        .max_core_instance_size(CONTEXT_BYTES)
        .max_component_instance_size(CONTEXT_BYTES)
        .max_memory_size(memory)
        .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
        .table_keep_resident(TABLE_KEEP_RESIDENT)
        .pagemap_scan(Enabled::Auto)
        .decommit_batch_size(DECOMMIT_BATCH);
    wasm.memory_reservation(memory as u64)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
}

/// The address space the pool's memories reserve, in bytes (what an error says it needed).
pub(super) fn reservation(config: &HostConfig) -> u64 {
    u64::from(config.instance_pool) * u64::from(MEMORIES_PER_INSTANCE) * memory_size(config) as u64
}

/// The most a pooled linear memory may have: `max_memory` in whole WebAssembly pages.
fn memory_size(config: &HostConfig) -> usize {
    config.max_memory.div_ceil(WASM_PAGE) * WASM_PAGE
}

/// Where instantiations wait for a slot: told each time an instance's store is dropped.
#[derive(Default)]
pub(super) struct Slots {
    freed: Arc<Notify>,
    /// Whether the log has said that the pool is full.
    told_full: AtomicBool,
}

impl Slots {
    /// Run `attempt` until it does not fail for want of a slot, waiting between tries for
    /// a slot to be freed. `attempt` must drop whatever it took from the pool when it fails
    /// (its store), or a full pool would stay full.
    pub(super) async fn wait_for<T, F>(
        &self,
        instances: u32,
        mut attempt: impl FnMut() -> F,
    ) -> Result<T, wasmtime::Error>
    where
        F: Future<Output = Result<T, wasmtime::Error>>,
    {
        loop {
            // Registered before the attempt, so a slot freed while it fails is not missed.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            match attempt().await {
                Err(e) if e.downcast_ref::<PoolConcurrencyLimitError>().is_some() => {
                    if !self.told_full.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            "every slot of the instance pool ({instances} instances) is taken: \
                             new instances wait for one to be freed ({e}); a host that holds \
                             more processes in memory needs a larger HostConfig::instance_pool"
                        );
                    }
                    freed.await;
                }
                other => return other,
            }
        }
    }

    /// What tells the waiters when it is dropped: kept after an instance's store, so that
    /// it is dropped once the store has given its slots back.
    pub(super) fn release(&self) -> Release {
        Release(self.freed.clone())
    }
}

/// Tells [`Slots::wait_for`]'s waiters that slots were freed, when dropped.
pub(super) struct Release(Arc<Notify>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.notify_waiters();
    }
}
