//! Commands that reach running processes: `submit`, `pause`, `play`, `kill`, `status`,
//! `watch` — through the workers behind a broker (`--broker`, `damson worker`), or else through
//! the `damson serve` of the home directory.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

use super::exit;
use super::server::{Client, ServerOptions};
use crate::ProcessRecord;
use crate::comms::{
    BroadcastFilter, CommsError, Communicator, RabbitMqCommunicator, RabbitMqOptions,
    RemoteProcessController, SocketCommunicator,
};

/// Where the workers are: a RabbitMQ broker and kiwipy's names on it.
#[derive(Debug, Clone, Args)]
pub(crate) struct BrokerOptions {
    /// The RabbitMQ broker the workers serve, e.g. `amqp://guest:guest@localhost:5672/%2f`.
    #[arg(long, env = "DAMSON_BROKER", value_name = "URL")]
    pub(crate) broker: Option<String>,

    /// The exchange for RPC and broadcasts (kiwipy's default).
    #[arg(long, default_value = "kiwipy.messages", value_name = "NAME")]
    pub(crate) message_exchange: String,

    /// The exchange for tasks (kiwipy's default).
    #[arg(long, default_value = "kiwipy.tasks", value_name = "NAME")]
    pub(crate) task_exchange: String,

    /// The durable task queue (kiwipy's default).
    #[arg(long, default_value = "kiwipy.tasks", value_name = "NAME")]
    pub(crate) task_queue: String,
}

impl BrokerOptions {
    pub(crate) fn url(&self) -> anyhow::Result<&str> {
        match &self.broker {
            Some(url) => Ok(url),
            None => bail!("no broker: pass --broker amqp://… (or set DAMSON_BROKER)"),
        }
    }

    pub(crate) fn options(&self, prefetch: u16) -> RabbitMqOptions {
        RabbitMqOptions {
            message_exchange: self.message_exchange.clone(),
            task_exchange: self.task_exchange.clone(),
            task_queue: self.task_queue.clone(),
            prefetch,
            ..RabbitMqOptions::default()
        }
    }

    pub(crate) async fn communicator(&self) -> anyhow::Result<Arc<dyn Communicator>> {
        let url = self.url()?;
        Ok(RabbitMqCommunicator::connect(url, self.options(1))
            .await
            .with_context(|| {
                format!("cannot reach the broker at {}", crate::comms::redacted(url))
            })?)
    }
}

/// Which daemon the control commands talk to: the workers behind `--broker`, or else the
/// `damson serve` of the home directory.
#[derive(Debug, Clone, Args)]
pub(crate) struct DaemonOptions {
    #[command(flatten)]
    broker: BrokerOptions,

    #[command(flatten)]
    server: ServerOptions,

    /// An API token (`damson token create`) for --server: the command acts for its tenant.
    /// Refused without --server (the socket and the broker do not take tokens).
    #[arg(
        long,
        env = "DAMSON_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,

    /// Damson's home directory, where `damson serve` listens (`damson.sock`). Defaults to
    /// `~/.damson`.
    #[arg(long, env = "DAMSON_HOME", value_name = "DIR")]
    home: Option<PathBuf>,

    /// The store to read a process from when no daemon answers for it (it has ended, or is not
    /// running): by default the embedded one in the home directory, which `damson serve` uses.
    #[command(flatten)]
    store: super::store::StoreOptions,
}

impl DaemonOptions {
    /// Whether the commands go to the local `damson serve` (no `--broker`, `--server` or
    /// token).
    pub(super) fn local(&self) -> bool {
        self.broker.broker.is_none() && self.server.server.is_none() && self.token.is_none()
    }

    /// The client of `--server`, if one is named.
    pub(super) fn server(&self) -> anyhow::Result<Option<Client>> {
        self.server.client(self.token.as_deref())
    }

    /// The store a process is read from when no daemon answers for it (none from `--store
    /// memory:`).
    pub(super) async fn store(&self) -> anyhow::Result<Option<Arc<dyn crate::persist::Persister>>> {
        let home = super::home_or_default(self.home.as_deref());
        self.store.open_in(&home).await
    }

    /// The record the store has of `pid`, if any (none from `--store memory:`).
    pub(super) async fn stored(
        &self,
        pid: &str,
    ) -> anyhow::Result<(Option<ProcessRecord>, String)> {
        let Some(store) = self.store().await? else {
            return Ok((None, "no store (--store memory:)".into()));
        };
        let key = crate::persist::CheckpointKey::new(pid);
        let body = crate::persist::load_checked::<ProcessRecord>(&*store, &key)
            .await
            .with_context(|| format!("cannot read {key} from {}", store.summary()))?;
        Ok((body.map(|b| b.record), store.summary()))
    }

    /// No daemon answers for `pid`: say whether it has ended, and how, from the store. Exit
    /// code 1 when the store has it (ended, or not running), an error when it does not.
    async fn unanswered(&self, pid: &str) -> anyhow::Result<(ExitCode, ProcessRecord)> {
        let (record, store) = self.stored(pid).await?;
        let Some(record) = record else {
            bail!("no process {pid}: no daemon answers for it, and {store} has no record of it");
        };
        if record.state.is_terminal() {
            println!("{pid} has ended: {}", ended_how(&record));
        } else {
            let paused = if record.paused { ", paused" } else { "" };
            println!(
                "{pid} is not running on a daemon reachable here: {store} has it {}{paused} \
                 (`damson continue {pid}` carries it on)",
                record.state
            );
        }
        Ok((ExitCode::from(exit::PROCESS_FAILED), record))
    }

    /// The broker or the socket, for a command with no `--server`. A token is refused there
    /// rather than ignored: the socket acts for its owner (the default tenant), and a broker
    /// URL carries its own credentials (a tenant's), so the token would act for nobody.
    pub(super) async fn controller(
        &self,
    ) -> anyhow::Result<(RemoteProcessController, Arc<dyn Communicator>)> {
        if self.token.is_some() {
            let through = if self.broker.broker.is_some() {
                "the broker, whose URL's user says whose processes it reaches"
            } else {
                "the local socket, which acts for its owner (the default tenant)"
            };
            bail!(
                "a token (--token or DAMSON_TOKEN) acts through --server only: this command                  would go through {through}; give --server URL, or no token"
            );
        }
        let communicator: Arc<dyn Communicator> = if self.broker.broker.is_some() {
            self.broker.communicator().await?
        } else {
            let socket = super::home_or_default(self.home.as_deref()).join(super::SOCKET);
            SocketCommunicator::connect(&socket).await?
        };
        Ok((
            RemoteProcessController::new(communicator.clone()),
            communicator,
        ))
    }
}

/// Submit a process to the workers and print its pid.
#[derive(Debug, Args)]
pub(crate) struct SubmitCommand {
    /// The plugin, by name (the workers look it up in their plugin directories).
    plugin: String,

    /// An input as KEY=VALUE (as for `damson run`). Repeatable.
    #[arg(short = 'i', long = "input", value_name = "KEY=VALUE")]
    inputs: Vec<String>,

    /// A JSON file holding an object of inputs; `-i` values are applied over it.
    #[arg(long = "inputs", value_name = "FILE.json")]
    inputs_file: Option<PathBuf>,

    #[command(flatten)]
    daemon: DaemonOptions,
}

impl SubmitCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<ExitCode> {
        let inputs = super::inputs::collect(self.inputs_file.as_deref(), &self.inputs)?;
        if let Some(server) = self.daemon.server()? {
            let body = serde_json::json!({"plugin": self.plugin, "inputs": inputs});
            let launched = server
                .post("/v1/processes", &body)
                .await
                .with_context(|| format!("cannot submit a '{}' process", self.plugin))?;
            println!("{}", launched["pid"].as_str().unwrap_or_default());
            return Ok(ExitCode::from(exit::OK));
        }
        let (controller, communicator) = self.daemon.controller().await?;
        let pid = controller
            .launch_process(&self.plugin, inputs, true, true)
            .await
            .with_context(|| format!("cannot submit a '{}' process", self.plugin))?;
        communicator.close().await;
        println!("{}", pid.as_str().unwrap_or(&pid.to_string()));
        Ok(ExitCode::from(exit::OK))
    }
}

/// What to control: one process, or all.
#[derive(Debug, Args)]
pub(crate) struct Target {
    /// The process id.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pid: Option<String>,

    /// Every process of every worker.
    #[arg(long)]
    all: bool,
}

/// Pause a process (after its running step), or all.
#[derive(Debug, Args)]
pub(crate) struct PauseCommand {
    #[command(flatten)]
    target: Target,
    /// A message, shown as the status while paused.
    #[arg(short, long)]
    message: Option<String>,
    #[command(flatten)]
    daemon: DaemonOptions,
}

/// Play a paused process, or all.
#[derive(Debug, Args)]
pub(crate) struct PlayCommand {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    daemon: DaemonOptions,
}

/// Kill a process (interrupting its running step), or all.
#[derive(Debug, Args)]
pub(crate) struct KillCommand {
    #[command(flatten)]
    target: Target,
    /// Why, kept with the process.
    #[arg(short, long)]
    message: Option<String>,
    /// Do not wait for its children to be killed.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    daemon: DaemonOptions,
}

/// Ask a running process for its status.
#[derive(Debug, Args)]
pub(crate) struct StatusCommand {
    /// The process id.
    pid: String,
    /// Print plumpy's status object: {"ctime", "paused", "process_string", "state"}.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    daemon: DaemonOptions,
}

/// Print the reply to a control request: `true` is done, `false` is refused (the process has
/// terminated), and the exit code says which.
fn done(pid: &str, what: &str, reply: Value) -> ExitCode {
    if reply == Value::Bool(true) {
        println!("{what} {pid}");
        ExitCode::from(exit::OK)
    } else {
        println!("{pid} was not {what} (it has terminated)");
        ExitCode::from(exit::PROCESS_FAILED)
    }
}

/// The state a status reply gives, as the state-change broadcasts name it (`waiting`): plumpy's
/// status says `ProcessState.WAITING`.
/// `, waiting for …` when a status reply or row says what the process waits for (a signal, or
/// a timer); nothing otherwise.
fn waits(status: &Value) -> String {
    let (event, timer) = (status["waiting_for"].as_str(), status["timer"].as_u64());
    if event.is_none() && timer.is_none() {
        return String::new();
    }
    let sleeping = status["sleeping"] == true;
    format!(
        ", waiting for {}",
        super::store::waits_for(event, timer, sleeping)
    )
}

fn state_of(status: &Value) -> String {
    let state = status["state"].as_str().unwrap_or("?");
    state
        .strip_prefix("ProcessState.")
        .unwrap_or(state)
        .to_lowercase()
}

/// How a process ended, in words: `FINISHED successfully`, `EXCEPTED: …`, `KILLED: …`.
pub(super) fn ended_how(record: &ProcessRecord) -> String {
    let mut how = record.state.to_string();
    match record.successful() {
        Some(true) => how.push_str(" successfully"),
        _ if record.state == crate::ProcessState::Finished => {
            how.push_str(&format!(
                " unsuccessfully (exit status {})",
                record.exit_status.unwrap_or_default()
            ));
        }
        _ => {}
    }
    if let Some(why) = record.error.as_ref().or(record.exit_message.as_ref()) {
        how.push_str(": ");
        how.push_str(why);
    }
    how
}

/// A control intent as the commands name it: `verb` ("pause"), what the process then is
/// (`done_as`, "paused"), what is said once all were asked (`all_asked`), and the body the
/// HTTP API takes.
struct Intent<'a> {
    verb: &'a str,
    done_as: &'a str,
    all_asked: &'a str,
    body: Value,
}

/// What `pause`, `play` and `kill` share: one process by RPC (or through `--server`), its
/// reply printed (see [`done`]), or every process by broadcast. A process no daemon answers
/// for is looked up in the store (see [`DaemonOptions::unanswered`]).
async fn control(
    daemon: &DaemonOptions,
    pid: Option<&str>,
    intent: Intent<'_>,
    one: impl AsyncFnOnce(&RemoteProcessController, &str) -> Result<Value, CommsError>,
    all: impl AsyncFnOnce(&RemoteProcessController) -> Result<(), CommsError>,
) -> anyhow::Result<ExitCode> {
    let Intent {
        verb,
        done_as,
        all_asked,
        body,
    } = intent;
    if let Some(server) = daemon.server()? {
        let Some(pid) = pid else {
            bail!("--all is not served by the HTTP API: name a process");
        };
        let reply = server
            .post(&format!("/v1/processes/{pid}/{verb}"), &body)
            .await
            .with_context(|| format!("cannot {verb} process {pid}"))?;
        return Ok(done(pid, done_as, reply["done"].clone()));
    }
    let (controller, communicator) = daemon.controller().await?;
    let code = match pid {
        Some(pid) => match one(&controller, pid).await {
            Ok(reply) => done(pid, done_as, reply),
            Err(CommsError::UnroutableRpc(_)) => daemon.unanswered(pid).await?.0,
            Err(e) => return Err(e).with_context(|| format!("cannot {verb} process {pid}")),
        },
        None => {
            all(&controller).await?;
            println!("{all_asked}");
            ExitCode::from(exit::OK)
        }
    };
    communicator.close().await;
    Ok(code)
}

impl PauseCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<ExitCode> {
        let message = self.message.as_deref();
        let intent = Intent {
            verb: "pause",
            done_as: "paused",
            all_asked: "asked every process to pause",
            body: serde_json::json!({"message": message}),
        };
        control(
            &self.daemon,
            self.target.pid.as_deref(),
            intent,
            async |c, pid| c.pause_process(pid, message).await,
            async |c| c.pause_all(message).await,
        )
        .await
    }
}

impl PlayCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<ExitCode> {
        let intent = Intent {
            verb: "play",
            done_as: "played",
            all_asked: "asked every process to play",
            body: serde_json::json!({}),
        };
        control(
            &self.daemon,
            self.target.pid.as_deref(),
            intent,
            async |c, pid| c.play_process(pid).await,
            async |c| c.play_all().await,
        )
        .await
    }
}

impl KillCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<ExitCode> {
        let (message, force) = (self.message.as_deref(), self.force);
        let intent = Intent {
            verb: "kill",
            done_as: "killed",
            all_asked: "asked every process to die",
            body: serde_json::json!({"message": message, "force": force}),
        };
        control(
            &self.daemon,
            self.target.pid.as_deref(),
            intent,
            async |c, pid| c.kill_process(pid, message, force).await,
            async |c| c.kill_all(message, force).await,
        )
        .await
    }
}

impl StatusCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<ExitCode> {
        if let Some(server) = self.daemon.server()? {
            let row = server
                .get(&format!("/v1/processes/{}/status", self.pid))
                .await
                .with_context(|| format!("cannot ask process {}", self.pid))?;
            if self.json {
                println!("{row}");
            } else {
                let paused = if row["paused"] == true {
                    " (paused)"
                } else {
                    ""
                };
                let state = row["state"].as_str().unwrap_or("?").to_uppercase();
                println!("{} {state}{paused}{}", self.pid, waits(&row));
            }
            return Ok(ExitCode::from(exit::OK));
        }
        let (controller, communicator) = self.daemon.controller().await?;
        let asked = controller.get_status(&self.pid).await;
        communicator.close().await;
        let (status, code) = match asked {
            Ok(status) => (status, ExitCode::from(exit::OK)),
            Err(CommsError::UnroutableRpc(_)) if self.json => {
                let (record, store) = self.daemon.stored(&self.pid).await?;
                let Some(record) = record else {
                    bail!(
                        "no process {}: no daemon answers for it, and {store} has no record of it",
                        self.pid
                    );
                };
                println!("{}", crate::comms::status_of(&record));
                return Ok(ExitCode::from(exit::PROCESS_FAILED));
            }
            Err(CommsError::UnroutableRpc(_)) => {
                return Ok(self.daemon.unanswered(&self.pid).await?.0);
            }
            Err(e) => return Err(e).with_context(|| format!("cannot ask process {}", self.pid)),
        };
        if self.json {
            println!("{status}");
        } else {
            let paused = if status["paused"] == true {
                " (paused)"
            } else {
                ""
            };
            println!(
                "{} {}{paused}{}",
                self.pid,
                state_of(&status).to_uppercase(),
                waits(&status)
            );
        }
        Ok(code)
    }
}

/// Follow a process until it ends: its state changes, and a progress line (outline position
/// and status) as it moves; then its outputs, read from the store.
#[derive(Debug, Args)]
pub(crate) struct WatchCommand {
    /// The process id.
    pid: String,
    /// Print one JSON object per line: {"pid", "from", "to"} for a state change,
    /// {"pid", "position", "status"} for progress, {"pid", "outputs"} at the end.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    daemon: DaemonOptions,
}

impl WatchCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<ExitCode> {
        if self.daemon.server.server.is_some() {
            bail!(
                "watch follows state changes through a broker or the local socket: the HTTP \
                 API has no event stream yet (poll `damson status --server …`)"
            );
        }
        let (controller, communicator) = self.daemon.controller().await?;
        let (changes, mut heard) = tokio::sync::mpsc::unbounded_channel::<String>();
        let forward = move |message: &crate::comms::Broadcast| {
            if let Some(subject) = &message.subject {
                let _ = changes.send(subject.clone());
            }
        };
        let filter = BroadcastFilter::new(forward)
            .subject("state_changed.*")
            .sender(self.pid.clone());
        communicator
            .add_broadcast_subscriber(Arc::new(filter), None)
            .await?;
        // Subscribed first, then asked: no change falls between the two.
        let status = match controller.get_status(&self.pid).await {
            Ok(status) => status,
            Err(CommsError::UnroutableRpc(_)) => {
                communicator.close().await;
                let (code, record) = self.daemon.unanswered(&self.pid).await?;
                if self.json {
                    println!(
                        "{}",
                        serde_json::json!({"pid": self.pid, "outputs": record.outputs})
                    );
                } else if record.state.is_terminal() {
                    println!("  outputs: {}", record.outputs);
                }
                return Ok(if record.successful() == Some(true) {
                    ExitCode::from(exit::OK)
                } else {
                    code
                });
            }
            Err(e) => return Err(e).with_context(|| format!("cannot watch process {}", self.pid)),
        };
        let mut last = state_of(&status);
        self.print(None, &last);
        let mut progress = (Value::Null, Value::Null);
        self.progress(&status, &mut progress);
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
        while !matches!(last.as_str(), "finished" | "excepted" | "killed") {
            tokio::select! {
                subject = heard.recv() => {
                    let Some(subject) = subject else {
                        bail!("the daemon went away");
                    };
                    let mut parts = subject.splitn(3, '.').skip(1);
                    let (from, to) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                    self.print(Some(from), to);
                    last = to.to_string();
                }
                _ = tick.tick() => {
                    // Gone between two ticks: the state change says how it ended.
                    if let Ok(status) = controller.get_status(&self.pid).await {
                        self.progress(&status, &mut progress);
                    }
                }
            }
        }
        communicator.close().await;
        self.outputs().await;
        Ok(ExitCode::from(if last == "finished" {
            exit::OK
        } else {
            exit::PROCESS_FAILED
        }))
    }

    /// Print the position and status when they changed.
    fn progress(&self, status: &Value, last: &mut (Value, Value)) {
        let now = (status["position"].clone(), status["status"].clone());
        if now == *last || now.0.as_str().is_none_or(str::is_empty) {
            return;
        }
        *last = now;
        if self.json {
            println!(
                "{}",
                serde_json::json!({"pid": self.pid, "position": last.0, "status": last.1})
            );
        } else {
            let status = last
                .1
                .as_str()
                .map(|s| format!(" — {s}"))
                .unwrap_or_default();
            println!("  at {}{status}", last.0.as_str().unwrap_or(""));
        }
    }

    /// The outputs the process ended with, from the store (when this command can read it).
    async fn outputs(&self) {
        let Ok((Some(record), _)) = self.daemon.stored(&self.pid).await else {
            return;
        };
        if self.json {
            println!(
                "{}",
                serde_json::json!({"pid": self.pid, "outputs": record.outputs})
            );
        } else {
            println!("  outputs: {}", record.outputs);
        }
    }

    fn print(&self, from: Option<&str>, to: &str) {
        if self.json {
            println!(
                "{}",
                serde_json::json!({"pid": self.pid, "from": from, "to": to})
            );
        } else {
            match from {
                Some(from) => println!(
                    "{} {} → {}",
                    self.pid,
                    from.to_uppercase(),
                    to.to_uppercase()
                ),
                None => println!("{} {}", self.pid, to.to_uppercase()),
            }
        }
    }
}
