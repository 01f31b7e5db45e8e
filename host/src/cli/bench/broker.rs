//! Cases f and g: RPC, the task queue and reachable processes over RabbitMQ.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, ensure};
use serde_json::json;

use super::BenchCommand;
use super::figures::{Figures, Unit, median, median_duration};
use crate::{Host, ProcessState};

impl BenchCommand {
    /// Cases f and g, on a host attached to RabbitMQ and a controller with a connection of its
    /// own, on exchanges and a queue of the benchmark's own.
    pub(super) async fn cases_f_g(&self, figures: &mut Figures) -> anyhow::Result<()> {
        use crate::comms::{
            Communicator, ProcessLauncher, RabbitMqCommunicator, RabbitMqOptions,
            RemoteProcessController,
        };
        let url = self
            .broker
            .as_deref()
            .context("cases f and g need --broker amqp://…")?;
        ensure!(self.messages > 0, "--messages must be at least 1");
        let options = RabbitMqOptions::isolated(&format!("bench-{}", std::process::id()));
        let server: Arc<dyn Communicator> =
            RabbitMqCommunicator::connect(url, options.clone()).await?;
        let client: Arc<dyn Communicator> = RabbitMqCommunicator::connect(url, options).await?;
        // No store, as plumpy's cases f and g have no persister.
        let host = Host::new(&self.common.host_config())?;
        host.attach(server.clone()).await?;
        server
            .add_task_subscriber(Arc::new(ProcessLauncher::new(host.clone())), None)
            .await?;
        let controller = RemoteProcessController::new(client.clone());
        let lifecycle = host
            .load("lifecycle")
            .await
            .context("case f needs `lifecycle`")?;
        let add = host.load("add").await.context("cases f and g need `add`")?;
        let n = self.messages;

        if self.cases.contains('f') {
            let waiting = host.launch(&lifecycle, json!({"mode": "wait"})).await?;
            waiting.wait_for(|r| r.state == ProcessState::Waiting).await;
            let (mut rpc, mut sequential, mut concurrent) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..self.runs {
                let mut times = Vec::with_capacity(n);
                for _ in 0..n {
                    let started = Instant::now();
                    controller.get_status(waiting.pid()).await?;
                    times.push(started.elapsed());
                }
                rpc.push(median_duration(times));

                let started = Instant::now();
                for i in 0..n {
                    controller
                        .launch_process("add", json!({"x": i, "y": 1}), false, false)
                        .await?;
                }
                sequential.push(n as f64 / started.elapsed().as_secs_f64());

                let started = Instant::now();
                let launches: Vec<_> = (0..n)
                    .map(|i| {
                        let controller = controller.clone();
                        tokio::spawn(async move {
                            controller
                                .launch_process("add", json!({"x": i, "y": 1}), false, false)
                                .await
                        })
                    })
                    .collect();
                for launch in launches {
                    launch.await??;
                }
                concurrent.push(n as f64 / started.elapsed().as_secs_f64());
            }
            waiting.kill(None, false);
            let rpc = median_duration(rpc).as_secs_f64() * 1000.0;
            figures.add(
                'f',
                "rpc_ms",
                "RPC status round trip".into(),
                rpc,
                Unit::Milliseconds,
            );
            let label = format!("{n} launches, one at a time");
            figures.add(
                'f',
                "launches_per_s",
                label,
                median(sequential),
                Unit::PerSecond,
            );
            let label = format!("{n} launches, all at once");
            let concurrent = median(concurrent);
            figures.add(
                'f',
                "concurrent_launches_per_s",
                label,
                concurrent,
                Unit::PerSecond,
            );
        }
        if self.cases.contains('g') {
            let mut g = Vec::new();
            for _ in 0..self.runs {
                let started = Instant::now();
                for i in 0..n {
                    let record = host.run(&add, json!({"x": i, "y": 1})).await?;
                    ensure!(record.successful() == Some(true), "case g: {record:?}");
                }
                g.push(n as f64 / started.elapsed().as_secs_f64());
            }
            let label = format!("{n} processes on RabbitMQ");
            figures.add('g', "processes_per_s", label, median(g), Unit::PerSecond);
        }
        client.close().await;
        server.close().await;
        Ok(())
    }
}
