//! `counter`: a `while_` loop of `n` iterations, each updating the context (plumpy benchmark
//! case b).
use damson_guest::prelude::*;

#[derive(Default)]
struct Counter;

impl Process for Counter {
    fn define(spec: &mut Spec<Self>) {
        spec.input("n").valid_type(Type::Int).default(1000);
        spec.output("count").valid_type(Type::Int);
        spec.outline([
            step("start", Self::start),
            while_("more", Self::more, [step("bump", Self::bump)]),
            step("report", Self::report),
        ]);
    }
}

impl Counter {
    fn start(&mut self, p: &mut Ctx) -> Step {
        p.set("i", 0)?;
        Ok(Next::Continue)
    }
    fn more(&self, p: &Ctx) -> Result<bool> {
        Ok(p.get::<i64>("i")? < p.input::<i64>("n")?)
    }
    fn bump(&mut self, p: &mut Ctx) -> Step {
        p.set("i", p.get::<i64>("i")? + 1)?;
        Ok(Next::Continue)
    }
    fn report(&mut self, p: &mut Ctx) -> Step {
        p.out("count", p.get::<i64>("i")?)?;
        Ok(Next::Continue)
    }
}

damson_guest::export!(Counter);
