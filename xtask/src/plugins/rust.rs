//! The Rust plugins: one cargo workspace under `plugins/`, built for `wasm32-wasip2`.

use std::process::Command;

use crate::{WASM_TARGET, cargo, root, run, target_dir};

/// Add the wasm target when rustup says it is missing.
fn ensure_wasm_target() -> Result<(), String> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("cannot run rustup to check for the {WASM_TARGET} target: {e}"))?;
    let listed = String::from_utf8_lossy(&installed.stdout);
    if listed.lines().any(|line| line.trim() == WASM_TARGET) {
        return Ok(());
    }
    run(Command::new("rustup").args(["target", "add", WASM_TARGET]))
}

pub(super) fn build() -> Result<(), String> {
    ensure_wasm_target()?;
    run(cargo()
        .current_dir(root().join("plugins"))
        .args(["build", "--release", "--target", WASM_TARGET])
        .env("CARGO_TARGET_DIR", target_dir())
        // Flags meant for the host (e.g. from a surrounding cargo) must not reach the guests.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS"))
}
