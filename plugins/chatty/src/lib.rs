//! `chatty`: breaks the rule that plugins talk to the world only through Damson's imports — it
//! prints to WASI stdout in every step. wasi-libc keeps the stdout stream's handle in linear
//! memory, so after a restore from a memory image the second step uses a handle the fresh
//! instance does not have. The host must say so.
use damson_guest::prelude::*;

#[derive(Default)]
struct Chatty;

impl Process for Chatty {
    fn define(spec: &mut Spec<Self>) {
        spec.outline([step("first", Self::first), step("second", Self::second)]);
    }
}

impl Chatty {
    fn first(&mut self, p: &mut Ctx) -> Step {
        println!("first step");
        p.pause(Some("paused between the steps"));
        Ok(Next::Continue)
    }

    fn second(&mut self, _p: &mut Ctx) -> Step {
        println!("second step");
        Ok(Next::Continue)
    }
}

damson_guest::export!(Chatty);
