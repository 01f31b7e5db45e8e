//! [`ProcessData`]: the part of a process that a running step reads and writes.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::ports::{GuestCheck, SEPARATOR, ValidationError};
use crate::spec::ProcessSpec;

/// Inputs, context, outputs and status of a process: what the host imports act on while a step
/// runs. Outputs are validated as they are emitted; launches are recorded and carried out when
/// the step returns.
#[derive(Debug, Default, Clone)]
pub struct ProcessData {
    pub pid: String,
    pub spec: Option<Arc<ProcessSpec>>,
    pub inputs: Value,
    pub context: Map<String, Value>,
    pub outputs: Map<String, Value>,
    pub status: Option<String>,
    /// The first invalid output of the current step: it ends the process EXCEPTED.
    pub output_error: Option<ValidationError>,
    /// Outputs of the current step that the plugin's validators must still check.
    pub output_checks: Vec<GuestCheck>,
    /// Outputs emitted by the current step, in order, for the `output_emitted` events.
    pub emitted: Vec<(String, Value)>,
    /// Children the current step launched, to create when it returns.
    pub launches: Vec<Launch>,
    /// A pause the current step asked for, with its message.
    pub pause: Option<Option<String>>,
}

/// A child process a step asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    /// The pid the child will have (returned to the step at once).
    pub pid: String,
    pub plugin: String,
    pub inputs: Value,
}

impl ProcessData {
    /// The input at a dotted path.
    pub fn input(&self, path: &str) -> Option<&Value> {
        path.split(SEPARATOR)
            .try_fold(&self.inputs, |value, key| value.get(key))
    }

    /// Validate an output emitted at a dotted path and store it.
    pub fn emit_output(&mut self, path: &str, value: Value) -> Result<(), ValidationError> {
        let spec = self.spec.as_ref().ok_or_else(|| ValidationError {
            path: format!("outputs.{path}"),
            message: "outputs can only be emitted by a running step".into(),
        })?;
        match spec.outputs.validate_emitted(path, &value) {
            Ok(checks) => self.output_checks.extend(checks),
            Err(e) => {
                self.output_error.get_or_insert_with(|| e.clone());
                return Err(e);
            }
        }
        self.emitted.push((path.to_string(), value.clone()));
        let mut components: Vec<&str> = path.split(SEPARATOR).collect();
        let last = components.pop().expect("split yields at least one part");
        let mut map = &mut self.outputs;
        for key in components {
            let entry = map
                .entry(key.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            map = entry.as_object_mut().expect("made an object above");
        }
        map.insert(last.to_string(), value);
        Ok(())
    }

    /// Record a child to launch after the step; returns its pid.
    pub fn launch(&mut self, plugin: String, inputs: Value) -> Result<String, String> {
        if self.spec.is_none() {
            return Err("children can only be launched by a running step".into());
        }
        if plugin.is_empty() {
            return Err("launch needs a plugin name".into());
        }
        if !inputs.is_object() {
            return Err(format!(
                "the inputs of a '{plugin}' child must be a JSON object"
            ));
        }
        let pid = uuid::Uuid::new_v4().to_string();
        self.launches.push(Launch {
            pid: pid.clone(),
            plugin,
            inputs,
        });
        Ok(pid)
    }
}
