//! Chores, run as `cargo xtask <command>`:
//!
//! - `plugins`: build the example and test plugins for `wasm32-wasip2` (adding the target with
//!   rustup when it is missing) into `target/wasm32-wasip2/release/`.
//! - `demo`: build the plugins and the release `damson` binary, then run a real multi-step work
//!   chain (`collatz`) and print its outputs.
//! - `test`: build what the tests need, then run the whole test suite (release profile, so the
//!   demo's build is reused).

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask <plugins | demo | test> [-- extra args for cargo test]";
const WASM_TARGET: &str = "wasm32-wasip2";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("plugins") => build_plugins(),
        Some("demo") => demo(),
        Some("test") => test(&args[1..]),
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

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn cargo() -> Command {
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn run(cmd: &mut Command) -> Result<(), String> {
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

fn build_plugins() -> Result<(), String> {
    ensure_wasm_target()?;
    run(cargo()
        .current_dir(root().join("plugins"))
        .args(["build", "--release", "--target", WASM_TARGET])
        .env("CARGO_TARGET_DIR", target_dir())
        // Flags meant for the host (e.g. from a surrounding cargo) must not reach the guests.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS"))?;
    eprintln!("xtask: plugins are in {}", plugin_dir().display());
    Ok(())
}

fn plugin_dir() -> PathBuf {
    target_dir().join(WASM_TARGET).join("release")
}

fn build_host() -> Result<(), String> {
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
    let python = test_python()?;
    let extra: Vec<&str> = extra
        .iter()
        .map(String::as_str)
        .skip_while(|a| *a == "--")
        .collect();
    let result = run(cargo()
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

/// The RabbitMQ the tests use: one already listening on the default port, or the local
/// installation's node started for them (and stopped when dropped).
struct TestRabbitMq {
    url: String,
    started: bool,
}

impl TestRabbitMq {
    const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

    fn start() -> Result<Self, String> {
        let listening = || std::net::TcpStream::connect(("127.0.0.1", 5672)).is_ok();
        if listening() {
            eprintln!("xtask: using the RabbitMQ listening on 127.0.0.1:5672");
            return Ok(Self {
                url: Self::URL.into(),
                started: false,
            });
        }
        if rabbitmq_tool("rabbitmq-server").is_none() {
            if !is_root() || Command::new("apt-get").arg("--version").output().is_err() {
                return Err(
                    "RabbitMQ is not installed: install it (Debian: apt-get install \
                            rabbitmq-server; .ci/run does), or set DAMSON_TEST_AMQP to a broker \
                            the tests may use"
                        .into(),
                );
            }
            eprintln!("xtask: RabbitMQ is missing; installing Debian's package for the tests");
            run(Command::new("apt-get").args(["update", "-qq"]))?;
            run(Command::new("apt-get")
                .args(["install", "-y", "-qq", "rabbitmq-server"])
                .env("DEBIAN_FRONTEND", "noninteractive"))?;
        }
        let tool = |name| Command::new(rabbitmq_tool(name).unwrap_or_else(|| name.into()));
        run(tool("rabbitmq-server").arg("-detached"))?;
        // Stopped when dropped, even if it never comes up.
        let broker = Self {
            url: Self::URL.into(),
            started: true,
        };
        // The node answers pings once Erlang is up, and `await_startup` then waits for RabbitMQ.
        let up = (0..120).any(|_| {
            let ok = tool("rabbitmq-diagnostics")
                .args(["-q", "ping"])
                .output()
                .is_ok_and(|o| o.status.success());
            if !ok {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
            ok
        });
        if !up {
            return Err(
                "RabbitMQ did not come up within 2 minutes (see its logs in \
                        /var/log/rabbitmq)"
                    .into(),
            );
        }
        run(tool("rabbitmqctl").args(["await_startup", "--timeout", "120"]))?;
        eprintln!("xtask: RabbitMQ for the tests at {}", broker.url);
        Ok(broker)
    }
}

impl Drop for TestRabbitMq {
    fn drop(&mut self) {
        if self.started {
            let ctl = rabbitmq_tool("rabbitmqctl").unwrap_or_else(|| "rabbitmqctl".into());
            let _ = Command::new(ctl).arg("stop").status();
        }
    }
}

/// A Python with kiwipy 0.9 from PyPI, for the interop test: `DAMSON_TEST_PYTHON`, or a virtual
/// environment in the target directory, made (and kiwipy installed) when missing.
fn test_python() -> Result<PathBuf, String> {
    if let Some(python) = env::var_os("DAMSON_TEST_PYTHON") {
        return Ok(python.into());
    }
    let venv = target_dir().join("damson-test-venv");
    let python = venv.join("bin").join("python");
    let has_kiwipy = || {
        Command::new(&python)
            .args([
                "-c",
                "import sys, kiwipy.rmq; sys.exit(kiwipy.__version__ != '0.9.0')",
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if has_kiwipy() {
        return Ok(python);
    }
    let venv_made = || {
        Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !venv_made() {
        // Debian keeps `venv` in a package of its own.
        if !is_root() || Command::new("apt-get").arg("--version").output().is_err() {
            return Err(
                "cannot make a Python virtual environment (python3 -m venv) for the \
                        kiwipy interop test: install python3 and its venv module, or set \
                        DAMSON_TEST_PYTHON to a Python with kiwipy 0.9"
                    .into(),
            );
        }
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "python3", "python3-venv"])
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
        if !venv_made() {
            return Err("python3 -m venv failed even with python3-venv installed".into());
        }
    }
    run(Command::new(&python).args(["-m", "pip", "install", "-q", "kiwipy[rmq]==0.9.0"]))?;
    Ok(python)
}

/// A RabbitMQ program: on the PATH, or in Debian's `/usr/sbin`.
fn rabbitmq_tool(name: &str) -> Option<PathBuf> {
    env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| env::split_paths(&paths).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|file| file.is_file())
}

/// A PostgreSQL server of the tests' own: a fresh cluster in the target directory, on a free
/// loopback port, stopped when dropped.
struct TestPostgres {
    data: PathBuf,
    bin: PathBuf,
    url: String,
    as_user: Option<&'static str>,
}

impl TestPostgres {
    fn start() -> Result<Self, String> {
        let bin = match postgres_bin() {
            Ok(bin) => bin,
            Err(missing) => {
                // A fresh Debian machine: install the server, as .ci/run would.
                if !is_root() || Command::new("apt-get").arg("--version").output().is_err() {
                    return Err(missing);
                }
                eprintln!(
                    "xtask: PostgreSQL is missing; installing Debian's package for the tests"
                );
                run(Command::new("apt-get").args(["update", "-qq"]))?;
                run(Command::new("apt-get")
                    .args(["install", "-y", "-qq", "postgresql"])
                    .env("DEBIAN_FRONTEND", "noninteractive"))?;
                postgres_bin()?
            }
        };
        let data = target_dir().join("damson-test-postgres");
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data)
            .map_err(|e| format!("cannot create {}: {e}", data.display()))?;
        // PostgreSQL refuses to run as root: run it as the `postgres` user then.
        let root = is_root();
        let as_user = root.then_some("postgres");
        if let Some(user) = as_user {
            run(Command::new("chown").args(["-R", user]).arg(&data))?;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("cannot find a free port: {e}"))?
            .port();
        let url = format!("postgres://damson@127.0.0.1:{port}/postgres");
        let server = Self {
            data,
            bin,
            url,
            as_user,
        };
        run(server
            .command("initdb")
            .args(["-A", "trust", "-U", "damson", "--no-sync", "-D"])
            .arg(&server.data)
            .stdout(std::process::Stdio::null()))?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            server.data.display()
        );
        run(server
            .command("pg_ctl")
            .args(["-w", "-D"])
            .arg(&server.data)
            .args(["-o", &options, "-l"])
            .arg(server.data.join("server.log"))
            .arg("start"))?;
        eprintln!("xtask: PostgreSQL for the tests at {}", server.url);
        Ok(server)
    }

    fn command(&self, tool: &str) -> Command {
        let program = self.bin.join(tool);
        match self.as_user {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(program);
                cmd
            }
            None => Command::new(program),
        }
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-m", "fast", "-D"])
            .arg(&self.data)
            .arg("stop")
            .status();
    }
}

/// The directory with `initdb` and `pg_ctl`: on the PATH, or Debian's `/usr/lib/postgresql/*/bin`.
fn postgres_bin() -> Result<PathBuf, String> {
    let on_path = env::var_os("PATH").and_then(|paths| {
        env::split_paths(&paths)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    });
    if let Some(dir) = on_path {
        return Ok(dir);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.into_iter().rev().find(|dir| dir.join("initdb").is_file()).ok_or_else(|| {
        "PostgreSQL is not installed (no initdb on the PATH or in /usr/lib/postgresql): install \
         it (Debian: apt-get install postgresql; .ci/run does), or set DAMSON_TEST_POSTGRES to a \
         database URL the tests may fill"
            .to_string()
    })
}

/// Whether this runs as root (PostgreSQL will not, and apt-get needs it).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}
