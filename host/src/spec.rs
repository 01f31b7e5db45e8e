//! A process spec: what a plugin declares about itself, as the host checks and uses it.

use serde::Serialize;

use crate::ports::{NamespaceOptions, PortDecl, PortNamespace, Rules, SpecError};
use crate::retry::RetryPolicy;
use crate::workchain::{Outline, OutlineError};

/// Everything the host knows about a plugin from its declaration (plumpy's `ProcessSpec`), with
/// exposed ports copied in.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessSpec {
    /// The plugin's name.
    pub name: String,
    /// Its version, as it declares it.
    pub version: String,
    /// What it does, if it says.
    pub description: Option<String>,
    /// The input ports (the root namespace `inputs`).
    pub inputs: PortNamespace,
    /// The output ports (the root namespace `outputs`).
    pub outputs: PortNamespace,
    /// The exit codes it declares.
    pub exit_codes: Vec<ExitCodeSpec>,
    /// Its outline.
    pub outline: Outline,
    /// Its retry policies: at most one per step, and one for the other steps.
    pub retries: Vec<RetryPolicy>,
}

/// A declared exit code (plumpy's `ExitCode`): status 0 means success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExitCodeSpec {
    /// The exit status.
    pub status: u32,
    /// A constant-like name, e.g. `ERROR_NEGATIVE_NUMBER`.
    pub label: String,
    /// What it means.
    pub message: String,
}

impl ProcessSpec {
    /// The retry policy of step `step`: its own, else the plugin's, if any.
    pub fn retry_policy(&self, step: &str) -> Option<&RetryPolicy> {
        crate::retry::policy_for(&self.retries, step)
    }

    /// The declared exit code with this status, if any.
    pub fn exit_code(&self, status: u32) -> Option<&ExitCodeSpec> {
        self.exit_codes.iter().find(|c| c.status == status)
    }
}

/// Which side of another plugin's spec an [`Expose`] copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The inputs.
    Inputs,
    /// The outputs.
    Outputs,
}

/// Ports of another plugin copied into this one (plumpy's `expose_inputs` / `expose_outputs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expose {
    /// Inputs or outputs.
    pub side: Side,
    /// The other plugin, by name.
    pub plugin: String,
    /// The dotted namespace to copy into (`""`: the top level).
    pub namespace: String,
    /// Which ports to copy.
    pub rules: Rules,
    /// Attributes of the namespace that receives them.
    pub options: NamespaceOptions,
}

/// A spec as declared, before the ports of other plugins are exposed into it.
#[derive(Debug, Clone)]
pub struct DeclaredSpec {
    /// The plugin's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// What it does, if it says.
    pub description: Option<String>,
    /// Its own input declarations, in order.
    pub inputs: Vec<PortDecl>,
    /// Its own output declarations, in order.
    pub outputs: Vec<PortDecl>,
    /// The ports it copies from other plugins.
    pub exposes: Vec<Expose>,
    /// The exit codes it declares.
    pub exit_codes: Vec<ExitCodeSpec>,
    /// Its outline.
    pub outline: Outline,
    /// Its retry policies.
    pub retries: Vec<RetryPolicy>,
}

impl DeclaredSpec {
    /// Build the spec: first the exposed ports, in order, then the plugin's own declarations
    /// over them (so a plugin refines what it exposed; declaring an exposed port again is an
    /// error). `exposed` gives the spec of each plugin named by an expose.
    pub fn build<'a>(
        &self,
        exposed: impl Fn(&str) -> Option<&'a ProcessSpec>,
    ) -> Result<ProcessSpec, InvalidSpec> {
        let mut inputs = PortNamespace::new("inputs");
        let mut outputs = PortNamespace::new("outputs");
        for expose in &self.exposes {
            let source = exposed(&expose.plugin).ok_or_else(|| {
                InvalidSpec::Other(format!(
                    "the exposed plugin '{}' is not loaded",
                    expose.plugin
                ))
            })?;
            let (target, from) = match expose.side {
                Side::Inputs => (&mut inputs, &source.inputs),
                Side::Outputs => (&mut outputs, &source.outputs),
            };
            target.expose(
                &expose.namespace,
                from,
                &expose.plugin,
                &expose.rules,
                &expose.options,
            )?;
        }
        for decl in &self.inputs {
            inputs.declare(decl)?;
        }
        for decl in &self.outputs {
            outputs.declare(decl)?;
        }
        Ok(ProcessSpec {
            name: self.name.clone(),
            version: self.version.clone(),
            description: self.description.clone(),
            inputs,
            outputs,
            exit_codes: self.exit_codes.clone(),
            outline: self.outline.clone(),
            retries: self.retries.clone(),
        })
    }
}

/// Why a declared spec was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidSpec {
    /// A port or namespace is declared wrongly.
    #[error(transparent)]
    Port(#[from] SpecError),
    /// The outline is malformed.
    #[error(transparent)]
    Outline(#[from] OutlineError),
    /// A fixed default is not valid JSON.
    #[error("port '{path}' has a default that is not valid JSON")]
    Default {
        /// The port's full path.
        path: String,
        /// Why its JSON does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// Anything else, said in words.
    #[error("{0}")]
    Other(String),
}
