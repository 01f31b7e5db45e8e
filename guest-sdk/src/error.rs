//! The error a step or condition returns: its message becomes the process's EXCEPTED reason.

use std::fmt;

/// A step's error. Any `std::error::Error` converts into it with `?`; [`bail!`](crate::bail) makes
/// one from a message.
pub struct Error {
    message: String,
    kind: Option<String>,
}

/// `Result<T, damson_guest::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with this message.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            kind: None,
        }
    }

    /// The same error, of the kind `kind` (e.g. `invalid-request`): a
    /// [`RetryPolicy`](crate::RetryPolicy) can leave it out
    /// ([`not_on_error`](crate::RetryPolicy::not_on_error)).
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// Its message and kind, for the host.
    pub(crate) fn into_parts(self) -> (String, Option<String>) {
        (self.message, self.kind)
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(e: E) -> Self {
        // Keep the whole cause chain: the host shows only this text.
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self {
            message,
            kind: None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.message, f)
    }
}

/// Return early from a step with an error: `bail!("n must be positive, got {n}")`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return ::core::result::Result::Err($crate::Error::msg(::std::format!($($arg)*)))
    };
}
