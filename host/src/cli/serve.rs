//! `damson serve`: the broker-less daemon for one machine.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use super::store::StoreOptions;
use super::{CommonOptions, SOCKET, exit};
use crate::comms::{Communicator, InProcessCommunicator, ProcessLauncher, socket};

const AFTER_HELP: &str = "\
Examples:
  damson serve &
  pid=$(damson submit collatz -i n=27)
  damson watch $pid

The daemon keeps its processes in the store (by default the embedded one in the home
directory), continues the ones that had not ended when it starts, and listens on a Unix socket
in the home directory (damson.sock), through which `damson submit`, `pause`, `play`, `kill`,
`status` and `watch` reach it when they are given no --broker. Stop it with Ctrl-C or SIGTERM.";

/// Run processes on this machine with no broker, controlled through a local socket.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct ServeCommand {
    #[command(flatten)]
    store: StoreOptions,
    #[command(flatten)]
    common: CommonOptions,
}

impl ServeCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<ExitCode> {
        let host = self.store.host(&self.common).await?;
        let communicator: Arc<dyn Communicator> = Arc::new(InProcessCommunicator::new());
        host.attach(communicator.clone()).await?;
        communicator
            .add_task_subscriber(Arc::new(ProcessLauncher::new(host.clone())), None)
            .await?;
        let home = self.common.home_dir();
        std::fs::create_dir_all(&home)
            .with_context(|| format!("cannot create the home directory {}", home.display()))?;
        let path = home.join(SOCKET);
        let listening = socket::serve(&path, communicator.clone()).await?;
        if host.store().is_some() {
            let recovered = host.recover().await?;
            for process in &recovered.resumed {
                eprintln!("damson serve: continued process {}", process.pid());
            }
            for (pid, error) in &recovered.failed {
                eprintln!(
                    "damson serve: cannot continue process {pid}: {}",
                    crate::error::chain(error)
                );
            }
        }
        eprintln!("damson serve: listening on {}", path.display());
        super::worker::shutdown().await;
        eprintln!("damson serve: stopping");
        listening.abort();
        let _ = std::fs::remove_file(&path);
        Ok(ExitCode::from(exit::OK))
    }
}
