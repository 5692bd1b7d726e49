//! The demo users, with passwords hashed by Argon2id. A real app keeps them in its database.

use std::collections::HashMap;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// A well-formed hash no password is checked against in earnest: an unknown name is
/// checked against it, so that it costs as much as a known one.
const UNKNOWN: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$3Rl6i7TqTMFdyEJ3QT2iUd2e6bKUc8bGvM6Gv4xkGdE";

/// Users by name, each with an Argon2id hash in PHC string form.
#[derive(Debug, Clone)]
pub struct Users {
    hashes: HashMap<String, String>,
}

impl Users {
    /// `alice` / `alice-password` and `bob` / `bob-password`, hashed now.
    ///
    /// # Panics
    ///
    /// Never in practice: Argon2 with its default parameters hashes any password.
    #[must_use]
    pub fn demo() -> Self {
        let hash = |password: &str| {
            Argon2::default()
                .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
                .expect("Argon2 with default parameters hashes any password")
                .to_string()
        };
        Self {
            hashes: [("alice", "alice-password"), ("bob", "bob-password")]
                .into_iter()
                .map(|(name, password)| (name.to_owned(), hash(password)))
                .collect(),
        }
    }

    /// Whether `password` is `name`'s. An unknown name costs a hash too, so the answer's
    /// timing does not tell which names exist.
    #[must_use]
    pub fn check(&self, name: &str, password: &str) -> bool {
        let (known, stored) = match self.hashes.get(name) {
            Some(hash) => (true, hash.as_str()),
            None => (false, UNKNOWN),
        };
        let Ok(parsed) = PasswordHash::new(stored) else {
            return false;
        };
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        known && matches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_name_is_checked_against_a_real_hash() {
        assert!(PasswordHash::new(UNKNOWN).is_ok());
        let users = Users::demo();
        assert!(users.check("alice", "alice-password"));
        assert!(!users.check("alice", "bob-password"));
        assert!(!users.check("mallory", "alice-password"));
    }
}
