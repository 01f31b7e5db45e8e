//! Who calls: the bearer token of a request, checked against the store's accounts.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::Api;
use super::problem::Problem;
use crate::Host;
use crate::tenancy::{AuthError, Principal, Scope};

/// The principal a request acts as: the tenant and token of its `Authorization: Bearer …`
/// header. A request without one, or with a malformed, unknown, expired or revoked token, is
/// answered 401.
pub struct Caller(pub Principal);

impl FromRequestParts<Api> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, Problem> {
        let presented = match parts.headers.get(header::AUTHORIZATION) {
            None => None,
            Some(value) => {
                let value = value.to_str().ok();
                let token = value.and_then(|v| v.strip_prefix("Bearer "));
                if token.is_none() {
                    return Err(Problem::new(
                        axum::http::StatusCode::UNAUTHORIZED,
                        "the Authorization header is not 'Bearer <token>'",
                    ));
                }
                token
            }
        };
        let principal = api
            .tenants
            .accounts()
            .authenticate(presented.map(str::trim), super::now_ms())
            .await
            .map_err(|e| match e {
                AuthError::Missing => Problem::new(
                    axum::http::StatusCode::UNAUTHORIZED,
                    "no token was given: send 'Authorization: Bearer <token>'",
                ),
                other => other.into(),
            })?;
        Ok(Caller(principal))
    }
}

impl Caller {
    /// The host acting for the caller's tenant, once the caller is checked to have `scope`
    /// (403 otherwise).
    pub async fn host(&self, api: &Api, scope: Scope) -> Result<Host, Problem> {
        self.0.may(scope)?;
        Ok(api.tenants.host(&self.0.tenant).await?)
    }
}
