//! `damson.toml`: defaults for the options every command reads from the environment.
//!
//! ```toml
//! # ./damson.toml, or damson.toml in the home directory (DAMSON_HOME, else ~/.damson)
//! broker = "amqp://guest:guest@localhost:5672/%2f"   # DAMSON_BROKER
//! store = "postgres://damson@db/damson"              # DAMSON_STORE
//! plugins = "/opt/damson/plugins"                    # DAMSON_PLUGINS
//! home = "/var/lib/damson"                           # DAMSON_HOME
//! token = "damson_…"                                  # DAMSON_TOKEN (keep the file private)
//! ```
//!
//! A key only fills in what is not set already: the command line wins over the environment,
//! which wins over the file.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The keys and the environment variables they stand for.
const KEYS: [(&str, &str); 5] = [
    ("broker", "DAMSON_BROKER"),
    ("store", "DAMSON_STORE"),
    ("plugins", "DAMSON_PLUGINS"),
    ("home", "DAMSON_HOME"),
    ("token", "DAMSON_TOKEN"),
];

/// The configuration file in effect: `./damson.toml`, else `damson.toml` in the home
/// directory.
fn file() -> Option<PathBuf> {
    let local = PathBuf::from("damson.toml");
    if local.is_file() {
        return Some(local);
    }
    let home = std::env::var_os("DAMSON_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".damson")))?;
    let in_home = home.join("damson.toml");
    in_home.is_file().then_some(in_home)
}

/// Read `damson.toml`, if there is one, into the environment variables it stands for (those
/// not set already).
///
/// # Safety
/// Sets environment variables: call it before any other thread runs.
pub unsafe fn apply() -> anyhow::Result<()> {
    let Some(path) = file() else {
        return Ok(());
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    for (key, value) in &table {
        let Some((_, var)) = KEYS.iter().find(|(k, _)| k == key) else {
            let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
            bail!(
                "{}: unknown key '{key}' (known: {})",
                path.display(),
                known.join(", ")
            );
        };
        let Some(value) = value.as_str() else {
            bail!("{}: '{key}' must be a string", path.display());
        };
        if std::env::var_os(var).is_none() {
            // SAFETY: the caller runs this before any other thread exists.
            unsafe { std::env::set_var(var, value) };
        }
    }
    Ok(())
}
