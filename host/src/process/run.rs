//! Running a process: prepare its inputs, walk its outline one call at a time, and end it.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::{ProcessRecord, ProcessState};
use crate::error::{Error, Result};
use crate::ports::{DefaultRequest, GuestCheck, Origin, ValidationError};
use crate::spec::ProcessSpec;
use crate::wasm::{Failure, Instance, Plugin, Runtime};
use crate::workchain::Call;

/// How a run of the outline stopped.
enum End {
    Finished {
        status: u32,
        message: Option<String>,
    },
    Waiting {
        message: Option<String>,
    },
    Excepted(String),
    Killed(String),
}

/// Run a new process of `plugin` with `inputs` until it terminates or waits.
///
/// Invalid inputs are an [`Error`] and no process is created, as in plumpy. Anything that goes
/// wrong afterwards ends the process EXCEPTED, with the reason in the record.
pub(crate) async fn execute(
    runtime: &Runtime,
    plugin: &Plugin,
    inputs: Value,
) -> Result<ProcessRecord> {
    let spec = plugin.spec().clone();
    let guest_error = |doing: &str, f: Failure| Error::Guest {
        plugin: spec.name.clone(),
        doing: doing.to_string(),
        message: f.to_string(),
    };
    let own = runtime
        .instantiate(plugin)
        .await
        .map_err(|f| guest_error("starting", f))?;
    let mut guests = Guests {
        runtime,
        plugin,
        own,
        others: HashMap::new(),
    };
    let inputs = prepare_inputs(&spec, &mut guests, inputs).await?;

    let pid = uuid::Uuid::new_v4().to_string();
    let mut record = ProcessRecord {
        pid: pid.clone(),
        plugin: spec.name.clone(),
        plugin_digest: plugin.digest().to_string(),
        state: ProcessState::Created,
        inputs: inputs.clone(),
        outputs: Value::Object(Map::new()),
        context: Map::new(),
        status: None,
        position: String::new(),
        exit_status: None,
        exit_message: None,
        missing_outputs: Vec::new(),
        error: None,
    };
    tracing::debug!(%pid, plugin = %spec.name, "process created");
    {
        let data = guests.own.data();
        data.pid = pid.clone();
        data.spec = Some(spec.clone());
        data.inputs = inputs;
    }

    record.state = ProcessState::Running;
    let end = walk(&spec, &mut guests, &mut record).await;

    let data = guests.own.data();
    record.outputs = Value::Object(std::mem::take(&mut data.outputs));
    record.context = std::mem::take(&mut data.context);
    record.status = data.status.take();
    match end {
        End::Finished { status, message } => {
            record.state = ProcessState::Finished;
            record.exit_status = Some(status);
            record.missing_outputs = spec.outputs.missing_required(&record.outputs);
            record.exit_message = message
                .or_else(|| spec.exit_code(status).map(|c| c.message.clone()))
                .or_else(|| missing_message(&record.missing_outputs));
        }
        End::Waiting { message } => {
            record.state = ProcessState::Waiting;
            if message.is_some() {
                record.status = message;
            }
        }
        End::Excepted(error) => {
            record.state = ProcessState::Excepted;
            record.error = Some(error);
        }
        End::Killed(message) => {
            record.state = ProcessState::Killed;
            record.exit_message = Some(message);
        }
    }
    tracing::debug!(%pid, state = %record.state, "process stopped");
    Ok(record)
}

fn missing_message(missing: &[String]) -> Option<String> {
    (!missing.is_empty()).then(|| {
        let names: Vec<String> = missing.iter().map(|p| format!("'{p}'")).collect();
        format!(
            "required output{} not emitted: {}",
            if missing.len() == 1 { " was" } else { "s were" },
            names.join(", ")
        )
    })
}

/// The process's own plugin instance, and instances of the plugins whose exposed ports have
/// validators or computed defaults, made when first needed.
struct Guests<'a> {
    runtime: &'a Runtime,
    plugin: &'a Plugin,
    own: Instance,
    others: HashMap<String, Instance>,
}

impl Guests<'_> {
    /// The instance that owns a port of this origin, and the port's path there.
    async fn owner<'p>(
        &mut self,
        path: &'p str,
        origin: Option<&'p Origin>,
    ) -> Result<(&mut Instance, &'p str), Failure> {
        let Some(origin) = origin else {
            return Ok((&mut self.own, path));
        };
        if !self.others.contains_key(&origin.plugin) {
            let plugin = self.plugin.exposed(&origin.plugin).ok_or_else(|| {
                Failure::Error(format!(
                    "the exposed plugin '{}' is not loaded",
                    origin.plugin
                ))
            })?;
            let instance = self.runtime.instantiate(plugin).await?;
            self.others.insert(origin.plugin.clone(), instance);
        }
        let instance = self.others.get_mut(&origin.plugin).expect("inserted above");
        Ok((instance, origin.path.as_str()))
    }

    async fn validate(&mut self, check: &GuestCheck) -> Result<Option<String>, Failure> {
        let (instance, path) = self.owner(&check.path, check.origin.as_ref()).await?;
        instance.validate(path, &check.value).await
    }

    async fn compute_default(&mut self, request: &DefaultRequest) -> Result<Value, Failure> {
        let (instance, path) = self.owner(&request.path, request.origin.as_ref()).await?;
        instance.compute_default(path).await
    }
}

/// Fill defaults (asking the plugin for computed ones) and validate, plugin validators included.
async fn prepare_inputs(
    spec: &ProcessSpec,
    guests: &mut Guests<'_>,
    given: Value,
) -> Result<Value> {
    let invalid = |source: ValidationError| Error::InvalidInputs {
        plugin: spec.name.clone(),
        source,
    };
    let guest_error = |doing: String, f: Failure| Error::Guest {
        plugin: spec.name.clone(),
        doing,
        message: f.to_string(),
    };
    let mut computed = HashMap::new();
    for request in spec.inputs.computed_defaults_needed(&given) {
        let value = guests
            .compute_default(&request)
            .await
            .map_err(|f| guest_error(format!("computing the default of '{}'", request.path), f))?;
        computed.insert(request.path, value);
    }
    let inputs = spec.inputs.pre_process(&given, &computed);
    let checks = spec.inputs.validate(Some(&inputs)).map_err(invalid)?;
    for check in checks {
        let verdict = guests
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

/// Walk the outline from the start until the process finishes, waits, fails or is killed.
async fn walk(spec: &Arc<ProcessSpec>, guests: &mut Guests<'_>, record: &mut ProcessRecord) -> End {
    let outline = &spec.outline;
    let mut cursor = outline.start();
    loop {
        match outline.next(&mut cursor) {
            Call::Step(name) => {
                record.position = outline.position(&cursor);
                let result = match guests.own.run_step(name).await {
                    Ok(result) => result,
                    Err(failure) => return End::Excepted(format!("step '{name}' {failure}")),
                };
                if let Some(error) = check_outputs(guests).await {
                    return End::Excepted(format!(
                        "step '{name}' emitted an invalid output: {error}"
                    ));
                }
                if let Some(child) = result.awaits.first() {
                    return End::Excepted(format!(
                        "step '{name}' awaits child process '{}', but this host cannot run child \
                         processes yet",
                        child.pid
                    ));
                }
                use crate::wasm::wit_next as next;
                match result.next {
                    next::Continue => outline.step_done(&mut cursor),
                    next::Wait(wait) => {
                        return End::Waiting {
                            message: wait.message,
                        };
                    }
                    next::Finish(exit) => {
                        return End::Finished {
                            status: exit.status,
                            message: exit.message,
                        };
                    }
                    next::Kill(message) => return End::Killed(message),
                }
            }
            Call::Condition(name) => match guests.own.check_condition(name).await {
                Ok(value) => outline.condition(&mut cursor, value),
                Err(failure) => return End::Excepted(format!("condition '{name}' {failure}")),
            },
            Call::Return(status) => {
                return End::Finished {
                    status: status.unwrap_or(0),
                    message: None,
                };
            }
            Call::Done => {
                return End::Finished {
                    status: 0,
                    message: None,
                };
            }
        }
    }
}

/// The first problem with the outputs the last step emitted: an invalid one, or one that the
/// plugin's validator rejects.
async fn check_outputs(guests: &mut Guests<'_>) -> Option<String> {
    let data = guests.own.data();
    if let Some(error) = data.output_error.take() {
        data.output_checks.clear();
        return Some(error.to_string());
    }
    let checks = std::mem::take(&mut data.output_checks);
    for check in checks {
        match guests.validate(&check).await {
            Ok(None) => {}
            Ok(Some(message)) => {
                return Some(
                    ValidationError {
                        path: check.path,
                        message,
                    }
                    .to_string(),
                );
            }
            Err(failure) => return Some(format!("the validator of '{}' {failure}", check.path)),
        }
    }
    None
}
