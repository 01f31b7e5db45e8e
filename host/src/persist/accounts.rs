//! What a store keeps about who may do what: tenants, API tokens (never their secrets) and the
//! audit log of control and admin operations. Rows only: `crate::tenancy` gives them meaning.

use serde::{Deserialize, Serialize};

/// A tenant: the owner of processes, plugins, checkpoints, claims and tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRow {
    /// Its name, unique in the store (`[a-z0-9][a-z0-9-]*`, checked by `tenancy`).
    pub name: String,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// The limits an admin set on it.
    pub quotas: Quotas,
}

/// The limits on one tenant, set by an admin (`damson tenant create|set`) and enforced by the
/// hosts that act for it (see `crate::tenancy::Quota` for each one's meaning). `None` is no
/// limit of the tenant's own: the host's configuration still applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Quotas {
    /// Linear memory of one plugin instance, in bytes.
    pub memory_per_instance: Option<u64>,
    /// Wall-clock time of one step, in milliseconds.
    pub step_time_ms: Option<u64>,
    /// Processes alive (not terminated) at once, per host acting for the tenant.
    pub live_processes: Option<u64>,
    /// Bytes of checkpoints kept in the store.
    pub stored_bytes: Option<u64>,
    /// Size of one plugin component, in bytes.
    pub plugin_size: Option<u64>,
    /// Submissions (new top-level processes) per second, per host acting for the tenant.
    pub submissions_per_second: Option<u32>,
}

/// An API token as stored: its public id and the SHA-256 of its secret, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRow {
    /// The token's public id (part of the token itself, shown by `token list`).
    pub id: String,
    /// The tenant it acts for.
    pub tenant: String,
    /// SHA-256 of its secret part, hex.
    pub secret_sha256: String,
    /// What it may do, e.g. `read`, `submit`, `control`, `admin`.
    pub scopes: Vec<String>,
    /// A note for people, e.g. who uses it.
    pub label: Option<String>,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// When it stops working, if ever.
    pub expires_ms: Option<u64>,
    /// When it was revoked, if it was.
    pub revoked_ms: Option<u64>,
}

/// One entry of the audit log: who did what, to what, when, and how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    /// Its place in the log, given by the store when it is appended (ignored on input).
    pub seq: u64,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The tenant acted on.
    pub tenant: String,
    /// Who: a token id, or `local` for the owner of the machine's store.
    pub actor: String,
    /// What, e.g. `tenant.create`, `token.revoke`, `process.kill`.
    pub action: String,
    /// On what, e.g. a pid or a token id.
    pub target: Option<String>,
    /// How it went: `ok`, or the error.
    pub outcome: String,
}
