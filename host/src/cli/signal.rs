//! `damson signal`: send a signal — a named event with a payload — to a process, through the
//! daemon that runs it (`--server`, `--broker`, or the local `damson serve`), or else straight
//! into the store that holds it.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

use super::control::{DaemonOptions, ended_how};
use super::exit;
use crate::comms::CommsError;
use crate::persist::{DEFAULT_TENANT, Posted, SignalRow};

/// Send a signal to a process: it is stored before this returns, and the process's wait for the
/// event takes it (now, or when it next waits for it), with the payload in its context under
/// the event's name. Exit 0 once it is stored (or was, under the same --key), 1 when the
/// process has terminated, 2 for bad input or no such process.
#[derive(Debug, Args)]
pub(crate) struct SignalCommand {
    /// The process id.
    pid: String,

    /// The event, as the process's wait names it. None: a plain resume, for a wait with no
    /// event (its payload goes under `resumed`).
    event: Option<String>,

    /// The payload, as JSON, e.g. '{"by": "ada"}' or '42'.
    #[arg(long, value_name = "JSON")]
    data: Option<String>,

    /// An idempotency key: the process takes one signal per key, however often it is sent.
    #[arg(long, value_name = "KEY")]
    key: Option<String>,

    #[command(flatten)]
    daemon: DaemonOptions,
}

impl SignalCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<ExitCode> {
        let data: Option<Value> = self
            .data
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .context("--data is not JSON")?;
        let (pid, event, key) = (&self.pid, self.event.as_deref(), self.key.as_deref());
        if let Some(server) = self.daemon.server()? {
            let body = serde_json::json!({"event": event, "data": data, "key": key});
            let reply = server
                .post(&format!("/v1/processes/{pid}/signal"), &body)
                .await
                .with_context(|| format!("cannot signal process {pid}"))?;
            return Ok(sent(pid, &reply));
        }
        let (controller, communicator) = match self.daemon.controller().await {
            Ok(reached) => reached,
            // No `damson serve` listens here: the store is where the process is.
            Err(_) if self.daemon.local() => return self.straight_to_store(data).await,
            Err(e) => return Err(e),
        };
        let reply = controller
            .signal_process(pid, event, data.as_ref(), key)
            .await;
        communicator.close().await;
        match reply {
            Ok(reply) => Ok(sent(pid, &reply)),
            Err(CommsError::UnroutableRpc(_)) => self.straight_to_store(data).await,
            Err(e) => Err(e).with_context(|| format!("cannot signal process {pid}")),
        }
    }

    /// No daemon answers for the process: store the signal beside its checkpoint, for when it
    /// is continued.
    async fn straight_to_store(&self, data: Option<Value>) -> anyhow::Result<ExitCode> {
        let pid = &self.pid;
        let (record, store_name) = self.daemon.stored(pid).await?;
        let Some(record) = record else {
            bail!(
                "no process {pid}: no daemon answers for it, and {store_name} has no record of it"
            );
        };
        if record.state.is_terminal() {
            println!(
                "{pid} has ended ({}): it takes no more signals",
                ended_how(&record)
            );
            return Ok(ExitCode::from(exit::PROCESS_FAILED));
        }
        let store = self.daemon.store().await?.context("no store")?;
        let row = SignalRow {
            seq: 0,
            event: self.event.clone(),
            data: data.map(|d| d.to_string()),
            key: self.key.clone(),
            sent_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        };
        let posted = store
            .post_signal(DEFAULT_TENANT, pid, &row)
            .await
            .with_context(|| format!("cannot store a signal to process {pid} in {store_name}"))?;
        let what = match posted {
            Posted::Queued { seq } => format!("signal {seq} stored for {pid}"),
            Posted::Duplicate { seq } => {
                format!("{pid} has signal {seq} with this key already: not stored again")
            }
        };
        println!(
            "{what} in {store_name}; no daemon runs it: it takes the signal once continued \
             (`damson continue {pid}`)"
        );
        Ok(ExitCode::from(exit::OK))
    }
}

/// Print what came of a signal from the daemon's reply: `{seq, duplicate}`, or `false` for a
/// terminated process.
fn sent(pid: &str, reply: &Value) -> ExitCode {
    let Some(seq) = reply.get("seq").and_then(Value::as_u64) else {
        println!("{pid} was not signalled (it has terminated)");
        return ExitCode::from(exit::PROCESS_FAILED);
    };
    if reply["duplicate"] == true {
        println!("{pid} has signal {seq} with this key already: not sent again");
    } else {
        println!("signal {seq} sent to {pid}");
    }
    ExitCode::from(exit::OK)
}
