//! `damson worker`: serve processes over RabbitMQ, as one of many workers.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use super::control::BrokerOptions;
use super::identity::TokenOption;
use super::store::StoreOptions;
use super::{CommonOptions, exit};
use crate::comms::{Communicator, ProcessLauncher, RabbitMqCommunicator};
use crate::tenancy::Scope;

const AFTER_HELP: &str = "\
Examples:
  damson worker --broker amqp://guest:guest@localhost:5672/%2f
  damson worker --broker amqp://… --store postgres://damson@db/damson
  damson worker --broker amqp://damson-acme:…@rabbit:5672/damson-acme \
      --store postgres://damson@db/damson --token damson_…

The worker takes launch, create and continue tasks from the task queue, answers pause / play /
kill / status requests for its processes, hears the pause / play / kill broadcasts, and
broadcasts every state change — on kiwipy's exchanges and queues, reading kiwipy's default
(YAML) codec or JSON and answering in JSON, so that plumpy's controllers and AiiDA-style tools
drive it unchanged. A task is acknowledged once its process has a checkpoint in the store; one
it cannot run (unreadable, or that no worker takes) is answered with an error and kept in the
queue <task queue>.dead-letter. Stop it with Ctrl-C or SIGTERM; its processes
stay in the store, where `damson continue` (or a continue task) finds them.

Workers sharing a store claim the processes they run: no two run one process, and when a worker
dies the others take its processes over, at once (its presence in the store ends with it), or,
for one that lives on but cannot renew, once its claims run out (--claim-ttl). When the broker
restarts, the worker reconnects and subscribes again on its own; its processes run on.

With --token (a token of a tenant with the submit scope), the worker acts for that tenant: it
runs, lists and takes over only the tenant's processes, within the tenant's quotas, and finds
plugins by name only. Give it the tenant's broker URL (`damson tenant create --broker-admin`
prints it), whose virtual host only the tenant's credentials reach.";

/// Serve processes over RabbitMQ, as one of many workers sharing a broker and a store.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct WorkerCommand {
    #[command(flatten)]
    broker: BrokerOptions,

    /// How many tasks this worker takes at a time.
    #[arg(long, default_value_t = 16)]
    prefetch: u16,

    /// How long this worker's claims on its processes last unrenewed: if it lives on but cannot
    /// renew them (its store out of reach), other workers take its processes over after this
    /// long (when it dies, at once).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    claim_ttl: std::time::Duration,

    #[command(flatten)]
    who: TokenOption,

    #[command(flatten)]
    store: StoreOptions,

    #[command(flatten)]
    common: CommonOptions,
}

impl WorkerCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<ExitCode> {
        anyhow::ensure!(
            self.claim_ttl >= std::time::Duration::from_millis(100),
            "--claim-ttl must be at least 100ms"
        );
        let mut config = self.common.host_config();
        config.claim_processes(self.claim_ttl);
        anyhow::ensure!(
            self.store.store.as_deref() != Some("memory:"),
            "a worker needs a store (`--store memory:` keeps nothing to take over)"
        );
        // The token's tenant's host (checked to have the submit scope), or the default tenant's.
        let host = self
            .store
            .host_as_with(&config, &self.common, &self.who, Scope::Submit)
            .await?;
        let url = self.broker.url()?;
        let communicator: Arc<dyn Communicator> =
            RabbitMqCommunicator::connect(url, self.broker.options(self.prefetch))
                .await
                .with_context(|| {
                    format!("cannot start a worker on {}", crate::comms::redacted(url))
                })?;
        host.attach(communicator.clone()).await?;
        communicator
            .add_task_subscriber(Arc::new(ProcessLauncher::new(host.clone())), None)
            .await
            .context("cannot subscribe to the task queue")?;
        let store = host
            .store()
            .map_or_else(|| "no store".to_string(), |s| s.summary());
        eprintln!(
            "damson worker: ready on {} (task queue '{}'), {store}, tenant {}",
            crate::comms::redacted(url),
            self.broker.task_queue,
            host.tenant()
        );
        // Take over the processes of workers that died (and, at start, those this store's
        // hosts left unfinished), from their last checkpoints.
        let watcher = host.clone();
        let period = self.claim_ttl / 2;
        let taking_over = tokio::spawn(async move {
            loop {
                match watcher.take_over().await {
                    Ok(taken) => {
                        for process in &taken.resumed {
                            eprintln!("damson worker: took over process {}", process.pid());
                        }
                        for (pid, error) in &taken.failed {
                            eprintln!(
                                "damson worker: cannot take over process {pid}: {}",
                                crate::error::chain(error)
                            );
                        }
                    }
                    Err(e) => {
                        eprintln!("damson worker: cannot look for processes to take over: {e}")
                    }
                }
                tokio::time::sleep(period).await;
            }
        });
        shutdown().await;
        taking_over.abort();
        eprintln!("damson worker: stopping");
        communicator.close().await;
        Ok(ExitCode::from(exit::OK))
    }
}

/// Ctrl-C or SIGTERM.
pub(crate) async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
