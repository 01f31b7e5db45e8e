//! `workchain`: plumpy's test outline `s1, if_(isA)(s2).elif_(isB)(s3).else_(s4), s5,
//! while_(ltN)(s6)`, tracing every call into its output (plumpy S39).
use damson_guest::prelude::*;

#[derive(Default)]
struct Workchain {
    trace: Vec<String>,
}

impl Process for Workchain {
    fn define(spec: &mut Spec<Self>) {
        spec.input("value").valid_type(Type::Str).help("A, B or C");
        spec.input("n").valid_type(Type::Int).default(3);
        spec.output("trace")
            .valid_type(Type::List)
            .help("Every step and condition, in order");
        spec.output("counter").valid_type(Type::Int);
        spec.outline([
            step("s1", Self::s1),
            if_("isA", Self::is_a, [step("s2", Self::s2)])
                .elif_("isB", Self::is_b, [step("s3", Self::s3)])
                .else_([step("s4", Self::s4)]),
            step("s5", Self::s5),
            while_("ltN", Self::lt_n, [step("s6", Self::s6)]),
            step("report", Self::report),
        ]);
    }
}

impl Workchain {
    fn mark(&mut self, name: &str) -> Step {
        self.trace.push(name.to_string());
        Ok(Next::Continue)
    }
    fn s1(&mut self, _: &mut Ctx) -> Step {
        self.mark("s1")
    }
    fn s2(&mut self, _: &mut Ctx) -> Step {
        self.mark("s2")
    }
    fn s3(&mut self, _: &mut Ctx) -> Step {
        self.mark("s3")
    }
    fn s4(&mut self, _: &mut Ctx) -> Step {
        self.mark("s4")
    }
    fn s5(&mut self, p: &mut Ctx) -> Step {
        p.set("counter", 0)?;
        self.mark("s5")
    }
    fn s6(&mut self, p: &mut Ctx) -> Step {
        p.set("counter", p.get::<i64>("counter")? + 1)?;
        self.mark("s6")
    }
    fn is_a(&self, p: &Ctx) -> Result<bool> {
        Ok(p.input::<String>("value")? == "A")
    }
    fn is_b(&self, p: &Ctx) -> Result<bool> {
        Ok(p.input::<String>("value")? == "B")
    }
    fn lt_n(&self, p: &Ctx) -> Result<bool> {
        Ok(p.get::<i64>("counter")? < p.input::<i64>("n")?)
    }
    fn report(&mut self, p: &mut Ctx) -> Step {
        p.out("trace", &self.trace)?;
        p.out("counter", p.get::<i64>("counter")?)?;
        Ok(Next::Continue)
    }
}

damson_guest::export!(Workchain);
