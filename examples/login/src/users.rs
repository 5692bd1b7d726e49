//! The demo users, with passwords hashed by Argon2id. A real app keeps them in its database.

use std::collections::HashMap;
use std::sync::RwLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// The demo accounts. Demo passwords, printed at start-up; never do this with real ones.
pub const DEMO_USERS: &[(&str, &str)] = &[("alice", "alice-password"), ("bob", "bob-password")];

/// The shortest new password the password form accepts.
pub const MIN_PASSWORD_LEN: usize = 8;
/// The longest password any form accepts (hashing a megabyte is a cheap denial of service).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Users by name, each with an Argon2id hash in PHC string form.
#[derive(Debug)]
pub struct Users {
    hashes: RwLock<HashMap<String, String>>,
    /// Checked when the name is unknown, so a wrong name takes as long as a wrong password
    /// and timing does not tell which names exist.
    dummy: String,
}

impl Users {
    /// The demo users, hashed now. Takes a moment: Argon2 is slow on purpose.
    pub fn demo() -> Self {
        let hashes = DEMO_USERS
            .iter()
            .map(|(name, password)| ((*name).to_owned(), hash(password)))
            .collect();
        Self {
            hashes: RwLock::new(hashes),
            dummy: hash("not anyone's password"),
        }
    }

    /// Whether `password` is `user`'s. Runs on the blocking pool: a hash check takes tens of
    /// milliseconds of CPU, too long for an async worker thread.
    pub async fn verify(&self, user: &str, password: &str) -> bool {
        if password.len() > MAX_PASSWORD_LEN {
            return false;
        }
        let (known, stored) = match self.read().get(user) {
            Some(hash) => (true, hash.clone()),
            None => (false, self.dummy.clone()),
        };
        let password = password.to_owned();
        let matches = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&stored).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false);
        known && matches
    }

    /// Gives `user` a new password.
    pub async fn set_password(&self, user: &str, password: &str) {
        let password = password.to_owned();
        let new = tokio::task::spawn_blocking(move || hash(&password))
            .await
            .expect("hashing does not panic");
        self.hashes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(user.to_owned(), new);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, String>> {
        self.hashes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2 with default parameters hashes any password")
        .to_string()
}
