//! `ifblock`: `if_(true)(step1, step2)` where step1 pauses the process (plumpy S44).
use damson_guest::prelude::*;

#[derive(Default)]
struct IfBlock;

impl Process for IfBlock {
    fn define(spec: &mut Spec<Self>) {
        spec.output("s2_ran").valid_type(Type::Bool);
        spec.outline([if_(
            "yes",
            Self::yes,
            [step("step1", Self::step1), step("step2", Self::step2)],
        )]);
    }
}

impl IfBlock {
    fn yes(&self, _: &Ctx) -> Result<bool> {
        Ok(true)
    }

    fn step1(&mut self, p: &mut Ctx) -> Step {
        p.set("s1", true)?;
        p.pause(Some("paused in step1"));
        Ok(Next::Continue)
    }

    fn step2(&mut self, p: &mut Ctx) -> Step {
        p.set("s2", true)?;
        p.out("s2_ran", true)?;
        Ok(Next::Continue)
    }
}

damson_guest::export!(IfBlock);
