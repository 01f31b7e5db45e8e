//! Resource limits of one plugin instance: memory through the store's limiter, time through
//! wasmtime's epoch deadline.

use std::time::{Duration, Instant};

use super::lane::Seat;
use crate::guest::LimitExceeded;

/// The process was killed while a guest call was running: the call stops at the next epoch tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interrupted: the process was killed")]
pub struct Interrupted;

/// The limits each instance of a runtime gets: the host's, or its tenant's quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Linear memory of one instance, all its memories together, in bytes.
    pub(crate) max_memory: usize,
    /// Wall-clock time of one guest call.
    pub(crate) step_timeout: Duration,
}

/// The memory limiter of one store: the sum of all its linear memories must stay under `max`.
pub(crate) struct MemoryLimiter {
    max: usize,
    used: usize,
}

impl MemoryLimiter {
    pub(crate) fn new(max: usize) -> Self {
        Self { max, used: 0 }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let used = self.used - current.min(self.used) + desired;
        if used > self.max {
            // An error, not `Ok(false)`: a Rust guest would abort on a failed allocation without
            // saying why, while this ends the step with a message that names the limit.
            return Err(wasmtime::Error::new(LimitExceeded::Memory {
                limit: self.max,
            }));
        }
        self.used = used;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// The deadline of the call in progress.
#[derive(Default)]
pub(crate) struct Deadline {
    pub(crate) at: Option<(Instant, Duration)>,
    /// The call's place in the lane long calls share.
    seat: Option<Seat>,
}

impl Deadline {
    /// No call yet; long calls of this instance take turns in `seat`'s lane.
    pub(crate) fn new(seat: Seat) -> Self {
        Self {
            at: None,
            seat: Some(seat),
        }
    }

    pub(crate) fn start(&mut self, limit: Duration) {
        self.at = Some((Instant::now() + limit, limit));
        if let Some(seat) = &mut self.seat {
            seat.begin();
        }
    }

    pub(crate) fn clear(&mut self) {
        self.at = None;
        if let Some(seat) = &mut self.seat {
            seat.leave();
        }
    }

    /// An epoch tick while a call runs: how it goes on (see [`Seat::tick`]). Only a call
    /// between [`start`](Self::start) and [`clear`](Self::clear) takes a seat, so that every
    /// seat taken is given back when the call ends.
    pub(crate) fn tick(&mut self) -> wasmtime::UpdateDeadline {
        match &mut self.seat {
            Some(seat) if self.at.is_some() => seat.tick(),
            _ => wasmtime::UpdateDeadline::Yield(1),
        }
    }

    /// The error to stop the guest with, once the deadline has passed.
    pub(crate) fn check(&self) -> Result<(), LimitExceeded> {
        match self.at {
            Some((at, limit)) if Instant::now() >= at => Err(LimitExceeded::Time { limit }),
            _ => Ok(()),
        }
    }
}
