//! The `damson` command line: one subcommand per file, errors with context through `anyhow`.

mod audit;
mod bench;
pub mod config;
mod control;
mod describe;
mod identity;
mod inputs;
mod logs;
mod resume;
mod run;
mod serve;
mod server;
mod signal;
mod store;
mod tenant;
mod token;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::HostConfig;

/// Damson runs workflow processes written as WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "damson", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Run(run::RunCommand),
    /// Continue a stored process from its last checkpoint.
    Continue(resume::ContinueCommand),
    /// List the processes in the store.
    Ps(store::PsCommand),
    /// Show one stored process.
    Show(store::ShowCommand),
    /// List a process's checkpoints with their sizes.
    Checkpoints(store::CheckpointsCommand),
    /// Print a stored process's log (its plugin's lines and the host's), or follow it.
    Logs(logs::LogsCommand),
    /// Serve processes over RabbitMQ, as one of many workers.
    Worker(worker::WorkerCommand),
    /// Submit a process to the workers (or `damson serve`); prints its pid.
    Submit(control::SubmitCommand),
    /// Pause a running process, or all.
    Pause(control::PauseCommand),
    /// Play a paused process, or all.
    Play(control::PlayCommand),
    /// Kill a running process, or all.
    Kill(control::KillCommand),
    /// Ask a running process for its status.
    Status(control::StatusCommand),
    Signal(signal::SignalCommand),
    /// Follow a running process's state changes until it ends.
    Watch(control::WatchCommand),
    /// Run processes on this machine with no broker, controlled through a local socket.
    Serve(serve::ServeCommand),
    Describe(describe::DescribeCommand),
    Bench(bench::BenchCommand),
    /// Manage the tenants of a store (create, list, delete).
    Tenant(tenant::TenantCommand),
    /// Manage API tokens (create, list, revoke).
    Token(token::TokenCommand),
    /// List the audit log of control and admin operations.
    Audit(audit::AuditCommand),
}

/// Options every command that loads plugins shares.
#[derive(Debug, Clone, Args)]
pub(crate) struct CommonOptions {
    /// Directory where plugins are looked up by name, as `<name>.wasm`. Defaults to where the
    /// example plugins are built (`target/wasm32-wasip2/release` of this checkout).
    #[arg(long, env = "DAMSON_PLUGINS", value_name = "DIR")]
    plugins: Option<PathBuf>,

    /// Damson's home directory, which holds the compiled-plugin cache and the embedded store.
    /// Defaults to `~/.damson`.
    #[arg(long, env = "DAMSON_HOME", value_name = "DIR")]
    home: Option<PathBuf>,

    /// Compile plugins every time instead of using the cache in the home directory.
    #[arg(long)]
    no_cache: bool,

    /// Most memory one plugin instance may use, e.g. `256MiB`, `64MiB`, `1GiB`.
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = parse_size)]
    max_memory: usize,

    /// Most wall-clock time one step may run, e.g. `10s`, `500ms`.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    step_timeout: Duration,

    /// How many lines of its log each process keeps in the store (the last ones; older lines
    /// are dropped and counted).
    #[arg(long, value_name = "LINES", default_value_t = 1000)]
    log_lines: usize,

    /// How many plugin instances may exist at once, reserved up front in one pool; more wait
    /// for a slot. `0` turns the pool off (each instance maps its own memory; slower).
    #[arg(long, value_name = "INSTANCES", default_value_t = 1000)]
    instance_pool: u32,
}

impl CommonOptions {
    /// The host configuration these options describe.
    pub(crate) fn host_config(&self) -> HostConfig {
        let mut config = HostConfig::new();
        config
            .max_memory(self.max_memory)
            .step_timeout(self.step_timeout)
            .log_lines(self.log_lines)
            .instance_pool(self.instance_pool);
        if !self.no_cache {
            config.cache_dir(self.home_dir().join("cache"));
        }
        match &self.plugins {
            Some(dir) => {
                config.plugin_dir(dir);
            }
            None => {
                for dir in default_plugin_dirs() {
                    config.plugin_dir(dir);
                }
            }
        }
        config
    }

    pub(crate) fn home_dir(&self) -> PathBuf {
        home_or_default(self.home.as_deref())
    }
}

/// Load a plugin by name or path, saying how to look elsewhere when it is not found.
pub(crate) async fn load_plugin(
    host: &crate::Host,
    reference: &str,
) -> anyhow::Result<std::sync::Arc<crate::Plugin>> {
    match host.load(reference).await {
        Ok(plugin) => Ok(plugin),
        Err(e @ crate::Error::PluginNotFound { .. }) => {
            Err(anyhow::Error::new(e).context(format!(
                "cannot load plugin '{reference}' (pass --plugins DIR, or set DAMSON_PLUGINS, \
                 to look in another directory)"
            )))
        }
        Err(e) => Err(e.into()),
    }
}

/// Now, in milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The socket `damson serve` listens on, in the home directory.
pub(crate) const SOCKET: &str = "damson.sock";

/// `home`, or `~/.damson`.
pub(crate) fn home_or_default(home: Option<&std::path::Path>) -> PathBuf {
    if let Some(home) = home {
        return home.to_path_buf();
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(".damson")
}

/// Where the example plugins are after `cargo xtask demo`: beside the `damson` binary in the
/// target directory, or below the current directory.
fn default_plugin_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(profile_dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(PathBuf::from))
    {
        // target/release/damson (or target/release/deps/<test>) → target/wasm32-wasip2/release
        for base in [
            profile_dir.parent(),
            profile_dir.parent().and_then(|p| p.parent()),
        ]
        .into_iter()
        .flatten()
        {
            let dir = base.join("wasm32-wasip2").join("release");
            if dir.is_dir() && !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    let local = PathBuf::from("target")
        .join("wasm32-wasip2")
        .join("release");
    if !dirs.contains(&local) {
        dirs.push(local);
    }
    dirs
}

/// `256MiB`, `64 MiB`, `1GiB`, `512KiB` or a number of bytes.
fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number
        .parse()
        .map_err(|_| format!("'{text}' does not start with a number"))?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit '{other}' (use KiB, MiB or GiB)")),
    };
    match number.checked_mul(factor) {
        Some(0) => Err("the size must be above 0".into()),
        Some(bytes) => Ok(bytes),
        None => Err(format!("'{text}' is too large")),
    }
}

/// Exit codes of the `damson` binary.
pub mod exit {
    /// The process finished successfully (or the command did what it was asked).
    pub const OK: u8 = 0;
    /// The process ended another way: not successful, excepted, killed, or waiting.
    pub const PROCESS_FAILED: u8 = 1;
    /// A usage error, an invalid plugin or invalid inputs.
    pub const USAGE: u8 = 2;
    /// The process is run by another host (a daemon, a worker, another `damson run`), which
    /// holds its claim in the store.
    pub const ELSEWHERE: u8 = 3;
    /// Refused for want of a valid token: none given where one is needed, malformed, unknown,
    /// expired, revoked, or without the scope the command needs.
    pub const DENIED: u8 = 4;
    /// Refused because it would take the tenant over a quota (the message names the tenant,
    /// the quota, its limit and the use now); nothing was changed.
    pub const OVER_QUOTA: u8 = 5;

    /// The exit code of a command that failed with `error`: [`DENIED`] or [`OVER_QUOTA`] when
    /// that is why, [`USAGE`] otherwise.
    pub fn for_error(error: &anyhow::Error) -> u8 {
        for cause in error.chain() {
            if cause.is::<crate::tenancy::AuthError>() {
                return DENIED;
            }
            if let Some(refused) = cause.downcast_ref::<super::server::Refused>() {
                return refused.exit_code();
            }
            if cause.is::<crate::tenancy::QuotaExceeded>()
                || matches!(cause.downcast_ref(), Some(crate::Error::OverQuota(_)))
            {
                return OVER_QUOTA;
            }
        }
        USAGE
    }
}

impl Command {
    /// Whether the command was asked for JSON, so that a failure is one `{"error": …}` object
    /// on stdout too (`run` and `continue` print their own, with the record's keys).
    fn prints_json(&self) -> bool {
        match self {
            Command::Ps(c) => c.json,
            Command::Show(c) => c.json,
            Command::Checkpoints(c) => c.json,
            Command::Logs(c) => c.json,
            Command::Status(c) => c.json,
            Command::Watch(c) => c.json,
            Command::Describe(c) => c.json,
            Command::Audit(c) => c.json,
            _ => false,
        }
    }
}

impl Cli {
    /// Whether the command is a daemon, which must outlive the terminal or pipe it logs to;
    /// other commands end when their output goes (`damson run … | head`).
    pub fn is_daemon(&self) -> bool {
        matches!(self.command, Command::Serve(_) | Command::Worker(_))
    }

    /// Run the command and return the process exit code. Errors are printed by the caller.
    pub async fn execute(self) -> anyhow::Result<ExitCode> {
        let json = self.command.prints_json();
        let result = self.dispatch().await;
        if json && let Err(error) = &result {
            println!("{}", serde_json::json!({"error": format!("{error:#}")}));
        }
        result
    }

    async fn dispatch(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Run(cmd) => cmd.execute().await,
            Command::Continue(cmd) => cmd.execute().await,
            Command::Ps(cmd) => cmd.execute().await,
            Command::Show(cmd) => cmd.execute().await,
            Command::Checkpoints(cmd) => cmd.execute().await,
            Command::Logs(cmd) => cmd.execute().await,
            Command::Worker(cmd) => cmd.execute().await,
            Command::Submit(cmd) => cmd.execute().await,
            Command::Pause(cmd) => cmd.execute().await,
            Command::Play(cmd) => cmd.execute().await,
            Command::Kill(cmd) => cmd.execute().await,
            Command::Status(cmd) => cmd.execute().await,
            Command::Signal(cmd) => cmd.execute().await,
            Command::Watch(cmd) => cmd.execute().await,
            Command::Serve(cmd) => cmd.execute().await,
            Command::Describe(cmd) => cmd.execute().await,
            Command::Bench(cmd) => cmd.execute().await,
            Command::Tenant(cmd) => cmd.execute().await,
            Command::Token(cmd) => cmd.execute().await,
            Command::Audit(cmd) => cmd.execute().await,
        }
    }
}

/// Print an error and its causes on stderr, as the binary does for every command that fails.
pub fn print_error(error: &anyhow::Error) {
    eprintln!("error: {error}");
    for cause in error.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}

/// Log to stderr; `RUST_LOG` filters (plugin log lines are under the target `damson::plugin`).
/// By default: warnings, plugin logs, and messaging notices (reconnections, redeliveries); not
/// lapin's own logs, since every failure it logs also reaches Damson, which reports it (a lost
/// connection once, as a warning, rather than three errors).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,damson::plugin=info,damson::comms=info,lapin=off")
    });
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| Stderr(std::io::stderr()))
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Standard error for log lines, which go on when it is gone: a log line that cannot be written
/// is dropped (tracing's own writer would complain on standard error, and panic there). A
/// command that is not a daemon ends when its output goes, through `SIGPIPE` (see the binary).
struct Stderr(std::io::Stderr);

impl std::io::Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(self.0.write(buf).unwrap_or(buf.len()))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("64 mib"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("0").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("MiB").is_err());
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
