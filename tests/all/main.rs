//! Integration tests: real plugins, compiled from source, through the real host and CLI.

mod cli;
mod lifecycle;
mod plugins;
mod ports;
mod sandbox;
