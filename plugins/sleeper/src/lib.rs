//! `sleeper`: sleeps `ms` milliseconds on a durable timer, then outputs how long it slept. What
//! the timer tests and benchmark run by the thousand.
use std::time::Duration;

use damson_guest::prelude::*;

#[derive(Default)]
struct Sleeper;

impl Process for Sleeper {
    fn define(spec: &mut Spec<Self>) {
        spec.description("Sleeps `ms` milliseconds, then outputs `slept`.");
        spec.input("ms")
            .valid_type(Type::Int)
            .help("How long to sleep, in milliseconds");
        spec.output("slept")
            .valid_type(Type::Int)
            .help("The milliseconds asked for");
        spec.outline([step("nap", Self::nap), step("wake", Self::wake)]);
    }
}

impl Sleeper {
    fn nap(&mut self, p: &mut Ctx) -> Step {
        let ms: u64 = p.input("ms")?;
        Ok(Next::sleep(Duration::from_millis(ms)))
    }

    fn wake(&mut self, p: &mut Ctx) -> Step {
        let ms: u64 = p.input("ms")?;
        p.out("slept", ms)?;
        Ok(Next::Continue)
    }
}

damson_guest::export!(Sleeper);
