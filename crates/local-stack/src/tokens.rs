//! Random Dynatrace tokens in the real format, for the secrets of a local environment.
//!
//! A Dynatrace token is `dt0c01.<public part>.<secret part>`: 24 and 64 characters of
//! upper-case letters and digits. The public part (`dt0c01.PUBLIC`) is the token id that may
//! be logged; the whole token never may.

use rand::Rng;

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// Prefix of every token this module makes.
pub const PREFIX: &str = "dt0c01";
/// Length of the public part.
pub const PUBLIC_LEN: usize = 24;
/// Length of the secret part.
pub const SECRET_LEN: usize = 64;

/// A fresh random token, `dt0c01.<24 upper alnum>.<64 upper alnum>`.
pub fn random_token() -> String {
    let mut rng = rand::rng();
    let mut part = |n: usize| -> String {
        (0..n)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect()
    };
    let public = part(PUBLIC_LEN);
    let secret = part(SECRET_LEN);
    format!("{PREFIX}.{public}.{secret}")
}

/// The loggable id of `token` (`dt0c01.PUBLIC`), or `None` when it is not a token.
pub fn token_id(token: &str) -> Option<&str> {
    let mut parts = token.splitn(3, '.');
    let (prefix, public, secret) = (parts.next()?, parts.next()?, parts.next()?);
    let ok = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| ALPHABET.contains(&b));
    (prefix == PREFIX && ok(public, PUBLIC_LEN) && ok(secret, SECRET_LEN))
        .then(|| &token[..PREFIX.len() + 1 + PUBLIC_LEN])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_random_token_has_the_dynatrace_format() {
        let t = random_token();
        assert_eq!(t.len(), 6 + 1 + 24 + 1 + 64);
        let id = token_id(&t).unwrap();
        assert!(id.starts_with("dt0c01.") && id.len() == 31, "{id}");
    }

    #[test]
    fn two_random_tokens_differ() {
        assert_ne!(random_token(), random_token());
    }

    #[test]
    fn malformed_tokens_have_no_id() {
        let good = random_token();
        assert!(token_id(&good.to_lowercase()).is_none());
        assert!(token_id(&good[..good.len() - 1]).is_none());
        assert!(token_id(&good.replacen("dt0c01", "dt0c02", 1)).is_none());
        assert!(token_id("dt0c01.ABC").is_none());
    }
}
