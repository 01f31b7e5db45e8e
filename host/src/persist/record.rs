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
    /// The children a WAITING process awaits, and where their records go.
    pub awaiting: Vec<AwaitedChild>,
    /// For a process waiting to be resumed: the event it waits for (`None`: a plain resume).
    pub waiting_for: Option<Option<String>>,
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
    /// The checkpoint of a process as `record` and `cursor` describe it.
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
            awaiting: Vec::new(),
            waiting_for: None,
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
            awaiting: self.awaiting.iter().map(|a| a.pid.clone()).collect(),
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
