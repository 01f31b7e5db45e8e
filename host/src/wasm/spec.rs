//! WIT declarations → the host's [`ProcessSpec`].

use crate::error::InvalidSpec;
use crate::ports::{DefaultValue, PortDecl, PortNamespace, ValidTypes, ValueType};
use crate::spec::{ExitCodeSpec, ProcessSpec};
use crate::workchain::{Node, Outline};

use super::bindings::damson::workflow::types as wit;

/// Build and check the spec a plugin declared.
pub(super) fn from_wit(spec: wit::Spec) -> Result<ProcessSpec, InvalidSpec> {
    let inputs = ports("inputs", spec.inputs)?;
    let outputs = ports("outputs", spec.outputs)?;
    let mut seen = std::collections::HashSet::new();
    for code in &spec.exit_codes {
        if !seen.insert(code.status) {
            return Err(InvalidSpec::Other(format!(
                "exit status {} is declared twice",
                code.status
            )));
        }
    }
    let nodes: Vec<Node> = spec.outline.nodes.into_iter().map(node).collect();
    let outline = Outline::from_nodes(&nodes, spec.outline.root)?;
    Ok(ProcessSpec {
        name: spec.name,
        version: spec.version,
        description: spec.description,
        inputs,
        outputs,
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
    })
}

fn ports(root: &str, declared: Vec<wit::Port>) -> Result<PortNamespace, InvalidSpec> {
    let mut decls = Vec::with_capacity(declared.len());
    for port in declared {
        let default = match port.default {
            None => None,
            Some(wit::DefaultValue::Computed) => Some(DefaultValue::Computed),
            Some(wit::DefaultValue::Value(json)) => Some(DefaultValue::Value(
                serde_json::from_str(&json).map_err(|e| InvalidSpec::Default {
                    path: format!("{root}.{}", port.path),
                    message: format!("not valid JSON: {e}"),
                })?,
            )),
        };
        decls.push(PortDecl {
            path: port.path,
            namespace: port.namespace,
            valid_types: ValidTypes(port.valid_types.into_iter().map(value_type).collect()),
            required: port.required,
            default,
            help: port.help,
            validator: port.validator,
            dynamic: port.dynamic,
            populate_defaults: port.populate_defaults,
        });
    }
    Ok(PortNamespace::from_decls(root, &decls)?)
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
