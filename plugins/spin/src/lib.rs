//! `spin`: a test plugin whose step never returns.
use damson_guest::prelude::*;

#[derive(Default)]
struct Spin {
    turns: u64,
}

impl Process for Spin {
    fn define(spec: &mut Spec<Self>) {
        spec.outline([step("spin", Self::spin)]);
    }
}

impl Spin {
    fn spin(&mut self, _: &mut Ctx) -> Step {
        loop {
            // black_box keeps the loop from being optimised into something the host never sees.
            self.turns = std::hint::black_box(self.turns.wrapping_add(1));
        }
    }
}

damson_guest::export!(Spin);
