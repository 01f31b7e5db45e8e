//! The `damson` binary: parse the command line, run it, print errors with their causes.

use std::process::ExitCode;

use clap::Parser;
use damson::cli::{Cli, exit, init_logging};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.execute().await {
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
