//! [`World`]: which version of the WIT world a plugin was built against, and the calls into it
//! whatever the version. The host imports of 0.1.0 are those of today's world, and what a
//! 0.1.0 plugin returns reads as today's types, which 0.2.0 only added to (a timeout on a
//! wait, a sleep): so the rest of the host knows one world.

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasmtime::Store;
use wasmtime::component::{HasSelf, Instance, InstancePre, Linker};

use super::bindings::{current, v0_1};
use super::state::StoreState;

use current::damson::workflow::types as wit;

/// A version of the WIT world that this host loads plugins of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum World {
    /// `damson:workflow@0.2.0`, what the guest SDKs build against.
    Current,
    /// `damson:workflow@0.1.0`, the first.
    V0_1,
}

impl World {
    /// Every world this host loads, newest first.
    const ALL: [World; 2] = [World::Current, World::V0_1];

    /// The world's name, e.g. `damson:workflow/plugin@0.2.0`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            World::Current => current::WORLD,
            World::V0_1 => v0_1::WORLD,
        }
    }

    /// The interface its plugins export.
    pub(crate) fn process_interface(self) -> &'static str {
        match self {
            World::Current => current::PROCESS_INTERFACE,
            World::V0_1 => v0_1::PROCESS_INTERFACE,
        }
    }

    /// The world of a component that exports `exports`, if it is one this host loads.
    pub(crate) fn exported_by(exports: &[String]) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|world| exports.iter().any(|e| e == world.process_interface()))
    }

    /// Whether a plugin may import `name` from this host: WASI (which the sandbox narrows) and
    /// the world's own interfaces, of any version this host loads.
    pub(crate) fn provides(name: &str) -> bool {
        name.starts_with("wasi:")
            || [current::HOST_INTERFACE, current::TYPES_INTERFACE]
                .into_iter()
                .chain([v0_1::HOST_INTERFACE, v0_1::TYPES_INTERFACE])
                .any(|interface| name == interface)
    }

    /// The process interfaces this host loads plugins of, for messages.
    pub(crate) fn process_interfaces() -> String {
        Self::ALL.map(World::process_interface).join(" or ")
    }
}

/// Define the host imports of every world in `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    current::Plugin::add_to_linker::<_, HasSelf<StoreState>>(linker, |state| state)?;
    v0_1::Plugin::add_to_linker::<_, HasSelf<StoreState>>(linker, |state| state)
}

/// A component linked against this host, ready to instantiate, with the world it exports.
pub(crate) enum WorldPre {
    Current(current::PluginPre<StoreState>),
    V0_1(v0_1::PluginPre<StoreState>),
}

impl WorldPre {
    /// The linked component, checked to export `world`.
    pub(crate) fn new(world: World, pre: InstancePre<StoreState>) -> wasmtime::Result<Self> {
        Ok(match world {
            World::Current => Self::Current(current::PluginPre::new(pre)?),
            World::V0_1 => Self::V0_1(v0_1::PluginPre::new(pre)?),
        })
    }

    /// The world the component was built against.
    pub(crate) fn world(&self) -> World {
        match self {
            Self::Current(_) => World::Current,
            Self::V0_1(_) => World::V0_1,
        }
    }

    pub(crate) fn instance_pre(&self) -> &InstancePre<StoreState> {
        match self {
            Self::Current(pre) => pre.instance_pre(),
            Self::V0_1(pre) => pre.instance_pre(),
        }
    }

    /// The exports of `instance`, an instance of this component.
    pub(crate) fn exports(
        &self,
        store: &mut Store<StoreState>,
        instance: &Instance,
    ) -> wasmtime::Result<Exports> {
        Ok(match self {
            Self::Current(_) => Exports::Current(current::Plugin::new(store, instance)?),
            Self::V0_1(_) => Exports::V0_1(v0_1::Plugin::new(store, instance)?),
        })
    }
}

/// The functions an instance exports, in today's types.
pub(crate) enum Exports {
    Current(current::Plugin),
    V0_1(v0_1::Plugin),
}

impl Exports {
    pub(crate) async fn describe(
        &self,
        store: &mut Store<StoreState>,
    ) -> wasmtime::Result<wit::Spec> {
        match self {
            Self::Current(p) => p.damson_workflow_process().call_describe(store).await,
            Self::V0_1(p) => {
                let spec = p.damson_workflow_process().call_describe(store).await?;
                let mut spec = serde_json::to_value(spec).map_err(unreadable)?;
                // The lists 0.2.0 added to the spec, empty.
                spec["retries"] = serde_json::json!([]);
                serde_json::from_value(spec).map_err(unreadable)
            }
        }
    }

    pub(crate) async fn run_step(
        &self,
        store: &mut Store<StoreState>,
        name: &str,
    ) -> wasmtime::Result<Result<wit::StepResult, String>> {
        match self {
            Self::Current(p) => p.damson_workflow_process().call_run_step(store, name).await,
            Self::V0_1(p) => match p
                .damson_workflow_process()
                .call_run_step(store, name)
                .await?
            {
                Ok(returned) => lift(returned).map(Ok),
                Err(e) => Ok(Err(e)),
            },
        }
    }

    pub(crate) async fn check_condition(
        &self,
        store: &mut Store<StoreState>,
        name: &str,
    ) -> wasmtime::Result<Result<bool, String>> {
        match self {
            Self::Current(p) => {
                p.damson_workflow_process()
                    .call_check_condition(store, name)
                    .await
            }
            Self::V0_1(p) => {
                p.damson_workflow_process()
                    .call_check_condition(store, name)
                    .await
            }
        }
    }

    pub(crate) async fn validate(
        &self,
        store: &mut Store<StoreState>,
        path: &str,
        value: String,
    ) -> wasmtime::Result<Option<String>> {
        match self {
            Self::Current(p) => {
                p.damson_workflow_process()
                    .call_validate(store, path, &value)
                    .await
            }
            Self::V0_1(p) => {
                p.damson_workflow_process()
                    .call_validate(store, path, &value)
                    .await
            }
        }
    }

    pub(crate) async fn compute_default(
        &self,
        store: &mut Store<StoreState>,
        path: &str,
    ) -> wasmtime::Result<Result<String, String>> {
        match self {
            Self::Current(p) => {
                p.damson_workflow_process()
                    .call_compute_default(store, path)
                    .await
            }
            Self::V0_1(p) => {
                p.damson_workflow_process()
                    .call_compute_default(store, path)
                    .await
            }
        }
    }
}

/// A value of the 0.1.0 world as the same value of today's, which has every field and case
/// 0.1.0 has (each one added since is an `option`, absent here, but the spec's lists).
fn lift<Old: Serialize, New: DeserializeOwned>(old: Old) -> wasmtime::Result<New> {
    serde_json::to_value(old)
        .and_then(serde_json::from_value)
        .map_err(unreadable)
}

fn unreadable(e: serde_json::Error) -> wasmtime::Error {
    wasmtime::Error::msg(format!("a 0.1.0 value does not read as 0.2.0: {e}"))
}

use current::damson::workflow::host as host_now;
use v0_1::damson::workflow::{host as host_0_1, types as types_0_1};

impl types_0_1::Host for StoreState {}

/// The imports of 0.1.0 are today's: the same functions, with the same meaning.
impl host_0_1::Host for StoreState {
    fn pid(&mut self) -> wasmtime::Result<String> {
        host_now::Host::pid(self)
    }

    fn inputs(&mut self) -> wasmtime::Result<String> {
        host_now::Host::inputs(self)
    }

    fn input(&mut self, path: String) -> wasmtime::Result<Option<String>> {
        host_now::Host::input(self, path)
    }

    fn context_get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        host_now::Host::context_get(self, key)
    }

    fn context_set(&mut self, key: String, value: String) -> wasmtime::Result<()> {
        host_now::Host::context_set(self, key, value)
    }

    fn context_remove(&mut self, key: String) -> wasmtime::Result<bool> {
        host_now::Host::context_remove(self, key)
    }

    fn context_keys(&mut self) -> wasmtime::Result<Vec<String>> {
        host_now::Host::context_keys(self)
    }

    fn emit_output(&mut self, path: String, value: String) -> wasmtime::Result<Result<(), String>> {
        host_now::Host::emit_output(self, path, value)
    }

    fn set_status(&mut self, message: Option<String>) -> wasmtime::Result<()> {
        host_now::Host::set_status(self, message)
    }

    fn pause(&mut self, message: Option<String>) -> wasmtime::Result<()> {
        host_now::Host::pause(self, message)
    }

    fn log(&mut self, level: types_0_1::LogLevel, message: String) -> wasmtime::Result<()> {
        let level = match level {
            types_0_1::LogLevel::Trace => wit::LogLevel::Trace,
            types_0_1::LogLevel::Debug => wit::LogLevel::Debug,
            types_0_1::LogLevel::Info => wit::LogLevel::Info,
            types_0_1::LogLevel::Warn => wit::LogLevel::Warn,
            types_0_1::LogLevel::Error => wit::LogLevel::Error,
        };
        host_now::Host::log(self, level, message)
    }

    fn launch(
        &mut self,
        plugin: String,
        inputs: String,
    ) -> wasmtime::Result<Result<String, String>> {
        host_now::Host::launch(self, plugin, inputs)
    }

    fn report_panic(&mut self, message: String, location: Option<String>) -> wasmtime::Result<()> {
        host_now::Host::report_panic(self, message, location)
    }
}
