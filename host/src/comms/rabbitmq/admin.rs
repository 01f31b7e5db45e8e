//! [`BrokerAdmin`]: a small client of RabbitMQ's management HTTP API, enough to give each
//! tenant a place on the broker that only its credentials reach — a virtual host
//! `damson-<tenant>` and a user `damson-<tenant>` with a fresh random password, allowed to
//! configure, write and read everything in that virtual host and nothing elsewhere (RabbitMQ's
//! virtual host is its tenant boundary: a connection names one, and the broker refuses it
//! unless the user has permissions there).
//!
//! The management plugin must be enabled (`rabbitmq-plugins enable rabbitmq_management`); the
//! admin URL carries the credentials of a user tagged `administrator`, e.g.
//! `http://guest:guest@127.0.0.1:15672`. They are sent as HTTP basic authentication and never
//! shown: [`BrokerAdmin`]'s `Display` and every error give the URL with its password as `***`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

use super::redacted;

/// What a tenant's virtual host and user are named after: `damson-<tenant>`.
const PREFIX: &str = "damson-";
/// Random bytes in a tenant's broker password.
const PASSWORD_BYTES: usize = 32;
/// How much of a refusal's body an error quotes.
const BODY_LIMIT: usize = 2000;

/// A client of RabbitMQ's management HTTP API, for the broker's side of tenants.
#[derive(Clone)]
pub struct BrokerAdmin {
    /// The API's base URL, without credentials.
    base: Url,
    /// As given, redacted: for messages.
    shown: String,
    user: String,
    password: String,
    http: reqwest::Client,
}

/// A tenant's place on the broker, as [`BrokerAdmin::create_tenant`] made it. Its `Debug` does
/// not show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct TenantBroker {
    /// The tenant's virtual host, `damson-<tenant>`.
    pub vhost: String,
    /// The tenant's broker user, `damson-<tenant>`.
    pub user: String,
    /// The user's password: random, shown once to whoever made the tenant, kept nowhere.
    pub password: String,
}

impl fmt::Debug for TenantBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantBroker")
            .field("vhost", &self.vhost)
            .field("user", &self.user)
            .field("password", &"***")
            .finish()
    }
}

impl TenantBroker {
    /// The AMQP URL a worker or client of the tenant connects with:
    /// `amqp://<user>:<password>@<broker_host_port>/<vhost>`, each part URL-encoded.
    /// `broker_host_port` is the broker's AMQP address, e.g. `127.0.0.1:5672`.
    pub fn amqp_url(&self, broker_host_port: &str) -> String {
        format!(
            "amqp://{}:{}@{broker_host_port}/{}",
            encoded(&self.user),
            encoded(&self.password),
            encoded(&self.vhost)
        )
    }
}

/// What went wrong talking to the management API. No variant carries the admin password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerAdminError {
    /// The admin URL cannot be used.
    #[error("the broker admin URL {url} is not valid: {reason}")]
    InvalidUrl {
        /// The URL given, redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The management API did not answer.
    #[error("the RabbitMQ management API at {url} did not answer {doing}")]
    Unreachable {
        /// The admin URL, redacted.
        url: String,
        /// What was asked, e.g. `PUT /api/vhosts/damson-acme`.
        doing: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The management API refused or failed a request.
    #[error("the RabbitMQ management API at {url} answered {doing} with {status}: {body}")]
    Refused {
        /// The admin URL, redacted.
        url: String,
        /// What was asked.
        doing: String,
        /// The HTTP status it answered with.
        status: u16,
        /// The body it answered with (its JSON `{error, reason}`, as text).
        body: String,
    },
    /// The tenant's virtual host or user exists on the broker already: it is not made again
    /// (that would reset another's password).
    #[error("the broker has a {what} '{name}' for tenant '{tenant}' already; it is left as it is")]
    Exists {
        /// The tenant.
        tenant: String,
        /// `virtual host` or `user`.
        what: &'static str,
        /// Its name.
        name: String,
    },
    /// The operating system gave no random bytes for a password.
    #[error("no random bytes for a broker password")]
    Random(#[source] getrandom::Error),
}

impl fmt::Display for BrokerAdmin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for BrokerAdmin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BrokerAdmin").field(&self.shown).finish()
    }
}

impl BrokerAdmin {
    /// A client of the management API at `url`, `http://USER:PASSWORD@HOST:15672` (or
    /// `https://…`), whose credentials it authenticates with. Nothing is sent yet.
    ///
    /// # Errors
    /// [`BrokerAdminError::InvalidUrl`] when `url` is not an `http(s)` URL with a user and
    /// password.
    pub fn new(url: &str) -> Result<Self, BrokerAdminError> {
        let shown = redacted(url);
        let invalid = |reason: &str| BrokerAdminError::InvalidUrl {
            url: shown.clone(),
            reason: reason.to_string(),
        };
        let mut base = Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("use http://USER:PASSWORD@HOST:15672"));
        }
        if base.host_str().is_none() {
            return Err(invalid("it names no host"));
        }
        let user = decoded(base.username());
        let password = base.password().map(decoded);
        let (Some(password), false) = (password, user.is_empty()) else {
            return Err(invalid(
                "it has no credentials: write http://USER:PASSWORD@HOST:15672",
            ));
        };
        let cleared = base.set_username("").is_ok() && base.set_password(None).is_ok();
        if !cleared || base.cannot_be_a_base() {
            return Err(invalid("it cannot carry an API path"));
        }
        base.set_query(None);
        base.set_fragment(None);
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| invalid(&e.to_string()))?;
        Ok(Self {
            base,
            shown,
            user,
            password,
            http,
        })
    }

    /// The host the management API is on (where the broker's AMQP port usually is too).
    pub fn host(&self) -> &str {
        self.base.host_str().unwrap_or_default()
    }

    /// The virtual host and user of `tenant`: `damson-<tenant>` both.
    pub fn names(tenant: &str) -> (String, String) {
        (format!("{PREFIX}{tenant}"), format!("{PREFIX}{tenant}"))
    }

    /// Give `tenant` its place on the broker: the virtual host `damson-<tenant>`, the user
    /// `damson-<tenant>` (no tags: it cannot use the management API) with a fresh random
    /// password, and that user's permission to configure, write and read everything in that
    /// virtual host — and no other. The management API gives the admin user permissions on a
    /// virtual host it makes; they are removed again, so that the admin's credentials (often
    /// those of the default virtual host's workers) do not reach the tenant's messages either.
    /// A part made before a later one failed is removed again.
    ///
    /// # Errors
    /// [`BrokerAdminError::Exists`] when the virtual host or the user exists already (nothing is
    /// changed), else what the API or the connection to it said.
    pub async fn create_tenant(&self, tenant: &str) -> Result<TenantBroker, BrokerAdminError> {
        let (vhost, user) = Self::names(tenant);
        for (what, kind, name) in [("virtual host", "vhosts", &vhost), ("user", "users", &user)] {
            if self.exists(&[kind, name]).await? {
                return Err(BrokerAdminError::Exists {
                    tenant: tenant.to_string(),
                    what,
                    name: name.clone(),
                });
            }
        }
        let password = new_password()?;
        let description = format!("Damson tenant {tenant}");
        self.call(
            Method::PUT,
            &["vhosts", &vhost],
            Some(json!({"description": description})),
        )
        .await?;
        let rest = async {
            self.call(
                Method::PUT,
                &["users", &user],
                Some(json!({"password": password, "tags": ""})),
            )
            .await?;
            self.call(
                Method::PUT,
                &["permissions", &vhost, &user],
                Some(json!({"configure": ".*", "write": ".*", "read": ".*"})),
            )
            .await?;
            if self.user != user {
                self.remove(&["permissions", &vhost, &self.user]).await?;
            }
            Ok(())
        }
        .await;
        if let Err(error) = rest {
            // Undo what was made, so that the tenant can be made again; the first error is the
            // one to tell.
            let _ = self.remove(&["users", &user]).await;
            let _ = self.remove(&["vhosts", &vhost]).await;
            return Err(error);
        }
        Ok(TenantBroker {
            vhost,
            user,
            password,
        })
    }

    /// Remove `tenant`'s virtual host (with every queue and exchange in it) and its user;
    /// either being absent already is fine.
    ///
    /// # Errors
    /// What the API or the connection to it said.
    pub async fn delete_tenant(&self, tenant: &str) -> Result<(), BrokerAdminError> {
        let (vhost, user) = Self::names(tenant);
        self.remove(&["vhosts", &vhost]).await?;
        self.remove(&["users", &user]).await
    }

    /// Whether `GET /api/<path>` finds something.
    async fn exists(&self, path: &[&str]) -> Result<bool, BrokerAdminError> {
        match self.call(Method::GET, path, None).await {
            Ok(_) => Ok(true),
            Err(BrokerAdminError::Refused { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `DELETE /api/<path>`, where absent is fine.
    async fn remove(&self, path: &[&str]) -> Result<(), BrokerAdminError> {
        match self.call(Method::DELETE, path, None).await {
            Ok(_) => Ok(()),
            Err(BrokerAdminError::Refused { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `METHOD /api/<path>` (each segment URL-encoded) with `body` as JSON; the answer's body
    /// when its status is a success.
    async fn call(
        &self,
        method: Method,
        path: &[&str],
        body: Option<Value>,
    ) -> Result<String, BrokerAdminError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| BrokerAdminError::InvalidUrl {
                url: self.shown.clone(),
                reason: "it cannot carry an API path".into(),
            })?
            .pop_if_empty()
            .push("api")
            .extend(path);
        let doing = format!("{method} {}", url.path());
        let mut request = self
            .http
            .request(method, url)
            .basic_auth(&self.user, Some(&self.password));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let unreachable = |source| BrokerAdminError::Unreachable {
            url: self.shown.clone(),
            doing: doing.clone(),
            source,
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let text = response.text().await.map_err(unreachable)?;
        if status.is_success() {
            return Ok(text);
        }
        Err(BrokerAdminError::Refused {
            url: self.shown.clone(),
            doing,
            status: status.as_u16(),
            body: refusal(status, &text),
        })
    }
}

/// The body of a refusal, shortened, or the status's reason when there is none.
fn refusal(status: StatusCode, text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        return status.canonical_reason().unwrap_or("no body").to_string();
    }
    match text.char_indices().nth(BODY_LIMIT) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// A fresh password: [`PASSWORD_BYTES`] from the operating system's CSPRNG, base64url.
fn new_password() -> Result<String, BrokerAdminError> {
    let mut bytes = [0u8; PASSWORD_BYTES];
    getrandom::fill(&mut bytes).map_err(BrokerAdminError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// `text` with every byte but the unreserved ones (RFC 3986) percent-encoded: for a part of an
/// AMQP URL.
fn encoded(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A percent-encoded part of a URL (its user or password), decoded.
fn decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_url_gives_credentials_that_no_message_shows() {
        let admin = BrokerAdmin::new("http://admin:s%3Acret@broker.example:15672/").unwrap();
        assert_eq!(admin.user, "admin");
        assert_eq!(admin.password, "s:cret");
        assert_eq!(admin.host(), "broker.example");
        assert_eq!(admin.base.as_str(), "http://broker.example:15672/");
        for shown in [admin.to_string(), format!("{admin:?}")] {
            assert!(
                !shown.contains("s%3Acret") && !shown.contains("s:cret"),
                "{shown}"
            );
            assert!(shown.contains("admin:***@broker.example"), "{shown}");
        }
        for (url, says) in [
            ("http://broker.example:15672", "no credentials"),
            ("http://admin@broker.example:15672", "no credentials"),
            ("amqp://admin:secret@broker.example:5672", "use http://"),
            ("not a url", "not valid"),
        ] {
            let error = BrokerAdmin::new(url).unwrap_err().to_string();
            assert!(error.contains(says), "{url}: {error}");
            assert!(!error.contains("secret"), "{error}");
        }
    }

    #[test]
    fn a_tenants_url_names_its_vhost_and_user_and_debug_hides_the_password() {
        let password = new_password().unwrap();
        assert_eq!(password.len(), 43);
        assert_ne!(password, new_password().unwrap());
        let (vhost, user) = BrokerAdmin::names("acme");
        let broker = TenantBroker {
            vhost,
            user,
            password: "p/w+x".into(),
        };
        assert_eq!(
            broker.amqp_url("127.0.0.1:5672"),
            "amqp://damson-acme:p%2Fw%2Bx@127.0.0.1:5672/damson-acme"
        );
        assert!(!format!("{broker:?}").contains("p/w+x"));
        assert_eq!(encoded("a b/%"), "a%20b%2F%25");
        assert_eq!(decoded("a%20b%2F%25%zz"), "a b/%%zz");
    }
}
