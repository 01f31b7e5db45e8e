//! `validators`: a test plugin whose ports, namespaces and spec have validators (plumpy S16, S20).
use damson_guest::prelude::*;

#[derive(Default)]
struct Validators;

impl Process for Validators {
    fn define(spec: &mut Spec<Self>) {
        spec.input("a").valid_type(Type::Int).required(false);
        spec.input("b").valid_type(Type::Int).required(false);
        // The spec-level validator: exactly one of a or b.
        spec.input_namespace("").validator(exactly_one_of_a_or_b);
        spec.input("even")
            .valid_type(Type::Int)
            .required(false)
            .validator(must_be_even);
        spec.input("checked")
            .required(false)
            .validator(|_| Some("checked is never acceptable".into()));
        spec.input_namespace("group")
            .valid_type(Type::Int)
            .required(false)
            .validator(sum_at_most_10);
        spec.input("group.base")
            .valid_type(Type::Int)
            .required(false);
        spec.input("emit")
            .valid_type(Type::Int)
            .default(1)
            .help("What to emit on `checked_out`");
        spec.output("which").valid_type(Type::Str);
        spec.output("checked_out")
            .valid_type(Type::Int)
            .validator(|v| (v.as_i64() < Some(1)).then(|| format!("must be positive, got {v}")));
        spec.outline([step("report", Self::report)]);
    }
}

fn exactly_one_of_a_or_b(inputs: &Value) -> Option<String> {
    match (inputs.get("a").is_some(), inputs.get("b").is_some()) {
        (true, false) | (false, true) => None,
        _ => Some("exactly one of 'a' or 'b' must be given".into()),
    }
}

fn must_be_even(value: &Value) -> Option<String> {
    (value.as_i64().unwrap_or(1) % 2 != 0).then(|| format!("must be even, got {value}"))
}

/// Sees the declared port and the dynamic values alike.
fn sum_at_most_10(group: &Value) -> Option<String> {
    let sum: i64 = group.as_object()?.values().filter_map(Value::as_i64).sum();
    (sum > 10).then(|| format!("the values of group add up to {sum}, more than 10"))
}

impl Validators {
    fn report(&mut self, p: &mut Ctx) -> Step {
        let which = if p.input_opt::<i64>("a")?.is_some() {
            "a"
        } else {
            "b"
        };
        p.out("which", which)?;
        let emit: i64 = p.input("emit")?;
        p.out("checked_out", emit)?;
        Ok(Next::Continue)
    }
}

damson_guest::export!(Validators);
