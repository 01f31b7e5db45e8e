//! `badspec`: a test plugin whose declaration is well formed but invalid: a default that does not
//! fit its port's type.
use damson_guest::prelude::*;

#[derive(Default)]
struct BadSpec;

impl Process for BadSpec {
    fn define(spec: &mut Spec<Self>) {
        spec.input("count").valid_type(Type::Int).default("three");
        spec.outline([step("noop", Self::noop)]);
    }
}

impl BadSpec {
    fn noop(&mut self, _: &mut Ctx) -> Step {
        Ok(Next::Continue)
    }
}

damson_guest::export!(BadSpec);
