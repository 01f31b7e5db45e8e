//! The JavaScript plugins under `plugins/js/`: each directory's `index.js`, which imports the SDK
//! (`guest-sdk/js/damson.js`), made into `<name>-js.wasm` by componentize-qjs (QuickJS), installed
//! from npm under `target/polyglot/js/`.
//!
//! componentize-qjs resolves the ES imports itself (the repository is its module root, so stacks
//! name files as `/plugins/js/<name>/index.js`), so there is no bundling step.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::{plugin_dir, root, run, target_dir};

/// The componentizer, pinned: its output is what the host's memory-image instrumentation is
/// tested against.
const COMPONENTIZE_QJS: &str = "0.4.5";

pub(super) fn build() -> Result<(), String> {
    let tool = ensure_toolchain()?;
    let sources = root().join("plugins").join("js");
    let sdk = root().join("guest-sdk").join("js").join("damson.js");
    let wit = root().join("wit");
    // Whatever every plugin's output depends on besides its own directory.
    let shared = newest(&[&sdk, &wit, &tool.version_file])?;
    let out_dir = plugin_dir();
    fs::create_dir_all(&out_dir).map_err(|e| {
        format!(
            "cannot create the plugin directory {}: {e}",
            out_dir.display()
        )
    })?;
    for dir in subdirectories(&sources)? {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("the plugin directory {} has no UTF-8 name", dir.display()))?;
        let entry = dir.join("index.js");
        if !entry.is_file() {
            return Err(format!("the js plugin '{name}' has no {}", entry.display()));
        }
        let out = out_dir.join(format!("{name}-js.wasm"));
        let newest_source = shared.max(newest(&[&dir])?);
        if modified(&out).is_some_and(|built| built > newest_source) {
            eprintln!("xtask: {name}-js is up to date");
            continue;
        }
        // Written beside and renamed, so a failed build never leaves an up-to-date-looking file.
        let partial = out.with_extension("wasm.partial");
        run(Command::new(&tool.bin)
            .arg("--wit")
            .arg(&wit)
            .arg("--js")
            .arg(&entry)
            .arg("--module-root")
            .arg(root())
            .args(["--world", "damson:workflow/plugin"])
            // Without it the component uses the component-model async ABI, which the host does
            // not call.
            .arg("--sync")
            .arg("--output")
            .arg(&partial))
        .map_err(|e| format!("building the js plugin '{name}': {e}"))?;
        fs::rename(&partial, &out)
            .map_err(|e| format!("cannot move {} into place: {e}", partial.display()))?;
    }
    Ok(())
}

/// The installed componentizer.
struct Toolchain {
    /// Its command.
    bin: PathBuf,
    /// Its `package.json`, whose version is checked and whose age dates the installation.
    version_file: PathBuf,
}

/// Install componentize-qjs with npm under `target/polyglot/js/` unless that version is there.
fn ensure_toolchain() -> Result<Toolchain, String> {
    let dir = target_dir().join("polyglot").join("js");
    let tool = Toolchain {
        bin: dir
            .join("node_modules")
            .join(".bin")
            .join("componentize-qjs"),
        version_file: dir
            .join("node_modules")
            .join("componentize-qjs")
            .join("package.json"),
    };
    let installed = fs::read_to_string(&tool.version_file)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|package| package["version"].as_str().map(str::to_string));
    if installed.as_deref() == Some(COMPONENTIZE_QJS) && tool.bin.is_file() {
        return Ok(tool);
    }
    eprintln!(
        "xtask: installing componentize-qjs {COMPONENTIZE_QJS} into {} (found {})",
        dir.display(),
        installed.as_deref().unwrap_or("none")
    );
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if Command::new("npm").arg("--version").output().is_err() {
        crate::services::install_debian_packages(
            &["nodejs", "npm"],
            "the JavaScript plugins",
            "the JavaScript plugins need Node.js 18 or later with npm (Debian: apt-get install \
             nodejs npm)",
        )?;
    }
    run(Command::new("npm")
        .current_dir(&dir)
        .args(["install", "--no-audit", "--no-fund", "--save-exact"])
        .arg(format!("componentize-qjs@{COMPONENTIZE_QJS}")))
    .map_err(|e| {
        format!("installing componentize-qjs with npm (Node.js 18 or later is needed): {e}")
    })?;
    if !tool.bin.is_file() {
        return Err(format!(
            "npm installed componentize-qjs {COMPONENTIZE_QJS} but {} is missing",
            tool.bin.display()
        ));
    }
    Ok(tool)
}

/// The directories directly in `dir`, sorted.
fn subdirectories(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = fs::read_dir(dir)
        .map_err(|e| format!("cannot list the js plugins in {}: {e}", dir.display()))?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// When `path` was last modified, if it exists.
fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time of these files and everything below these directories.
fn newest(paths: &[&Path]) -> Result<SystemTime, String> {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut pending: Vec<PathBuf> = paths.iter().map(|p| p.to_path_buf()).collect();
    while let Some(path) = pending.pop() {
        let meta =
            fs::metadata(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if meta.is_dir() {
            let entries =
                fs::read_dir(&path).map_err(|e| format!("cannot list {}: {e}", path.display()))?;
            pending.extend(entries.filter_map(|entry| entry.ok().map(|e| e.path())));
        }
        if let Ok(time) = meta.modified() {
            newest = newest.max(time);
        }
    }
    Ok(newest)
}
