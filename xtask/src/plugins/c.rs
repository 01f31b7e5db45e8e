//! The C plugins under `plugins/c/`: each directory is one plugin, its `*.c` files compiled with
//! the C SDK (`guest-sdk/c/`) into `<name>-c.wasm`.
//!
//! The toolchain is Debian's (`clang-19`, `lld-19`, `wasi-libc`, `libclang-rt-19-dev-wasm32`),
//! which `.ci/run` installs; nothing else is installed. The bindings come from the WIT through the
//! `wit-bindgen-c` crate and the component from the `wit-component` crate, with the WASI preview1
//! *reactor* adapter of the wasmtime the host runs (a reactor: the host calls exports, there is no
//! `main`). Generated files and objects stay under `target/polyglot/c/`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wit_bindgen_core::Files;
use wit_bindgen_core::wit_parser::Resolve;
use wit_component::ComponentEncoder;

use crate::{plugin_dir, root, run, target_dir};

/// The compiler, and the major version the build was checked with.
const CLANG: &str = "clang-19";
const CLANG_MAJOR: &str = "19";
/// Debian's wasi-libc: headers and libraries for the `wasm32-wasi` target.
const SYSROOT_LIB: &str = "/usr/lib/wasm32-wasi";
/// What to install when the toolchain is missing.
const DEBIAN_PACKAGES: &str = "clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32";
/// The world the plugins implement.
const WORLD: &str = "damson:workflow/plugin";
/// Output names end in this, beside the Rust plugin of the same name.
const SUFFIX: &str = "c";

pub(super) fn build() -> Result<(), String> {
    check_toolchain()?;
    let work = target_dir().join("polyglot").join("c");
    let bindings = generate_bindings(&work.join("bindings"))?;
    let sdk = root().join("guest-sdk").join("c");
    let mut shared = files_in(&sdk, &["c", "h"])?;
    shared.extend(files_in(&bindings, &["c", "h", "o"])?);
    // The build's own flags and steps live in this program.
    shared.extend(std::env::current_exe().ok());

    let plugins = root().join("plugins").join("c");
    let mut dirs: Vec<PathBuf> = fs::read_dir(&plugins)
        .map_err(|e| format!("cannot list the C plugins in {}: {e}", plugins.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    fs::create_dir_all(plugin_dir())
        .map_err(|e| format!("cannot create {}: {e}", plugin_dir().display()))?;
    let mut stale = Vec::new();
    for dir in dirs {
        let name = format!(
            "{}-{SUFFIX}",
            dir.file_name().unwrap_or_default().to_string_lossy()
        );
        let sources = files_in(&dir, &["c"])?;
        if sources.is_empty() {
            return Err(format!("the C plugin {} has no .c files", dir.display()));
        }
        let output = plugin_dir().join(format!("{name}.wasm"));
        let inputs: Vec<&PathBuf> = sources.iter().chain(&shared).collect();
        if !is_newer_than(&output, &inputs) {
            stale.push((name, sources, output));
        }
    }
    // One thread per plugin: clang takes about a second each, mostly linking.
    let results: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let builds: Vec<_> = stale
            .iter()
            .map(|(name, sources, output)| {
                let core = work.join(format!("{name}.core.wasm"));
                let (sdk, bindings) = (&sdk, &bindings);
                scope.spawn(move || {
                    compile(name, sources, sdk, bindings, &core)?;
                    componentize(&core, output)?;
                    eprintln!("xtask: built {}", output.display());
                    Ok(())
                })
            })
            .collect();
        builds
            .into_iter()
            .map(|build| {
                build
                    .join()
                    .unwrap_or_else(|_| Err("a C build panicked".into()))
            })
            .collect()
    });
    results.into_iter().collect()
}

/// Install the toolchain from Debian when it is missing and we may (see
/// [`install_debian_packages`](crate::services::install_debian_packages)), then check it.
fn check_toolchain() -> Result<(), String> {
    if found_toolchain().is_err() {
        crate::services::install_debian_packages(
            &DEBIAN_PACKAGES.split(' ').collect::<Vec<_>>(),
            "the C plugins",
            &found_toolchain().unwrap_err(),
        )?;
    }
    found_toolchain()
}

/// Fail with the packages to install unless `clang-19` targets WebAssembly here.
fn found_toolchain() -> Result<(), String> {
    let missing = || {
        format!(
            "the C plugins need {CLANG} with wasi-libc (Debian: apt-get install {DEBIAN_PACKAGES})"
        )
    };
    let version = Command::new(CLANG)
        .arg("--version")
        .output()
        .map_err(|e| format!("{}: cannot run {CLANG}: {e}", missing()))?;
    let version = String::from_utf8_lossy(&version.stdout);
    if !version.contains(&format!("clang version {CLANG_MAJOR}.")) {
        return Err(format!(
            "{}; `{CLANG} --version` says: {version}",
            missing()
        ));
    }
    if !Path::new(SYSROOT_LIB).join("libc.a").is_file() {
        return Err(format!("{}: no {SYSROOT_LIB}/libc.a", missing()));
    }
    Ok(())
}

/// Write the C bindings of the plugin world (`plugin.h`, `plugin.c` and the object holding the
/// component type) into `dir`. They are generated every time (it takes milliseconds) but written
/// only when they changed, so their time stamps say when the plugins need rebuilding.
fn generate_bindings(dir: &Path) -> Result<PathBuf, String> {
    let wit = root().join("wit");
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_path(&wit)
        .map_err(|e| format!("cannot read the WIT in {}: {e:#}", wit.display()))?;
    let world = resolve
        .select_world(&[package], Some(WORLD))
        .map_err(|e| format!("no world {WORLD} in {}: {e:#}", wit.display()))?;
    let mut files = Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world, &mut files)
        .map_err(|e| format!("cannot generate the C bindings of {WORLD}: {e:#}"))?;
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for (name, contents) in files.iter() {
        let path = dir.join(name);
        if fs::read(&path).is_ok_and(|old| old == contents) {
            continue;
        }
        fs::write(&path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(dir.to_path_buf())
}

/// Compile and link one plugin into a core module that exports the world's functions.
fn compile(
    name: &str,
    sources: &[PathBuf],
    sdk: &Path,
    bindings: &Path,
    core: &Path,
) -> Result<(), String> {
    if let Some(parent) = core.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let mut clang = Command::new(CLANG);
    clang
        .args(["--target=wasm32-wasi", "-mexec-model=reactor", "-O2"])
        .args(["-std=gnu17", "-Wall", "-Wextra", "-Werror"])
        // Steps and conditions take a context they need not use.
        .arg("-Wno-unused-parameter")
        .arg(format!("-DDAMSON_PLUGIN_NAME=\"{name}\""))
        .arg("-I")
        .arg(sdk)
        .arg("-I")
        .arg(bindings)
        .args(sources)
        .arg(sdk.join("damson.c"))
        .arg(bindings.join("plugin.c"))
        .arg(bindings.join("plugin_component_type.o"))
        // The stack below the static data: an overflow traps rather than overwriting it.
        .arg("-Wl,--stack-first")
        // Debian's wasi-libc carries DWARF, two thirds of the module; the name section stays.
        .arg("-Wl,--strip-debug")
        .arg("-o")
        .arg(core);
    run(&mut clang)
}

/// Turn a core module into a component, adapting its WASI preview1 imports.
fn componentize(core: &Path, output: &Path) -> Result<(), String> {
    let module = fs::read(core).map_err(|e| format!("cannot read {}: {e}", core.display()))?;
    let component = ComponentEncoder::default()
        .module(&module)
        .and_then(|encoder| {
            encoder.validate(true).adapter(
                WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
                WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
            )
        })
        .and_then(|encoder| encoder.encode())
        .map_err(|e| format!("cannot make a component of {}: {e:#}", core.display()))?;
    fs::write(output, component).map_err(|e| format!("cannot write {}: {e}", output.display()))
}

/// The files directly in `dir` whose extension is one of `extensions`, sorted.
fn files_in(dir: &Path, extensions: &[&str]) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| extensions.iter().any(|e| ext == *e))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Whether `output` exists and was modified after every one of `inputs`.
fn is_newer_than(output: &Path, inputs: &[impl AsRef<Path>]) -> bool {
    let modified = |path: &Path| fs::metadata(path).and_then(|m| m.modified()).ok();
    let Some(built) = modified(output) else {
        return false;
    };
    inputs
        .iter()
        .all(|input| modified(input.as_ref()).is_some_and(|t: SystemTime| t < built))
}
