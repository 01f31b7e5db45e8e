//! `add`: x + y. The smallest useful plugin.
use damson_guest::prelude::*;

#[derive(Default)]
struct Add;

impl Process for Add {
    fn define(spec: &mut Spec<Self>) {
        spec.input("x")
            .valid_type(Type::Int)
            .help("The first addend");
        spec.input("y")
            .valid_type(Type::Int)
            .help("The second addend");
        spec.output("sum").valid_type(Type::Int).help("x + y");
        spec.outline([step("add", Self::add)]);
    }
}

impl Add {
    fn add(&mut self, p: &mut Ctx) -> Step {
        let (x, y): (i64, i64) = (p.input("x")?, p.input("y")?);
        p.out("sum", x + y)?;
        Ok(Next::Continue)
    }
}

damson_guest::export!(Add);
