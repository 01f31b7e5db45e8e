//! `lifecycle`: a test plugin whose one step ends the way its `mode` input says (plumpy S01,
//! S02, S04, S07, S14, S31).
use damson_guest::prelude::*;

#[derive(Default)]
struct Lifecycle {
    /// Kept in the plugin's own memory from the first step to the last (mode `remember`):
    /// only a memory image carries it across a wait that outlives the instance.
    remembered: Option<String>,
}

impl Process for Lifecycle {
    fn define(spec: &mut Spec<Self>) {
        spec.input("mode")
            .valid_type(Type::Str)
            .default("ok")
            .help("ok | raise | kill | unsuccessful | wait | remember | pause");
        spec.input_namespace("").dynamic(true);
        spec.output("default").valid_type(Type::Int).required(false);
        spec.output("finished")
            .valid_type(Type::Bool)
            .required(false);
        spec.output("resumed_with").required(false);
        spec.output("remembered")
            .valid_type(Type::Str)
            .required(false);
        spec.exit_code(256, "UNSUCCESSFUL", "an unsuccessful result");
        spec.outline([step("run", Self::run), step("last_step", Self::last_step)]);
    }
}

impl Lifecycle {
    fn run(&mut self, p: &mut Ctx) -> Step {
        let mode: String = p.input("mode")?;
        match mode.as_str() {
            "ok" => {
                p.out("default", 5)?;
                Ok(Next::Finish(ExitCode::new(0)))
            }
            "raise" => {
                p.out("default", 5)?;
                bail!("exception during run")
            }
            "kill" => Ok(Next::Kill("killed".into())),
            "unsuccessful" => Ok(Next::Finish(ExitCode::new(256))),
            "pause" => {
                p.out("default", 5)?;
                p.pause(None);
                Ok(Next::Finish(ExitCode::new(0)))
            }
            "wait" => Ok(Next::Wait {
                event: None,
                message: Some("waiting to be resumed".into()),
                timeout: None,
            }),
            "remember" => {
                self.remembered = Some(format!("kept in memory by {}", p.pid()));
                Ok(Next::Wait {
                    event: None,
                    message: Some("waiting to be resumed".into()),
                    timeout: None,
                })
            }
            other => bail!("unknown mode '{other}'"),
        }
    }

    /// Only reached after a wait.
    fn last_step(&mut self, p: &mut Ctx) -> Step {
        p.out("finished", true)?;
        if let Some(remembered) = &self.remembered {
            p.out("remembered", remembered.as_str())?;
        }
        if let Some(value) = p.get_opt::<Value>("resumed")? {
            p.out("resumed_with", value)?;
        }
        Ok(Next::Continue)
    }
}

damson_guest::export!(Lifecycle);
