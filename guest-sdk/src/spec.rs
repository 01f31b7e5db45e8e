//! The spec builder: what a plugin declares in [`Process::define`](crate::Process::define).

use std::collections::HashMap;
use std::time::Duration;

use crate::__private::bindings::damson::workflow::types as wit;
use crate::outline::{Condition, Outline, StepFn};

/// A JSON type a port accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// Anything.
    Any,
    /// JSON `null`.
    Null,
    /// `true` or `false` (never an `Int`).
    Bool,
    /// A number without fraction or exponent.
    Int,
    /// A number with a fraction or exponent.
    Float,
    /// Any number.
    Number,
    /// A string.
    Str,
    /// An array.
    List,
    /// An object.
    Dict,
}

impl From<Type> for wit::ValueType {
    fn from(t: Type) -> Self {
        match t {
            Type::Any => wit::ValueType::Any,
            Type::Null => wit::ValueType::Null,
            Type::Bool => wit::ValueType::Bool,
            Type::Int => wit::ValueType::Int,
            Type::Float => wit::ValueType::Float,
            Type::Number => wit::ValueType::Number,
            Type::Str => wit::ValueType::Str,
            Type::List => wit::ValueType::List,
            Type::Dict => wit::ValueType::Dict,
        }
    }
}

/// An exit code: a status (0 is success) and an optional message, as a step's
/// [`Next::Finish`](crate::Next::Finish) carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitCode {
    pub status: u32,
    pub message: Option<String>,
}

impl ExitCode {
    /// An exit code with a status and no message.
    pub fn new(status: u32) -> Self {
        Self {
            status,
            message: None,
        }
    }

    /// An exit code with a status and a message.
    pub fn with_message(status: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            message: Some(message.into()),
        }
    }
}

/// One declared port or namespace. Returned by [`Spec::input`] and friends to be configured.
pub struct PortBuilder {
    port: wit::Port,
    validator: Option<fn(&serde_json::Value) -> Option<String>>,
    computed_default: Option<fn() -> serde_json::Value>,
}

impl PortBuilder {
    fn new(path: &str, namespace: bool) -> Self {
        Self {
            port: wit::Port {
                path: path.to_string(),
                namespace,
                valid_types: Vec::new(),
                required: true,
                default: None,
                help: None,
                validator: false,
                dynamic: false,
                populate_defaults: true,
            },
            validator: None,
            computed_default: None,
        }
    }

    /// Accept values of this type (call again to accept several). By default any type is accepted.
    /// On a namespace this types the undeclared values and makes it dynamic.
    pub fn valid_type(&mut self, ty: Type) -> &mut Self {
        self.port.valid_types.push(ty.into());
        if self.port.namespace {
            self.port.dynamic = true;
        }
        self
    }

    /// Whether a value must be given (ports) or the contents validated even when nothing was
    /// given (namespaces). Both are required by default, as in plumpy.
    pub fn required(&mut self, required: bool) -> &mut Self {
        self.port.required = required;
        self
    }

    /// Use this value when none is given (which makes the port optional).
    pub fn default(&mut self, value: impl serde::Serialize) -> &mut Self {
        let json = serde_json::to_string(&value).expect("a default value must serialize to JSON");
        self.port.default = Some(wit::DefaultValue::Value(json));
        self.port.required = false;
        self
    }

    /// Compute the default when the host needs one — only when no value was given.
    pub fn default_with(&mut self, compute: fn() -> serde_json::Value) -> &mut Self {
        self.port.default = Some(wit::DefaultValue::Computed);
        self.port.required = false;
        self.computed_default = Some(compute);
        self
    }

    /// A description shown by `damson describe`.
    pub fn help(&mut self, help: impl Into<String>) -> &mut Self {
        self.port.help = Some(help.into());
        self
    }

    /// Check values with this function; the message it returns becomes the validation error.
    pub fn validator(&mut self, check: fn(&serde_json::Value) -> Option<String>) -> &mut Self {
        self.port.validator = true;
        self.validator = Some(check);
        self
    }

    /// Namespace only: accept keys that are not declared ports.
    pub fn dynamic(&mut self, dynamic: bool) -> &mut Self {
        self.port.dynamic = dynamic;
        self
    }

    /// Namespace only: fill the defaults inside even when the namespace is not given (default on).
    pub fn populate_defaults(&mut self, populate: bool) -> &mut Self {
        self.port.populate_defaults = populate;
        self
    }
}

/// Another plugin's ports copied into this one, returned by [`Spec::expose_inputs`] and
/// [`Spec::expose_outputs`] to be configured. The copies keep their types, defaults and help;
/// their validators and computed defaults stay the other plugin's.
pub struct ExposeBuilder {
    expose: wit::Expose,
}

impl ExposeBuilder {
    fn new(side: wit::PortSide, plugin: &str, namespace: &str) -> Self {
        Self {
            expose: wit::Expose {
                side,
                plugin: plugin.to_string(),
                namespace: namespace.to_string(),
                include: None,
                exclude: None,
                namespace_options: wit::NamespaceOptions {
                    required: None,
                    dynamic: None,
                    valid_types: None,
                    help: None,
                    populate_defaults: None,
                },
            },
        }
    }

    /// Copy only these ports: dotted paths relative to the exposed namespace (`"a"`, `"sub.x"`;
    /// a namespace's name takes all of it). Cannot be combined with [`exclude`](Self::exclude).
    pub fn include<S: Into<String>>(&mut self, ports: impl IntoIterator<Item = S>) -> &mut Self {
        self.expose.include = Some(ports.into_iter().map(Into::into).collect());
        self
    }

    /// Copy all ports but these (dotted paths as for [`include`](Self::include)).
    pub fn exclude<S: Into<String>>(&mut self, ports: impl IntoIterator<Item = S>) -> &mut Self {
        self.expose.exclude = Some(ports.into_iter().map(Into::into).collect());
        self
    }

    /// Whether the receiving namespace is required (by default: as the exposed one).
    pub fn required(&mut self, required: bool) -> &mut Self {
        self.expose.namespace_options.required = Some(required);
        self
    }

    /// Whether the receiving namespace is dynamic (by default: as the exposed one).
    pub fn dynamic(&mut self, dynamic: bool) -> &mut Self {
        self.expose.namespace_options.dynamic = Some(dynamic);
        self
    }

    /// Accept undeclared values of this type in the receiving namespace (call again for several).
    pub fn valid_type(&mut self, ty: Type) -> &mut Self {
        self.expose
            .namespace_options
            .valid_types
            .get_or_insert_with(Vec::new)
            .push(ty.into());
        self
    }

    /// Help for the receiving namespace.
    pub fn help(&mut self, help: impl Into<String>) -> &mut Self {
        self.expose.namespace_options.help = Some(help.into());
        self
    }

    /// Whether defaults inside are filled when the namespace is not given.
    pub fn populate_defaults(&mut self, populate: bool) -> &mut Self {
        self.expose.namespace_options.populate_defaults = Some(populate);
        self
    }
}

/// A kind of failure a [`RetryPolicy`] can leave out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The step returned an error.
    Error,
    /// The plugin trapped or panicked.
    Trap,
    /// The step ran past the host's time limit per step.
    Timeout,
    /// The plugin grew past the host's memory limit.
    Memory,
}

/// How a failed step is tried again ([`Spec::retry`]). By default: 3 attempts in all, 1 s
/// before the second, each interval twice the one before, no longest interval, every kind of
/// failure retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_interval: Duration,
    backoff: f64,
    max_interval: Option<Duration>,
    non_retryable: Vec<FailureKind>,
    non_retryable_errors: Vec<String>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_interval: Duration::from_secs(1),
            backoff: 2.0,
            max_interval: None,
            non_retryable: Vec::new(),
            non_retryable_errors: Vec::new(),
        }
    }
}

impl RetryPolicy {
    /// At most `max_attempts` attempts in all, the first one included (at least 1).
    pub fn attempts(max_attempts: u32) -> Self {
        Self {
            max_attempts,
            ..Self::default()
        }
    }

    /// The interval before the second attempt.
    pub fn initial_interval(mut self, interval: Duration) -> Self {
        self.initial_interval = interval;
        self
    }

    /// What each interval is multiplied by for the next (at least 1.0; 1.0 keeps it constant).
    pub fn backoff(mut self, factor: f64) -> Self {
        self.backoff = factor;
        self
    }

    /// The longest interval.
    pub fn max_interval(mut self, interval: Duration) -> Self {
        self.max_interval = Some(interval);
        self
    }

    /// Never retry a failure of this kind: it ends the process at once.
    pub fn not_on(mut self, kind: FailureKind) -> Self {
        self.non_retryable.push(kind);
        self
    }

    /// Never retry an error of this kind ([`Error::kind`](crate::Error::kind)).
    pub fn not_on_error(mut self, kind: &str) -> Self {
        self.non_retryable_errors.push(kind.to_string());
        self
    }

    fn into_wit(self, step: Option<String>) -> wit::RetryPolicy {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        wit::RetryPolicy {
            step,
            max_attempts: self.max_attempts,
            initial_interval_ms: ms(self.initial_interval),
            backoff: self.backoff,
            max_interval_ms: self.max_interval.map(ms),
            non_retryable: self
                .non_retryable
                .into_iter()
                .map(|k| match k {
                    FailureKind::Error => wit::FailureKind::Error,
                    FailureKind::Trap => wit::FailureKind::Trap,
                    FailureKind::Timeout => wit::FailureKind::Timeout,
                    FailureKind::Memory => wit::FailureKind::Memory,
                })
                .collect(),
            non_retryable_errors: self.non_retryable_errors,
        }
    }
}

/// What a plugin declares: name, version, ports, exit codes and outline.
///
/// The name and version default to the plugin crate's package name and version.
pub struct Spec<P> {
    name: String,
    version: String,
    description: Option<String>,
    inputs: Vec<PortBuilder>,
    outputs: Vec<PortBuilder>,
    exposes: Vec<ExposeBuilder>,
    exit_codes: Vec<wit::ExitCode>,
    outline: Vec<Outline<P>>,
    retries: Vec<wit::RetryPolicy>,
}

pub(crate) struct Finished<P> {
    pub wit: wit::Spec,
    pub steps: HashMap<String, (StepFn<P>, usize)>,
    pub conditions: HashMap<String, (Condition<P>, usize)>,
    pub validators: HashMap<String, fn(&serde_json::Value) -> Option<String>>,
    pub defaults: HashMap<String, fn() -> serde_json::Value>,
}

impl<P> Spec<P> {
    pub(crate) fn new() -> Self {
        Self {
            name: String::new(),
            version: String::new(),
            description: None,
            inputs: Vec::new(),
            outputs: Vec::new(),
            exposes: Vec::new(),
            exit_codes: Vec::new(),
            outline: Vec::new(),
            retries: Vec::new(),
        }
    }

    /// Override the plugin's name (by default the crate's package name).
    pub fn name(&mut self, name: impl Into<String>) -> &mut Self {
        self.name = name.into();
        self
    }

    /// Override the plugin's version (by default the crate's package version).
    pub fn version(&mut self, version: impl Into<String>) -> &mut Self {
        self.version = version.into();
        self
    }

    /// A description of the plugin (plumpy takes the class docstring).
    pub fn description(&mut self, description: impl Into<String>) -> &mut Self {
        self.description = Some(description.into());
        self
    }

    /// Declare an input port at a dotted path (`"options.greeting"` creates namespace `options`).
    pub fn input(&mut self, path: &str) -> &mut PortBuilder {
        self.inputs.push(PortBuilder::new(path, false));
        self.inputs.last_mut().unwrap()
    }

    /// Declare (or configure) an input namespace; `""` is the root of all inputs.
    pub fn input_namespace(&mut self, path: &str) -> &mut PortBuilder {
        self.inputs.push(PortBuilder::new(path, true));
        self.inputs.last_mut().unwrap()
    }

    /// Declare an output port at a dotted path.
    pub fn output(&mut self, path: &str) -> &mut PortBuilder {
        self.outputs.push(PortBuilder::new(path, false));
        self.outputs.last_mut().unwrap()
    }

    /// Declare (or configure) an output namespace; `""` is the root of all outputs.
    pub fn output_namespace(&mut self, path: &str) -> &mut PortBuilder {
        self.outputs.push(PortBuilder::new(path, true));
        self.outputs.last_mut().unwrap()
    }

    /// Copy the inputs of another plugin (by name) into the input namespace at a dotted path
    /// (`""`: the top level), as plumpy's `expose_inputs`. Exposures come before the plugin's own
    /// ports, which may add to the exposed namespaces.
    pub fn expose_inputs(&mut self, plugin: &str, namespace: &str) -> &mut ExposeBuilder {
        self.exposes
            .push(ExposeBuilder::new(wit::PortSide::Inputs, plugin, namespace));
        self.exposes.last_mut().unwrap()
    }

    /// Copy the outputs of another plugin into the output namespace at a dotted path, as plumpy's
    /// `expose_outputs`.
    pub fn expose_outputs(&mut self, plugin: &str, namespace: &str) -> &mut ExposeBuilder {
        self.exposes.push(ExposeBuilder::new(
            wit::PortSide::Outputs,
            plugin,
            namespace,
        ));
        self.exposes.last_mut().unwrap()
    }

    /// Declare an exit code, returned so a step can end with it.
    pub fn exit_code(&mut self, status: u32, label: &str, message: &str) -> ExitCode {
        self.exit_codes.push(wit::ExitCode {
            status,
            label: label.to_string(),
            message: message.to_string(),
        });
        ExitCode::with_message(status, message)
    }

    /// Retry step `step` as `policy` says when it fails: from the state before it (context,
    /// outputs and the plugin's memory — this value's fields included), after the policy's
    /// intervals. [`Ctx::attempt`](crate::Ctx::attempt) tells a step which attempt it is.
    pub fn retry(&mut self, step: &str, policy: RetryPolicy) -> &mut Self {
        self.retries.push(policy.into_wit(Some(step.to_string())));
        self
    }

    /// Retry every step that has no policy of its own as `policy` says.
    pub fn retry_every_step(&mut self, policy: RetryPolicy) -> &mut Self {
        self.retries.push(policy.into_wit(None));
        self
    }

    /// Set the outline: the steps, conditions and loops the host walks through.
    pub fn outline(&mut self, outline: impl IntoIterator<Item = Outline<P>>) -> &mut Self {
        self.outline = outline.into_iter().collect();
        self
    }

    pub(crate) fn finish(self) -> Finished<P> {
        let mut finished = Finished {
            wit: wit::Spec {
                name: self.name,
                version: self.version,
                description: self.description,
                inputs: Vec::new(),
                outputs: Vec::new(),
                exposes: self.exposes.into_iter().map(|e| e.expose).collect(),
                exit_codes: self.exit_codes,
                outline: wit::Outline {
                    nodes: Vec::new(),
                    root: 0,
                },
                retries: self.retries,
            },
            steps: HashMap::new(),
            conditions: HashMap::new(),
            validators: HashMap::new(),
            defaults: HashMap::new(),
        };
        for (root, ports) in [("inputs", self.inputs), ("outputs", self.outputs)] {
            for port in ports {
                let full = if port.port.path.is_empty() {
                    root.to_string()
                } else {
                    format!("{root}.{}", port.port.path)
                };
                if let Some(v) = port.validator {
                    finished.validators.insert(full.clone(), v);
                }
                if let Some(d) = port.computed_default {
                    finished.defaults.insert(full, d);
                }
                if root == "inputs" {
                    finished.wit.inputs.push(port.port);
                } else {
                    finished.wit.outputs.push(port.port);
                }
            }
        }
        let mut nodes = Vec::new();
        let root = crate::outline::flatten_sequence(
            self.outline,
            &mut nodes,
            &mut finished.steps,
            &mut finished.conditions,
        );
        finished.wit.outline = wit::Outline { nodes, root };
        finished
    }
}
