//! `hailstone`: walks the Collatz (hailstone) sequence from `n` down to 1, keeping *all* of its
//! running state in the plugin's own memory — a struct field for the current value and a
//! `HashMap` of every value seen — and none in the context.
//!
//! Its outputs can only come out right after a crash if the checkpoint carried the plugin's
//! memory: the durability tests kill a host in the middle of its loop and continue it.
use std::collections::HashMap;
use std::time::Duration;

use damson_guest::prelude::*;

#[derive(Default)]
struct Hailstone {
    /// Where the walk is.
    current: u64,
    /// Steps taken so far.
    steps: u64,
    /// Every value seen, with the step it was seen at.
    seen: HashMap<u64, u64>,
    /// How long each step lingers, so a test can interrupt the walk.
    delay: Duration,
}

impl Process for Hailstone {
    fn define(spec: &mut Spec<Self>) {
        spec.description("Walks the hailstone sequence from n to 1, its state in memory only.");
        spec.input("n")
            .valid_type(Type::Int)
            .help("Where to start (at least 1)");
        spec.input("delay_ms")
            .valid_type(Type::Int)
            .default(0)
            .help("Milliseconds each step lingers");
        spec.output("steps")
            .valid_type(Type::Int)
            .help("Steps to reach 1");
        spec.output("peak")
            .valid_type(Type::Int)
            .help("The largest value seen");
        spec.output("checksum")
            .valid_type(Type::Int)
            .help("A digest of every value seen and when");
        spec.outline([
            step("start", Self::start),
            while_(
                "above_one",
                Self::above_one,
                [step("advance", Self::advance)],
            ),
            step("finish", Self::finish),
        ]);
    }
}

impl Hailstone {
    fn start(&mut self, p: &mut Ctx) -> Step {
        let n: i64 = p.input("n")?;
        if n < 1 {
            bail!("n must be at least 1, got {n}");
        }
        self.current = n as u64;
        self.seen.insert(self.current, 0);
        self.delay = Duration::from_millis(p.input::<u64>("delay_ms")?);
        Ok(Next::Continue)
    }

    fn above_one(&self, _p: &Ctx) -> Result<bool> {
        Ok(self.current > 1)
    }

    fn advance(&mut self, p: &mut Ctx) -> Step {
        let n = self.current;
        self.current = if n % 2 == 0 {
            n / 2
        } else {
            match n.checked_mul(3).and_then(|t| t.checked_add(1)) {
                Some(next) => next,
                None => bail!("3n + 1 overflows at n = {n}"),
            }
        };
        self.steps += 1;
        self.seen.insert(self.current, self.steps);
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        p.status(Some(&format!("step {} at {}", self.steps, self.current)));
        info!("step {} at {}", self.steps, self.current);
        Ok(Next::Continue)
    }

    fn finish(&mut self, p: &mut Ctx) -> Step {
        let peak = self.seen.keys().copied().max().unwrap_or(self.current);
        let checksum = self.seen.iter().fold(0u64, |sum, (value, step)| {
            sum.wrapping_add(value.wrapping_mul(step + 1).rotate_left(*step as u32 % 64))
        }) % (1 << 53);
        p.out("steps", self.steps)?;
        p.out("peak", peak)?;
        p.out("checksum", checksum)?;
        Ok(Next::Continue)
    }
}

damson_guest::export!(Hailstone);
