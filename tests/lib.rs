//! Helpers for the integration tests: where the real plugins and the real `damson` binary are.
//!
//! Both are built from source by `cargo xtask test` (which runs this suite); the helpers fail
//! with the command to run when they are missing, never skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use damson::{Host, HostConfig};

/// The workspace's target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
        })
}

/// Where the plugins were built: `DAMSON_PLUGINS`, else `target/wasm32-wasip2/release`.
pub fn plugin_dir() -> PathBuf {
    let dir = std::env::var_os("DAMSON_PLUGINS")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("wasm32-wasip2").join("release"));
    assert!(
        dir.join("add.wasm").is_file(),
        "the test plugins are not built in {}: run `cargo xtask test` (or `cargo xtask plugins`)",
        dir.display()
    );
    dir
}

/// The built plugin of this name.
pub fn plugin(name: &str) -> PathBuf {
    let file = plugin_dir().join(format!("{name}.wasm"));
    assert!(
        file.is_file(),
        "plugin {name} is not built at {}: run `cargo xtask plugins`",
        file.display()
    );
    file
}

/// A home directory shared by the tests, so compiled plugins are cached once for all of them.
pub fn shared_home() -> PathBuf {
    target_dir().join("damson-test-home")
}

/// The `damson` binary of the profile these tests were built with, with a clean environment:
/// the shared home, the built plugins, no `RUST_LOG`, and no store (`DAMSON_STORE=memory:`,
/// so tests do not share one; durability tests pass `--store` themselves).
pub fn damson() -> Command {
    let exe = std::env::current_exe().expect("the test binary has a path");
    // target/<profile>/deps/<test binary> → target/<profile>/damson
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary in target/<profile>/deps")
        .join("damson");
    assert!(
        bin.is_file(),
        "{} is not built: run `cargo xtask test` (or `cargo build --release -p damson`)",
        bin.display()
    );
    let mut cmd = Command::new(bin);
    cmd.env("DAMSON_HOME", shared_home())
        .env("DAMSON_PLUGINS", plugin_dir())
        .env("DAMSON_STORE", "memory:")
        .env_remove("RUST_LOG");
    cmd
}

/// A configuration for library tests: the built plugins and the shared compile cache.
pub fn config() -> HostConfig {
    let mut config = HostConfig::new();
    config
        .plugin_dir(plugin_dir())
        .cache_dir(shared_home().join("cache"));
    config
}

/// One host shared by library tests that use the default limits.
pub fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| Host::new(&config()).expect("a host with the default configuration"))
}

/// Run `work` on a host of its own (with `config`, on `store`), with its own tokio runtime,
/// then stop that host the hard way: the runtime is shut down and every process task dropped
/// wherever it was — as when a host's machine dies. Its claims go with it.
pub fn on_a_host_that_stops<T: Send + 'static>(
    config: HostConfig,
    store: std::sync::Arc<dyn damson::persist::Persister>,
    work: impl AsyncFnOnce(Host) -> T + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let result = runtime.block_on(async move {
            let host = Host::with_store(&config, store).unwrap();
            work(host).await
        });
        runtime.shutdown_timeout(std::time::Duration::from_secs(5));
        result
    })
    .join()
    .unwrap()
}

/// The test PostgreSQL server's URL (`DAMSON_TEST_POSTGRES`, which `cargo xtask test` sets).
pub fn postgres_url() -> String {
    std::env::var("DAMSON_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!(
            "DAMSON_TEST_POSTGRES is not set: run the suite with `cargo xtask test`, which \
             starts PostgreSQL"
        )
    })
}

/// A fresh database of this test's own (named after `test`) in the test PostgreSQL server, so
/// that tests sharing the server see none of each other's processes; its URL.
pub async fn own_database(test: &str) -> String {
    let url = postgres_url();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let name = format!("{test}_{}", std::process::id());
    // One statement each: PostgreSQL runs neither in a transaction block.
    for statement in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        client.simple_query(&statement).await.unwrap();
    }
    let base = url.rsplit_once('/').map_or(url.as_str(), |(base, _)| base);
    format!("{base}/{name}")
}

/// An error and its causes on one line, `outer: cause: root cause`.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The number a line of `damson bench`'s table gives for the figure labelled `case` (`a  20
/// trivial processes`), which must be there and above zero.
pub fn bench_figure(table: &str, case: &str) -> f64 {
    let line = table
        .lines()
        .find(|l| l.starts_with(case))
        .unwrap_or_else(|| panic!("no '{case}' in {table}"));
    let figure = line[case.len()..].trim();
    let number: f64 = figure
        .split(' ')
        .next()
        .and_then(|n| n.trim_end_matches("/s").parse().ok())
        .unwrap_or_else(|| panic!("no number in {line}"));
    assert!(number > 0.0, "{line}");
    number
}

pub mod fleet;
pub mod watched;
