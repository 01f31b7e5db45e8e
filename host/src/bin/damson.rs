//! The `damson` binary: read `damson.toml`, parse the command line, run it, print errors with
//! their causes.

use std::process::ExitCode;

use clap::Parser;
use damson::cli::{Cli, config, exit, init_logging, print_error};

fn main() -> ExitCode {
    // SAFETY: no other thread runs yet (the tokio runtime starts below).
    if let Err(error) = unsafe { config::apply() } {
        eprintln!("error: {error:#}");
        return ExitCode::from(exit::USAGE);
    }
    let cli = Cli::parse();
    if !cli.is_daemon() {
        // Rust ignores SIGPIPE, so a write to a closed pipe fails (and `println!` panics):
        // like any Unix command, end when the output is gone (`damson run … | head`).
        // SAFETY: no other thread runs yet; restoring the default disposition is always sound.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    few_malloc_arenas();
    init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(exit::USAGE);
        }
    };
    // The command runs on one of the runtime's workers, as a server's request handlers do,
    // not on this thread: a process task it starts then runs on the same worker, and waiting
    // for it does not wake a thread each time (half the context switches of `bench` case a).
    let executed = runtime.block_on(async {
        match tokio::spawn(cli.execute()).await {
            Ok(executed) => executed,
            Err(failed) if failed.is_panic() => std::panic::resume_unwind(failed.into_panic()),
            Err(failed) => Err(anyhow::Error::new(failed).context("the command was cancelled")),
        }
    });
    match executed {
        Ok(code) => code,
        Err(error) => {
            print_error(&error);
            ExitCode::from(exit::for_error(&error))
        }
    }
}

/// Two malloc arenas, not glibc's eight per core: a process's memory is allocated on one tokio
/// thread and freed on another, and with an arena per thread the holes left behind keep a host
/// of many dehydrated waiting processes at about twice their resident memory (bench case w: 4 KB
/// each at 40,000, 1.8 KB with two arenas).
fn few_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable; no other thread runs yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
