//! `baddecl`: a test plugin that panics while declaring its spec (an `else_` after an `else_`).
use damson_guest::prelude::*;

#[derive(Default)]
struct BadDecl;

impl Process for BadDecl {
    fn define(spec: &mut Spec<Self>) {
        spec.outline([if_("yes", Self::yes, [step("a", Self::a)])
            .else_([step("a", Self::a)])
            .else_([step("a", Self::a)])]);
    }
}

impl BadDecl {
    fn yes(&self, _: &Ctx) -> Result<bool> {
        Ok(true)
    }

    fn a(&mut self, _: &mut Ctx) -> Step {
        Ok(Next::Continue)
    }
}

damson_guest::export!(BadDecl);
