//! `--server URL`: the control commands through the HTTP API of a `damson serve --listen`, as
//! the tenant of `--token`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use reqwest::StatusCode;
use serde_json::Value;

/// Where the HTTP API is, and how to trust it.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServerOptions {
    /// The HTTP API of a `damson serve --listen`, e.g. `https://damson.example:8443`: the
    /// command goes there, as the tenant of --token, instead of to a broker or the local socket.
    #[arg(long, env = "DAMSON_SERVER", value_name = "URL")]
    pub(crate) server: Option<String>,

    /// A PEM certificate to trust for the server's TLS besides the system's roots (a private
    /// CA, or the server's own self-signed certificate).
    #[arg(
        long,
        env = "DAMSON_SERVER_CA",
        value_name = "FILE",
        requires = "server"
    )]
    server_ca: Option<PathBuf>,
}

/// A request the server refused: its status and what it said.
#[derive(Debug, thiserror::Error)]
#[error("the server answered {status}: {message}")]
pub(crate) struct Refused {
    /// The HTTP status.
    pub(crate) status: StatusCode,
    /// Its `error`.
    pub(crate) message: String,
}

impl Refused {
    /// The exit code this refusal gives the command.
    pub(crate) fn exit_code(&self) -> u8 {
        match self.status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => super::exit::DENIED,
            StatusCode::TOO_MANY_REQUESTS => super::exit::OVER_QUOTA,
            StatusCode::CONFLICT => super::exit::ELSEWHERE,
            _ => super::exit::USAGE,
        }
    }
}

/// A client of one server, with one token.
pub(crate) struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl ServerOptions {
    /// A client of the server, if one was named.
    pub(crate) fn client(&self, token: Option<&str>) -> anyhow::Result<Option<Client>> {
        let Some(base) = &self.server else {
            return Ok(None);
        };
        let mut http = reqwest::Client::builder().use_rustls_tls();
        if let Some(ca) = &self.server_ca {
            let pem = std::fs::read(ca)
                .with_context(|| format!("cannot read the certificate {}", ca.display()))?;
            let certificate = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{} is not a PEM certificate", ca.display()))?;
            http = http.add_root_certificate(certificate);
        }
        Ok(Some(Client {
            base: base.trim_end_matches('/').to_string(),
            token: token.map(str::to_string),
            http: http.build().context("cannot set up the HTTP client")?,
        }))
    }
}

impl Client {
    /// `GET path`.
    pub(crate) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(self.url(path))).await
    }

    /// `POST path` with `body`.
    pub(crate) async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, mut request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the server {}", self.base))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .with_context(|| format!("the server {} answered {status} without JSON", self.base))?;
        if !status.is_success() {
            let message = body["error"].as_str().unwrap_or("(no message)").to_string();
            return Err(Refused { status, message }.into());
        }
        Ok(body)
    }
}
