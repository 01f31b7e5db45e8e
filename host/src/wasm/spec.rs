//! WIT declarations → the host's [`DeclaredSpec`].

use std::time::Duration;

use crate::ports::{DefaultValue, NamespaceOptions, PortDecl, Rules, ValidTypes, ValueType};
use crate::retry::{FailureKind, RetryPolicy};
use crate::spec::{DeclaredSpec, ExitCodeSpec, Expose, InvalidSpec, Side};
use crate::workchain::{Node, Outline};

use super::bindings::current::damson::workflow::types as wit;

/// Check what a plugin declared and turn it into the host's types. Ports are checked when the
/// spec is built ([`DeclaredSpec::build`]), once exposed plugins are known.
pub(super) fn from_wit(spec: wit::Spec) -> Result<DeclaredSpec, InvalidSpec> {
    let mut seen = std::collections::HashSet::new();
    for code in &spec.exit_codes {
        if !seen.insert(code.status) {
            return Err(InvalidSpec::Other(format!(
                "exit status {} is declared twice",
                code.status
            )));
        }
    }
    let steps: std::collections::HashSet<&str> = spec
        .outline
        .nodes
        .iter()
        .filter_map(|n| match n {
            wit::Instruction::Step(name) => Some(name.as_str()),
            _ => None,
        })
        .collect();
    let retries = retries(&spec.retries, &steps)?;
    let nodes: Vec<Node> = spec.outline.nodes.into_iter().map(node).collect();
    let outline = Outline::from_nodes(&nodes, spec.outline.root)?;
    Ok(DeclaredSpec {
        name: spec.name,
        version: spec.version,
        description: spec.description,
        inputs: ports("inputs", spec.inputs)?,
        outputs: ports("outputs", spec.outputs)?,
        exposes: spec.exposes.into_iter().map(expose).collect(),
        exit_codes: spec
            .exit_codes
            .into_iter()
            .map(|c| ExitCodeSpec {
                status: c.status,
                label: c.label,
                message: c.message,
            })
            .collect(),
        outline,
        retries,
    })
}

/// The retry policies, checked: each for a step of the outline, at most one per step and one
/// for the rest, at least one attempt, a backoff of at least 1.
fn retries(
    declared: &[wit::RetryPolicy],
    steps: &std::collections::HashSet<&str>,
) -> Result<Vec<RetryPolicy>, InvalidSpec> {
    let mut seen = std::collections::HashSet::new();
    declared
        .iter()
        .map(|p| {
            let which = match &p.step {
                Some(step) => format!("the retry policy of step '{step}'"),
                None => "the retry policy for every step".to_string(),
            };
            let refuse = |why: String| Err(InvalidSpec::Other(format!("{which} {why}")));
            if let Some(step) = &p.step
                && !steps.contains(step.as_str())
            {
                return refuse("names no step of the outline".into());
            }
            if !seen.insert(p.step.clone()) {
                return refuse("is declared twice".into());
            }
            if p.max_attempts == 0 {
                return refuse("allows no attempt: max-attempts is at least 1".into());
            }
            if !(p.backoff.is_finite() && p.backoff >= 1.0) {
                return refuse(format!(
                    "has a backoff of {}: it is at least 1.0",
                    p.backoff
                ));
            }
            let kind = |k: &wit::FailureKind| match k {
                wit::FailureKind::Error => FailureKind::Error,
                wit::FailureKind::Trap => FailureKind::Trap,
                wit::FailureKind::Timeout => FailureKind::Timeout,
                wit::FailureKind::Memory => FailureKind::Memory,
            };
            Ok(RetryPolicy {
                step: p.step.clone(),
                max_attempts: p.max_attempts,
                initial_interval: Duration::from_millis(p.initial_interval_ms),
                backoff: p.backoff,
                max_interval: p.max_interval_ms.map(Duration::from_millis),
                non_retryable: p.non_retryable.iter().map(kind).collect(),
                non_retryable_errors: p.non_retryable_errors.clone(),
            })
        })
        .collect()
}

fn ports(root: &str, declared: Vec<wit::Port>) -> Result<Vec<PortDecl>, InvalidSpec> {
    declared
        .into_iter()
        .map(|port| {
            let default = match port.default {
                None => None,
                Some(wit::DefaultValue::Computed) => Some(DefaultValue::Computed),
                Some(wit::DefaultValue::Value(json)) => Some(DefaultValue::Value(
                    serde_json::from_str(&json).map_err(|source| InvalidSpec::Default {
                        path: format!("{root}.{}", port.path),
                        source,
                    })?,
                )),
            };
            Ok(PortDecl {
                path: port.path,
                namespace: port.namespace,
                valid_types: valid_types(port.valid_types),
                required: port.required,
                default,
                help: port.help,
                validator: port.validator,
                dynamic: port.dynamic,
                populate_defaults: port.populate_defaults,
            })
        })
        .collect()
}

fn expose(expose: wit::Expose) -> Expose {
    let options = expose.namespace_options;
    Expose {
        side: match expose.side {
            wit::PortSide::Inputs => Side::Inputs,
            wit::PortSide::Outputs => Side::Outputs,
        },
        plugin: expose.plugin,
        namespace: expose.namespace,
        rules: Rules {
            include: expose.include,
            exclude: expose.exclude,
        },
        options: NamespaceOptions {
            required: options.required,
            dynamic: options.dynamic,
            valid_types: options.valid_types.map(valid_types),
            help: options.help,
            populate_defaults: options.populate_defaults,
        },
    }
}

fn valid_types(types: Vec<wit::ValueType>) -> ValidTypes {
    ValidTypes(types.into_iter().map(value_type).collect())
}

fn value_type(t: wit::ValueType) -> ValueType {
    match t {
        wit::ValueType::Any => ValueType::Any,
        wit::ValueType::Null => ValueType::Null,
        wit::ValueType::Bool => ValueType::Bool,
        wit::ValueType::Int => ValueType::Int,
        wit::ValueType::Float => ValueType::Float,
        wit::ValueType::Number => ValueType::Number,
        wit::ValueType::Str => ValueType::Str,
        wit::ValueType::List => ValueType::List,
        wit::ValueType::Dict => ValueType::Dict,
    }
}

fn node(instruction: wit::Instruction) -> Node {
    match instruction {
        wit::Instruction::Step(name) => Node::Step(name),
        wit::Instruction::Sequence(children) => Node::Sequence(children),
        wit::Instruction::Conditional(branches) => Node::Conditional(
            branches
                .into_iter()
                .map(|b| (b.condition, b.body))
                .collect(),
        ),
        wit::Instruction::WhileLoop(w) => Node::While(w.condition, w.body),
        wit::Instruction::Return(status) => Node::Return(status),
    }
}
