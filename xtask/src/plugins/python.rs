//! The Python plugins under `plugins/python/`: each directory `<name>/` holds the module
//! `<name>.py`, built with componentize-py (pinned, in a virtual environment under
//! `target/polyglot/venv`) into `<name>-py.wasm`, with the SDK of `guest-sdk/python/` beside it.
//!
//! The sources are built from a copy under `target/polyglot/python/`: the Python inside
//! componentize-py imports them and writes `__pycache__` next to them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::SystemTime;

use crate::{plugin_dir, root, run, target_dir};

/// The componentize-py release the plugins are built with, from PyPI.
const COMPONENTIZE_PY: &str = "0.25.1";

pub(super) fn build() -> Result<(), String> {
    let sources = root().join("plugins").join("python");
    let mut plugins = Vec::new();
    for entry in
        fs::read_dir(&sources).map_err(|e| format!("cannot list {}: {e}", sources.display()))?
    {
        let dir = entry
            .map_err(|e| format!("cannot list {}: {e}", sources.display()))?
            .path();
        if dir.is_dir() {
            plugins.push(dir);
        }
    }
    plugins.sort();
    let sdk = root().join("guest-sdk").join("python");
    let wit = root().join("wit");
    let out_dir = plugin_dir();
    fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let tool = componentize_py()?;
    // A new toolchain (its script is rewritten on install) rebuilds every plugin too.
    let shared = newest(&[sdk.as_path(), wit.as_path(), tool.as_path()])?;
    let mut stale = Vec::new();
    for dir in &plugins {
        let name = file_name(dir);
        let output = out_dir.join(format!("{name}-py.wasm"));
        let sources_changed = newest(&[dir.as_path()])?.max(shared);
        if modified(&output).is_some_and(|built| built > sources_changed) {
            eprintln!("xtask: {name}-py is up to date");
        } else {
            stale.push((dir, output));
        }
    }
    if stale.is_empty() {
        return Ok(());
    }
    let staging = target_dir().join("polyglot").join("python");
    let staged_sdk = staging.join("sdk");
    stage(&sdk, &staged_sdk)?;
    // Each build is one process of its own, mostly single-threaded: run them side by side.
    thread::scope(|scope| {
        let builds: Vec<_> = stale
            .iter()
            .map(|(dir, output)| {
                let staged = staging.join("plugins").join(file_name(dir));
                let sdk = &staged_sdk;
                let (tool, wit) = (&tool, &wit);
                scope.spawn(move || {
                    stage(dir, &staged)?;
                    componentize(tool, wit, sdk, &staged, output)
                })
            })
            .collect();
        // Every build is waited for (the scope joins them all); the first failure is reported.
        builds.into_iter().try_for_each(|build| {
            build
                .join()
                .unwrap_or_else(|_| Err("a build thread panicked".into()))
        })
    })
}

/// Build the plugin in `dir` into `output`, through a temporary file so that a failed build
/// never leaves an output that looks up to date.
fn componentize(
    componentize_py: &Path,
    wit: &Path,
    sdk: &Path,
    dir: &Path,
    output: &Path,
) -> Result<(), String> {
    let name = file_name(dir);
    if !dir.join(format!("{name}.py")).is_file() {
        return Err(format!(
            "the Python plugin {} has no module {name}.py",
            dir.display()
        ));
    }
    let partial = output.with_extension("wasm.partial");
    run(Command::new(componentize_py)
        .arg("--quiet")
        .arg("--wit-path")
        .arg(wit)
        .args(["--world", "damson:workflow/plugin", "componentize", &name])
        .arg("--python-path")
        .arg(dir)
        .arg("--python-path")
        .arg(sdk)
        .arg("--output")
        .arg(&partial))
    .map_err(|e| format!("cannot build the Python plugin {name}: {e}"))?;
    fs::rename(&partial, output).map_err(|e| {
        format!(
            "cannot move {} to {}: {e}",
            partial.display(),
            output.display()
        )
    })
}

/// componentize-py at the pinned version, installed into the virtual environment when missing.
fn componentize_py() -> Result<PathBuf, String> {
    let venv = target_dir().join("polyglot").join("venv");
    let bin = venv.join("bin");
    let componentize_py = bin.join("componentize-py");
    if version(&componentize_py).as_deref() == Some(COMPONENTIZE_PY) {
        return Ok(componentize_py);
    }
    if !bin.join("python").is_file() {
        let has_venv = || {
            Command::new("python3")
                .args(["-c", "import venv, ensurepip"])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !has_venv() {
            crate::services::install_debian_packages(
                &["python3", "python3-venv"],
                "the Python plugins",
                "the Python plugins need python3 with its venv module (Debian: apt-get install \
                 python3 python3-venv)",
            )?;
        }
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv)).map_err(|e| {
            format!(
                "cannot make the virtual environment for componentize-py (python3 and its venv \
                 module are needed; `.ci/run` installs them): {e}"
            )
        })?;
    }
    run(Command::new(bin.join("python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg(format!("componentize-py=={COMPONENTIZE_PY}")))
    .map_err(|e| format!("cannot install componentize-py {COMPONENTIZE_PY} from PyPI: {e}"))?;
    match version(&componentize_py) {
        Some(found) if found == COMPONENTIZE_PY => Ok(componentize_py),
        found => Err(format!(
            "{} reports version {} after installing {COMPONENTIZE_PY}",
            componentize_py.display(),
            found.as_deref().unwrap_or("(none)")
        )),
    }
}

/// Copy the directory `from` to `to` afresh, without Python's caches.
fn stage(from: &Path, to: &Path) -> Result<(), String> {
    if to.exists() {
        fs::remove_dir_all(to).map_err(|e| format!("cannot remove {}: {e}", to.display()))?;
    }
    fs::create_dir_all(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    let entries = fs::read_dir(from).map_err(|e| format!("cannot list {}: {e}", from.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot list {}: {e}", from.display()))?
            .path();
        let target = to.join(path.file_name().unwrap_or_default());
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "__pycache__") {
                stage(&path, &target)?;
            }
        } else {
            fs::copy(&path, &target).map_err(|e| {
                format!(
                    "cannot copy {} to {}: {e}",
                    path.display(),
                    target.display()
                )
            })?;
        }
    }
    Ok(())
}

/// What `componentize-py --version` says after its name, if it runs.
fn version(componentize_py: &Path) -> Option<String> {
    let output = Command::new(componentize_py)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let version = text.trim().strip_prefix("componentize-py ")?;
    output.status.success().then(|| version.to_string())
}

/// The newest modification time of the files under `roots` (Python's caches and the READMEs
/// left out: they are not built into the components).
fn newest(roots: &[&Path]) -> Result<SystemTime, String> {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut pending: Vec<PathBuf> = roots.iter().map(|p| p.to_path_buf()).collect();
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "__pycache__") {
                continue;
            }
            let entries =
                fs::read_dir(&path).map_err(|e| format!("cannot list {}: {e}", path.display()))?;
            for entry in entries {
                pending.push(
                    entry
                        .map_err(|e| format!("cannot list {}: {e}", path.display()))?
                        .path(),
                );
            }
        } else if path.extension().is_some_and(|e| e == "md") {
            continue;
        } else if let Some(time) = modified(&path) {
            newest = newest.max(time);
        }
    }
    Ok(newest)
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
