//! The state machine without wasm: a scripted [`Guest`] and a fake [`Outside`] (a store that
//! records every checkpoint, a table of children) behind the same traits the real plugin
//! instance and host implement. plumpy's process scenarios S01–S14, pause / play / kill in each
//! state, a kill during a step, failures, children, and the checkpoint at each point.

mod checkpoints;
mod children;
mod controls;
mod dormant;
mod failures;
mod fakes;
mod logs;
mod retries;
mod signals;
mod states;
mod timers;
