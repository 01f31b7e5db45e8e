//! `damson continue`: carry a stored process on from its checkpoint.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

use super::identity::TokenOption;
use super::run::report;
use super::store::{StoreOptions, until_stopped};
use super::{CommonOptions, exit};
use crate::tenancy::Scope;

const AFTER_HELP: &str = "\
Examples:
  damson continue 0b6f…            # the process a `damson run` left, from its last checkpoint
  damson continue 0b6f… --play     # … and play it if it was paused
  damson continue --all            # every process that had not terminated (after a crash)

Exit status as for `damson run`, and 3 when another host (a `damson serve`, a worker) runs the
process: the error names it.";

/// Continue a process from its last checkpoint (or a tagged one) and run it until it stops.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct ContinueCommand {
    /// The process id.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pid: Option<String>,

    /// Continue from the checkpoint with this tag instead of the current one.
    #[arg(long, value_name = "TAG")]
    tag: Option<String>,

    /// Continue every stored process that had not terminated, as a host does when it starts
    /// again after it died, and wait for them all.
    #[arg(long)]
    all: bool,

    /// Play the process if it was paused (otherwise it stays paused and the command stops).
    #[arg(long)]
    play: bool,

    /// Print exactly one JSON object on stdout, as `damson run --json` does (with `--all`, one
    /// per line).
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    who: TokenOption,

    #[command(flatten)]
    store: StoreOptions,

    #[command(flatten)]
    common: CommonOptions,
}

impl ContinueCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<ExitCode> {
        let (json, pid) = (self.json && !self.all, self.pid.clone());
        let result = self.run().await;
        if json && let Err(error) = &result {
            println!("{}", super::run::failed_json(pid.as_deref(), None, error));
        }
        result
    }

    async fn run(self) -> anyhow::Result<ExitCode> {
        let host = self
            .store
            .host_as(&self.common, &self.who, Scope::Submit)
            .await?;
        if host.store().is_none() {
            bail!("`--store memory:` keeps nothing to continue");
        }
        let processes = if self.all {
            let recovered = host.recover().await?;
            for (pid, error) in &recovered.failed {
                eprintln!(
                    "damson: cannot continue process {pid}: {}",
                    crate::error::chain(error)
                );
            }
            for (_, error) in &recovered.elsewhere {
                eprintln!("damson: {}: left to it", crate::error::chain(error));
            }
            if recovered.resumed.is_empty()
                && recovered.failed.is_empty()
                && recovered.elsewhere.is_empty()
            {
                eprintln!("damson: no process to continue");
            }
            // Children are awaited by their parents: report the top-level processes.
            recovered
                .resumed
                .into_iter()
                .filter(|p| {
                    p.record()
                        .parent
                        .is_none_or(|parent| host.process(&parent).is_none())
                })
                .collect()
        } else {
            let pid = self
                .pid
                .as_deref()
                .expect("clap requires a pid without --all");
            match host.continue_process(pid, self.tag.as_deref()).await {
                Ok(process) => vec![process],
                Err(error @ crate::Error::Claimed { .. }) => {
                    let error = anyhow::Error::new(error).context(format!(
                        "cannot continue process {pid}: another host runs it (stop that host, \
                         or control the process through it)"
                    ));
                    if self.json {
                        println!("{}", super::run::failed_json(Some(pid), None, &error));
                    }
                    super::print_error(&error);
                    return Ok(ExitCode::from(exit::ELSEWHERE));
                }
                Err(error) => {
                    return Err(error).with_context(|| format!("cannot continue process {pid}"));
                }
            }
        };
        let mut code = ExitCode::from(exit::OK);
        for process in processes {
            if self.play && process.play() {
                // The task carries the play out; stopping starts counting after it.
                process
                    .wait_for(|r| !r.paused || r.state.is_terminal())
                    .await;
            }
            let record = until_stopped(&process).await;
            if record.paused && !record.state.is_terminal() {
                eprintln!(
                    "damson: process {} is paused; `damson continue {} --play` plays it",
                    record.pid, record.pid
                );
            }
            let this = report(&host, &record, self.json);
            if this != ExitCode::from(exit::OK) {
                code = this;
            }
        }
        Ok(code)
    }
}
