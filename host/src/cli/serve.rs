//! `damson serve`: the broker-less daemon for one machine.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use super::store::StoreOptions;
use super::{CommonOptions, SOCKET, exit};
use crate::api::{Api, Listen, Listening, TenantHosts};
use crate::comms::{Communicator, InProcessCommunicator, ProcessLauncher, socket};

const AFTER_HELP: &str = "\
Examples:
  damson serve &
  pid=$(damson submit collatz -i n=27)
  damson watch $pid

The daemon keeps its processes in the store (by default the embedded one in the home
directory), continues the ones that had not ended when it starts, and listens on a Unix socket
in the home directory (damson.sock), through which `damson submit`, `pause`, `play`, `kill`,
`status` and `watch` reach it when they are given no --broker. The socket is the daemon's
user's only (mode 0600) and acts for the default tenant; every pause, play, kill and submit
through it is in the audit log (`damson audit`) as done by `local`.

With --listen ADDR it also serves the HTTP JSON API (GET /v1/openapi.json describes it) for
every tenant of the store: each request acts for the tenant of its bearer token
(`damson token create`), within its scopes and the tenant's quotas. Give --tls-cert and
--tls-key to serve HTTPS. Stop it with Ctrl-C or SIGTERM.";

/// Run processes on this machine with no broker, controlled through a local socket.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct ServeCommand {
    /// Serve the HTTP API on this address too, e.g. 127.0.0.1:8080 (port 0: any free port,
    /// printed on stderr).
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// The PEM certificate chain to serve HTTPS with (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key", requires = "listen")]
    tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Where tenants' own plugins are: DIR/<tenant>/<name>.wasm, found before the plugin
    /// directory's (which every tenant can run).
    #[arg(long, value_name = "DIR", requires = "listen")]
    tenant_plugins: Option<std::path::PathBuf>,
    #[command(flatten)]
    store: StoreOptions,
    #[command(flatten)]
    common: CommonOptions,
}

impl ServeCommand {
    /// Serve the HTTP API on `addr` for every tenant, continuing their unfinished processes.
    async fn serve_api(
        &self,
        host: &crate::Host,
        addr: std::net::SocketAddr,
    ) -> anyhow::Result<Listening> {
        let tenants = TenantHosts::new(host.clone(), self.tenant_plugins.clone())
            .context("the HTTP API serves the tenants of a store")?;
        for failed in tenants.start_all().await? {
            eprintln!("damson serve: {}", crate::error::chain(&failed));
        }
        let listen = Listen {
            addr,
            tls: self.tls_cert.clone().zip(self.tls_key.clone()),
        };
        let listening = Api::new(tenants).serve(&listen).await?;
        eprintln!("damson serve: HTTP API on {}", listening.url());
        Ok(listening)
    }

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
        let api = match self.listen {
            Some(addr) => Some(self.serve_api(&host, addr).await?),
            None => None,
        };
        super::worker::shutdown().await;
        eprintln!("damson serve: stopping");
        if let Some(api) = api {
            api.stop().await;
        }
        listening.abort();
        let _ = std::fs::remove_file(&path);
        Ok(ExitCode::from(exit::OK))
    }
}
