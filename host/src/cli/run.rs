//! `damson run`: run one process to a terminal state.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};

use super::identity::TokenOption;
use super::store::{StoreOptions, until_stopped};
use super::{CommonOptions, exit};
use crate::tenancy::Scope;
use crate::{Error, Host, ProcessRecord};

const AFTER_HELP: &str = "\
Examples:
  damson run add -i x=1 -i y=2
  damson run greet -i name=Ada -i options.shout=true --json
  damson run ./my_plugin.wasm --inputs inputs.json
  damson run collatz -i n=27 --store postgres://damson@localhost/damson

The process is durable: it checkpoints into the store (by default the embedded one in the home
directory), and if this command dies, `damson continue PID` carries it on.

A sleep, or a wait for a signal with a timeout, is waited out: the command ends when the
process does, or when it waits for a signal with no timeout (`damson signal` sends it).

Exit status: 0 when the process finished successfully, 1 when it ended any other way (or is
paused, or waits for a signal with no timeout), 2 for a usage error, an invalid plugin or invalid inputs.
The command ends when its output does (`damson run … | head`).";

/// Run a process of a plugin until it ends, and print how it ended and its outputs.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct RunCommand {
    /// A plugin name (looked up in the plugin directory) or a path to a `.wasm` file.
    plugin: String,

    /// An input as KEY=VALUE. KEY may be dotted for nested namespaces (`options.greeting=Hi`);
    /// VALUE is JSON when it parses as JSON, else a string. Repeatable.
    #[arg(short = 'i', long = "input", value_name = "KEY=VALUE")]
    inputs: Vec<String>,

    /// A JSON file holding an object of inputs; `-i` values are applied over it.
    #[arg(long = "inputs", value_name = "FILE.json")]
    inputs_file: Option<PathBuf>,

    /// Print exactly one JSON object on stdout, whatever happens: {"pid", "plugin", "state",
    /// "paused", "successful", "exit_status", "exit_message", "outputs", "error"} ("error" says
    /// why when the process excepted or could not be run at all).
    #[arg(long)]
    pub(crate) json: bool,

    #[command(flatten)]
    who: TokenOption,

    #[command(flatten)]
    store: StoreOptions,

    #[command(flatten)]
    common: CommonOptions,
}

impl RunCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<ExitCode> {
        let (json, plugin) = (self.json, self.plugin.clone());
        let result = self.run().await;
        if json && let Err(error) = &result {
            println!("{}", failed_json(None, Some(&plugin), error));
        }
        result
    }

    async fn run(self) -> anyhow::Result<ExitCode> {
        let inputs = super::inputs::collect(self.inputs_file.as_deref(), &self.inputs)?;
        let host = self
            .store
            .host_as(&self.common, &self.who, Scope::Submit)
            .await?;
        let plugin = super::load_plugin(&host, &self.plugin).await?;
        let process = match host.launch(&plugin, inputs).await {
            Ok(process) => process,
            Err(e @ Error::InvalidInputs { .. }) => return Err(e.into()),
            Err(e) => return Err(e).context(format!("cannot run plugin '{}'", self.plugin)),
        };
        if let Some(store) = host.store() {
            eprintln!(
                "damson: process {} checkpoints into {}; if this command stops, \
                 `damson continue {}` carries it on",
                process.pid(),
                store.summary(),
                process.pid()
            );
        }
        let record = until_stopped(&process).await;
        Ok(report(&host, &record, self.json))
    }
}

/// Print how a process stopped (with its children), and the exit code that says it.
pub(crate) fn report(host: &Host, record: &ProcessRecord, json: bool) -> ExitCode {
    if json {
        println!("{}", tree_json(host, record));
    } else {
        print_record(record);
        if !record.children.is_empty() {
            println!("processes:");
            print_processes(host, record, 1);
        }
    }
    ExitCode::from(if record.successful() == Some(true) {
        exit::OK
    } else {
        exit::PROCESS_FAILED
    })
}

/// The `--json` object of a process record, with its children's, recursively, under
/// `children` (omitted when there are none).
pub(crate) fn tree_json(host: &Host, record: &ProcessRecord) -> Value {
    let mut json = record.summary();
    if !record.children.is_empty() {
        let children: Vec<Value> = record
            .children
            .iter()
            .filter_map(|pid| host.process(pid))
            .map(|child| tree_json(host, &child.record()))
            .collect();
        json["children"] = Value::Array(children);
    }
    json
}

/// One line per process below `record`, indented by depth.
fn print_processes(host: &Host, record: &ProcessRecord, depth: usize) {
    let line = |r: &ProcessRecord| {
        let how = match r.successful() {
            Some(true) => " ok".to_string(),
            Some(false) => r
                .error
                .as_deref()
                .or(r.exit_message.as_deref())
                .map_or_else(|| " failed".to_string(), |m| format!(" — {m}")),
            None => String::new(),
        };
        format!("{} {} {}{how}", r.plugin, r.pid, r.state)
    };
    println!("{}{}", "  ".repeat(depth), line(record));
    for child in record.children.iter().filter_map(|pid| host.process(pid)) {
        print_processes(host, &child.record(), depth + 1);
    }
}

/// The `--json` object of a run (or a continue) that failed before it had a process to report:
/// the record's keys, with `error` saying why.
pub(crate) fn failed_json(pid: Option<&str>, plugin: Option<&str>, error: &anyhow::Error) -> Value {
    json!({
        "pid": pid,
        "plugin": plugin,
        "state": null,
        "paused": null,
        "successful": false,
        "exit_status": null,
        "exit_message": null,
        "outputs": {},
        "error": format!("{error:#}"),
    })
}

fn print_record(record: &ProcessRecord) {
    let how = match record.successful() {
        Some(true) => "successfully".to_string(),
        Some(false) if !record.missing_outputs.is_empty() => {
            let names: Vec<String> = record
                .missing_outputs
                .iter()
                .map(|p| format!("'{p}'"))
                .collect();
            let verb = if names.len() == 1 { "was" } else { "were" };
            format!(
                "unsuccessfully: required output {} {verb} not emitted",
                names.join(", ")
            )
        }
        Some(false) if record.exit_status.is_some() => "unsuccessfully".to_string(),
        _ => String::new(),
    };
    let mut line = format!("{} {} {}", record.plugin, record.pid, record.state);
    if record.paused {
        line.push_str(" (paused)");
    }
    if !how.is_empty() {
        line.push(' ');
        line.push_str(&how);
    }
    if let Some(status) = record.exit_status {
        line.push_str(&format!(" (exit status {status})"));
    }
    println!("{line}");
    // The missing outputs are named in the line above already.
    if let Some(message) = &record.exit_message
        && (record.missing_outputs.is_empty() || !message.starts_with("required output"))
    {
        println!("  {message}");
    }
    if let Some(error) = &record.error {
        println!("  error: {error}");
    }
    if let Some(status) = &record.status {
        println!("  status: {status}");
    }
    match &record.outputs {
        Value::Object(map) if !map.is_empty() => {
            println!("outputs:");
            print_values(&record.outputs, 1);
        }
        _ => println!("outputs: (none)"),
    }
}

fn print_values(value: &Value, depth: usize) {
    let indent = "  ".repeat(depth);
    if let Value::Object(map) = value {
        for (key, value) in map {
            match value {
                Value::Object(inner) if !inner.is_empty() => {
                    println!("{indent}{key}:");
                    print_values(value, depth + 1);
                }
                _ => println!("{indent}{key}: {value}"),
            }
        }
    }
}
