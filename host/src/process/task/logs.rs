//! The process's log: the lines its plugin logged in each call and the host's lines about it
//! (state changes, pause and play, how it ended), held within the host's bound and appended to
//! the store after each step and before each checkpoint — so that whoever sees a checkpoint,
//! the last one too, finds every line logged before it.

use crate::error::chain;
use crate::guest::{LogBuffer, LogEntry, LogLevel, LogSource};
use crate::process::outside::Checkpoints;

use super::Task;

impl Task {
    /// Hold the lines a guest call logged.
    pub(super) fn hold_logs(&mut self, lines: LogBuffer) {
        let bound = self.outside.log_lines();
        self.logs.append(lines, bound);
    }

    /// Hold a line of the host's about the process.
    pub(super) fn host_log(&mut self, level: LogLevel, message: String) {
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let line = LogEntry {
            at_ms,
            level,
            source: LogSource::Host,
            message,
        };
        let bound = self.outside.log_lines();
        self.logs.push(line, bound);
    }

    /// Log the change of state since the last one logged, if any ("state: running -> waiting").
    pub(super) fn log_state(&mut self) {
        let (from, to) = (self.logged_state, self.record.state);
        if from != to {
            self.logged_state = to;
            let (from, to) = (from.name().to_lowercase(), to.name().to_lowercase());
            self.host_log(LogLevel::Info, format!("state: {from} -> {to}"));
        }
    }

    /// Append the lines held to the store. A store that fails loses them, counted as dropped
    /// with the next lines appended: the log is not worth ending the process for.
    pub(super) async fn flush_logs(&mut self) {
        if self.outside.checkpoints() == Checkpoints::Off {
            // No store: the lines went to the host's own log only.
            self.logs = LogBuffer::default();
            return;
        }
        if self.logs.is_empty() {
            return;
        }
        let (lines, dropped) = self.logs.take();
        let count = lines.len() as u64;
        if let Err(e) = self
            .outside
            .append_logs(self.handle.pid(), lines, dropped)
            .await
        {
            tracing::warn!(pid = %self.handle.pid(), "cannot append to the process's log: {}", chain(&e));
            self.logs.count_dropped(count + dropped);
        }
    }
}
