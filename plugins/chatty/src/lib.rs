//! `chatty`: breaks the rule that plugins talk to the world only through Damson's imports — it
//! prints to WASI stdout in every step. wasi-libc keeps the stdout stream's handle in linear
//! memory, so an image taken between its steps holds a handle that another instance does not
//! have. The host must refuse to restore it, and say why.
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
