//! `deep`: a test plugin whose step recurses until the stack overflows.
use damson_guest::prelude::*;

#[derive(Default)]
struct Deep;

impl Process for Deep {
    fn define(spec: &mut Spec<Self>) {
        spec.output("depth").valid_type(Type::Int).required(false);
        spec.outline([step("dive", Self::dive)]);
    }
}

/// Recurses until `depth` wraps around, which it never lives to see. Not a tail call: the addition
/// after the call keeps every frame alive.
#[inline(never)]
fn descend(depth: u64) -> u64 {
    let buffer = std::hint::black_box([depth; 16]);
    if buffer[depth as usize % 16] == u64::MAX {
        return depth;
    }
    descend(buffer[depth as usize % 16] + 1) + buffer[3]
}

impl Deep {
    fn dive(&mut self, p: &mut Ctx) -> Step {
        let depth = descend(0);
        p.out("depth", depth)?;
        Ok(Next::Continue)
    }
}

damson_guest::export!(Deep);
