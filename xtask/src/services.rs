//! The services the tests need, started for them: RabbitMQ, PostgreSQL, and a Python with
//! kiwipy.

use std::env;
use std::path::PathBuf;
use std::process::Command;

use crate::{run, target_dir};

/// The RabbitMQ the tests use: one already listening on the default port, or the local
/// installation's node started for them (and stopped when dropped), with its management API
/// (the broker tenant tests make virtual hosts and users through it).
pub(crate) struct TestRabbitMq {
    pub(crate) url: String,
    /// The management API's URL, when it answers.
    pub(crate) admin: Option<String>,
    started: bool,
}

impl TestRabbitMq {
    const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
    const ADMIN_URL: &str = "http://guest:guest@127.0.0.1:15672";
    const ADMIN_PORT: u16 = 15672;

    pub(crate) fn start() -> Result<Self, String> {
        let listening = || std::net::TcpStream::connect(("127.0.0.1", 5672)).is_ok();
        if listening() {
            eprintln!("xtask: using the RabbitMQ listening on 127.0.0.1:5672");
            // A node started without the management plugin gets it now, if it is the local one.
            if let (false, Some(plugins)) =
                (management_answers(), rabbitmq_tool("rabbitmq-plugins"))
            {
                let _ = Command::new(plugins)
                    .args(["-q", "enable", "rabbitmq_management"])
                    .status();
            }
            let admin = wait_for_management(std::time::Duration::from_secs(30));
            if admin.is_none() {
                eprintln!(
                    "xtask: the RabbitMQ on 127.0.0.1:5672 has no management API on port {}: \
                     the broker tenant tests will fail (set DAMSON_TEST_RABBITMQ_ADMIN)",
                    Self::ADMIN_PORT
                );
            }
            return Ok(Self {
                url: Self::URL.into(),
                admin,
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
        // The management API, for the broker tenant tests: enabled in the node's plugins file
        // (once: the tool takes seconds to start Erlang), before the node starts.
        if !management_enabled() {
            run(tool("rabbitmq-plugins").args([
                "-q",
                "enable",
                "--offline",
                "rabbitmq_management",
            ]))?;
        }
        run(tool("rabbitmq-server").arg("-detached"))?;
        // Stopped when dropped, even if it never comes up.
        let mut broker = Self {
            url: Self::URL.into(),
            admin: None,
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
        broker.admin = wait_for_management(std::time::Duration::from_secs(30));
        if broker.admin.is_none() {
            return Err(format!(
                "RabbitMQ's management API did not answer on 127.0.0.1:{} (the plugin \
                 rabbitmq_management is enabled; see the logs in /var/log/rabbitmq)",
                Self::ADMIN_PORT
            ));
        }
        eprintln!(
            "xtask: RabbitMQ for the tests at {}, its management API at {}",
            broker.url,
            Self::ADMIN_URL.replace(":guest@", ":***@")
        );
        Ok(broker)
    }
}

/// Whether the local node's plugins file enables the management plugin already (Debian's
/// `/etc/rabbitmq/enabled_plugins`, or `RABBITMQ_ENABLED_PLUGINS_FILE`).
fn management_enabled() -> bool {
    let file = env::var_os("RABBITMQ_ENABLED_PLUGINS_FILE").map_or_else(
        || PathBuf::from("/etc/rabbitmq/enabled_plugins"),
        PathBuf::from,
    );
    std::fs::read_to_string(file).is_ok_and(|text| {
        text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|word| word == "rabbitmq_management")
    })
}

/// Whether the management API on the local node answers `GET /api/overview` as the guest
/// user, with 200.
fn management_answers() -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", TestRabbitMq::ADMIN_PORT))
    else {
        return false;
    };
    let timeout = Some(std::time::Duration::from_secs(5));
    let _ = stream.set_read_timeout(timeout);
    let _ = stream.set_write_timeout(timeout);
    // `guest:guest` in base64, for HTTP basic authentication.
    let request = "GET /api/overview HTTP/1.0\r\nHost: 127.0.0.1\r\n\
                   Authorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n\r\n";
    let mut status = [0u8; 12];
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_exact(&mut status).is_ok()
        && status.starts_with(b"HTTP/1.")
        && &status[9..12] == b"200"
}

/// The management API's URL once it answers, within `patience`; `None` if it never does.
fn wait_for_management(patience: std::time::Duration) -> Option<String> {
    let start = std::time::Instant::now();
    loop {
        if management_answers() {
            return Some(TestRabbitMq::ADMIN_URL.into());
        }
        if start.elapsed() > patience {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
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

/// The Python packages the interop tests and the benchmark need, pinned: kiwipy 0.9 and plumpy
/// 0.26.1 (the clients Damson must serve, and the peer it is measured against).
const PYTHON_PACKAGES: [&str; 2] = ["kiwipy[rmq]==0.9.0", "plumpy==0.26.1"];

/// A Python with kiwipy 0.9 and plumpy 0.26.1 from PyPI, for the interop tests and the
/// benchmark: `DAMSON_TEST_PYTHON`, or a virtual environment in the target directory, made (and
/// the packages installed) when missing.
pub(crate) fn test_python() -> Result<PathBuf, String> {
    if let Some(python) = env::var_os("DAMSON_TEST_PYTHON") {
        return Ok(python.into());
    }
    let venv = target_dir().join("damson-test-venv");
    let python = venv.join("bin").join("python");
    let installed = || {
        Command::new(&python)
            .args([
                "-c",
                "import sys, kiwipy.rmq, plumpy; \
                 sys.exit(kiwipy.__version__ != '0.9.0' or plumpy.__version__ != '0.26.1')",
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if installed() {
        return Ok(python);
    }
    let venv_made = || {
        python.is_file()
            || Command::new("python3")
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
                        interop tests: install python3 and its venv module, or set \
                        DAMSON_TEST_PYTHON to a Python with kiwipy 0.9 and plumpy 0.26.1"
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
    run(Command::new(&python)
        .args(["-m", "pip", "install", "-q"])
        .args(PYTHON_PACKAGES))?;
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
pub(crate) struct TestPostgres {
    data: PathBuf,
    bin: PathBuf,
    pub(crate) url: String,
    as_user: Option<&'static str>,
}

impl TestPostgres {
    pub(crate) fn start() -> Result<Self, String> {
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
/// Install Debian's `packages` (for `what`) when this is a Debian machine and we are root, as
/// `.ci/run` would; otherwise fail with `advice`.
pub(crate) fn install_debian_packages(
    packages: &[&str],
    what: &str,
    advice: &str,
) -> Result<(), String> {
    if !is_root() || Command::new("apt-get").arg("--version").output().is_err() {
        return Err(advice.to_string());
    }
    eprintln!(
        "xtask: {what} need Debian's {}; installing them",
        packages.join(" ")
    );
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}
