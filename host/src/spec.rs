//! A process spec: what a plugin declares about itself, as the host checks and uses it.

use serde::Serialize;

use crate::ports::PortNamespace;
use crate::workchain::Outline;

/// Everything the host knows about a plugin from its declaration (plumpy's `ProcessSpec`).
#[derive(Debug, Clone, Serialize)]
pub struct ProcessSpec {
    pub name: String,
    pub version: String,
    pub description: Option<String>,
    pub inputs: PortNamespace,
    pub outputs: PortNamespace,
    pub exit_codes: Vec<ExitCodeSpec>,
    pub outline: Outline,
}

/// A declared exit code (plumpy's `ExitCode`): status 0 means success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExitCodeSpec {
    pub status: u32,
    pub label: String,
    pub message: String,
}

impl ProcessSpec {
    /// The declared exit code with this status, if any.
    pub fn exit_code(&self, status: u32) -> Option<&ExitCodeSpec> {
        self.exit_codes.iter().find(|c| c.status == status)
    }
}
