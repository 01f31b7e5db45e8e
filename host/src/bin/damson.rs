//! The `damson` binary: read `damson.toml`, parse the command line, run it, print errors with
//! their causes.

use std::process::ExitCode;

use clap::Parser;
use damson::cli::{Cli, config, exit, init_logging};

fn main() -> ExitCode {
    // SAFETY: no other thread runs yet (the tokio runtime starts below).
    if let Err(error) = unsafe { config::apply() } {
        eprintln!("error: {error:#}");
        return ExitCode::from(exit::USAGE);
    }
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(exit::USAGE);
        }
    };
    match runtime.block_on(cli.execute()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(exit::USAGE)
        }
    }
}
