//! Retries: a step with a retry policy that fails is tried again from the state before its
//! first attempt — outputs, context, position, and the plugin's memory image — after the
//! policy's interval, slept on a durable timer; an attempt's effects count only if it
//! succeeds. Attempts and errors are in the record ([`Retry`]) and the status meanwhile.

use std::time::Duration;

use serde_json::{Map, Value};

use super::waiting::Until;
use super::{End, Task};
use crate::guest::{Failure, LogLevel};
use crate::process::record::Retry;
use crate::workchain::Cursor;

/// What a step's attempts start from: the process as it was before the first.
pub(super) struct BeforeStep {
    outputs: Value,
    context: Map<String, Value>,
    cursor: Cursor,
    position: String,
    /// The plugin's memory image, when it has one.
    image: Option<Vec<u8>>,
}

impl Task {
    /// What an attempt of step `name` starts from, when the step has a retry policy.
    pub(super) async fn before_attempt(&mut self, name: &str) -> Option<BeforeStep> {
        self.spec.retry_policy(name)?;
        Some(BeforeStep {
            outputs: self.record.outputs.clone(),
            context: self.record.context.clone(),
            cursor: self.record.cursor.clone(),
            position: self.record.position.clone(),
            image: self.guest.image().await,
        })
    }

    /// Which attempt of the running step this is.
    pub(super) fn attempt(&self) -> u32 {
        self.record.retry.as_ref().map_or(1, |r| r.attempt)
    }

    /// Step `name` failed with `failure`: tried again from `before` after its policy's interval
    /// (`Ok` once that has passed: the outline runs the step again), or the end of the process,
    /// every attempt's error said.
    pub(super) async fn failed_attempt(
        &mut self,
        name: &str,
        failure: Failure,
        error_kind: Option<String>,
        before: Option<BeforeStep>,
    ) -> Result<(), End> {
        let policy = self.spec.retry_policy(name).cloned();
        let (Some(policy), Some(before)) = (policy, before) else {
            return Err(End::Excepted(format!("step '{name}' {failure}")));
        };
        let attempt = self.attempt();
        let (mut errors, status_before) = match self.record.retry.take() {
            Some(retry) => (retry.errors, retry.status_before),
            None => (Vec::new(), self.guest_status.clone()),
        };
        errors.push(failure.to_string());
        let kind = failure.kind();
        let error_kind = error_kind.as_deref();
        if !kind.is_some_and(|kind| policy.retries(kind, error_kind, attempt)) {
            let why = match kind.and_then(|kind| policy.left_out(kind, error_kind)) {
                Some(what) => format!(" (its retry policy does not retry {what})"),
                None if kind.is_none() => " (not a failure a retry policy retries)".to_string(),
                None => String::new(),
            };
            return Err(End::Excepted(if errors.len() == 1 {
                format!("step '{name}' {failure}{why}")
            } else {
                let each: Vec<String> = errors
                    .iter()
                    .enumerate()
                    .map(|(i, e)| format!("attempt {}: {e}", i + 1))
                    .collect();
                format!(
                    "step '{name}' failed in each of its {} attempts{why}: {}",
                    errors.len(),
                    each.join("; ")
                )
            }));
        }
        let next = attempt + 1;
        let interval = policy.interval_before(next);
        self.host_log(
            LogLevel::Warn,
            format!(
                "step '{name}' failed (attempt {attempt} of {}); trying again in {}: {failure}",
                policy.max_attempts,
                humantime::format_duration(round_ms(interval))
            ),
        );
        // Back to before the step: what the failed attempt did is dropped.
        self.record.outputs = before.outputs;
        self.record.context = before.context;
        self.record.cursor = before.cursor;
        self.record.position = before.position;
        self.guest.reset(before.image).await.map_err(|again| {
            End::Excepted(format!(
                "step '{name}' {failure}, and cannot be tried again: {again}"
            ))
        })?;
        self.record.retry = Some(Retry {
            step: name.to_string(),
            attempt: next,
            max_attempts: policy.max_attempts,
            errors,
            status_before,
        });
        let message = format!(
            "retrying step '{name}' (attempt {next} of {}) after: {failure}",
            policy.max_attempts
        );
        let until = self
            .outside
            .now_ms()
            .saturating_add(interval.as_millis() as u64);
        self.wait(Until::Sleep { until }, Some(message)).await?;
        self.status_before_retry();
        Ok(())
    }

    /// The attempt runs with the status from before the retries, not `retrying step …`.
    fn status_before_retry(&mut self) {
        if let Some(retry) = &self.record.retry {
            self.guest_status.clone_from(&retry.status_before);
            self.sync_status();
        }
    }

    /// A process restored while it slept before retrying a step sleeps on until its timer.
    pub(super) async fn resume_retry_sleep(&mut self) -> Result<(), End> {
        let Some(until) = self.record.timer else {
            return Ok(());
        };
        if self.record.retry.is_none() || !self.record.sleeping || self.record.after_step.is_some()
        {
            return Ok(());
        }
        self.wait(Until::Sleep { until }, None).await?;
        self.status_before_retry();
        Ok(())
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}
