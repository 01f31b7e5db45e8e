//! `collatz`: counts the steps of the Collatz sequence from `n` down to 1.
//!
//! A work chain with `while_` and `if_`. It keeps its running count in a field of the plugin
//! struct (memory only) and the current value in the context (durable), so it exercises both
//! kinds of state a checkpoint must carry.
use damson_guest::prelude::*;

/// Exit status when `n` is below 1.
const NOT_POSITIVE: u32 = 400;

#[derive(Default)]
struct Collatz {
    /// Steps taken so far; lives in the plugin's memory, not in the context.
    steps: u64,
    /// The largest value seen on the way.
    peak: u64,
}

impl Process for Collatz {
    fn define(spec: &mut Spec<Self>) {
        spec.description("Counts the steps of the Collatz sequence from n down to 1.");
        spec.input("n")
            .valid_type(Type::Int)
            .help("Where to start (at least 1)");
        spec.output("steps")
            .valid_type(Type::Int)
            .help("How many steps it took to reach 1");
        spec.output("peak")
            .valid_type(Type::Int)
            .help("The largest value on the way");
        spec.exit_code(NOT_POSITIVE, "ERROR_NOT_POSITIVE", "n must be at least 1");
        spec.outline([
            step("start", Self::start),
            while_(
                "above_one",
                Self::above_one,
                [
                    if_("is_even", Self::is_even, [step("halve", Self::halve)])
                        .else_([step("triple_plus_one", Self::triple_plus_one)]),
                    step("count", Self::count),
                ],
            ),
            step("finish", Self::finish),
        ]);
    }
}

impl Collatz {
    fn start(&mut self, p: &mut Ctx) -> Step {
        let n: i64 = p.input("n")?;
        if n < 1 {
            return Ok(Next::Finish(ExitCode::with_message(
                NOT_POSITIVE,
                format!("n must be at least 1, got {n}"),
            )));
        }
        p.set("n", n)?;
        self.peak = n as u64;
        Ok(Next::Continue)
    }

    fn above_one(&self, p: &Ctx) -> Result<bool> {
        Ok(p.get::<u64>("n")? > 1)
    }

    fn is_even(&self, p: &Ctx) -> Result<bool> {
        Ok(p.get::<u64>("n")? % 2 == 0)
    }

    fn halve(&mut self, p: &mut Ctx) -> Step {
        let n: u64 = p.get("n")?;
        p.set("n", n / 2)?;
        Ok(Next::Continue)
    }

    fn triple_plus_one(&mut self, p: &mut Ctx) -> Step {
        let n: u64 = p.get("n")?;
        let Some(next) = n.checked_mul(3).and_then(|t| t.checked_add(1)) else {
            bail!("3n + 1 overflows at n = {n}");
        };
        self.peak = self.peak.max(next);
        p.set("n", next)?;
        Ok(Next::Continue)
    }

    fn count(&mut self, p: &mut Ctx) -> Step {
        self.steps += 1;
        p.status(Some(&format!("{} steps so far", self.steps)));
        Ok(Next::Continue)
    }

    fn finish(&mut self, p: &mut Ctx) -> Step {
        debug!("reached 1 after {} steps", self.steps);
        p.out("steps", self.steps)?;
        p.out("peak", self.peak)?;
        Ok(Next::Continue)
    }
}

damson_guest::export!(Collatz);
