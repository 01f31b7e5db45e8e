//! `expose`: a test plugin that exposes `base`'s ports (plumpy S26's ExposeProcess).
use damson_guest::prelude::*;

#[derive(Default)]
struct Expose;

impl Process for Expose {
    fn define(spec: &mut Spec<Self>) {
        spec.expose_inputs("base", "base.name.space");
        spec.expose_inputs("base", "partial")
            .exclude(["b", "sub.y"])
            .required(false);
        spec.expose_inputs("base", "only_a")
            .include(["a"])
            .required(false)
            .help("Just a");
        spec.expose_outputs("base", "child");
        spec.input("c").valid_type(Type::Int).default(1);
        spec.input("d").valid_type(Type::Int).default(2);
        spec.input_namespace("").valid_type(Type::Int);
        spec.output("got").valid_type(Type::Dict);
        spec.outline([step("report", Self::report)]);
    }
}

impl Expose {
    fn report(&mut self, p: &mut Ctx) -> Step {
        p.out("got", p.inputs()?)?;
        // `echo_int` (in the dynamic top level) makes it emit an exposed output of the wrong
        // type, which the host must refuse as it refuses a declared one.
        match p.input_opt::<i64>("echo_int")? {
            Some(wrong) => p.out("child.echo", wrong)?,
            None => p.out("child.echo", p.input::<Value>("base.name.space")?)?,
        }
        Ok(Next::Continue)
    }
}

damson_guest::export!(Expose);
