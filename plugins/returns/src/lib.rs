//! `returns`: `if_(success)(return_).elif_(failed)(return_(1)).else_(default)`, and a step that
//! ends the outline with an exit code (plumpy S41).
use damson_guest::prelude::*;

#[derive(Default)]
struct Returns;

impl Process for Returns {
    fn define(spec: &mut Spec<Self>) {
        spec.input("success").valid_type(Type::Bool).required(false);
        spec.input("step_exit")
            .valid_type(Type::Int)
            .required(false);
        spec.output("reached").valid_type(Type::Str).required(false);
        spec.outline([
            step("early", Self::early),
            if_("is_success", Self::is_success, [return_()])
                .elif_("is_failed", Self::is_failed, [return_with(1)])
                .else_([step("default", Self::default_step)]),
        ]);
    }
}

impl Returns {
    /// Ends the outline at once with `step_exit`, when given.
    fn early(&mut self, p: &mut Ctx) -> Step {
        match p.input_opt::<u32>("step_exit")? {
            Some(status) => Ok(Next::Finish(ExitCode::new(status))),
            None => Ok(Next::Continue),
        }
    }
    fn is_success(&self, p: &Ctx) -> Result<bool> {
        Ok(p.input_opt::<bool>("success")? == Some(true))
    }
    fn is_failed(&self, p: &Ctx) -> Result<bool> {
        Ok(p.input_opt::<bool>("success")? == Some(false))
    }
    /// Must never be reached when `success` is given.
    fn default_step(&mut self, _: &mut Ctx) -> Step {
        bail!("the default branch was reached")
    }
}

damson_guest::export!(Returns);
