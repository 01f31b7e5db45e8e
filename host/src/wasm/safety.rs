//! Whether a component's state can be imaged at a checkpoint and restored later.
//!
//! A memory image holds every mutable global and every linear memory of the component's core
//! instances (read through the accessor that [`super::instrument`] adds, which also refuses what
//! it cannot capture). Tables are not in it: a component with an instruction that changes a
//! table is refused here. Handles held at a checkpoint (a WASI stream opened before it) are seen
//! when the image is taken, and such an image is refused by every restore
//! ([`super::image::ImageError::HeldHandles`]). A refused component still checkpoints, through
//! the portable process record alone.

use wasmparser::{Operator, Parser, Payload};

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

/// Check every core module of a component (or a core module) for instructions that change a
/// table.
pub fn check(bytes: &[u8]) -> SnapshotSafety {
    let mut reasons = Vec::new();
    let mut module = 0usize;
    let mut table_ops: Vec<&'static str> = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = match payload {
            Ok(payload) => payload,
            Err(e) => {
                reasons.push(format!("the component cannot be parsed: {e}"));
                break;
            }
        };
        match payload {
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
                if !table_ops.is_empty() {
                    table_ops.sort_unstable();
                    table_ops.dedup();
                    reasons.push(format!(
                        "core module {module} changes a table ({})",
                        table_ops.join(", ")
                    ));
                    table_ops.clear();
                }
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
    fn mutable_globals_are_safe_now_that_images_hold_them() {
        let bytes =
            module(r#"(module (global (mut i32) (i32.const 0)) (global (mut i64) (i64.const 0)))"#);
        assert!(check(&bytes).is_safe(), "{:?}", check(&bytes));
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

    #[test]
    fn every_core_module_of_a_component_is_checked() {
        let bytes = module(
            r#"(component
                 (core module)
                 (core module (table 1 funcref) (func (table.set (i32.const 0) (ref.null func)))))"#,
        );
        let verdict = check(&bytes);
        assert_eq!(
            verdict.reasons,
            ["core module 1 changes a table (table.set)"],
            "{verdict:?}"
        );
    }
}
