//! [`Problem`]: an API request that failed, as its HTTP status and a JSON body
//! `{"error": "…"}` that says what was wrong and where — never quoting a token.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::tenants::TenantHostError;
use crate::Error;
use crate::error::chain;
use crate::persist::PersistError;
use crate::tenancy::{AuthError, TenancyError};

/// A failed request: the status and the message of its body.
#[derive(Debug, thiserror::Error)]
#[error("{message} ({status})")]
pub struct Problem {
    /// The HTTP status.
    pub status: StatusCode,
    /// What was wrong, with its causes.
    pub message: String,
}

impl Problem {
    /// A failure with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 404: what the tenant asked for is not there (or is another tenant's: the same answer,
    /// so that nothing tells that it exists).
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, what)
    }
}

impl From<AuthError> for Problem {
    fn from(error: AuthError) -> Self {
        let status = match &error {
            AuthError::OutOfScope { .. } => StatusCode::FORBIDDEN,
            AuthError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNAUTHORIZED,
        };
        Self::new(status, chain(&error))
    }
}

impl From<Error> for Problem {
    fn from(error: Error) -> Self {
        let status = match &error {
            Error::OverQuota(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::InvalidInputs { .. }
            | Error::PluginPath { .. }
            | Error::PluginNotFound { .. } => StatusCode::BAD_REQUEST,
            Error::NoCheckpoint { .. } => StatusCode::NOT_FOUND,
            Error::Claimed { .. } | Error::Closed { .. } | Error::Terminated { .. } => {
                StatusCode::CONFLICT
            }
            Error::ReadPlugin { .. }
            | Error::NotWasm { .. }
            | Error::CoreModule { .. }
            | Error::InvalidComponent { .. }
            | Error::WrongWorld { .. }
            | Error::Declare { .. }
            | Error::InvalidSpec { .. }
            | Error::Expose { .. }
            | Error::Guest { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, chain(&error))
    }
}

impl From<PersistError> for Problem {
    fn from(error: PersistError) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, chain(&error))
    }
}

impl From<TenancyError> for Problem {
    fn from(error: TenancyError) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, chain(&error))
    }
}

impl From<TenantHostError> for Problem {
    fn from(error: TenantHostError) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, chain(&error))
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({"error": self.message}))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"damson\""),
            );
        }
        response
    }
}
