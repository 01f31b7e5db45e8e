//! Quotas: the limits an admin sets on a tenant ([`Quotas`], kept with the tenant), their names
//! as users write them ([`Quota`]), and the error a request over one gets ([`QuotaExceeded`]).

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Instant;

use super::TenancyError;
pub use crate::persist::Quotas;

/// One limit on a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quota {
    /// Linear memory of one plugin instance: a step that grows past it ends its process
    /// EXCEPTED, naming the limit (as the host's own `max_memory` does).
    MemoryPerInstance,
    /// Wall-clock time of one step: a step still running then is interrupted and its process
    /// ends EXCEPTED (as the host's own `step_timeout` does).
    StepTime,
    /// Processes alive at once on one host acting for the tenant: one more is refused.
    LiveProcesses,
    /// Bytes of checkpoints in the store: once over, new processes are refused (running ones
    /// keep checkpointing: nothing stored is harmed).
    StoredBytes,
    /// Size of one plugin component: a larger one is refused when loaded.
    PluginSize,
    /// New top-level processes per second on one host acting for the tenant (children do not
    /// count): one more within the second is refused.
    SubmissionsPerSecond,
}

impl Quota {
    /// Every quota.
    pub const ALL: [Quota; 6] = [
        Quota::MemoryPerInstance,
        Quota::StepTime,
        Quota::LiveProcesses,
        Quota::StoredBytes,
        Quota::PluginSize,
        Quota::SubmissionsPerSecond,
    ];

    /// Its name, as `--quota NAME=VALUE` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Quota::MemoryPerInstance => "memory-per-instance",
            Quota::StepTime => "step-time",
            Quota::LiveProcesses => "live-processes",
            Quota::StoredBytes => "stored-bytes",
            Quota::PluginSize => "plugin-size",
            Quota::SubmissionsPerSecond => "submissions-per-second",
        }
    }

    /// Its unit, as shown beside a value.
    fn unit(self) -> &'static str {
        match self {
            Quota::MemoryPerInstance | Quota::StoredBytes | Quota::PluginSize => " bytes",
            Quota::StepTime => " ms",
            Quota::LiveProcesses => " processes",
            Quota::SubmissionsPerSecond => " submissions per second",
        }
    }

    /// Its value in `quotas`.
    pub fn of(self, quotas: &Quotas) -> Option<u64> {
        match self {
            Quota::MemoryPerInstance => quotas.memory_per_instance,
            Quota::StepTime => quotas.step_time_ms,
            Quota::LiveProcesses => quotas.live_processes,
            Quota::StoredBytes => quotas.stored_bytes,
            Quota::PluginSize => quotas.plugin_size,
            Quota::SubmissionsPerSecond => quotas.submissions_per_second.map(u64::from),
        }
    }

    /// Set it in `quotas` (`None` lifts it).
    pub fn set(self, quotas: &mut Quotas, value: Option<u64>) {
        match self {
            Quota::MemoryPerInstance => quotas.memory_per_instance = value,
            Quota::StepTime => quotas.step_time_ms = value,
            Quota::LiveProcesses => quotas.live_processes = value,
            Quota::StoredBytes => quotas.stored_bytes = value,
            Quota::PluginSize => quotas.plugin_size = value,
            Quota::SubmissionsPerSecond => {
                quotas.submissions_per_second = value.map(|v| v.min(u64::from(u32::MAX)) as u32)
            }
        }
    }

    /// Read a value of this quota: a count, bytes with an optional `KiB`/`MiB`/`GiB` suffix,
    /// milliseconds or seconds (`500ms`, `2s`), or `none` (no limit).
    ///
    /// # Errors
    /// [`TenancyError::InvalidQuota`] naming the quota and the text.
    pub fn parse_value(self, text: &str) -> Result<Option<u64>, TenancyError> {
        let invalid = || TenancyError::InvalidQuota {
            quota: self.name(),
            value: text.to_string(),
        };
        let text = text.trim();
        if text == "none" {
            return Ok(None);
        }
        let units: &[(&str, u64)] = match self {
            Quota::MemoryPerInstance | Quota::StoredBytes | Quota::PluginSize => &[
                ("GiB", 1 << 30),
                ("MiB", 1 << 20),
                ("KiB", 1 << 10),
                ("", 1),
            ],
            Quota::StepTime => &[("ms", 1), ("s", 1000), ("", 1)],
            Quota::LiveProcesses | Quota::SubmissionsPerSecond => &[("", 1)],
        };
        let (number, scale) = units
            .iter()
            .find_map(|(suffix, scale)| text.strip_suffix(suffix).map(|n| (n.trim(), *scale)))
            .ok_or_else(invalid)?;
        let value: u64 = number.parse().map_err(|_| invalid())?;
        value.checked_mul(scale).map(Some).ok_or_else(invalid)
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Quota {
    type Err = TenancyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quota::ALL
            .into_iter()
            .find(|quota| quota.name() == s)
            .ok_or_else(|| TenancyError::UnknownQuota(s.to_string()))
    }
}

/// A request refused because it would take a tenant over one of its quotas. Nothing was
/// changed by it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "tenant '{tenant}' is over its {quota} quota: {used} of {limit}{unit}",
    unit = quota.unit()
)]
pub struct QuotaExceeded {
    /// The tenant.
    pub tenant: String,
    /// The quota.
    pub quota: Quota,
    /// The tenant's limit.
    pub limit: u64,
    /// Its use now (with the refused request, for a rate; without it otherwise).
    pub used: u64,
}

/// How many submissions one tenant made in the last second: a sliding window of their times.
#[derive(Debug, Default)]
pub struct SubmissionRate {
    recent: Mutex<std::collections::VecDeque<Instant>>,
}

impl SubmissionRate {
    /// Count one submission now if fewer than `limit` were made in the last second; otherwise
    /// how many were (nothing is counted then).
    pub fn admit(&self, limit: u64) -> Result<(), u64> {
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t).as_secs_f64() >= 1.0)
        {
            recent.pop_front();
        }
        if recent.len() as u64 >= limit {
            return Err(recent.len() as u64);
        }
        recent.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_values_read_with_their_units() {
        let memory = Quota::MemoryPerInstance;
        assert_eq!(memory.parse_value("64MiB").unwrap(), Some(64 << 20));
        assert_eq!(memory.parse_value("4096").unwrap(), Some(4096));
        assert_eq!(Quota::StepTime.parse_value("2s").unwrap(), Some(2000));
        assert_eq!(Quota::StepTime.parse_value("250ms").unwrap(), Some(250));
        assert_eq!(Quota::LiveProcesses.parse_value("none").unwrap(), None);
        let error = Quota::LiveProcesses.parse_value("3MiB").unwrap_err();
        assert_eq!(
            error.to_string(),
            "'3MiB' is not a value of the live-processes quota"
        );
        assert!(matches!(
            "cpu".parse::<Quota>(),
            Err(TenancyError::UnknownQuota(_))
        ));
    }

    #[test]
    fn an_exceeded_quota_names_tenant_quota_use_and_limit() {
        let error = QuotaExceeded {
            tenant: "acme".into(),
            quota: Quota::LiveProcesses,
            limit: 3,
            used: 3,
        };
        assert_eq!(
            error.to_string(),
            "tenant 'acme' is over its live-processes quota: 3 of 3 processes"
        );
    }

    #[test]
    fn the_submission_rate_admits_up_to_its_limit_per_second() {
        let rate = SubmissionRate::default();
        assert_eq!(rate.admit(2), Ok(()));
        assert_eq!(rate.admit(2), Ok(()));
        assert_eq!(rate.admit(2), Err(2));
    }
}
