//! The layering written in `lib.rs`, checked: this test reads the library's sources and fails,
//! naming file and line, when a module uses one it must not (another of the host's modules, or
//! a crate kept to one module), or when a public item has no doc comment. In the manner of
//! rust-analyzer's `tidy` test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Which of the host's modules each module may use (the pure ones use none). `host` may use
/// all but `cli`; `cli` and the binary may use all.
const LAYERS: &[(&str, &[&str])] = &[
    ("ports", &[]),
    ("fair", &[]),
    ("workchain", &[]),
    ("json_text", &[]),
    ("retry", &[]),
    ("config", &["persist"]),
    ("spec", &["ports", "workchain", "retry"]),
    (
        "guest",
        &["ports", "spec", "workchain", "json_text", "retry"],
    ),
    ("persist", &[]),
    ("tenancy", &["persist"]),
    (
        "error",
        &["ports", "workchain", "spec", "guest", "persist", "tenancy"],
    ),
    (
        "wasm",
        &[
            "ports",
            "workchain",
            "spec",
            "guest",
            "config",
            "error",
            "json_text",
            "fair",
            "retry",
        ],
    ),
    (
        "process",
        &[
            "ports",
            "workchain",
            "spec",
            "guest",
            "error",
            "json_text",
            "retry",
        ],
    ),
    (
        "comms",
        &[
            "ports",
            "workchain",
            "spec",
            "guest",
            "error",
            "process",
            "json_text",
        ],
    ),
    (
        "host",
        &[
            "ports",
            "workchain",
            "spec",
            "guest",
            "error",
            "process",
            "json_text",
            "config",
            "persist",
            "tenancy",
            "wasm",
            "comms",
            "fair",
            "retry",
        ],
    ),
    (
        "api",
        &[
            "ports",
            "workchain",
            "spec",
            "guest",
            "error",
            "process",
            "json_text",
            "config",
            "persist",
            "tenancy",
            "wasm",
            "comms",
            "host",
        ],
    ),
];

/// Crates that only some modules may use.
const CRATES: &[(&str, &[&str])] = &[
    ("wasmtime", &["wasm"]),
    ("wasmtime_wasi", &["wasm"]),
    ("wasmparser", &["wasm"]),
    ("anyhow", &["cli", "bin"]),
    ("clap", &["cli", "bin"]),
    ("tokio_postgres", &["persist"]),
    ("redb", &["persist"]),
    ("lapin", &["comms"]),
    ("yaml_serde", &["comms"]),
    ("libc", &["bin"]),
    // HTTP: the API serves, the CLI's `--server` calls it, and `comms` calls RabbitMQ's
    // management API (a tenant's virtual host and user).
    ("axum", &["api"]),
    ("axum_server", &["api"]),
    ("rustls", &["api", "cli"]),
    ("reqwest", &["comms", "cli"]),
    // The pure modules do no I/O and spawn nothing.
    (
        "tokio",
        &[
            "persist", "wasm", "process", "comms", "host", "api", "cli", "bin", "fair",
        ],
    ),
];

/// Modules that may use every other one.
const TOP: &[&str] = &["cli", "bin", "lib", "tidy"];

#[test]
fn modules_use_only_the_layers_below_them_and_public_items_are_documented() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = sources(&src);
    assert!(files.len() > 20, "found the sources in {}", src.display());
    let roots = root_exports(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    let mut problems = Vec::new();
    for file in &files {
        let text = without_tests(&std::fs::read_to_string(file).unwrap());
        let relative = file.strip_prefix(&src).unwrap();
        let module = module_of(relative);
        problems.extend(layering(relative, &module, &text, &roots));
        problems.extend(undocumented(relative, &text));
    }
    assert!(
        problems.is_empty(),
        "the layering in lib.rs is broken, or public items lack docs:\n{}",
        problems.join("\n")
    );
}

/// The check catches what it must: a forbidden use, a crate out of its module, a missing doc.
#[test]
fn the_checks_catch_what_they_are_for() {
    let roots = BTreeMap::from([("Host".to_string(), "host".to_string())]);
    let code = "use crate::host::Host;\nfn f() { crate::Host::new(); }\nuse wasmtime::Engine;\n";
    let found = layering(Path::new("process/task.rs"), "process", code, &roots);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found[0].starts_with("process/task.rs:1:"), "{found:?}");
    assert!(found[1].contains("`host`"), "{found:?}");
    assert!(found[2].contains("wasmtime"), "{found:?}");
    assert!(layering(Path::new("host/mod.rs"), "host", code, &roots).len() == 1);
    let grouped = "use crate::{\n    ports::X,\n    comms::Y,\n};\n";
    let found = layering(Path::new("wasm/x.rs"), "wasm", grouped, &roots);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("wasm/x.rs:3:"), "{found:?}");
    assert!(found[0].contains("`comms`"), "{found:?}");

    let docs = [
        "//! A module.",
        "/// Documented.",
        "pub fn a() {}",
        "",
        "pub fn b() {}",
        "#[derive(Debug)]",
        "pub struct S {",
        "    /// Yes.",
        "    pub x: u8,",
        "    pub y: u8,",
        "}",
        "/// E.",
        "#[error(",
        "    \"text\",",
        ")]",
        "pub enum E {",
        "    /// A.",
        "    A,",
        "    B {",
        "        v: u8,",
        "    },",
        "}",
        "/// T.",
        "pub trait T {",
        "    fn m(&self);",
        "}",
        "#[cfg(test)]",
        "mod tests {",
        "    pub fn undocumented_in_a_test() {}",
        "}",
    ]
    .join("\n");
    let found = undocumented(Path::new("x.rs"), &without_tests(&docs));
    let lines: Vec<&str> = found
        .iter()
        .map(|f| f.split(": ").next().unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            "x.rs:5", "x.rs:7", "x.rs:10", "x.rs:19", "x.rs:20", "x.rs:25"
        ],
        "{found:?}"
    );
    assert!(undocumented(Path::new("y.rs"), "pub mod z;\n")[0].contains("module doc"));
}

fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// `process/task.rs` → `process`, `spec.rs` → `spec`, `bin/damson.rs` → `bin`.
fn module_of(relative: &Path) -> String {
    let first = relative.components().next().unwrap();
    let name = first.as_os_str().to_str().unwrap();
    name.strip_suffix(".rs").unwrap_or(name).to_string()
}

/// The names `lib.rs` re-exports at the crate root, and the module each comes from.
fn root_exports(lib: &str) -> BTreeMap<String, String> {
    let mut roots = BTreeMap::new();
    for statement in code_only(lib).split(';') {
        let Some(rest) = statement.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, names)) = rest.split_once("::") else {
            continue;
        };
        for name in names.trim_matches(|c| c == '{' || c == '}').split(',') {
            let name = name.trim().rsplit("::").next().unwrap().trim();
            if !name.is_empty() {
                roots.insert(name.to_string(), module.trim().to_string());
            }
        }
    }
    roots
}

/// The source with comments and string literals blanked out (lengths and newlines kept, so
/// offsets still give line numbers).
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let (mut in_string, mut in_comment) = (false, false);
    while let Some(c) = chars.next() {
        if in_comment {
            if c == '\n' {
                in_comment = false;
                out.push('\n');
            } else {
                out.push(' ');
            }
        } else if in_string {
            match c {
                '\\' => {
                    out.push(' ');
                    if let Some(next) = chars.next() {
                        out.push(if next == '\n' { '\n' } else { ' ' });
                    }
                }
                '"' => {
                    in_string = false;
                    out.push('"');
                }
                '\n' => out.push('\n'),
                _ => out.push(' '),
            }
        } else if c == '/' && chars.peek() == Some(&'/') {
            in_comment = true;
            out.push(' ');
        } else if c == '"' {
            in_string = true;
            out.push('"');
        } else {
            out.push(c);
        }
    }
    out
}

/// The source with its test modules (`#[cfg(test)] mod …` and `mod tests`) blanked out, line
/// numbers kept: tests may reach across the layers to check the real thing.
fn without_tests(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let code = code_only(text);
    let mut out = Vec::with_capacity(lines.len());
    let (mut depth, mut skipping) = (0usize, None::<usize>);
    for (i, (line, code)) in lines.iter().zip(code.lines()).enumerate() {
        let (opens, closes) = (code.matches('{').count(), code.matches('}').count());
        let after = (depth + opens).saturating_sub(closes);
        let bare = line
            .trim()
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("pub(super) ")
            .trim_start_matches("pub ");
        let test_module = bare.starts_with("mod ")
            && (bare.starts_with("mod tests") || attributes_above(&lines, i).contains("cfg(test)"));
        if skipping.is_none() && test_module && opens > closes {
            skipping = Some(depth);
        }
        out.push(if skipping.is_some() { "" } else { *line });
        if skipping.is_some_and(|d| after <= d) {
            skipping = None;
        }
        depth = after;
    }
    out.join("\n")
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

/// Every use of a module or crate that `module` may not use, as `file:line: what`.
fn layering(
    file: &Path,
    module: &str,
    text: &str,
    roots: &BTreeMap<String, String>,
) -> Vec<String> {
    let code = code_only(text);
    let mut problems = Vec::new();
    let allowed: Option<BTreeSet<&str>> = LAYERS
        .iter()
        .find(|(m, _)| *m == module)
        .map(|(_, uses)| uses.iter().copied().collect());
    let top = TOP.contains(&module);
    if !top && allowed.is_none() {
        problems.push(format!(
            "{}:1: module `{module}` has no place in the layering (add it to LAYERS and lib.rs)",
            file.display()
        ));
    }
    for (offset, used) in crate_uses(&code) {
        let target = roots.get(&used).cloned().unwrap_or(used);
        let known = target == "cli" || LAYERS.iter().any(|(m, _)| *m == target);
        if target == module || top || !known {
            continue;
        }
        if !allowed
            .as_ref()
            .is_some_and(|a| a.contains(target.as_str()))
        {
            problems.push(format!(
                "{}:{}: `{module}` must not use `{target}` (see the layering in lib.rs)",
                file.display(),
                line_of(&code, offset)
            ));
        }
    }
    for (name, users) in CRATES {
        for (offset, _) in code.match_indices(&format!("{name}::")) {
            let before = code[..offset].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            if !users.contains(&module) && module != "tidy" {
                problems.push(format!(
                    "{}:{}: `{module}` must not use the crate `{name}` (only {})",
                    file.display(),
                    line_of(&code, offset),
                    users.join(", ")
                ));
            }
        }
    }
    if module != "wasm" {
        for pattern in ["bindings::", "wit::"] {
            for (offset, _) in code.match_indices(pattern) {
                problems.push(format!(
                    "{}:{}: a WIT binding type is named outside `wasm`",
                    file.display(),
                    line_of(&code, offset)
                ));
            }
        }
    }
    problems
}

/// The first path segment after each `crate::` (each item of a `crate::{…}` group), with the
/// offset where it is named.
fn crate_uses(code: &str) -> Vec<(usize, String)> {
    let mut uses = Vec::new();
    for (offset, _) in code.match_indices("crate::") {
        let before = code[..offset].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':' || c == '$') {
            continue;
        }
        let rest = &code[offset + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::b, C, d::{e, f}}`: the first segment of each top-level item.
            let (mut depth, mut start) = (0usize, 0usize);
            let base = offset + "crate::{".len();
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        push_segment(&mut uses, base + start, &group[start..i]);
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        push_segment(&mut uses, base + start, &group[start..i]);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            push_segment(&mut uses, offset, rest);
        }
    }
    uses
}

fn push_segment(uses: &mut Vec<(usize, String)>, offset: usize, item: &str) {
    let leading = item.len() - item.trim_start().len();
    let name: String = item
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if !name.is_empty() && name != "self" {
        uses.push((offset + leading, name));
    }
}

/// Public items, trait methods, fields and variants without a doc comment, and a file
/// without module docs, as `file:line: what`.
fn undocumented(file: &Path, text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let code = code_only(text);
    let code_lines: Vec<&str> = code.lines().collect();
    let mut problems = Vec::new();
    if !lines
        .iter()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| l.starts_with("//!"))
    {
        problems.push(format!(
            "{}:1: the file has no module doc (`//!`)",
            file.display()
        ));
    }
    // Open blocks: (depth at which each opened, what it is).
    let mut blocks: Vec<(usize, Block)> = Vec::new();
    let mut depth = 0usize;
    for (i, line) in lines.iter().map(|l| l.trim()).enumerate() {
        let code = code_lines.get(i).copied().unwrap_or("");
        let (opens, closes) = (code.matches('{').count(), code.matches('}').count());
        let after = (depth + opens).saturating_sub(closes);
        let inside = blocks
            .last()
            .filter(|(d, _)| *d + 1 == depth)
            .map(|(_, kind)| *kind);
        let what = match inside {
            Some(Block::Struct) if line.starts_with("pub ") && !line.starts_with("pub(") => {
                line.contains(':').then_some("a public field")
            }
            Some(Block::Enum) if line.chars().next().is_some_and(char::is_uppercase) => {
                Some("a variant")
            }
            Some(Block::Variant) if field_name(line) => Some("a variant's field"),
            Some(Block::Trait) if line.starts_with("fn ") || line.starts_with("async fn ") => {
                Some("a trait method")
            }
            _ => public_item(line),
        };
        if let Some(what) = what
            && !doc_above(&lines, i)
        {
            problems.push(format!(
                "{}:{}: {what} has no doc comment",
                file.display(),
                i + 1
            ));
        }
        if opens > closes {
            let kind = if line.starts_with("pub struct ") {
                Block::Struct
            } else if line.starts_with("pub enum ") {
                Block::Enum
            } else if line.starts_with("pub trait ") {
                Block::Trait
            } else if inside == Some(Block::Enum) {
                Block::Variant
            } else {
                Block::Other
            };
            blocks.push((depth, kind));
        }
        depth = after;
        while blocks.last().is_some_and(|(d, _)| *d >= depth) {
            blocks.pop();
        }
    }
    problems
}

/// Whether the item on line `i` has a doc comment above it (attributes may stand between).
fn doc_above(lines: &[&str], i: usize) -> bool {
    let mut j = i;
    while j > 0 {
        j -= 1;
        let line = lines[j].trim();
        if line.starts_with("///") || line.starts_with("//!") {
            return true;
        }
        if line.starts_with("#[") {
            continue;
        }
        if line.ends_with(']') || line.ends_with(")]") {
            // The end of an attribute written over several lines: go to its start.
            while j > 0 && !lines[j].trim().starts_with("#[") {
                j -= 1;
            }
            continue;
        }
        return false;
    }
    false
}

/// The attributes on the lines just above line `i`, joined.
fn attributes_above(lines: &[&str], i: usize) -> String {
    lines[..i]
        .iter()
        .rev()
        .map(|l| l.trim())
        .take_while(|l| l.starts_with("#["))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Struct,
    Enum,
    Variant,
    Trait,
    Other,
}

/// What kind of public item a line declares, if it declares one. Re-exports need no docs, and a
/// module declared here (`pub mod x;`) has its docs in its own file.
fn public_item(line: &str) -> Option<&'static str> {
    let rest = line.strip_prefix("pub ")?;
    if rest.starts_with("mod ") && rest.ends_with(';') {
        return None;
    }
    let rest = rest.strip_prefix("async ").unwrap_or(rest);
    let rest = rest.strip_prefix("unsafe ").unwrap_or(rest);
    [
        ("fn ", "a public function"),
        ("struct ", "a public struct"),
        ("enum ", "a public enum"),
        ("trait ", "a public trait"),
        ("const ", "a public constant"),
        ("static ", "a public static"),
        ("type ", "a public type"),
        ("mod ", "a public module"),
    ]
    .into_iter()
    .find(|(prefix, _)| rest.starts_with(prefix))
    .map(|(_, what)| what)
}

/// `name: Type,` — a field of a struct-like variant.
fn field_name(line: &str) -> bool {
    let Some((name, _)) = line.split_once(':') else {
        return false;
    };
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
