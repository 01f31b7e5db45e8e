//! `oldworld`: a plugin built against the first WIT world, `damson:workflow@0.1.0` (as
//! `wit/0.1.0/` keeps it), with wit-bindgen alone — what a plugin built before 0.2.0 is. It
//! greets `name`, waits for the event `go`, and outputs the payload's `word`.

wit_bindgen::generate!({
    path: "../../wit/0.1.0",
    world: "damson:workflow/plugin",
});

use damson::workflow::host;
use damson::workflow::types::{
    Exit, Instruction, LogLevel, Next, Outline, Port, Spec, StepResult, ValueType, WaitFor,
};
use exports::damson::workflow::process::Guest;

struct OldWorld;

fn port(path: &str, required: bool) -> Port {
    Port {
        path: path.into(),
        namespace: false,
        valid_types: vec![ValueType::Str],
        required,
        default: None,
        help: None,
        validator: false,
        dynamic: false,
        populate_defaults: true,
    }
}

impl Guest for OldWorld {
    fn describe() -> Spec {
        Spec {
            name: "oldworld".into(),
            version: "0.1.0".into(),
            description: Some("Built against damson:workflow@0.1.0".into()),
            inputs: vec![port("name", true)],
            outputs: vec![port("greeting", true), port("word", false)],
            exposes: Vec::new(),
            exit_codes: Vec::new(),
            outline: Outline {
                nodes: vec![
                    Instruction::Step("greet".into()),
                    Instruction::Step("heard".into()),
                    Instruction::Sequence(vec![0, 1]),
                ],
                root: 2,
            },
        }
    }

    fn run_step(name: String) -> Result<StepResult, String> {
        let next = match name.as_str() {
            "greet" => {
                let who = host::input("name").ok_or("no name")?;
                let greeting = format!("\"Hello, {}!\"", who.trim_matches('"'));
                host::emit_output("greeting", &greeting)?;
                host::log(LogLevel::Info, "greeted; waiting for go");
                Next::Wait(WaitFor {
                    event: Some("go".into()),
                    message: Some("waiting for go".into()),
                })
            }
            "heard" => {
                let payload = host::context_get("go").ok_or("the go signal had no payload")?;
                // The payload is a JSON object with a string `word`; pass the word on as is.
                let word = payload
                    .split("\"word\"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').nth(1))
                    .ok_or_else(|| format!("no word in {payload}"))?;
                host::emit_output("word", &format!("\"{word}\""))?;
                Next::Finish(Exit {
                    status: 0,
                    message: None,
                })
            }
            other => return Err(format!("no step {other}")),
        };
        Ok(StepResult {
            next,
            awaits: Vec::new(),
        })
    }

    fn check_condition(name: String) -> Result<bool, String> {
        Err(format!("no condition {name}"))
    }

    fn validate(path: String, _: String) -> Option<String> {
        Some(format!("no validator for {path}"))
    }

    fn compute_default(path: String) -> Result<String, String> {
        Err(format!("no computed default for {path}"))
    }
}

export!(OldWorld);
