//! Retry policies: how a plugin declares that a failed step is tried again, and the attempts
//! and intervals a policy allows. The state machine carries them out (`process::task`); a
//! guest failure says its kind (`Failure::kind`).

use std::time::Duration;

use serde::Serialize;

/// A kind of failure of a step, which a policy can leave out ([`RetryPolicy::non_retryable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The step returned an error.
    Error,
    /// The plugin trapped or panicked (a stack overflow included).
    Trap,
    /// The step ran past the host's time limit per step.
    Timeout,
    /// The plugin grew past the host's memory limit.
    Memory,
}

impl FailureKind {
    /// Its name as specs and messages write it (`error`, `trap`, `timeout`, `memory`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Trap => "trap",
            Self::Timeout => "timeout",
            Self::Memory => "memory",
        }
    }
}

/// How a failed step is tried again: from the state before it (the process's record and the
/// plugin's memory image), after an interval that starts at `initial_interval` and is
/// multiplied by `backoff` for each further attempt, up to `max_interval`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetryPolicy {
    /// The step it applies to; `None` for every step that has no policy of its own.
    pub step: Option<String>,
    /// Attempts in all, the first one included (1: never retried). At least 1.
    pub max_attempts: u32,
    /// The interval before the second attempt.
    #[serde(with = "millis")]
    pub initial_interval: Duration,
    /// What each interval is multiplied by for the next; at least 1.0.
    pub backoff: f64,
    /// The longest interval; `None` for no bound.
    #[serde(with = "millis_opt")]
    pub max_interval: Option<Duration>,
    /// Failures that end the process at once, never retried.
    pub non_retryable: Vec<FailureKind>,
    /// Kinds of error, as the plugin names them, that end the process at once.
    pub non_retryable_errors: Vec<String>,
}

impl RetryPolicy {
    /// The interval before attempt `attempt` (2 for the first retry): `initial_interval ×
    /// backoff^(attempt − 2)`, at most `max_interval`.
    pub fn interval_before(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(2)).unwrap_or(i32::MAX);
        let ms = self.initial_interval.as_millis() as f64 * self.backoff.powi(exponent);
        let interval = Duration::from_millis(ms.min(u64::MAX as f64) as u64);
        self.max_interval
            .map_or(interval, |most| interval.min(most))
    }

    /// Whether a failure of `kind` (an error the plugin named `error_kind`, if any) after
    /// attempt `attempt` is tried again.
    pub fn retries(&self, kind: FailureKind, error_kind: Option<&str>, attempt: u32) -> bool {
        attempt < self.max_attempts && self.left_out(kind, error_kind).is_none()
    }

    /// Why the policy never retries such a failure, if it does not: `a trap`, `an error of
    /// kind 'invalid-request'`.
    pub fn left_out(&self, kind: FailureKind, error_kind: Option<&str>) -> Option<String> {
        if self.non_retryable.contains(&kind) {
            return Some(format!("a {}", kind.name()));
        }
        match error_kind {
            Some(named) if self.non_retryable_errors.iter().any(|k| k == named) => {
                Some(format!("an error of kind '{named}'"))
            }
            _ => None,
        }
    }
}

/// The policy for step `step` among `policies`: its own, else the one for every step.
pub fn policy_for<'a>(policies: &'a [RetryPolicy], step: &str) -> Option<&'a RetryPolicy> {
    policies
        .iter()
        .find(|p| p.step.as_deref() == Some(step))
        .or_else(|| policies.iter().find(|p| p.step.is_none()))
}

mod millis {
    pub(super) fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
}

mod millis_opt {
    pub(super) fn serialize<S: serde::Serializer>(
        d: &Option<std::time::Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            step: None,
            max_attempts: 5,
            initial_interval: Duration::from_millis(100),
            backoff: 2.0,
            max_interval: Some(Duration::from_millis(500)),
            non_retryable: vec![FailureKind::Trap],
            non_retryable_errors: vec!["invalid".into()],
        }
    }

    #[test]
    fn intervals_grow_by_the_backoff_up_to_the_most() {
        let intervals: Vec<u128> = (2..=6)
            .map(|attempt| policy().interval_before(attempt).as_millis())
            .collect();
        assert_eq!(intervals, [100, 200, 400, 500, 500]);
    }

    #[test]
    fn attempts_stop_at_the_most_and_at_a_non_retryable_kind() {
        let policy = policy();
        assert!(policy.retries(FailureKind::Error, None, 4));
        assert!(
            !policy.retries(FailureKind::Error, None, 5),
            "five attempts in all"
        );
        assert!(!policy.retries(FailureKind::Trap, None, 1));
        assert!(policy.retries(FailureKind::Error, Some("flaky"), 1));
        assert!(!policy.retries(FailureKind::Error, Some("invalid"), 1));
        assert_eq!(
            policy
                .left_out(FailureKind::Error, Some("invalid"))
                .as_deref(),
            Some("an error of kind 'invalid'")
        );
    }

    #[test]
    fn a_steps_own_policy_comes_before_the_plugins() {
        let own = RetryPolicy {
            step: Some("flaky".into()),
            ..policy()
        };
        let policies = [policy(), own.clone()];
        assert_eq!(policy_for(&policies, "flaky"), Some(&own));
        assert_eq!(policy_for(&policies, "other"), Some(&policies[0]));
        assert_eq!(policy_for(&[own], "other"), None);
    }
}
