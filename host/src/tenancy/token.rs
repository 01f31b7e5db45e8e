//! API tokens: `damson_<id>_<secret>`, where the id is public (listed, audited) and the secret
//! is 32 bytes from the operating system's CSPRNG. Only the secret's SHA-256 is stored; a
//! presented token is checked by hashing its secret and comparing in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What every token starts with, so that one pasted in the wrong place is recognisable.
pub const PREFIX: &str = "damson_";
/// Random bytes in a token's id and in its secret.
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// A token as presented: its id and its secret. The secret is never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Presented {
    /// The public id.
    pub id: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presented")
            .field("id", &self.id)
            .field("secret", &"…")
            .finish()
    }
}

/// Why a token's text cannot be one (never quoting it: it may be a real secret mistyped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedToken {
    /// It does not start with [`PREFIX`].
    #[error("a Damson token starts with '{PREFIX}'")]
    Prefix,
    /// Its id or secret is missing or of the wrong length or alphabet.
    #[error("a Damson token is '{PREFIX}' and two parts, an id and a secret, joined by '_'")]
    Shape,
}

/// A new token: the text to give its user (once) and its id and secret hash to store.
pub struct Minted {
    /// The whole token, to show once.
    pub text: String,
    /// Its public id.
    pub id: String,
    /// SHA-256 of its secret, hex.
    pub secret_sha256: String,
}

/// Make a new token.
///
/// # Errors
/// When the operating system gives no random bytes.
pub fn mint() -> Result<Minted, getrandom::Error> {
    let mut id = [0u8; ID_BYTES];
    let mut secret = [0u8; SECRET_BYTES];
    getrandom::fill(&mut id)?;
    getrandom::fill(&mut secret)?;
    let id = hex::encode(id);
    let text = format!("{PREFIX}{id}_{}", URL_SAFE_NO_PAD.encode(secret));
    Ok(Minted {
        text,
        id,
        secret_sha256: hex::encode(Sha256::digest(secret)),
    })
}

/// Read a presented token.
///
/// # Errors
/// [`MalformedToken`] naming what is wrong with its shape.
pub fn parse(text: &str) -> Result<Presented, MalformedToken> {
    let rest = text
        .trim()
        .strip_prefix(PREFIX)
        .ok_or(MalformedToken::Prefix)?;
    let (id, secret) = rest.split_once('_').ok_or(MalformedToken::Shape)?;
    let valid_id = id.len() == 2 * ID_BYTES && id.bytes().all(|b| b.is_ascii_hexdigit());
    let secret = URL_SAFE_NO_PAD
        .decode(secret)
        .ok()
        .filter(|s| s.len() == SECRET_BYTES && valid_id)
        .ok_or(MalformedToken::Shape)?;
    Ok(Presented {
        id: id.to_ascii_lowercase(),
        secret,
    })
}

impl Presented {
    /// Whether this token's secret is the one whose SHA-256 is `secret_sha256` (hex), compared
    /// in constant time.
    pub fn matches(&self, secret_sha256: &str) -> bool {
        let Ok(stored) = hex::decode(secret_sha256) else {
            return false;
        };
        let ours = Sha256::digest(&self.secret);
        stored.len() == ours.len() && bool::from(ours.as_slice().ct_eq(&stored))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_reads_back_and_matches_only_its_own_hash() {
        let token = mint().unwrap();
        assert!(token.text.starts_with("damson_"));
        let presented = parse(&token.text).unwrap();
        assert_eq!(presented.id, token.id);
        assert!(presented.matches(&token.secret_sha256));
        let other = mint().unwrap();
        assert_ne!(other.text, token.text, "fresh randomness each time");
        assert!(!presented.matches(&other.secret_sha256));
        assert!(!presented.matches("not hex"));
        let secret = &token.text[PREFIX.len() + token.id.len() + 1..];
        assert!(!format!("{presented:?}").contains(secret));
    }

    #[test]
    fn malformed_tokens_are_named_without_quoting_them() {
        let token = mint().unwrap().text;
        assert_eq!(parse("bearer xyz"), Err(MalformedToken::Prefix));
        assert_eq!(parse("damson_nounderscore"), Err(MalformedToken::Shape));
        assert_eq!(parse(&token[..token.len() - 2]), Err(MalformedToken::Shape));
        assert_eq!(
            parse(&token.replacen('_', "_zz", 2)),
            Err(MalformedToken::Shape)
        );
        let message = parse("damson_secretive_part").unwrap_err().to_string();
        assert!(!message.contains("secretive"), "{message}");
    }
}
