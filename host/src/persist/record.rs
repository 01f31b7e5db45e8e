//! [`ProcessCheckpoint`]: the portable part of a checkpoint.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::process::{ProcessRecord, ProcessState};
use crate::workchain::Cursor;

/// Everything needed to continue a process on a fresh instance of its exact plugin: the
/// process record and the outline cursor, with the children it awaits and what it waits for.
/// A memory image, when the plugin is snapshot-safe, travels beside it in the bundle.
///
/// JSON values are kept as JSON text: the bundle's encoding (postcard) is not self-describing,
/// and text keeps every value exactly as the plugin saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessCheckpoint {
    pub tenant: String,
    pub pid: String,
    pub plugin: String,
    /// The SHA-256 digest of the component: a checkpoint continues on this exact code only.
    pub plugin_digest: String,
    pub state: ProcessState,
    pub paused: bool,
    pub status: Option<String>,
    pub position: String,
    pub cursor: Cursor,
    pub inputs: String,
    pub outputs: String,
    pub context: String,
    pub exit_status: Option<u32>,
    pub exit_message: Option<String>,
    pub missing_outputs: Vec<String>,
    pub error: Option<String>,
    pub parent: Option<String>,
    pub children: Vec<String>,
    /// Creation time, milliseconds since the Unix epoch.
    pub ctime: u64,
    /// What is left of the last step, when it is not all done: children to launch and await,
    /// and what the step asked for next. `None` between two steps.
    pub after_step: Option<AfterStep>,
}

/// The rest of a step that returned: the host carries it out, after the checkpoint that
/// commits the step, and carries it out again (idempotently) after a restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AfterStep {
    /// The step's name, for messages.
    pub step: String,
    /// Children the step launched, to create unless they exist: a child is created once, with
    /// the pid the step was given.
    pub launches: Vec<ChildLaunch>,
    /// Children to await, and where their records go in the context.
    pub awaiting: Vec<AwaitedChild>,
    /// What comes once they have terminated.
    pub then: Then,
    /// The step asked for a pause (with this message), not yet applied.
    pub pause: Option<Option<String>>,
}

/// What a step asked for next, once the children it awaits have terminated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Then {
    Continue,
    /// Wait to be resumed (by the named event), with a status message.
    Wait {
        event: Option<String>,
        message: Option<String>,
    },
    Finish {
        status: u32,
        message: Option<String>,
    },
    Kill {
        message: Option<String>,
    },
}

/// A child a step launched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildLaunch {
    pub pid: String,
    pub plugin: String,
    /// Its inputs, as JSON text.
    pub inputs: String,
}

/// A child awaited into the context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwaitedChild {
    pub pid: String,
    pub key: String,
    pub append: bool,
    pub inspect: bool,
}

impl ProcessCheckpoint {
    /// The checkpoint of a process as `record` and `cursor` describe it, between two steps.
    pub fn new(tenant: &str, record: &ProcessRecord, cursor: &Cursor) -> Self {
        Self {
            tenant: tenant.to_string(),
            pid: record.pid.clone(),
            plugin: record.plugin.clone(),
            plugin_digest: record.plugin_digest.clone(),
            state: record.state,
            paused: record.paused,
            status: record.status.clone(),
            position: record.position.clone(),
            cursor: cursor.clone(),
            inputs: record.inputs.to_string(),
            outputs: record.outputs.to_string(),
            context: Value::Object(record.context.clone()).to_string(),
            exit_status: record.exit_status,
            exit_message: record.exit_message.clone(),
            missing_outputs: record.missing_outputs.clone(),
            error: record.error.clone(),
            parent: record.parent.clone(),
            children: record.children.clone(),
            ctime: record.ctime,
            after_step: None,
        }
    }

    /// The process record this checkpoint holds.
    ///
    /// # Errors
    /// When a JSON value in it does not parse (a bundle that passed its checksum was written
    /// that way: a bug, reported rather than guessed around).
    pub fn record(&self) -> Result<ProcessRecord, serde_json::Error> {
        let context = match serde_json::from_str::<Value>(&self.context)? {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        Ok(ProcessRecord {
            pid: self.pid.clone(),
            plugin: self.plugin.clone(),
            plugin_digest: self.plugin_digest.clone(),
            state: self.state,
            paused: self.paused,
            inputs: serde_json::from_str(&self.inputs)?,
            outputs: serde_json::from_str(&self.outputs)?,
            context,
            status: self.status.clone(),
            position: self.position.clone(),
            exit_status: self.exit_status,
            exit_message: self.exit_message.clone(),
            missing_outputs: self.missing_outputs.clone(),
            error: self.error.clone(),
            parent: self.parent.clone(),
            children: self.children.clone(),
            awaiting: match (&self.after_step, self.state) {
                (Some(after), ProcessState::Waiting) => {
                    after.awaiting.iter().map(|a| a.pid.clone()).collect()
                }
                _ => Vec::new(),
            },
            ctime: self.ctime,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::bundle;
    use crate::workchain::{Call, Node, Outline};
    use serde_json::json;

    #[test]
    fn a_checkpoint_mid_loop_round_trips_through_a_bundle() {
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

        let record = ProcessRecord {
            pid: "p-1".into(),
            plugin: "counter".into(),
            plugin_digest: "ab".repeat(32),
            state: ProcessState::Waiting,
            paused: true,
            inputs: json!({"n": 1000, "big": 1.5e300, "nested": {"list": [1, "two", null]}}),
            outputs: json!({}),
            context: json!({"i": 41}).as_object().unwrap().clone(),
            status: Some("paused by the operator".into()),
            position: outline.position(&cursor),
            exit_status: None,
            exit_message: None,
            missing_outputs: vec![],
            error: None,
            parent: None,
            children: vec!["c-1".into()],
            awaiting: vec![],
            ctime: 1_764_000_000_000,
        };
        let checkpoint = ProcessCheckpoint::new("default", &record, &cursor);
        let bytes = bundle::encode(&checkpoint, None);
        let body = bundle::decode::<ProcessCheckpoint>(&bytes).unwrap();
        assert_eq!(body.record, checkpoint);
        assert_eq!(body.record.record().unwrap(), record);
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
}
