//! `defaults`: a test plugin with fixed, falsy, computed and namespaced defaults (plumpy S17,
//! S20, S21).
use std::sync::atomic::{AtomicU32, Ordering};

use damson_guest::prelude::*;

/// How often this instance computed the `lazy` default.
static COMPUTED: AtomicU32 = AtomicU32::new(0);

#[derive(Default)]
struct Defaults;

impl Process for Defaults {
    fn define(spec: &mut Spec<Self>) {
        spec.input("five").valid_type(Type::Int).default(5);
        spec.input("t").valid_type(Type::Bool).default(true);
        spec.input("f").valid_type(Type::Bool).default(false);
        spec.input("zero").valid_type(Type::Int).default(0);
        spec.input("one").valid_type(Type::Int).default(1);
        spec.input("lazy").valid_type(Type::Int).default_with(|| {
            COMPUTED.fetch_add(1, Ordering::Relaxed);
            json!(1)
        });
        spec.input("config")
            .valid_type(Type::Dict)
            .default(json!({"a": 1}))
            .validator(|v| (v.get("a").is_none()).then(|| "config needs a key 'a'".to_string()));
        spec.input("normal.with_default")
            .valid_type(Type::Int)
            .default(1);
        spec.input("normal.without_default")
            .valid_type(Type::Int)
            .required(false);
        spec.input_namespace("lazy_ns")
            .required(false)
            .populate_defaults(false);
        spec.input("lazy_ns.x").valid_type(Type::Int).default(5);
        spec.output("inputs")
            .valid_type(Type::Dict)
            .help("The inputs as the step saw them");
        spec.output("computed")
            .valid_type(Type::Int)
            .help("How often `lazy` was computed");
        spec.outline([step("echo", Self::echo)]);
    }
}

impl Defaults {
    fn echo(&mut self, p: &mut Ctx) -> Step {
        p.out("inputs", p.inputs()?)?;
        p.out("computed", COMPUTED.load(Ordering::Relaxed))?;
        Ok(Next::Continue)
    }
}

damson_guest::export!(Defaults);
