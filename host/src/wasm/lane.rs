//! The lane long guest calls share: a call still running at its second epoch tick runs on
//! only while it holds a seat, and the seats — one fewer than the machine's cores — are shared
//! fairly between tenants and taken turn about at every tick. Short calls never wait for one,
//! so a tenant's flood of spinning plugins leaves a core to every other process's short
//! steps, and tenants with long calls get equal turns on the others.

use std::sync::{Arc, Mutex};

use wasmtime::UpdateDeadline;

use crate::fair::{FairPermit, FairPermits};

/// Ticks after which a call counts as long.
const LONG_AFTER: u32 = 2;

/// The lane of one engine: one seat per core but one (at least one).
pub(crate) fn lane() -> Arc<FairPermits> {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let seats = cores.saturating_sub(1).max(1);
    FairPermits::new(seats, seats)
}

/// One instance's place in the lane.
pub(crate) struct Seat {
    lane: Arc<FairPermits>,
    tenant: Arc<str>,
    /// Epoch ticks the current call has seen.
    ticks: u32,
    /// The seat held, while the call is long.
    held: Arc<Mutex<Option<FairPermit>>>,
}

impl Seat {
    pub(crate) fn new(lane: Arc<FairPermits>, tenant: Arc<str>) -> Self {
        Self {
            lane,
            tenant,
            ticks: 0,
            held: Arc::default(),
        }
    }

    /// A call begins: it is short until its ticks say otherwise.
    pub(crate) fn begin(&mut self) {
        self.ticks = 0;
    }

    /// The call has ended: give the seat back, if it held one.
    pub(crate) fn leave(&mut self) {
        self.ticks = 0;
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(held);
    }

    /// An epoch tick while the call runs: yield, and — for a long call — give the seat up and
    /// take one again (the lane gives it to whoever's turn it is) before going on.
    pub(crate) fn tick(&mut self) -> UpdateDeadline {
        self.ticks = self.ticks.saturating_add(1);
        if self.ticks < LONG_AFTER {
            return UpdateDeadline::Yield(1);
        }
        let (lane, tenant, held) = (self.lane.clone(), self.tenant.clone(), self.held.clone());
        UpdateDeadline::YieldCustom(
            1,
            Box::pin(async move {
                let previous = held.lock().unwrap_or_else(|e| e.into_inner()).take();
                drop(previous);
                tokio::task::yield_now().await;
                let seat = lane.acquire(&tenant).await;
                *held.lock().unwrap_or_else(|e| e.into_inner()) = Some(seat);
            }),
        )
    }
}
