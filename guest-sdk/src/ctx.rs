//! [`Ctx`]: what a step can read and do, through the host.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::__private::bindings::damson::workflow::host;
use crate::__private::bindings::damson::workflow::types::AwaitChild;
use crate::{Error, Result};

/// A launched child process, to await into the context with [`Ctx::to_context`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildId(pub String);

/// A step's view of its process: inputs, context, outputs, status and children.
///
/// Inputs are read-only. The context is the process's durable key-value store (JSON values),
/// shared by all steps and kept in every checkpoint.
pub struct Ctx {
    awaits: Vec<AwaitChild>,
}

impl Ctx {
    pub(crate) fn new() -> Self {
        Self { awaits: Vec::new() }
    }

    pub(crate) fn take_awaits(&mut self) -> Vec<AwaitChild> {
        std::mem::take(&mut self.awaits)
    }

    /// This process's id.
    pub fn pid(&self) -> String {
        host::pid()
    }

    /// The input at a dotted path, converted to `T`. An error names the path when it is missing or
    /// of another type.
    pub fn input<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        match self.input_opt(path)? {
            Some(value) => Ok(value),
            None => Err(Error::msg(format!("input '{path}' was not given"))),
        }
    }

    /// The input at a dotted path, if given.
    pub fn input_opt<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>> {
        host::input(path)
            .map(|json| parse(&json, "input", path))
            .transpose()
    }

    /// All inputs as one JSON object.
    pub fn inputs(&self) -> Result<serde_json::Value> {
        parse(&host::inputs(), "inputs", "")
    }

    /// The context value under `key`, converted to `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T> {
        match self.get_opt(key)? {
            Some(value) => Ok(value),
            None => Err(Error::msg(format!("the context has no key '{key}'"))),
        }
    }

    /// The context value under `key`, if any.
    pub fn get_opt<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        host::context_get(key)
            .map(|json| parse(&json, "context key", key))
            .transpose()
    }

    /// Which attempt of the running step this is: 1 for the first, 2 for the first retry
    /// under its [`RetryPolicy`](crate::RetryPolicy).
    pub fn attempt(&self) -> u32 {
        host::attempt()
    }

    /// Whether the last wait with a timeout ended because its timer fired first (the context
    /// key `timed_out`); false when the signal came, or no such wait has ended.
    pub fn timed_out(&self) -> bool {
        self.get_opt::<bool>("timed_out")
            .ok()
            .flatten()
            .unwrap_or(false)
    }

    /// Set the context value under `key`.
    pub fn set<T: Serialize>(&mut self, key: &str, value: T) -> Result<()> {
        host::context_set(key, &serde_json::to_string(&value)?);
        Ok(())
    }

    /// Remove `key` from the context; returns whether it was there.
    pub fn remove(&mut self, key: &str) -> bool {
        host::context_remove(key)
    }

    /// All context keys, sorted.
    pub fn keys(&self) -> Vec<String> {
        host::context_keys()
    }

    /// Emit an output at a dotted path. The host validates it against the output ports; an invalid
    /// output is an error here and ends the process EXCEPTED after this step.
    pub fn out<T: Serialize>(&mut self, path: &str, value: T) -> Result<()> {
        host::emit_output(path, &serde_json::to_string(&value)?).map_err(Error::msg)
    }

    /// Set the process's status message (`None` clears it).
    pub fn status(&mut self, message: Option<&str>) {
        host::set_status(message);
    }

    /// Ask for this process to be paused once this step returns; `message` replaces the status
    /// while paused. The process waits there until it is played.
    pub fn pause(&mut self, message: Option<&str>) {
        host::pause(message);
    }

    /// Launch a child process of the named plugin with these inputs.
    pub fn launch(&mut self, plugin: &str, inputs: serde_json::Value) -> Result<ChildId> {
        host::launch(plugin, &inputs.to_string())
            .map(ChildId)
            .map_err(Error::msg)
    }

    /// Await `child` after this step and store its record under `key` (plumpy's `ToContext`).
    ///
    /// The record is an object with `pid`, `plugin`, `state`, `successful`, `exit_status`,
    /// `exit_message`, `outputs` and `error`. A child that does not finish successfully makes
    /// this process end EXCEPTED; use [`inspect_in_context`](Self::inspect_in_context) to handle
    /// failures in a later step instead.
    pub fn to_context(&mut self, key: &str, child: &ChildId) {
        self.await_child(key, child, false, false);
    }

    /// Await `child` after this step and append its record to the list under `key`.
    pub fn append_to_context(&mut self, key: &str, child: &ChildId) {
        self.await_child(key, child, true, false);
    }

    /// Await `child` and store its record under `key` whether or not it succeeded: a later step
    /// inspects it.
    pub fn inspect_in_context(&mut self, key: &str, child: &ChildId) {
        self.await_child(key, child, false, true);
    }

    fn await_child(&mut self, key: &str, child: &ChildId, append: bool, inspect: bool) {
        let (pid, key) = (child.0.clone(), key.to_string());
        self.awaits.push(AwaitChild {
            pid,
            key,
            append,
            inspect,
        });
    }
}

fn parse<T: DeserializeOwned>(json: &str, what: &str, name: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|e| Error::msg(format!("{what} '{name}': {e}")))
}
