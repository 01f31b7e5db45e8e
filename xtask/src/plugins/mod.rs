//! `cargo xtask plugins`: every example and test plugin, built from source with its language's
//! toolchain into [`plugin_dir`](crate::plugin_dir), named `<plugin>` (Rust) or
//! `<plugin>-<py|js|c>`.
//!
//! The toolchains other than Rust's are pinned and installed on first use under
//! `target/polyglot/` (a virtual environment, npm packages), so a fresh machine needs only what
//! `.ci/run` installs from Debian.

mod c;
mod js;
mod python;
mod rust;

use crate::plugin_dir;

/// What builds the plugins of one language.
type Build = fn() -> Result<(), String>;

/// The languages, as `cargo xtask plugins [LANGUAGE...]` names them, with their builders.
const LANGUAGES: [(&str, Build); 4] = [
    ("rust", rust::build),
    ("python", python::build),
    ("js", js::build),
    ("c", c::build),
];

/// Build the plugins of every language.
pub(crate) fn build_plugins() -> Result<(), String> {
    build_languages(&[])
}

/// Build the plugins of the languages named (all when none is).
///
/// # Errors
/// A language that is not one of [`LANGUAGES`], or the first build that fails.
pub(crate) fn build_languages(names: &[String]) -> Result<(), String> {
    for name in names {
        if !LANGUAGES.iter().any(|(language, _)| language == name) {
            let known: Vec<&str> = LANGUAGES.iter().map(|(language, _)| *language).collect();
            return Err(format!(
                "no plugins in a language named '{name}' (known: {})",
                known.join(", ")
            ));
        }
    }
    for (language, build) in LANGUAGES {
        if names.is_empty() || names.iter().any(|name| name == language) {
            build()?;
        }
    }
    eprintln!("xtask: plugins are in {}", plugin_dir().display());
    Ok(())
}
