//! The control operations that arrive through a communicator, for the audit log. They carry no
//! token: who sent them is who could reach the communicator (the owner of `damson serve`'s
//! socket, a tenant's broker user), so the host that carries them out records them.

/// A control or submit operation that arrived through a communicator and was carried out here
/// (or refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    /// Who sent it, as the communicator knows them ([`Communicator::peer`](super::Communicator::peer)).
    pub actor: String,
    /// What: `process.pause`, `process.play`, `process.kill` (an RPC intent or a broadcast to
    /// all processes), `process.submit`, `process.create` or `process.continue` (a task).
    pub action: &'static str,
    /// On which process; none when a task failed before its process had a pid.
    pub pid: Option<String>,
    /// How it went: done, or why not (a pause of a terminated process is `refused`).
    pub outcome: Result<(), String>,
}

/// Keeps the [`Control`]s that arrive through a communicator: implemented by `damson::Host`,
/// which appends them to its store's audit log. An RPC or a task is answered once its control
/// is recorded, as the HTTP API answers once it has audited.
#[async_trait::async_trait]
pub trait ControlLog: Send + Sync + 'static {
    /// Record `control` (it has happened: a failure to record is the log's to report).
    async fn record(&self, control: Control);
}

/// The outcome of a pause, play or kill that the process accepted (`true`) or refused.
pub(crate) fn accepted(done: bool) -> Result<(), String> {
    if done {
        Ok(())
    } else {
        Err("refused: the process has terminated".to_string())
    }
}
