//! `namespaces`: a test plugin with dotted, dynamic and strict namespaces, which checks that
//! its inputs cannot change under it (plumpy S18, S23, S24).
use damson_guest::prelude::*;

#[derive(Default)]
struct Namespaces {
    first_look: Option<Value>,
}

impl Process for Namespaces {
    fn define(spec: &mut Spec<Self>) {
        spec.input("some.name.space.a").valid_type(Type::Int);
        spec.input_namespace("extra")
            .valid_type(Type::Int)
            .required(false)
            .help("Any ints");
        spec.input_namespace("strict").required(false);
        spec.input("strict.x").valid_type(Type::Int).required(false);
        spec.output("a").valid_type(Type::Int);
        spec.output("unchanged").valid_type(Type::Bool);
        spec.outline([
            step("look", Self::look),
            step("look_again", Self::look_again),
        ]);
    }
}

impl Namespaces {
    fn look(&mut self, p: &mut Ctx) -> Step {
        let mut inputs = p.inputs()?;
        self.first_look = Some(inputs.clone());
        // Changing the copy a step holds changes nothing in the process.
        inputs["some"] = json!("overwritten");
        p.out("a", p.input::<i64>("some.name.space.a")?)?;
        Ok(Next::Continue)
    }

    fn look_again(&mut self, p: &mut Ctx) -> Step {
        p.out("unchanged", self.first_look.as_ref() == Some(&p.inputs()?))?;
        Ok(Next::Continue)
    }
}

damson_guest::export!(Namespaces);
