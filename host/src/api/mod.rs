//! The HTTP JSON API of `damson serve --listen ADDR`: submit, list, show, status, pause, play,
//! kill, continue, checkpoints and plugins, for many tenants, each request acting for the
//! tenant of its bearer token and within its scopes (401 without a valid token, 403 out of
//! scope, 404 for another tenant's pid as for a missing one, 429 over a quota). Over TLS
//! (rustls) when given a certificate. `GET /v1/openapi.json` describes it.
//!
//! Modules: [`routes`] (the handlers), `auth` (the bearer token), `problem` (errors as
//! statuses), [`views`] (stored processes and plugins as JSON, shared with the CLI),
//! [`tenants`] (one host per tenant), `openapi` (the description).

mod auth;
mod openapi;
mod problem;
pub mod routes;
pub mod tenants;
pub mod views;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

pub use problem::Problem;
pub use tenants::{TenantHostError, TenantHosts};

use crate::error::chain;
use auth::Caller;

/// The state every route shares: the daemon's tenants.
#[derive(Clone)]
pub struct Api {
    tenants: TenantHosts,
}

/// Where and how to listen.
#[derive(Debug, Clone)]
pub struct Listen {
    /// The address (port 0 picks a free one: see [`Listening::addr`]).
    pub addr: SocketAddr,
    /// A PEM certificate chain and its PEM private key: serve HTTPS with them. `None` serves
    /// plain HTTP, for a loopback address or behind a proxy that terminates TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// Why the API cannot listen.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The certificate or key cannot be read or used.
    #[error("cannot use the TLS certificate '{}' and key '{}'", cert.display(), key.display())]
    Tls {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The address cannot be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A listening API: where it listens, and how to stop it.
pub struct Listening {
    /// The address it is bound to.
    pub addr: SocketAddr,
    /// Whether it serves HTTPS.
    pub tls: bool,
    handle: axum_server::Handle,
    task: tokio::task::JoinHandle<()>,
}

impl Listening {
    /// The base URL of the API, e.g. `http://127.0.0.1:8080`.
    pub fn url(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.addr
        )
    }

    /// Stop listening, letting requests in flight finish for up to a second.
    pub async fn stop(self) {
        self.handle
            .graceful_shutdown(Some(std::time::Duration::from_secs(1)));
        let _ = self.task.await;
    }
}

impl Api {
    /// The API over `tenants`.
    pub fn new(tenants: TenantHosts) -> Self {
        Self { tenants }
    }

    /// Serve the API as `listen` says, on the current tokio runtime, until stopped.
    ///
    /// # Errors
    /// [`ListenError`] naming the files or the address.
    pub async fn serve(self, listen: &Listen) -> Result<Listening, ListenError> {
        let handle = axum_server::Handle::new();
        let app = routes::router(self).into_make_service();
        let std_listener =
            std::net::TcpListener::bind(listen.addr).map_err(|source| ListenError::Bind {
                addr: listen.addr,
                source,
            })?;
        let bound = |source| ListenError::Bind {
            addr: listen.addr,
            source,
        };
        std_listener.set_nonblocking(true).map_err(bound)?;
        let addr = std_listener.local_addr().map_err(bound)?;
        let task_handle = handle.clone();
        let task = match &listen.tls {
            Some((cert, key)) => {
                // rustls on ring; installing it twice is harmless.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                    .await
                    .map_err(|source| ListenError::Tls {
                        cert: cert.clone(),
                        key: key.clone(),
                        source,
                    })?;
                let server = axum_server::from_tcp_rustls(std_listener, config).handle(task_handle);
                tokio::spawn(async move {
                    if let Err(e) = server.serve(app).await {
                        tracing::error!("the HTTP API stopped: {e}");
                    }
                })
            }
            None => {
                let server = axum_server::from_tcp(std_listener).handle(task_handle);
                tokio::spawn(async move {
                    if let Err(e) = server.serve(app).await {
                        tracing::error!("the HTTP API stopped: {e}");
                    }
                })
            }
        };
        Ok(Listening {
            addr,
            tls: listen.tls.is_some(),
            handle,
            task,
        })
    }

    /// Append a control or submit operation by `caller` to the audit log (a failure to append
    /// is logged: the operation has happened).
    async fn audit<T, E: std::error::Error>(
        &self,
        caller: &Caller,
        action: &str,
        target: Option<&str>,
        outcome: &Result<T, E>,
    ) {
        let principal = &caller.0;
        let outcome = outcome.as_ref().map(|_| ()).map_err(|e| chain(e));
        if let Err(e) = self
            .tenants
            .accounts()
            .audit(
                &principal.token_id,
                &principal.tenant,
                action,
                target,
                outcome,
                now_ms(),
            )
            .await
        {
            tracing::error!(%action, "cannot append to the audit log: {}", chain(&e));
        }
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
