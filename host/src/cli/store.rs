//! `--store URL`: where durable processes keep their checkpoints, and the commands that read
//! a store (`ps`, `show`, `checkpoints`).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

use super::identity::TokenOption;
use super::{CommonOptions, exit};
use crate::api::views;
use crate::persist::{EmbeddedPersister, Persister, PostgresPersister};
use crate::tenancy::Scope;
use crate::{Host, HostConfig, ProcessHandle, ProcessRecord};

/// The `--store` option every durable command shares.
#[derive(Debug, Clone, Args)]
pub(crate) struct StoreOptions {
    /// Where processes keep their checkpoints: `postgres://USER@HOST/DB` (a PostgreSQL
    /// database), a path to a store file (embedded, `*.redb`), or `memory:` (nothing kept
    /// after the command ends). Defaults to the embedded store `store.redb` in the home
    /// directory.
    #[arg(long, env = "DAMSON_STORE", value_name = "URL")]
    pub(crate) store: Option<String>,
}

impl StoreOptions {
    /// The store these options name, or `None` for `memory:`.
    pub(crate) async fn open(
        &self,
        common: &CommonOptions,
    ) -> anyhow::Result<Option<Arc<dyn Persister>>> {
        self.open_in(&common.home_dir()).await
    }

    /// As [`open`](Self::open), with the embedded default in `home`.
    pub(crate) async fn open_in(
        &self,
        home: &std::path::Path,
    ) -> anyhow::Result<Option<Arc<dyn Persister>>> {
        let url = match &self.store {
            Some(url) => url.clone(),
            None => home.join("store.redb").display().to_string(),
        };
        if url == "memory:" {
            return Ok(None);
        }
        let store: Arc<dyn Persister> = if url.starts_with("postgres://")
            || url.starts_with("postgresql://")
        {
            Arc::new(
                PostgresPersister::connect(&url)
                    .await
                    .with_context(|| format!("cannot open the store '{url}'"))?,
            )
        } else {
            let path = url
                .strip_prefix("redb:")
                .or_else(|| url.strip_prefix("file:"))
                .unwrap_or(&url);
            if path.contains("://") {
                bail!(
                    "unknown store '{url}': use postgres://…, a path to a .redb file, or memory:"
                );
            }
            Arc::new(
                EmbeddedPersister::open(path)
                    .with_context(|| format!("cannot open the store '{path}'"))?,
            )
        };
        Ok(Some(store))
    }

    /// The store, which this command cannot do without.
    pub(crate) async fn open_required(
        &self,
        common: &CommonOptions,
    ) -> anyhow::Result<Arc<dyn Persister>> {
        self.open(common).await?.ok_or_else(|| {
            anyhow::anyhow!("this command reads a store: `--store memory:` keeps nothing")
        })
    }

    /// A host on the store (durable) or without one (`memory:`).
    pub(crate) async fn host(&self, common: &CommonOptions) -> anyhow::Result<Host> {
        self.host_with(&common.host_config(), common).await
    }

    /// As [`host`](Self::host), with this configuration.
    pub(crate) async fn host_with(
        &self,
        config: &HostConfig,
        common: &CommonOptions,
    ) -> anyhow::Result<Host> {
        Ok(match self.open(common).await? {
            Some(store) => Host::with_store(config, store)?,
            None => Host::new(config)?,
        })
    }

    /// A host acting for `who`'s tenant within its quotas (once its token is checked to have
    /// `scope`), or for the default tenant without a token.
    pub(crate) async fn host_as(
        &self,
        common: &CommonOptions,
        who: &TokenOption,
        scope: Scope,
    ) -> anyhow::Result<Host> {
        self.host_as_with(&common.host_config(), common, who, scope)
            .await
    }

    /// As [`host_as`](Self::host_as), with this configuration.
    pub(crate) async fn host_as_with(
        &self,
        config: &HostConfig,
        common: &CommonOptions,
        who: &TokenOption,
        scope: Scope,
    ) -> anyhow::Result<Host> {
        let host = self.host_with(config, common).await?;
        if !who.given() {
            return Ok(host);
        }
        let store = host.store().cloned().ok_or_else(|| {
            anyhow::anyhow!("a token is checked against a store: `--store memory:` has none")
        })?;
        let tenant = who.tenant(&store, scope).await?;
        let row = crate::tenancy::Accounts::new(store.clone())
            .tenant(&tenant)
            .await?;
        // Where the store can keep a connection to the tenant's rows itself, it does.
        let scoped = store
            .scoped(&tenant)
            .await
            .with_context(|| format!("cannot open the store as tenant '{tenant}'"))?
            .unwrap_or(store);
        Ok(host.for_tenant_on(&tenant, row.quotas, Vec::new(), Some(scoped)))
    }
}

/// List the processes in a store with their state and status.
#[derive(Debug, Args)]
pub(crate) struct PsCommand {
    /// Print a JSON array of {"pid", "plugin", "state", "paused", "status", "position",
    /// "parent"}.
    #[arg(long)]
    pub(crate) json: bool,
    /// Only processes in this state.
    #[arg(long, value_parser = state_parser(), ignore_case = true)]
    state: Option<crate::ProcessState>,
    /// Only processes of the plugin of this (declared) name.
    #[arg(long, value_name = "NAME")]
    plugin: Option<String>,
    /// Only processes that have not terminated (created, running or waiting).
    #[arg(long)]
    live: bool,
    #[command(flatten)]
    who: TokenOption,
    #[command(flatten)]
    store: StoreOptions,
    #[command(flatten)]
    common: CommonOptions,
}

/// `ps --state`'s parser: one of the states' names, in any case.
fn state_parser() -> impl clap::builder::TypedValueParser<Value = crate::ProcessState> {
    use clap::builder::TypedValueParser;
    let names = crate::ProcessState::ALL.map(|state| state.name().to_lowercase());
    clap::builder::PossibleValuesParser::new(names)
        .map(|name| crate::ProcessState::from_name(&name).expect("one of the states' names"))
}

impl PsCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<ExitCode> {
        let store = self.store.open_required(&self.common).await?;
        let (tenant, store) = self.who.scoped(store, Scope::Read).await?;
        // Answered from the store's summary index: no checkpoint is read.
        let filter = crate::persist::SummaryFilter {
            live: self.live,
            state: self.state.map(|s| s.name().to_string()),
            plugin: self.plugin.clone(),
            ..Default::default()
        };
        let (rows, damaged) = views::processes(&*store, &tenant, &filter)
            .await
            .context("cannot list the store")?;
        // One damaged checkpoint does not hide the others.
        for error in &damaged {
            eprintln!("damson: {}", crate::error::chain(error));
        }
        if self.json {
            println!("{}", Value::Array(rows));
        } else if rows.is_empty() {
            println!("no processes in {}", store.summary());
        } else {
            println!("{:<36}  {:<12}  {:<9}  STATUS", "PID", "PLUGIN", "STATE");
            for r in &rows {
                let mut state = r["state"].as_str().unwrap_or("").to_string();
                if r["paused"] == true {
                    state.push_str(" (paused)");
                }
                let mut status = r["status"].as_str().unwrap_or("").to_string();
                if r["state"] == "WAITING" && (r["waiting_for"].is_string() || r["timer"].is_u64())
                {
                    let waits = waits_for(
                        r["waiting_for"].as_str(),
                        r["timer"].as_u64(),
                        r["sleeping"] == true,
                    );
                    let sep = if status.is_empty() { "" } else { "; " };
                    status = format!("{status}{sep}waiting for {waits}");
                }
                println!(
                    "{:<36}  {:<12}  {:<9}  {status}",
                    r["pid"].as_str().unwrap_or(""),
                    r["plugin"].as_str().unwrap_or(""),
                    state,
                );
            }
        }
        Ok(ExitCode::from(exit::OK))
    }
}

/// Print one stored process: state, outline position, context, outputs and children.
#[derive(Debug, Args)]
pub(crate) struct ShowCommand {
    /// The process id.
    pid: String,
    /// Print the process as one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    who: TokenOption,
    #[command(flatten)]
    store: StoreOptions,
    #[command(flatten)]
    common: CommonOptions,
}

impl ShowCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<ExitCode> {
        let store = self.store.open_required(&self.common).await?;
        let (tenant, store) = self.who.scoped(store, Scope::Read).await?;
        let Some((json, stored)) = views::process(&*store, &tenant, &self.pid)
            .await
            .with_context(|| {
                format!("cannot read process {} from {}", self.pid, store.summary())
            })?
        else {
            bail!("no process {} in {}", self.pid, store.summary());
        };
        let record = &stored.record;
        let children = json["children"].as_array().cloned().unwrap_or_default();
        if self.json {
            println!("{json}");
        } else {
            let mut state = record.state.to_string();
            if record.paused {
                state.push_str(" (paused)");
            }
            println!("{} {} {state}", record.plugin, record.pid);
            if let Some(status) = &record.status {
                println!("  status: {status}");
            }
            if let Some(error) = &record.error {
                println!("  error: {error}");
            }
            if let Some(message) = &record.exit_message {
                println!("  {message}");
            }
            let position = if record.position.is_empty() {
                "(not started)"
            } else {
                &record.position
            };
            println!("  position: {position}");
            println!("  inputs: {}", record.inputs);
            println!("  context: {}", Value::Object(record.context.clone()));
            println!("  outputs: {}", record.outputs);
            if !record.awaiting.is_empty() {
                println!("  awaiting: {}", record.awaiting.join(", "));
            }
            if record.state == crate::ProcessState::Waiting && record.awaiting.is_empty() {
                let waits = waits_for(record.waiting_for.as_deref(), record.timer, record.sleeping);
                println!("  waiting for: {waits}");
            }
            for signal in json["signals"].as_array().into_iter().flatten() {
                let event = signal["event"].as_str().unwrap_or("(resume)");
                let taken = if signal["taken"] == true {
                    "taken"
                } else {
                    "not taken"
                };
                println!(
                    "  signal {} {event} {taken}: {}",
                    signal["seq"], signal["data"]
                );
            }
            for child in &children {
                println!(
                    "  child {} {} {}",
                    child["plugin"].as_str().unwrap_or("?"),
                    child["pid"].as_str().unwrap_or("?"),
                    child["state"].as_str().unwrap_or("(no checkpoint)")
                );
            }
        }
        Ok(ExitCode::from(exit::OK))
    }
}

/// List a process's checkpoints (the current one and tagged ones) with their sizes.
#[derive(Debug, Args)]
pub(crate) struct CheckpointsCommand {
    /// The process id.
    pid: String,
    /// Print a JSON array of {"tag", "bytes", "memory_image_bytes", "state", "position"}.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    who: TokenOption,
    #[command(flatten)]
    store: StoreOptions,
    #[command(flatten)]
    common: CommonOptions,
}

impl CheckpointsCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<ExitCode> {
        let store = self.store.open_required(&self.common).await?;
        let (tenant, store) = self.who.scoped(store, Scope::Read).await?;
        let rows = views::checkpoints(&*store, &tenant, &self.pid)
            .await
            .context("cannot list the store")?;
        if rows.is_empty() {
            bail!(
                "no checkpoints of process {} in {}",
                self.pid,
                store.summary()
            );
        }
        if self.json {
            println!("{}", Value::Array(rows));
        } else {
            println!(
                "{:<12}  {:>10}  {:>12}  {:<9}  POSITION",
                "TAG", "BYTES", "IMAGE", "STATE"
            );
            for r in &rows {
                println!(
                    "{:<12}  {:>10}  {:>12}  {:<9}  {}",
                    r["tag"].as_str().unwrap_or("(current)"),
                    r["bytes"],
                    r["memory_image_bytes"]
                        .as_u64()
                        .map_or("-".to_string(), |b| b.to_string()),
                    r["state"].as_str().unwrap_or(""),
                    r["position"].as_str().unwrap_or("")
                );
            }
        }
        Ok(ExitCode::from(exit::OK))
    }
}

/// What a waiting process (not waiting for children) waits for, in words: `the signal
/// 'approved', at most until 2026-12-04T20:00:00.000Z`, `its timer, at …`, `a resume …`.
pub(crate) fn waits_for(event: Option<&str>, timer: Option<u64>, sleeping: bool) -> String {
    let at = |ms: u64| {
        humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
        )
    };
    let what = match event {
        Some(event) => format!("the signal '{event}'"),
        None => "a resume (a signal with no event)".to_string(),
    };
    match timer {
        Some(ms) if sleeping => format!("its timer, at {}", at(ms)),
        Some(ms) => format!("{what}, at most until {}", at(ms)),
        None => what,
    }
}

/// Whether a run or a continue has gone as far as it will go on its own: terminated, paused,
/// or waiting for a resume no one will send (a timer ends a wait by itself).
pub(crate) fn stopped(r: &ProcessRecord) -> bool {
    r.state.is_terminal() || r.paused || r.waits_on_others()
}

/// Wait until `process` has [`stopped`]; one that terminated also gives up its claim in the
/// store first, which the command must not cut short by exiting.
pub(crate) async fn until_stopped(process: &ProcessHandle) -> ProcessRecord {
    let record = process.wait_for(stopped).await;
    if record.state.is_terminal() {
        return process.wait().await;
    }
    record
}
