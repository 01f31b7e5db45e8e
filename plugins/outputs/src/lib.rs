//! `outputs`: a test plugin that emits valid, undeclared, mistyped, nested dynamic or no outputs,
//! as its `mode` input says (plumpy S28 and dynamic outputs).
use damson_guest::prelude::*;

#[derive(Default)]
struct Outputs;

impl Process for Outputs {
    fn define(spec: &mut Spec<Self>) {
        spec.input("mode")
            .valid_type(Type::Str)
            .help("ok | undeclared | ignored | missing | wrongtype");
        spec.output("result.value").valid_type(Type::Int);
        spec.output_namespace("dyn")
            .dynamic(true)
            .required(false)
            .help("Anything, at any depth");
        spec.output("optional")
            .valid_type(Type::Str)
            .required(false);
        spec.outline([step("emit", Self::emit)]);
    }
}

impl Outputs {
    fn emit(&mut self, p: &mut Ctx) -> Step {
        let mode: String = p.input("mode")?;
        match mode.as_str() {
            "ok" => {
                p.out("result.value", 1)?;
                p.out("dyn.x.y", 2)?;
                p.out("dyn.list", [1, 2, 3])?;
            }
            "undeclared" => p.out("nope", 1)?,
            "ignored" => {
                // The error is ignored here; the host ends the process EXCEPTED all the same.
                let _ = p.out("nope", 1);
                p.out("result.value", 1)?;
            }
            "missing" => {}
            "wrongtype" => p.out("result.value", "one")?,
            other => bail!("unknown mode '{other}'"),
        }
        Ok(Next::Continue)
    }
}

damson_guest::export!(Outputs);
