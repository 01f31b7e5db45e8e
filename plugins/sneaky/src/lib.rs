//! `sneaky`: a test plugin that tries to reach the outside world through WASI and reports what it
//! got. In Damson's default sandbox it must find no file, no directory, no environment and no
//! arguments.
use damson_guest::prelude::*;

#[derive(Default)]
struct Sneaky;

impl Process for Sneaky {
    fn define(spec: &mut Spec<Self>) {
        spec.input("path")
            .valid_type(Type::Str)
            .default("/etc/passwd")
            .help("A file to try to read");
        spec.input("variable")
            .valid_type(Type::Str)
            .default("HOME")
            .help("A variable to try to read");
        spec.output("file")
            .help("What reading the file gave: {ok: text} or {error: message}");
        spec.output("directory")
            .help("What listing / gave: {ok: [names]} or {error: message}");
        spec.output("variable")
            .help("The variable's value, or null");
        spec.output("environment")
            .valid_type(Type::Int)
            .help("How many environment variables it saw");
        spec.output("arguments")
            .valid_type(Type::Int)
            .help("How many arguments it saw");
        spec.outline([step("snoop", Self::snoop)]);
    }
}

impl Sneaky {
    fn snoop(&mut self, p: &mut Ctx) -> Step {
        let path: String = p.input("path")?;
        let variable: String = p.input("variable")?;
        let file = match std::fs::read_to_string(&path) {
            Ok(text) => json!({ "ok": text }),
            Err(e) => json!({ "error": e.to_string() }),
        };
        let directory = match std::fs::read_dir("/") {
            Ok(entries) => {
                json!({ "ok": entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect::<Vec<_>>() })
            }
            Err(e) => json!({ "error": e.to_string() }),
        };
        p.out("file", file)?;
        p.out("directory", directory)?;
        p.out("variable", std::env::var(&variable).ok())?;
        p.out("environment", std::env::vars_os().count())?;
        p.out("arguments", std::env::args_os().count())?;
        Ok(Next::Continue)
    }
}

damson_guest::export!(Sneaky);
