//! Integration tests: real plugins, compiled from source, through the real host and CLI.

mod broker_tenants;
mod claims;
mod cli;
mod comms;
mod dehydrated;
mod durable;
mod failover;
mod http_api;
mod interop;
mod languages;
mod lifecycle;
mod logs;
mod plugins;
mod ports;
mod postgres_tenants;
mod retries;
mod sandbox;
mod serve;
mod signals;
mod stores;
mod tenant_hosts;
mod tenants;
mod timers;
