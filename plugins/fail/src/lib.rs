//! `fail`: a test plugin whose step panics.
use damson_guest::prelude::*;

#[derive(Default)]
struct Fail;

impl Process for Fail {
    fn define(spec: &mut Spec<Self>) {
        spec.output("never").required(false);
        spec.outline([step("explode", Self::explode)]);
    }
}

impl Fail {
    fn explode(&mut self, _: &mut Ctx) -> Step {
        panic!("the fail plugin always panics");
    }
}

damson_guest::export!(Fail);
