//! `greet`: a greeting, with an optional namespaced input that has a default.
use damson_guest::prelude::*;

#[derive(Default)]
struct Greet;

impl Process for Greet {
    fn define(spec: &mut Spec<Self>) {
        spec.description("Greets someone, politely by default.");
        spec.input("name")
            .valid_type(Type::Str)
            .help("Who to greet");
        spec.input_namespace("options").help("How to greet");
        spec.input("options.greeting")
            .valid_type(Type::Str)
            .default("Hello")
            .help("The word to greet with");
        spec.input("options.shout")
            .valid_type(Type::Bool)
            .default(false)
            .help("Greet in capitals");
        spec.output("message")
            .valid_type(Type::Str)
            .help("The greeting");
        spec.outline([step("greet", Self::greet)]);
    }
}

impl Greet {
    fn greet(&mut self, p: &mut Ctx) -> Step {
        let name: String = p.input("name")?;
        let greeting: String = p.input("options.greeting")?;
        let mut message = format!("{greeting}, {name}!");
        if p.input::<bool>("options.shout")? {
            message = message.to_uppercase();
        }
        info!("greeting {name}");
        p.out("message", message)?;
        Ok(Next::Continue)
    }
}

damson_guest::export!(Greet);
