//! Preparing a new process's inputs: defaults (computed ones from the plugin) and validation.

use std::collections::HashMap;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::guest::Guest;
use crate::ports::ValidationError;
use crate::spec::ProcessSpec;

/// Fill defaults (asking the plugin for computed ones) and validate, plugin validators included.
///
/// # Errors
/// [`Error::InvalidInputs`] naming the port, or [`Error::Guest`] when the plugin fails while
/// computing a default or validating.
pub(crate) async fn prepare_inputs(
    spec: &ProcessSpec,
    guest: &mut dyn Guest,
    given: Value,
) -> Result<Value> {
    let invalid = |source: ValidationError| Error::InvalidInputs {
        plugin: spec.name.clone(),
        source,
    };
    let guest_error = |doing: String, source| Error::Guest {
        plugin: spec.name.clone(),
        doing,
        source,
    };
    let mut computed = HashMap::new();
    for request in spec.inputs.computed_defaults_needed(&given) {
        let value = guest
            .compute_default(&request)
            .await
            .map_err(|f| guest_error(format!("computing the default of '{}'", request.path), f))?;
        computed.insert(request.path, value);
    }
    let inputs = spec.inputs.pre_process(&given, &computed);
    let checks = spec.inputs.validate(Some(&inputs)).map_err(invalid)?;
    for check in checks {
        let verdict = guest
            .validate(&check)
            .await
            .map_err(|f| guest_error(format!("validating '{}'", check.path), f))?;
        if let Some(message) = verdict {
            return Err(invalid(ValidationError {
                path: check.path,
                message,
            }));
        }
    }
    Ok(inputs)
}
