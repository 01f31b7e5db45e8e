//! `damson describe`: what a plugin declares.

use std::process::ExitCode;

use clap::Args;

use super::{CommonOptions, exit};
use crate::Host;
use crate::ports::{DefaultValue, PortEntry, PortNamespace};
use crate::workchain::Instruction;

/// Show a plugin's name, version, ports, exit codes and outline.
///
/// With `--json`, one object: `name`, `version`, `digest` (SHA-256 of the component), `world`,
/// `description` (only when the plugin has one), `spec` with `inputs` and `outputs` (each a
/// namespace description: see `damson::ports` `describe`), `exit_codes` (`status`, `label`,
/// `message`) and `outline` (nested `sequence` / `step` / `if` / `while` / `return` objects).
#[derive(Debug, Args)]
pub(crate) struct DescribeCommand {
    /// A plugin name (looked up in the plugin directory) or a path to a `.wasm` file.
    plugin: String,

    /// Print the description as one JSON object.
    #[arg(long)]
    pub(crate) json: bool,

    #[command(flatten)]
    common: CommonOptions,
}

impl DescribeCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<ExitCode> {
        let host = Host::new(&self.common.host_config())?;
        let plugin = super::load_plugin(&host, &self.plugin).await?;
        let spec = plugin.spec();
        if self.json {
            let description = crate::api::views::plugin(&plugin);
            println!("{}", serde_json::to_string_pretty(&description)?);
            return Ok(ExitCode::from(exit::OK));
        }
        println!("{} {}", spec.name, spec.version);
        if let Some(description) = &spec.description {
            println!("  {description}");
        }
        println!("  digest: sha256:{}", plugin.digest());
        let safety = plugin.snapshot_safety();
        if safety.is_safe() {
            println!("  snapshot-safe: yes (memory images of its instances can be taken)");
        } else {
            println!(
                "  snapshot-safe: no, so no memory images (its state must live in the context): {}",
                safety.reasons.join("; ")
            );
        }
        for (title, namespace) in [("inputs", &spec.inputs), ("outputs", &spec.outputs)] {
            println!(
                "{title}:{}",
                if namespace.dynamic { " (dynamic)" } else { "" }
            );
            if namespace.ports.is_empty() {
                println!("  (none)");
            }
            print_ports(namespace, 1);
        }
        if !spec.exit_codes.is_empty() {
            println!("exit codes:");
            for code in &spec.exit_codes {
                println!("  {} {}: {}", code.status, code.label, code.message);
            }
        }
        println!("outline:");
        print_outline(spec.outline.root(), 1);
        Ok(ExitCode::from(exit::OK))
    }
}

fn print_ports(namespace: &PortNamespace, depth: usize) {
    let indent = "  ".repeat(depth);
    for entry in namespace.ports.values() {
        match entry {
            PortEntry::Port(port) => {
                let mut line = format!("{indent}{}: {}", port.name, port.valid_types);
                match &port.default {
                    Some(DefaultValue::Value(v)) => line.push_str(&format!(" = {v}")),
                    Some(DefaultValue::Computed) => line.push_str(" = (computed)"),
                    None if port.required => line.push_str(" (required)"),
                    None => line.push_str(" (optional)"),
                }
                if port.validator {
                    line.push_str(" [validated by plugin]");
                }
                if let Some(origin) = &port.origin {
                    line.push_str(&format!(" [from {}]", origin.plugin));
                }
                if let Some(help) = &port.help {
                    line.push_str(&format!(" — {help}"));
                }
                println!("{line}");
            }
            PortEntry::Namespace(ns) => {
                let mut line = format!("{indent}{}:", ns.name);
                if ns.dynamic {
                    line.push_str(&format!(" (namespace, dynamic: {})", ns.valid_types));
                } else {
                    line.push_str(" (namespace)");
                }
                if let Some(help) = &ns.help {
                    line.push_str(&format!(" — {help}"));
                }
                println!("{line}");
                print_ports(ns, depth + 1);
            }
        }
    }
}

fn print_outline(instruction: &Instruction, depth: usize) {
    let indent = "  ".repeat(depth);
    match instruction {
        Instruction::Step(name) => println!("{indent}{name}"),
        Instruction::Sequence(children) => {
            for child in children {
                print_outline(child, depth);
            }
        }
        Instruction::If(branches) => {
            for (i, branch) in branches.iter().enumerate() {
                match (&branch.condition, i) {
                    (Some(c), 0) => println!("{indent}if_({c}):"),
                    (Some(c), _) => println!("{indent}elif_({c}):"),
                    (None, _) => println!("{indent}else_:"),
                }
                print_outline(&branch.body, depth + 1);
            }
        }
        Instruction::While { condition, body } => {
            println!("{indent}while_({condition}):");
            print_outline(body, depth + 1);
        }
        Instruction::Return(None) => println!("{indent}return_"),
        Instruction::Return(Some(status)) => println!("{indent}return_({status})"),
    }
}
