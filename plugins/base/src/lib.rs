//! `base`: a test plugin whose ports `expose` copies (plumpy S26's BaseProcess).
use damson_guest::prelude::*;

#[derive(Default)]
struct Base;

impl Process for Base {
    fn define(spec: &mut Spec<Self>) {
        spec.input_namespace("").valid_type(Type::Str);
        spec.input("a")
            .valid_type(Type::Str)
            .default("a")
            .validator(|v| (v == "forbidden").then(|| "'forbidden' is not allowed".to_string()));
        spec.input("b").valid_type(Type::Str).default("b");
        spec.input("sub.x").valid_type(Type::Int).default(1);
        spec.input("sub.y").valid_type(Type::Int).default(2);
        spec.input("lazy")
            .valid_type(Type::Str)
            .default_with(|| json!("computed by base"));
        spec.output("echo").valid_type(Type::Dict);
        spec.outline([step("echo", Self::echo)]);
    }
}

impl Base {
    fn echo(&mut self, p: &mut Ctx) -> Step {
        p.out("echo", p.inputs()?)?;
        Ok(Next::Continue)
    }
}

damson_guest::export!(Base);
