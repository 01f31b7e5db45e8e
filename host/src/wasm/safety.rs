//! Whether a component's memory can be imaged at a checkpoint and restored later.
//!
//! A memory image holds linear memories only: wasmtime gives an embedder no way to read or set a
//! component's globals or tables. An image is therefore faithful only for components whose other
//! state is the same at every quiescent point (between two steps): no mutable global but the
//! stack pointer (back at its initial value once a call has returned), and no instruction that
//! changes a table. Rust components for `wasm32-wasip2` pass; others still checkpoint, through
//! the portable process record alone.

use wasmparser::{Operator, Parser, Payload, TypeRef};

/// The verdict on one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSafety {
    /// Why a memory image would not be faithful; empty when it would.
    pub reasons: Vec<String>,
}

impl SnapshotSafety {
    /// Whether memory images can be taken.
    pub fn is_safe(&self) -> bool {
        self.reasons.is_empty()
    }
}

/// Check every core module of a component (or a core module).
pub fn check(bytes: &[u8]) -> SnapshotSafety {
    let mut reasons = Vec::new();
    let mut module = 0usize;
    // Mutable globals seen in the module being read (defined and imported).
    let mut mutable_globals = 0usize;
    let mut table_ops: Vec<&'static str> = Vec::new();
    let finish = |module: usize,
                  mutable: usize,
                  ops: &mut Vec<&'static str>,
                  reasons: &mut Vec<String>| {
        if mutable > 1 {
            reasons.push(format!(
                "core module {module} has {mutable} mutable globals (only the stack pointer may be mutable)"
            ));
        }
        if !ops.is_empty() {
            ops.sort_unstable();
            ops.dedup();
            reasons.push(format!(
                "core module {module} changes a table ({})",
                ops.join(", ")
            ));
        }
        ops.clear();
    };
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = match payload {
            Ok(payload) => payload,
            Err(e) => {
                reasons.push(format!("the component cannot be parsed: {e}"));
                break;
            }
        };
        match payload {
            Payload::ImportSection(imports) => {
                for import in imports.into_imports().flatten() {
                    if let TypeRef::Global(global) = import.ty
                        && global.mutable
                    {
                        mutable_globals += 1;
                    }
                }
            }
            Payload::GlobalSection(globals) => {
                mutable_globals += globals
                    .into_iter()
                    .flatten()
                    .filter(|g| g.ty.mutable)
                    .count();
            }
            Payload::CodeSectionEntry(body) => {
                let Ok(mut reader) = body.get_operators_reader() else {
                    continue;
                };
                while !reader.eof() {
                    let Ok(op) = reader.read() else { break };
                    let name = match op {
                        Operator::TableSet { .. } => "table.set",
                        Operator::TableGrow { .. } => "table.grow",
                        Operator::TableFill { .. } => "table.fill",
                        Operator::TableCopy { .. } => "table.copy",
                        Operator::TableInit { .. } => "table.init",
                        Operator::ElemDrop { .. } => "elem.drop",
                        _ => continue,
                    };
                    table_ops.push(name);
                }
            }
            Payload::End(_) => {
                // The end of a core module (or of the component, where nothing was counted).
                finish(module, mutable_globals, &mut table_ops, &mut reasons);
                mutable_globals = 0;
                module += 1;
            }
            _ => {}
        }
    }
    SnapshotSafety { reasons }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(wat: &str) -> Vec<u8> {
        wat::parse_str(wat).expect("valid text")
    }

    #[test]
    fn a_stack_pointer_alone_is_safe() {
        let bytes = module(
            r#"(module (global $sp (mut i32) (i32.const 1024)) (global i32 (i32.const 0)))"#,
        );
        assert!(check(&bytes).is_safe(), "{:?}", check(&bytes));
    }

    #[test]
    fn a_second_mutable_global_is_named() {
        let bytes =
            module(r#"(module (global (mut i32) (i32.const 0)) (global (mut i64) (i64.const 0)))"#);
        let verdict = check(&bytes);
        assert_eq!(
            verdict.reasons,
            ["core module 0 has 2 mutable globals (only the stack pointer may be mutable)"]
        );
    }

    #[test]
    fn every_core_module_of_a_component_is_checked() {
        let bytes = module(
            r#"(component
                 (core module (global (mut i32) (i32.const 0)))
                 (core module (global (mut i32) (i32.const 0)) (global (mut i32) (i32.const 0))))"#,
        );
        let verdict = check(&bytes);
        assert_eq!(verdict.reasons.len(), 1, "{verdict:?}");
        assert!(
            verdict.reasons[0].starts_with("core module 1 has 2 mutable globals"),
            "{verdict:?}"
        );
    }

    #[test]
    fn table_mutation_is_named() {
        let bytes = module(
            r#"(module (table 1 funcref)
                 (func (drop (table.grow (ref.null func) (i32.const 1)))))"#,
        );
        assert_eq!(
            check(&bytes).reasons,
            ["core module 0 changes a table (table.grow)"]
        );
    }
}
