//! `babble`: a test plugin that logs: `lines` lines in one step ("line 1", "line 2", …), or,
//! with `lines` 0, without end, until its step runs out of time or the process is killed. The
//! host must keep only a process's last lines, in memory as in the store, and count the rest.
use damson_guest::prelude::*;

#[derive(Default)]
struct Babble;

impl Process for Babble {
    fn define(spec: &mut Spec<Self>) {
        spec.input("lines")
            .valid_type(Type::Int)
            .default(10)
            .help("How many lines to log; 0 logs without end");
        spec.outline([step("babble", Self::babble), step("done", Self::done)]);
    }
}

impl Babble {
    fn babble(&mut self, p: &mut Ctx) -> Step {
        let lines: u64 = p.input("lines")?;
        let mut n: u64 = 0;
        while lines == 0 || n < lines {
            n += 1;
            info!("line {n}");
        }
        Ok(Next::Continue)
    }

    fn done(&mut self, _p: &mut Ctx) -> Step {
        warn!("done babbling");
        Ok(Next::Continue)
    }
}

damson_guest::export!(Babble);
