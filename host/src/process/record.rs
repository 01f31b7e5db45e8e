//! [`ProcessRecord`]: what is known about a process — the record its watchers see, and the body
//! of every checkpoint.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::ProcessState;
use crate::guest::{AwaitChild, Launch, Next};
use crate::workchain::Cursor;

/// What is known about a process: its identity, state, data, where it is, and how it ended.
///
/// The same record is what a [`ProcessHandle`](crate::ProcessHandle) shows and what a checkpoint
/// holds (encoded with postcard, JSON values as JSON text; see [`persist`](crate::persist)), so
/// everything needed to continue a process on a fresh instance of its exact plugin is here. A
/// memory image, for a snapshot-safe plugin, travels beside it in the bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// The process id (a UUID).
    pub pid: String,
    /// The plugin's declared name.
    pub plugin: String,
    /// The SHA-256 digest of the plugin's component: the exact code the process runs, and the
    /// only code a checkpoint continues on.
    pub plugin_digest: String,
    /// The state, as in plumpy.
    pub state: ProcessState,
    /// Whether the process is paused (a terminated process can be, as in plumpy).
    pub paused: bool,
    /// The inputs, validated and with defaults applied.
    #[serde(with = "crate::json_text")]
    pub inputs: Value,
    /// The outputs emitted so far (a nested object).
    #[serde(with = "crate::json_text")]
    pub outputs: Value,
    /// The context, as the last step left it.
    #[serde(with = "crate::json_text")]
    pub context: Map<String, Value>,
    /// The status message, if any.
    pub status: Option<String>,
    /// Where the process is (or stopped) in its outline, e.g. `1:while_(above_one)(0:halve)`.
    pub position: String,
    /// FINISHED only: the exit status (0 is success).
    pub exit_status: Option<u32>,
    /// FINISHED: the exit code's message, or why the process is not successful; KILLED: the
    /// kill message.
    pub exit_message: Option<String>,
    /// FINISHED only: required outputs that were never emitted (which makes the process
    /// unsuccessful, as in plumpy).
    pub missing_outputs: Vec<String>,
    /// EXCEPTED only: what went wrong, and in which step.
    pub error: Option<String>,
    /// The process that launched this one, if any.
    pub parent: Option<String>,
    /// The processes this one launched, in order.
    pub children: Vec<String>,
    /// WAITING only: the children it waits for (none when it waits for a resume).
    pub awaiting: Vec<String>,
    /// WAITING for a signal only: the event it waits for (`None` for a plain resume, or when
    /// it waits for children or does not wait).
    pub waiting_for: Option<String>,
    /// WAITING with a timer only: when it fires, in milliseconds since the Unix epoch — the
    /// end of a sleep, or the timeout of a wait for a signal.
    pub timer: Option<u64>,
    /// WAITING only: whether the process sleeps until its [`timer`](Self::timer), which
    /// nothing else ends.
    pub sleeping: bool,
    /// While a failed step is tried again under its retry policy: which, the attempts, and
    /// each failed attempt's error.
    pub retry: Option<Retry>,
    /// Creation time, milliseconds since the Unix epoch.
    pub ctime: u64,
    /// Where the process is in its outline, exactly (what [`position`](Self::position) shows).
    pub(crate) cursor: Cursor,
    /// What is left of the last step when it is not all done — children to launch and await,
    /// and what the step asked for next; carried out again after a restore. `None` between two
    /// steps.
    pub(crate) after_step: Option<AfterStep>,
    /// The numbers of the signals the process has taken, so that none is taken twice (see
    /// `process::signal`).
    pub(crate) taken_signals: Vec<u64>,
}

/// A failed step being tried again under its retry policy ([`ProcessRecord::retry`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retry {
    /// The step.
    pub step: String,
    /// The attempt that runs next (2 for the first retry).
    pub attempt: u32,
    /// The attempts the policy allows in all.
    pub max_attempts: u32,
    /// Each failed attempt's error, oldest first: the last is the last error.
    pub errors: Vec<String>,
    /// The status message before the retries, shown again when the step is tried again (the
    /// status says `retrying step …` only while the process waits to retry).
    pub status_before: Option<String>,
}

/// The rest of a step that returned: carried out after the checkpoint that commits the step,
/// and again (idempotently) after a restore.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct AfterStep {
    /// The step's name, for messages.
    pub(crate) step: String,
    /// Children the step launched, to create unless they exist: each is created once, with the
    /// pid the step was given.
    pub(crate) launches: Vec<Launch>,
    /// Children to await, and where their records go in the context.
    pub(crate) awaiting: Vec<AwaitChild>,
    /// What comes once they have terminated.
    pub(crate) then: Next,
    /// A pause the step asked for (with this message), not yet applied.
    pub(crate) pause: Option<Option<String>>,
}

impl ProcessRecord {
    /// The record of a new process, CREATED at the start of its outline.
    pub(crate) fn new(
        pid: String,
        plugin: String,
        plugin_digest: String,
        inputs: Value,
        parent: Option<String>,
        cursor: Cursor,
        ctime: u64,
    ) -> Self {
        Self {
            pid,
            plugin,
            plugin_digest,
            state: ProcessState::Created,
            paused: false,
            inputs,
            outputs: Value::Object(Map::new()),
            context: Map::new(),
            status: None,
            position: String::new(),
            exit_status: None,
            exit_message: None,
            missing_outputs: Vec::new(),
            error: None,
            parent,
            children: Vec::new(),
            awaiting: Vec::new(),
            waiting_for: None,
            timer: None,
            sleeping: false,
            retry: None,
            ctime,
            cursor,
            after_step: None,
            taken_signals: Vec::new(),
        }
    }

    /// Whether the process is WAITING for what only someone outside can send — a resume or a
    /// signal, with no timer to end the wait and no children to wait for: it goes no further
    /// on its own.
    pub fn waits_on_others(&self) -> bool {
        self.state == ProcessState::Waiting && self.awaiting.is_empty() && self.timer.is_none()
    }

    /// Whether the process finished with exit status 0 and all required outputs; `None` until it
    /// has terminated (plumpy's `is_successful`, which raises before termination).
    pub fn successful(&self) -> Option<bool> {
        match self.state {
            ProcessState::Finished => {
                Some(self.exit_status == Some(0) && self.missing_outputs.is_empty())
            }
            ProcessState::Excepted | ProcessState::Killed => Some(false),
            _ => None,
        }
    }

    /// The short form shown by `damson run --json` and stored in a parent's context for an
    /// awaited child: `pid`, `plugin`, `state`, `paused`, `successful`, `exit_status`,
    /// `exit_message`, `outputs`, `error`.
    pub fn summary(&self) -> Value {
        json!({
            "pid": self.pid,
            "plugin": self.plugin,
            "state": self.state,
            "paused": self.paused,
            "successful": self.successful(),
            "exit_status": self.exit_status,
            "exit_message": self.exit_message,
            "outputs": self.outputs,
            "error": self.error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::Timer;
    use crate::persist::bundle;
    use crate::workchain::{Call, Node, Outline};

    #[test]
    fn a_record_paused_mid_loop_round_trips_through_a_bundle() {
        // while_(more)(bump), stopped inside the loop body.
        let outline = Outline::from_nodes(
            &[
                Node::Step("bump".into()),
                Node::Sequence(vec![0]),
                Node::While("more".into(), 1),
                Node::Sequence(vec![2]),
            ],
            3,
        )
        .unwrap();
        let mut cursor = outline.start();
        assert_eq!(outline.next(&mut cursor), Call::Condition("more"));
        outline.condition(&mut cursor, true);
        assert_eq!(outline.next(&mut cursor), Call::Step("bump"));

        let mut record = ProcessRecord::new(
            "p-1".into(),
            "counter".into(),
            "ab".repeat(32),
            json!({"n": 1000, "big": 1.5e300, "nested": {"list": [1, "two", null]}}),
            None,
            cursor,
            1_764_000_000_000,
        );
        record.state = ProcessState::Waiting;
        record.paused = true;
        record.context = json!({"i": 41}).as_object().unwrap().clone();
        record.status = Some("paused by the operator".into());
        record.position = outline.position(&record.cursor);
        record.children = vec!["c-1".into()];
        record.awaiting = vec!["c-1".into()];
        record.after_step = Some(AfterStep {
            step: "bump".into(),
            launches: vec![Launch {
                pid: "c-1".into(),
                plugin: "add".into(),
                inputs: json!({"x": 1, "y": 2.5}),
            }],
            awaiting: vec![AwaitChild {
                pid: "c-1".into(),
                key: "sum".into(),
                append: true,
                inspect: false,
            }],
            then: Next::Wait {
                event: Some("go".into()),
                message: None,
                timeout: Some(Timer::At {
                    unix_ms: 1_700_000_000_000,
                }),
            },
            pause: Some(None),
        });

        let bytes = bundle::encode(&record, None);
        let body = bundle::decode::<ProcessRecord>(&bytes).unwrap();
        assert_eq!(body.record, record);
        let mut restored = body.record.cursor;
        assert_eq!(
            outline.next(&mut restored),
            Call::Step("bump"),
            "continues where it stopped"
        );
        assert!(
            bytes.len() < 1024,
            "a small process makes a small bundle: {} bytes",
            bytes.len()
        );
    }

    #[test]
    fn as_json_the_record_keeps_its_values_as_values() {
        let record = ProcessRecord::new(
            "p-1".into(),
            "add".into(),
            String::new(),
            json!({"x": 1}),
            None,
            Cursor::Return,
            0,
        );
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["inputs"], json!({"x": 1}), "not JSON text: {json}");
        assert_eq!(json["state"], "CREATED");
        let back: ProcessRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, record);
    }
}
