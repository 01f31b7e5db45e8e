//! Tenants and who may act for them: API tokens with scopes, expiry and revocation, the
//! tenants' [`quota`]s, and the audit log of control and admin operations, all kept in the
//! store.
//!
//! Every process, checkpoint and claim carries its tenant in its key (the default tenant,
//! [`DEFAULT_TENANT`], until others are made); a [`Host`](crate::Host) acts for one tenant
//! ([`Host::for_tenant`](crate::Host::for_tenant)) and enforces its quotas. A token acts for
//! one tenant within its scopes; [`Accounts::authenticate`] turns a presented token into the
//! [`Principal`] that acts, or says exactly why not, never quoting the token. The broker
//! (a virtual host and user per tenant, `comms::BrokerAdmin`) and PostgreSQL (row-level
//! security, `PostgresPersister::connect_as_tenant`) keep tenants apart themselves.

pub mod quota;
pub mod token;

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

pub use quota::{Quota, QuotaExceeded, Quotas};

use crate::persist::{AuditRow, DEFAULT_TENANT, PersistError, Persister, TenantRow, TokenRow};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// List and show processes, their checkpoints and logs, and describe plugins.
    Read,
    /// Submit processes (and continue stored ones).
    Submit,
    /// Pause, play, kill and signal processes.
    Control,
    /// Everything above, and manage its tenant's tokens.
    Admin,
}

impl Scope {
    /// Every scope, in order.
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Submit, Scope::Control, Scope::Admin];

    fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Submit => "submit",
            Scope::Control => "control",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scope {
    type Err = TenancyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.name() == s)
            .ok_or_else(|| TenancyError::UnknownScope(s.to_string()))
    }
}

/// Who acts: a tenant, through one of its tokens, within its scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The tenant it acts for.
    pub tenant: String,
    /// The id of the token it presented.
    pub token_id: String,
    /// What it may do.
    pub scopes: BTreeSet<Scope>,
}

impl Principal {
    /// Whether it may do what `scope` allows (`admin` allows everything).
    ///
    /// # Errors
    /// [`AuthError::OutOfScope`] naming the scope it lacks.
    pub fn may(&self, scope: Scope) -> Result<(), AuthError> {
        if self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin) {
            Ok(())
        } else {
            Err(AuthError::OutOfScope {
                id: self.token_id.clone(),
                needs: scope,
            })
        }
    }
}

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    /// A tenant name that is not `[a-z0-9][a-z0-9-]*` of at most 63 characters.
    #[error(
        "'{0}' is not a tenant name: use lower-case letters, digits and '-', starting with a \
         letter or digit, at most 63 characters"
    )]
    InvalidTenantName(String),
    /// A tenant of that name exists.
    #[error("tenant '{0}' exists already")]
    TenantExists(String),
    /// No tenant of that name.
    #[error("there is no tenant '{0}'")]
    NoSuchTenant(String),
    /// The default tenant cannot be deleted.
    #[error("the default tenant '{DEFAULT_TENANT}' cannot be deleted")]
    DefaultTenant,
    /// The tenant still owns processes.
    #[error("tenant '{tenant}' still has {processes} stored processes: delete them first")]
    TenantInUse {
        /// The tenant.
        tenant: String,
        /// How many processes it has in the store.
        processes: usize,
    },
    /// A name that is not one of [`Quota::ALL`].
    #[error(
        "'{0}' is not a quota (memory-per-instance, step-time, live-processes, stored-bytes, \
         plugin-size or submissions-per-second)"
    )]
    UnknownQuota(String),
    /// A value a quota cannot take.
    #[error("'{value}' is not a value of the {quota} quota")]
    InvalidQuota {
        /// The quota.
        quota: &'static str,
        /// The text given.
        value: String,
    },
    /// No token with that id.
    #[error("there is no token '{0}'")]
    NoSuchToken(String),
    /// A scope that is not one of [`Scope::ALL`].
    #[error("'{0}' is not a scope (read, submit, control or admin)")]
    UnknownScope(String),
    /// A token needs at least one scope.
    #[error("a token needs at least one scope (read, submit, control or admin)")]
    NoScopes,
    /// The operating system gave no random bytes for a token.
    #[error("no random bytes for a token")]
    Random(#[source] getrandom::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PersistError),
}

/// Why a presented token does not let its bearer act.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No token was given.
    #[error("no token was given (pass --token, set DAMSON_TOKEN, or name one in damson.toml)")]
    Missing,
    /// The text is not a token.
    #[error("the token is malformed: {0}")]
    Malformed(#[from] token::MalformedToken),
    /// No token has its id, or its secret is not the one issued.
    #[error("token {id} is not known to this store")]
    Unknown {
        /// The id it presented.
        id: String,
    },
    /// It ran out.
    #[error("token {id} expired")]
    Expired {
        /// Its id.
        id: String,
    },
    /// It was revoked.
    #[error("token {id} was revoked")]
    Revoked {
        /// Its id.
        id: String,
    },
    /// It lacks the scope the operation needs.
    #[error("token {id} lacks the '{needs}' scope")]
    OutOfScope {
        /// Its id.
        id: String,
        /// The scope needed.
        needs: Scope,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PersistError),
}

/// Tenants, tokens and the audit log of one store.
#[derive(Clone)]
pub struct Accounts {
    store: Arc<dyn Persister>,
}

/// Who acts for operations done by the owner of the machine on its own store.
pub const LOCAL_ACTOR: &str = "local";

fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first = bytes.next();
    name.len() <= 63
        && first.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Accounts {
    /// The accounts kept in `store`.
    pub fn new(store: Arc<dyn Persister>) -> Self {
        Self { store }
    }

    /// Make the tenant `name` with `quotas` (the default tenant exists without being made).
    ///
    /// # Errors
    /// An invalid name, a tenant that exists, or the store failing.
    pub async fn create_tenant(
        &self,
        name: &str,
        quotas: Quotas,
        now_ms: u64,
    ) -> Result<TenantRow, TenancyError> {
        if !valid_name(name) {
            return Err(TenancyError::InvalidTenantName(name.to_string()));
        }
        let row = TenantRow {
            name: name.to_string(),
            created_ms: now_ms,
            quotas,
        };
        if name == DEFAULT_TENANT || !self.store.create_tenant(&row).await? {
            return Err(TenancyError::TenantExists(name.to_string()));
        }
        Ok(row)
    }

    /// Every tenant, the default one first.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn tenants(&self) -> Result<Vec<TenantRow>, TenancyError> {
        let stored = self.store.tenants().await?;
        // The default tenant has a row only once its quotas were set.
        let default = stored
            .iter()
            .find(|t| t.name == DEFAULT_TENANT)
            .cloned()
            .unwrap_or_else(|| TenantRow {
                name: DEFAULT_TENANT.to_string(),
                created_ms: 0,
                quotas: Quotas::default(),
            });
        let mut tenants = vec![default];
        tenants.extend(stored.into_iter().filter(|t| t.name != DEFAULT_TENANT));
        Ok(tenants)
    }

    /// The tenant `name`.
    ///
    /// # Errors
    /// [`TenancyError::NoSuchTenant`], or the store failing.
    pub async fn tenant(&self, name: &str) -> Result<TenantRow, TenancyError> {
        self.tenants()
            .await?
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| TenancyError::NoSuchTenant(name.to_string()))
    }

    /// Replace the quotas of tenant `name` (the default tenant's too); the row as it is now.
    ///
    /// # Errors
    /// [`TenancyError::NoSuchTenant`], or the store failing.
    pub async fn set_quotas(&self, name: &str, quotas: Quotas) -> Result<TenantRow, TenancyError> {
        let mut row = self.tenant(name).await?;
        row.quotas = quotas;
        let saved = self.store.set_quotas(name, &row.quotas).await?
            || (name == DEFAULT_TENANT && self.store.create_tenant(&row).await?);
        if !saved {
            return Err(TenancyError::NoSuchTenant(name.to_string()));
        }
        Ok(row)
    }

    /// Whether `name` is a tenant.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn exists(&self, name: &str) -> Result<bool, TenancyError> {
        Ok(name == DEFAULT_TENANT || self.store.tenants().await?.iter().any(|t| t.name == name))
    }

    /// Delete the tenant `name` and its tokens; refused while it has stored processes.
    ///
    /// # Errors
    /// The default tenant, an unknown one, one with processes, or the store failing.
    pub async fn delete_tenant(&self, name: &str) -> Result<(), TenancyError> {
        if name == DEFAULT_TENANT {
            return Err(TenancyError::DefaultTenant);
        }
        let processes: BTreeSet<String> = self
            .store
            .list()
            .await?
            .into_iter()
            .filter(|key| key.tenant == name)
            .map(|key| key.pid)
            .collect();
        if !processes.is_empty() {
            return Err(TenancyError::TenantInUse {
                tenant: name.to_string(),
                processes: processes.len(),
            });
        }
        if !self.store.delete_tenant(name).await? {
            return Err(TenancyError::NoSuchTenant(name.to_string()));
        }
        Ok(())
    }

    /// Issue a token for `tenant` with `scopes`; the row stored and the token's text, which is
    /// shown once and kept nowhere.
    ///
    /// # Errors
    /// An unknown tenant, no scopes, no randomness, or the store failing.
    pub async fn create_token(
        &self,
        tenant: &str,
        scopes: &BTreeSet<Scope>,
        label: Option<&str>,
        expires_ms: Option<u64>,
        now_ms: u64,
    ) -> Result<(TokenRow, String), TenancyError> {
        if !self.exists(tenant).await? {
            return Err(TenancyError::NoSuchTenant(tenant.to_string()));
        }
        if scopes.is_empty() {
            return Err(TenancyError::NoScopes);
        }
        let minted = token::mint().map_err(TenancyError::Random)?;
        let row = TokenRow {
            id: minted.id,
            tenant: tenant.to_string(),
            secret_sha256: minted.secret_sha256,
            scopes: scopes.iter().map(Scope::to_string).collect(),
            label: label.map(str::to_string),
            created_ms: now_ms,
            expires_ms,
            revoked_ms: None,
        };
        self.store.save_token(&row).await?;
        Ok((row, minted.text))
    }

    /// Every token (or a tenant's), without secrets.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn tokens(&self, tenant: Option<&str>) -> Result<Vec<TokenRow>, TenancyError> {
        Ok(self.store.tokens(tenant).await?)
    }

    /// Revoke the token `id` (revoking it again keeps the first time).
    ///
    /// # Errors
    /// An unknown token, or the store failing.
    pub async fn revoke_token(&self, id: &str, now_ms: u64) -> Result<TokenRow, TenancyError> {
        let mut row = self
            .store
            .token(id)
            .await?
            .ok_or_else(|| TenancyError::NoSuchToken(id.to_string()))?;
        if row.revoked_ms.is_none() {
            row.revoked_ms = Some(now_ms);
            self.store.save_token(&row).await?;
        }
        Ok(row)
    }

    /// Who acts with the token `text`, if it is valid now.
    ///
    /// # Errors
    /// [`AuthError`] saying why not: missing, malformed, unknown, expired or revoked.
    pub async fn authenticate(
        &self,
        text: Option<&str>,
        now_ms: u64,
    ) -> Result<Principal, AuthError> {
        let presented = token::parse(text.ok_or(AuthError::Missing)?)?;
        let unknown = || AuthError::Unknown {
            id: presented.id.clone(),
        };
        let row = self.store.token(&presented.id).await?.ok_or_else(unknown)?;
        if !presented.matches(&row.secret_sha256) {
            return Err(unknown());
        }
        if row.revoked_ms.is_some() {
            return Err(AuthError::Revoked { id: row.id });
        }
        if row.expires_ms.is_some_and(|at| at <= now_ms) {
            return Err(AuthError::Expired { id: row.id });
        }
        Ok(Principal {
            tenant: row.tenant,
            token_id: row.id,
            scopes: row.scopes.iter().filter_map(|s| s.parse().ok()).collect(),
        })
    }

    /// Append to the audit log that `actor` did `action` to `target` of `tenant` at `now_ms`,
    /// and how it went.
    ///
    /// # Errors
    /// When the store fails (the operation itself has happened by then, or not, as `outcome`
    /// says).
    pub async fn audit(
        &self,
        actor: &str,
        tenant: &str,
        action: &str,
        target: Option<&str>,
        outcome: Result<(), String>,
        now_ms: u64,
    ) -> Result<u64, TenancyError> {
        let row = AuditRow {
            seq: 0,
            at_ms: now_ms,
            tenant: tenant.to_string(),
            actor: actor.to_string(),
            action: action.to_string(),
            target: target.map(str::to_string),
            outcome: outcome.err().unwrap_or_else(|| "ok".to_string()),
        };
        Ok(self.store.append_audit(&row).await?)
    }

    /// Up to `limit` audit entries after `after` (of `tenant`, or all), oldest first.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn audit_log(
        &self,
        tenant: Option<&str>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditRow>, TenancyError> {
        Ok(self.store.audit(tenant, after, limit).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::MemoryPersister;

    fn scopes(names: &[&str]) -> BTreeSet<Scope> {
        names.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[tokio::test]
    async fn a_token_acts_for_its_tenant_within_its_scopes_until_revoked_or_expired() {
        let accounts = Accounts::new(Arc::new(MemoryPersister::new()));
        accounts
            .create_tenant("acme", Quotas::default(), 1)
            .await
            .unwrap();
        let (row, text) = accounts
            .create_token(
                "acme",
                &scopes(&["read", "control"]),
                Some("ci"),
                Some(100),
                1,
            )
            .await
            .unwrap();
        let secret = &text[token::PREFIX.len() + row.id.len() + 1..];
        assert!(!format!("{row:?}").contains(secret));

        let principal = accounts.authenticate(Some(&text), 50).await.unwrap();
        assert_eq!(principal.tenant, "acme");
        assert!(principal.may(Scope::Control).is_ok());
        let refused = principal.may(Scope::Submit).unwrap_err();
        assert!(
            matches!(
                refused,
                AuthError::OutOfScope {
                    needs: Scope::Submit,
                    ..
                }
            ),
            "{refused}"
        );

        assert!(matches!(
            accounts.authenticate(Some(&text), 100).await,
            Err(AuthError::Expired { .. })
        ));
        // Another secret under the same id is not this token.
        let forged = format!("{}{}_{}", token::PREFIX, row.id, "A".repeat(43));
        assert!(matches!(
            accounts.authenticate(Some(&forged), 50).await,
            Err(AuthError::Unknown { .. })
        ));
        assert!(matches!(
            accounts.authenticate(None, 50).await,
            Err(AuthError::Missing)
        ));
        assert!(matches!(
            accounts.authenticate(Some("hunter2"), 50).await,
            Err(AuthError::Malformed(_))
        ));
        accounts.revoke_token(&row.id, 60).await.unwrap();
        let revoked = accounts.authenticate(Some(&text), 70).await.unwrap_err();
        assert!(matches!(revoked, AuthError::Revoked { .. }));
        assert!(!revoked.to_string().contains(&text));
    }

    #[tokio::test]
    async fn tenants_have_names_of_their_own_and_the_default_one_stays() {
        let accounts = Accounts::new(Arc::new(MemoryPersister::new()));
        for bad in ["", "Acme", "-acme", "a_b", &"a".repeat(64)] {
            assert!(
                matches!(
                    accounts.create_tenant(bad, Quotas::default(), 1).await,
                    Err(TenancyError::InvalidTenantName(_))
                ),
                "{bad:?}"
            );
        }
        accounts
            .create_tenant("acme", Quotas::default(), 1)
            .await
            .unwrap();
        assert!(matches!(
            accounts.create_tenant("acme", Quotas::default(), 2).await,
            Err(TenancyError::TenantExists(_))
        ));
        assert!(matches!(
            accounts
                .create_tenant(DEFAULT_TENANT, Quotas::default(), 2)
                .await,
            Err(TenancyError::TenantExists(_))
        ));
        let names: Vec<_> = accounts
            .tenants()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, [DEFAULT_TENANT, "acme"]);
        assert!(matches!(
            accounts.delete_tenant(DEFAULT_TENANT).await,
            Err(TenancyError::DefaultTenant)
        ));
        accounts
            .create_token("acme", &scopes(&["read"]), None, None, 1)
            .await
            .unwrap();
        accounts.delete_tenant("acme").await.unwrap();
        assert!(accounts.tokens(Some("acme")).await.unwrap().is_empty());
        assert!(matches!(
            accounts
                .create_token("acme", &scopes(&["read"]), None, None, 1)
                .await,
            Err(TenancyError::NoSuchTenant(_))
        ));
    }
}
