//! What the task publishes and saves: small changes watchers follow, state changes, and
//! checkpoints — saved first, then published, through the one save path of [`Outside`].

use crate::error::{Error, chain};
use crate::process::outside::{Checkpoints, HeldLogs, Unsaved};
use crate::process::{ProcessRecord, ProcessState};

use super::{End, Task};

impl Task {
    /// Change the published record in a small way (position, status, children) that needs no
    /// checkpoint: here and in what watchers see, at once.
    pub(super) fn progress(&mut self, change: impl Fn(&mut ProcessRecord)) {
        change(&mut self.record);
        self.handle.shared.record.send_modify(change);
    }

    /// The status shown follows the plugin's, unless the process is paused.
    pub(super) fn sync_status(&mut self) {
        if !self.record.paused && self.record.status != self.guest_status {
            self.record.status.clone_from(&self.guest_status);
        }
    }

    /// Publish the record as it is now, and tell the host of a change of state.
    pub(super) fn publish(&mut self) {
        self.log_state();
        let from = self.handle.state();
        self.handle.shared.record.send_replace(self.record.clone());
        if from != self.record.state {
            self.outside
                .state_changed(self.handle.pid(), Some(from), self.record.state);
        }
    }

    /// Change state (and the children awaited) without a checkpoint, publishing the process's
    /// data with it in one change, so that watchers never see half of it.
    pub(super) fn set_state(&mut self, state: ProcessState, awaiting: Vec<String>) {
        self.record.state = state;
        self.record.awaiting = awaiting;
        self.record.waiting_for = None;
        self.record.timer = None;
        self.record.sleeping = false;
        self.sync_status();
        self.publish();
    }

    /// Save a checkpoint of the process as it is now, and publish its record. Nothing to do
    /// without a store.
    pub(super) async fn save(&mut self) -> Result<(), End> {
        if self.outside.checkpoints() == Checkpoints::Off {
            return Ok(());
        }
        self.commit(|_| {}).await
    }

    /// Change the process's record: saved first, at a quiescent point (no guest call runs),
    /// then published.
    ///
    /// A save that fails ends the process EXCEPTED: a durable process that cannot be made
    /// durable must not carry on as if it were. One another host has taken over stops here.
    pub(super) async fn commit(
        &mut self,
        change: impl FnOnce(&mut ProcessRecord),
    ) -> Result<(), End> {
        self.sync_status();
        change(&mut self.record);
        self.sync_status();
        let saved = self.save_as(None).await;
        if let Err(Unsaved::Abandoned) = saved {
            return Err(End::Abandoned);
        }
        self.publish();
        saved.map_err(|unsaved| match unsaved {
            Unsaved::Failed(e) => {
                End::Excepted(format!("cannot save its checkpoint: {}", chain(&e)))
            }
            Unsaved::Abandoned => End::Abandoned,
        })
    }

    /// A checkpoint someone asked for through the handle.
    pub(super) async fn checkpoint_now(&mut self, tag: Option<String>) -> Result<(), Error> {
        if self.outside.checkpoints() == Checkpoints::Off {
            return Err(Error::NoStore);
        }
        self.sync_status();
        self.save_as(tag.as_deref())
            .await
            .map_err(|unsaved| match unsaved {
                Unsaved::Abandoned => Error::Claimed {
                    pid: self.handle.pid().to_string(),
                    holder: None,
                },
                Unsaved::Failed(e) => e,
            })
    }

    /// Save the record as the process's checkpoint (or the one with `tag`), with a memory image
    /// unless it has terminated.
    pub(super) async fn save_as(&mut self, tag: Option<&str>) -> Result<(), Unsaved> {
        if self.outside.checkpoints() == Checkpoints::Off {
            return Ok(());
        }
        let image = if self.record.state.is_terminal() {
            None
        } else {
            self.guest.image().await
        };
        // The log with it, first: a checkpoint seen in the store has every line logged before it.
        self.log_state();
        let (lines, dropped) = self.logs.take();
        let count = lines.len() as u64;
        let imaged = image.is_some();
        let saved = self
            .outside
            .save(
                &self.handle,
                &self.record,
                image,
                tag,
                HeldLogs { lines, dropped },
            )
            .await;
        if let Err(Unsaved::Failed(_)) = saved {
            self.logs.count_dropped(count + dropped);
        }
        if tag.is_none() && saved.is_ok() {
            self.imaged = imaged;
        }
        saved
    }
}
