//! The end of a process: FINISHED (with the missing required outputs), EXCEPTED or KILLED,
//! saved and announced; or abandoned to another host, saved and announced by nobody here; or
//! the end of its task only, the process dehydrated into the store.

use crate::error::chain;
use crate::guest::LogLevel;
use crate::process::outside::{Checkpoints, Unsaved};
use crate::process::{Event, ProcessState};

use super::{End, Task};

impl Task {
    pub(super) async fn end(mut self, end: End) {
        match end {
            End::Abandoned => return self.abandoned(),
            // Its guest goes with this task; the handle stays, dormant, in the host's table.
            End::Dehydrated => {
                tracing::debug!(pid = %self.handle.pid(), "dehydrated: waits in the store");
                return;
            }
            _ => {}
        }
        // Plumpy applies a pause requested during the final step after the transition: the
        // process is then terminated *and* paused.
        let late_pause = self.handle.shared.control().pause.take();
        let (state, event) = match end {
            End::Finished {
                status: exit,
                message,
            } => {
                let missing = self.spec.outputs.missing_required(&self.record.outputs);
                let message = message
                    .or_else(|| self.spec.exit_code(exit).map(|c| c.message.clone()))
                    .or_else(|| missing_message(&missing));
                let successful = exit == 0 && missing.is_empty();
                let how = message
                    .as_deref()
                    .map_or(String::new(), |m| format!(": {m}"));
                let level = if successful {
                    LogLevel::Info
                } else {
                    LogLevel::Warn
                };
                self.host_log(level, format!("finished with exit status {exit}{how}"));
                self.record.exit_status = Some(exit);
                self.record.exit_message = message;
                self.record.missing_outputs = missing;
                (
                    ProcessState::Finished,
                    Event::Finished {
                        successful,
                        exit_status: exit,
                    },
                )
            }
            End::Excepted(error) => {
                self.host_log(LogLevel::Error, format!("excepted: {error}"));
                self.kill_children(Some("the parent process excepted"));
                self.record.error = Some(error.clone());
                (ProcessState::Excepted, Event::Excepted { error })
            }
            End::Killed(message) => {
                let why = message.as_deref().unwrap_or("(no message)");
                self.host_log(LogLevel::Warn, format!("killed: {why}"));
                self.kill_children(Some("the parent process was killed"));
                self.record.exit_message.clone_from(&message);
                (ProcessState::Killed, Event::Killed { message })
            }
            End::Abandoned | End::Dehydrated => unreachable!("returned above"),
        };
        // One change makes the process terminal, with everything it produced: whoever sees the
        // state sees the outputs. It is saved first: what anyone sees is durable.
        self.sync_status();
        if late_pause.is_some() {
            self.record.paused = true;
        }
        self.record.awaiting.clear();
        self.record.state = state;
        self.record.after_step = None;
        // The last checkpoint gives up the claim with it.
        let released = match self.save_as(None).await {
            Ok(()) => self.outside.checkpoints() != Checkpoints::Off,
            Err(Unsaved::Abandoned) => return self.abandoned(),
            Err(Unsaved::Failed(e)) => {
                tracing::error!(pid = %self.handle.pid(), "cannot save the final checkpoint: {}", chain(&e));
                false
            }
        };
        self.publish();
        tracing::debug!(pid = %self.handle.pid(), %state, "process ended");
        self.emit(event);
        if let Some(message) = late_pause {
            self.emit(Event::Paused { message });
        }
        if !released {
            self.outside.release(self.handle.pid()).await;
        }
        self.keep_children();
        self.handle.shared.done.send_replace(true);
        self.outside.ended(self.handle.pid(), false);
    }

    /// Hand the children over to the handle, which outlives this task.
    fn keep_children(&mut self) {
        let children = std::mem::take(&mut self.children).into_values();
        let mut kept = self
            .handle
            .shared
            .children
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        kept.extend(children);
    }

    /// Another host has taken the process over: its record stays as last saved here, nothing
    /// is announced, and the other host carries on.
    pub(super) fn abandoned(self) {
        // Gone from the host before anyone waiting hears it is done.
        self.outside.ended(self.handle.pid(), true);
        self.handle.shared.done.send_replace(true);
    }

    pub(super) fn kill_children(&self, message: Option<&str>) {
        for child in self.children.values() {
            child.kill(message, true);
        }
    }
}

fn missing_message(missing: &[String]) -> Option<String> {
    (!missing.is_empty()).then(|| {
        let names: Vec<String> = missing.iter().map(|p| format!("'{p}'")).collect();
        let verb = if missing.len() == 1 { " was" } else { "s were" };
        format!("required output{verb} not emitted: {}", names.join(", "))
    })
}
