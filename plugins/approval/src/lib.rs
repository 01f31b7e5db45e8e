//! `approval`: the worked example of signals, timers and retries. A work chain that sends a
//! request to its approvers — a flaky step, retried with backoff — then waits for the `approved`
//! signal (`damson signal PID approved --data '{"by": "ada", "ok": true}'`) at most `timeout_s`
//! seconds, and says who decided; or ends with exit code 408 when nobody did in time.
use std::time::Duration;

use damson_guest::prelude::*;

#[derive(Default)]
struct Approval;

impl Process for Approval {
    fn define(spec: &mut Spec<Self>) {
        spec.description(
            "Sends `request` to the approvers (retried when that fails), waits for the \
             `approved` signal with {\"by\": NAME, \"ok\": BOOL} at most `timeout_s` seconds, \
             and outputs who approved it.",
        );
        spec.input("request")
            .valid_type(Type::Str)
            .help("What is to be approved");
        spec.input("timeout_s")
            .valid_type(Type::Int)
            .default(600)
            .help("How long to wait for the decision, in seconds");
        spec.input("flaky_sends")
            .valid_type(Type::Int)
            .default(0)
            .help("How many times sending the request fails before it works (for trying retries)");
        spec.output("sent_on_attempt")
            .valid_type(Type::Int)
            .help("The attempt at which the request was sent");
        spec.output("approved_by")
            .valid_type(Type::Str)
            .required(false)
            .help("Who approved the request");
        spec.exit_code(401, "REJECTED", "the request was rejected");
        spec.exit_code(408, "NO_DECISION", "nobody decided in time");
        // Sending may fail now and then: three attempts, 200 ms and then 400 ms apart. A trap is
        // a bug, and an empty request bad input, not bad luck: neither is retried.
        spec.retry(
            "send",
            RetryPolicy::attempts(3)
                .initial_interval(Duration::from_millis(200))
                .backoff(2.0)
                .not_on(FailureKind::Trap)
                .not_on_error("empty-request"),
        );
        spec.outline([
            step("send", Self::send),
            step("ask", Self::ask),
            step("decide", Self::decide),
        ]);
    }
}

impl Approval {
    fn send(&mut self, p: &mut Ctx) -> Step {
        let request: String = p.input("request")?;
        let flaky: u32 = p.input("flaky_sends")?;
        let attempt = p.attempt();
        if request.trim().is_empty() {
            return Err(Error::msg("there is nothing to approve").kind("empty-request"));
        }
        if attempt <= flaky {
            bail!("the approvers' inbox did not answer (attempt {attempt})");
        }
        info!("sent {request} to the approvers (attempt {attempt})");
        p.out("sent_on_attempt", attempt)?;
        Ok(Next::Continue)
    }

    fn ask(&mut self, p: &mut Ctx) -> Step {
        let request: String = p.input("request")?;
        let timeout_s: u64 = p.input("timeout_s")?;
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
