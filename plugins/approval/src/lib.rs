//! `approval`: a work chain that asks for an approval and waits for the `approved` signal
//! (`damson signal PID approved --data '{"by": "ada", "ok": true}'`) at most `timeout_s`
//! seconds, then says who decided — or ends with exit code 408 when nobody did in time.
use std::time::Duration;

use damson_guest::prelude::*;

#[derive(Default)]
struct Approval;

impl Process for Approval {
    fn define(spec: &mut Spec<Self>) {
        spec.description(
            "Asks for an approval of `request`, waits for the `approved` signal with \
             {\"by\": NAME, \"ok\": BOOL}, and outputs who approved it.",
        );
        spec.input("request")
            .valid_type(Type::Str)
            .help("What is to be approved");
        spec.input("timeout_s")
            .valid_type(Type::Int)
            .default(600)
            .help("How long to wait for the decision, in seconds");
        spec.output("approved_by")
            .valid_type(Type::Str)
            .required(false)
            .help("Who approved the request");
        spec.exit_code(401, "REJECTED", "the request was rejected");
        spec.exit_code(408, "NO_DECISION", "nobody decided in time");
        spec.outline([step("ask", Self::ask), step("decide", Self::decide)]);
    }
}

impl Approval {
    fn ask(&mut self, p: &mut Ctx) -> Step {
        let request: String = p.input("request")?;
        let timeout_s: u64 = p.input("timeout_s")?;
        info!("asking for an approval of {request}");
        Ok(Next::wait_for("approved")
            .with_message(&format!("waiting for an approval of {request}"))
            .at_most(Duration::from_secs(timeout_s)))
    }

    fn decide(&mut self, p: &mut Ctx) -> Step {
        if p.timed_out() {
            info!("nobody decided in time");
            return Ok(Next::Finish(ExitCode::new(408)));
        }
        // The `approved` signal's payload, which the host put into the context.
        let decision: Value = p.get("approved")?;
        let Some(by) = decision["by"].as_str() else {
            bail!("the approval names nobody: expected {{\"by\": NAME}}, got {decision}");
        };
        if decision["ok"] == false {
            info!("rejected by {by}");
            return Ok(Next::Finish(ExitCode::new(401)));
        }
        info!("approved by {by}");
        p.out("approved_by", by)?;
        Ok(Next::Continue)
    }
}

damson_guest::export!(Approval);
