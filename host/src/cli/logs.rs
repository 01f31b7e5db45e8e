//! `damson logs`: a stored process's log — its plugin's lines and the host's about it — read
//! from the store, once or following it until the process ends.

use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Args;

use super::identity::TokenOption;
use super::store::StoreOptions;
use super::{CommonOptions, exit};
use crate::api::views;
use crate::persist::{CheckpointKey, LogLine, Persister};
use crate::tenancy::Scope;

const AFTER_HELP: &str = "\
Examples:
  damson logs 0b6f…              # the lines the store keeps of the process (its last 1000)
  damson logs 0b6f… --follow     # … then new ones as they come, until the process ends
  damson logs 0b6f… --json | jq -r .message

Each line shows when (UTC), the level, who wrote it (`plugin`, or `host` for the state changes,
a kill, an error) and the message. When older lines were dropped to keep the log within its
bound, a line saying how many comes first (with --json, an object {\"dropped\": N}).

Exit status: 0 once the lines are printed (with --follow, once the process has ended and its
last lines are printed), 2 when the store has no such process of the tenant (or cannot be read),
4 when the token is refused.";

/// How often `--follow` asks the store for new lines.
const POLL: Duration = Duration::from_millis(200);

/// How many lines are asked of the store at a time.
const PAGE: usize = 1000;

/// Print a stored process's log: its plugin's lines and the host's (state changes, a kill, an
/// error).
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct LogsCommand {
    /// The process id.
    pid: String,
    /// Go on printing new lines as the process logs them, until it has ended.
    #[arg(long, short = 'f')]
    follow: bool,
    /// Print one JSON object per line: {"seq", "at_ms", "level", "source", "message"}.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    who: TokenOption,
    #[command(flatten)]
    store: StoreOptions,
    #[command(flatten)]
    common: CommonOptions,
}

impl LogsCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<ExitCode> {
        let store = self.store.open_required(&self.common).await?;
        let (tenant, store) = self.who.scoped(store, Scope::Read).await?;
        let mut printer = Printer {
            json: self.json,
            after: 0,
            dropped: 0,
        };
        loop {
            // The state first: a process seen ended has stored its last lines before it.
            let ended = if self.follow {
                self.ended(&*store, &tenant).await?
            } else {
                true
            };
            loop {
                let log = views::logs(&*store, &tenant, &self.pid, printer.after, PAGE)
                    .await
                    .with_context(|| {
                        format!(
                            "cannot read the log of process {} from {}",
                            self.pid,
                            store.summary()
                        )
                    })?;
                let Some(log) = log else {
                    bail!("no process {} in {}", self.pid, store.summary());
                };
                let full = log.lines.len() == PAGE;
                printer.print(log.dropped, &log.lines);
                if !full {
                    break;
                }
            }
            if ended {
                return Ok(ExitCode::from(exit::OK));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Whether the process has ended, as its checkpoint says.
    async fn ended(&self, store: &dyn Persister, tenant: &str) -> anyhow::Result<bool> {
        let stored = views::read(store, &CheckpointKey::of(tenant, &self.pid))
            .await
            .with_context(|| {
                format!("cannot read process {} from {}", self.pid, store.summary())
            })?;
        match stored {
            Some(stored) => Ok(stored.record.state.is_terminal()),
            None => bail!("no process {} in {}", self.pid, store.summary()),
        }
    }
}

/// Prints lines once each, and each new count of dropped lines.
struct Printer {
    json: bool,
    /// The seq of the last line printed.
    after: u64,
    /// The count of dropped lines last told.
    dropped: u64,
}

impl Printer {
    fn print(&mut self, dropped: u64, lines: &[LogLine]) {
        if dropped > self.dropped {
            let more = dropped - self.dropped;
            if self.json {
                println!("{}", serde_json::json!({ "dropped": more }));
            } else {
                let earlier = if self.dropped == 0 { "" } else { " more" };
                let s = if more == 1 { "" } else { "s" };
                println!("({more}{earlier} line{s} dropped: the log keeps only its last lines)");
            }
            self.dropped = dropped;
        }
        for line in lines {
            if self.json {
                println!("{}", views::log_line(line));
            } else {
                let at = humantime::format_rfc3339_millis(
                    UNIX_EPOCH + Duration::from_millis(line.at_ms),
                );
                println!(
                    "{at} {:<5} {:<6} {}",
                    line.level.name(),
                    line.source.name(),
                    line.message
                );
            }
            self.after = self.after.max(line.seq);
        }
    }
}
