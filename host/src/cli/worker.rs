//! `damson worker`: serve processes over RabbitMQ, as one of many workers.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use super::store::StoreOptions;
use super::{CommonOptions, exit};
use crate::comms::{Communicator, ProcessLauncher, RabbitMqCommunicator, RabbitMqOptions};

const AFTER_HELP: &str = "\
Examples:
  damson worker --broker amqp://guest:guest@localhost:5672/%2f
  damson worker --broker amqp://… --store postgres://damson@db/damson

The worker takes launch, create and continue tasks from the task queue, answers pause / play /
kill / status requests for its processes, hears the pause / play / kill broadcasts, and
broadcasts every state change — on kiwipy's exchanges and queues, with JSON bodies, so that a
kiwipy client configured with a JSON encoder and decoder can drive it. A task is acknowledged
once its process has a checkpoint in the store. Stop it with Ctrl-C or SIGTERM; its processes
stay in the store, where `damson continue` (or a continue task) finds them.

Not yet: leases in the shared store (so two workers never run one process) and taking over the
processes of a worker that died; reconnecting after a broker restart.";

/// Serve processes over RabbitMQ, as one of many workers sharing a broker and a store.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct WorkerCommand {
    /// The RabbitMQ broker, e.g. `amqp://guest:guest@localhost:5672/%2f?heartbeat=30`.
    #[arg(long, env = "DAMSON_BROKER", value_name = "URL")]
    broker: String,

    /// The exchange for RPC and broadcasts (kiwipy's default).
    #[arg(long, default_value = "kiwipy.messages", value_name = "NAME")]
    message_exchange: String,

    /// The exchange for tasks (kiwipy's default).
    #[arg(long, default_value = "kiwipy.tasks", value_name = "NAME")]
    task_exchange: String,

    /// The durable task queue (kiwipy's default).
    #[arg(long, default_value = "kiwipy.tasks", value_name = "NAME")]
    task_queue: String,

    /// How many tasks this worker takes at a time.
    #[arg(long, default_value_t = 16)]
    prefetch: u16,

    #[command(flatten)]
    store: StoreOptions,

    #[command(flatten)]
    common: CommonOptions,
}

impl WorkerCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<ExitCode> {
        let host = self.store.host(&self.common).await?;
        let options = RabbitMqOptions {
            message_exchange: self.message_exchange.clone(),
            task_exchange: self.task_exchange.clone(),
            task_queue: self.task_queue.clone(),
            prefetch: self.prefetch,
            testing: false,
        };
        let communicator: Arc<dyn Communicator> =
            RabbitMqCommunicator::connect(&self.broker, options)
                .await
                .with_context(|| format!("cannot start a worker on {}", self.broker))?;
        host.attach(communicator.clone()).await?;
        communicator
            .add_task_subscriber(Arc::new(ProcessLauncher::new(host.clone())), None)
            .await
            .context("cannot subscribe to the task queue")?;
        let store = host
            .store()
            .map_or_else(|| "no store".to_string(), |s| s.summary());
        eprintln!(
            "damson worker: ready on {} (task queue '{}'), {store}",
            self.broker, self.task_queue
        );
        shutdown().await;
        eprintln!("damson worker: stopping");
        communicator.close().await;
        Ok(ExitCode::from(exit::OK))
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
