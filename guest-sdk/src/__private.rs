//! Glue between the generated bindings and a [`Process`]. Used by [`export!`](crate::export) only.

use std::collections::HashMap;

use crate::outline::{Condition, StepFn};
use crate::spec::Spec;
use crate::{Next, Process, Timer};

pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "damson:workflow/plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin",
        default_bindings_module: "::damson_guest::__private::bindings",
        runtime_path: "::damson_guest::__private::wit_bindgen::rt",
        generate_all,
    });
}

pub use bindings::__export_plugin;
pub use bindings::exports::damson::workflow::process::Guest;
pub use wit_bindgen;

use bindings::damson::workflow::types as wit;

/// Per-component state: the spec (built once) and the process value (built before the first step).
pub struct Runtime<P: Process> {
    spec: Option<Built<P>>,
    process: Option<P>,
}

struct Built<P: Process> {
    wit: wit::Spec,
    steps: HashMap<String, (StepFn<P>, usize)>,
    conditions: HashMap<String, (Condition<P>, usize)>,
    validators: HashMap<String, fn(&serde_json::Value) -> Option<String>>,
    defaults: HashMap<String, fn() -> serde_json::Value>,
}

impl<P: Process> Default for Runtime<P> {
    fn default() -> Self {
        Self {
            spec: None,
            process: None,
        }
    }
}

impl<P: Process> Runtime<P> {
    fn built(&mut self) -> &Built<P> {
        crate::log::install_panic_hook();
        self.spec.get_or_insert_with(|| {
            let mut spec = Spec::<P>::new();
            P::define(&mut spec);
            let parts = spec.finish();
            Built {
                wit: parts.wit,
                steps: parts.steps,
                conditions: parts.conditions,
                validators: parts.validators,
                defaults: parts.defaults,
            }
        })
    }

    pub fn describe(&mut self, name: &str, version: &str) -> wit::Spec {
        let mut spec = self.built().wit.clone();
        if spec.name.is_empty() {
            spec.name = name.to_string();
        }
        if spec.version.is_empty() {
            spec.version = version.to_string();
        }
        spec
    }

    pub fn run_step(&mut self, name: &str) -> Result<wit::StepResult, String> {
        let Some(step) = self.built().steps.get(name).map(|(f, _)| *f) else {
            return Err(format!("the plugin has no step named '{name}'"));
        };
        let process = self.process.get_or_insert_with(P::default);
        let mut ctx = crate::Ctx::new();
        let next = step(process, &mut ctx).map_err(|e| {
            let (message, kind) = e.into_parts();
            if let Some(kind) = kind {
                bindings::damson::workflow::host::error_kind(&kind);
            }
            message
        })?;
        Ok(wit::StepResult {
            next: next_to_wit(next),
            awaits: ctx.take_awaits(),
        })
    }

    pub fn check_condition(&mut self, name: &str) -> Result<bool, String> {
        let Some(condition) = self.built().conditions.get(name).map(|(f, _)| *f) else {
            return Err(format!("the plugin has no condition named '{name}'"));
        };
        let process = self.process.get_or_insert_with(P::default);
        condition(process, &crate::Ctx::new()).map_err(|e| e.to_string())
    }

    pub fn validate(&mut self, path: &str, value: &str) -> Option<String> {
        let Some(validator) = self.built().validators.get(path).copied() else {
            return Some(format!("the plugin has no validator for '{path}'"));
        };
        match serde_json::from_str(value) {
            Ok(value) => validator(&value),
            Err(e) => Some(format!("the host sent invalid JSON for '{path}': {e}")),
        }
    }

    pub fn compute_default(&mut self, path: &str) -> Result<String, String> {
        let Some(default) = self.built().defaults.get(path).copied() else {
            return Err(format!("the plugin has no computed default for '{path}'"));
        };
        Ok(default().to_string())
    }
}

fn next_to_wit(next: Next) -> wit::Next {
    match next {
        Next::Continue => wit::Next::Continue,
        Next::Wait {
            event,
            message,
            timeout,
        } => wit::Next::Wait(wit::WaitFor {
            event,
            message,
            timeout: timeout.map(timer_to_wit),
        }),
        Next::Sleep(timer) => wit::Next::Sleep(timer_to_wit(timer)),
        Next::Finish(code) => wit::Next::Finish(wit::Exit {
            status: code.status,
            message: code.message,
        }),
        Next::Kill(message) => wit::Next::Kill(message),
    }
}

fn timer_to_wit(timer: Timer) -> wit::Timer {
    match timer {
        Timer::After(duration) => {
            wit::Timer::AfterMs(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
        }
        Timer::AtUnixMs(ms) => wit::Timer::AtUnixMs(ms),
    }
}

/// Export a [`Process`](crate::Process) type as the plugin of this component.
///
/// The plugin's name and version default to the crate's `CARGO_PKG_NAME` and `CARGO_PKG_VERSION`;
/// [`Spec::name`](crate::Spec::name) and [`Spec::version`](crate::Spec::version) override them.
#[macro_export]
macro_rules! export {
    ($process:ty) => {
        const _: () = {
            struct __DamsonPlugin;

            ::std::thread_local! {
                static RUNTIME: ::core::cell::RefCell<$crate::__private::Runtime<$process>> =
                    ::core::cell::RefCell::new(::core::default::Default::default());
            }

            fn __with<R>(f: impl FnOnce(&mut $crate::__private::Runtime<$process>) -> R) -> R {
                RUNTIME.with(|runtime| f(&mut runtime.borrow_mut()))
            }

            impl $crate::__private::Guest for __DamsonPlugin {
                fn describe() -> $crate::__private::WitSpec {
                    __with(|r| r.describe(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION")))
                }
                fn run_step(name: String) -> Result<$crate::__private::WitStepResult, String> {
                    __with(|r| r.run_step(&name))
                }
                fn check_condition(name: String) -> Result<bool, String> {
                    __with(|r| r.check_condition(&name))
                }
                fn validate(path: String, value: String) -> Option<String> {
                    __with(|r| r.validate(&path, &value))
                }
                fn compute_default(path: String) -> Result<String, String> {
                    __with(|r| r.compute_default(&path))
                }
            }

            $crate::__private::__export_plugin!(
                __DamsonPlugin with_types_in $crate::__private::bindings
            );
        };
    };
}

pub type WitSpec = wit::Spec;
pub type WitStepResult = wit::StepResult;
pub use crate::log::log;
