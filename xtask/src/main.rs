//! Chores, run as `cargo xtask <command>`:
//!
//! - `plugins`: build the example and test plugins for `wasm32-wasip2` (adding the target with
//!   rustup when it is missing) into `target/wasm32-wasip2/release/`.
//! - `demo`: build the plugins and the release `damson` binary, then run a real multi-step work
//!   chain (`collatz`) and print its outputs.
//! - `test`: build what the tests need, then run the whole test suite (release profile, so the
//!   demo's build is reused).
//! - `bench`: run plumpy 0.26.1's reference benchmark and `damson bench` interleaved, in one
//!   run on this machine, and print both with their ratios.

mod bench;
mod plugins;
mod services;

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

pub(crate) use plugins::build_plugins;
use services::{TestPostgres, TestRabbitMq, test_python};

const USAGE: &str = "usage: cargo xtask <plugins | demo | test | bench> [args]
  plugins [rust | python | js | c]...   (every language when none is named)
  test [-- extra args for cargo test]
  bench [--runs N] [--cases abcdfg]   (f and g when RabbitMQ listens on localhost:5672)";
pub(crate) const WASM_TARGET: &str = "wasm32-wasip2";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("plugins") => plugins::build_languages(&args[1..]),
        Some("demo") => demo(),
        Some("test") => test(&args[1..]),
        Some("bench") => bench::bench(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

pub(crate) fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

pub(crate) fn run(cmd: &mut Command) -> Result<(), String> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

pub(crate) fn plugin_dir() -> PathBuf {
    target_dir().join(WASM_TARGET).join("release")
}

pub(crate) fn build_host() -> Result<(), String> {
    run(cargo().args([
        "build",
        "--release",
        "--package",
        "damson",
        "--bin",
        "damson",
    ]))
}

fn demo() -> Result<(), String> {
    build_plugins()?;
    build_host()?;
    let damson = target_dir().join("release").join("damson");
    println!(
        "\nDamson demo: the `collatz` work chain (while_ / if_ / else_ over 100+ steps), n = 27\n"
    );
    run(Command::new(&damson)
        .args(["describe", "collatz"])
        .env("DAMSON_PLUGINS", plugin_dir()))?;
    println!();
    run(Command::new(&damson)
        .args(["run", "collatz", "-i", "n=27"])
        .env("DAMSON_PLUGINS", plugin_dir()))?;
    for (language, plugin) in [
        ("Python", "collatz-py"),
        ("JavaScript", "collatz-js"),
        ("C", "collatz-c"),
    ] {
        println!("\nThe same work chain in {language} (`plugins/`, built from source):\n");
        run(Command::new(&damson)
            .args(["run", plugin, "-i", "n=27"])
            .env("DAMSON_PLUGINS", plugin_dir()))?;
    }
    println!("\nNext: `target/release/damson run add -i x=1 -i y=2 --json`, or see README.md.");
    Ok(())
}

fn test(extra: &[String]) -> Result<(), String> {
    build_plugins()?;
    // Everything the suite needs, the `damson` binary included, in one build with the test
    // targets: dev-dependencies change some crates' features, and building the binary apart
    // would compile wasmtime twice.
    run(cargo().args([
        "build",
        "--release",
        "--workspace",
        "--exclude",
        "xtask",
        "--all-targets",
    ]))?;
    let (server, url) = match env::var("DAMSON_TEST_POSTGRES") {
        Ok(url) => {
            eprintln!("xtask: using the PostgreSQL at DAMSON_TEST_POSTGRES");
            (None, url)
        }
        Err(_) => {
            let server = TestPostgres::start()?;
            let url = server.url.clone();
            (Some(server), url)
        }
    };
    let (broker, amqp) = match env::var("DAMSON_TEST_AMQP") {
        Ok(url) => {
            eprintln!("xtask: using the RabbitMQ at DAMSON_TEST_AMQP");
            (None, url)
        }
        Err(_) => {
            let broker = TestRabbitMq::start()?;
            let url = broker.url.clone();
            (Some(broker), url)
        }
    };
    // The management API of that broker, for the broker tenant tests (which fail, saying so,
    // without it).
    let admin = env::var("DAMSON_TEST_RABBITMQ_ADMIN")
        .ok()
        .or_else(|| broker.as_ref().and_then(|b| b.admin.clone()));
    let python = test_python()?;
    let extra: Vec<&str> = extra
        .iter()
        .map(String::as_str)
        .skip_while(|a| *a == "--")
        .collect();
    let mut tests = cargo();
    if let Some(admin) = &admin {
        tests.env("DAMSON_TEST_RABBITMQ_ADMIN", admin);
    }
    let result = run(tests
        .args(["test", "--release", "--workspace", "--exclude", "xtask"])
        .args(if extra.is_empty() {
            vec![]
        } else {
            [vec!["--"], extra].concat()
        })
        .env("DAMSON_PLUGINS", plugin_dir())
        .env("DAMSON_TEST_POSTGRES", &url)
        .env("DAMSON_TEST_AMQP", &amqp)
        .env("DAMSON_TEST_PYTHON", &python));
    drop(server);
    drop(broker);
    result
}
