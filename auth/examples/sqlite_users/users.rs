// A user backend in axum-login 0.18's shape: users, permissions and groups in SQLite
// through sqlx, passwords as Argon2 hashes.
//
// This file has no `use` line for the auth traits: whoever includes it says where
// `AuthUser`, `AuthnBackend`, `AuthzBackend` and `UserId` come from. `main.rs` takes them
// from session-layer-auth; `tests/axum_login_port.rs` compiles this same file against
// axum-login 0.18 too, which is what "a backend ports by changing its `use` lines" means.

use std::collections::HashSet;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::Deserialize;
use sqlx::sqlite::{SqlitePool, SqlitePoolOptions};
use sqlx::Row;

/// A user as the backend stores it. `Debug` leaves the password hash out.
#[derive(Clone)]
pub(crate) struct User {
    pub(crate) id: i64,
    pub(crate) username: String,
    password_hash: String,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl AuthUser for User {
    type Id = i64;

    fn id(&self) -> Self::Id {
        self.id
    }

    fn session_auth_hash(&self) -> &[u8] {
        // A new password is a new Argon2 hash (a new salt, too): sessions signed in with the
        // old one end.
        self.password_hash.as_bytes()
    }
}

/// What the login form posts.
#[derive(Clone, Deserialize)]
pub(crate) struct Credentials {
    pub(crate) username: String,
    pub(crate) password: String,
    pub(crate) next: Option<String>,
}

/// The backend: a pool on the users database.
#[derive(Clone, Debug)]
pub(crate) struct Backend {
    db: SqlitePool,
    /// Checked when the name is unknown, so a wrong name takes as long as a wrong password
    /// and timing does not tell which names exist.
    dummy_hash: std::sync::Arc<str>,
}

/// The longest password worth hashing (hashing a megabyte is a cheap denial of service).
pub(crate) const MAX_PASSWORD_LEN: usize = 1024;

/// How the backend fails.
#[derive(Debug)]
pub(crate) enum BackendError {
    Sqlx(sqlx::Error),
    TaskJoin(tokio::task::JoinError),
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlx(e) => write!(f, "users database: {e}"),
            Self::TaskJoin(e) => write!(f, "password check: {e}"),
        }
    }
}

impl std::error::Error for BackendError {}

impl From<sqlx::Error> for BackendError {
    fn from(e: sqlx::Error) -> Self {
        Self::Sqlx(e)
    }
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS users (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS user_permissions (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        permission TEXT NOT NULL,
        PRIMARY KEY (user_id, permission)
    )",
    "CREATE TABLE IF NOT EXISTS user_groups (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        group_name TEXT NOT NULL,
        PRIMARY KEY (user_id, group_name)
    )",
    "CREATE TABLE IF NOT EXISTS group_permissions (
        group_name TEXT NOT NULL,
        permission TEXT NOT NULL,
        PRIMARY KEY (group_name, permission)
    )",
];

fn hash_password(password: &str) -> String {
    Argon2::default()
        .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
        .expect("Argon2 with its default parameters hashes any password")
        .to_string()
}

fn user_from(row: &sqlx::sqlite::SqliteRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
    })
}

impl Backend {
    /// Opens (creating if needed) the users database at `url`, for example
    /// `sqlite://users.db?mode=rwc`, or `sqlite::memory:` for one kept in this process.
    pub(crate) async fn open(url: &str) -> Result<Self, BackendError> {
        let db = SqlitePoolOptions::new()
            // An in-memory database lives as long as its one connection: keep it.
            .max_connections(if url.contains(":memory:") { 1 } else { 4 })
            .idle_timeout(None)
            .max_lifetime(None)
            .connect(url)
            .await?;
        for statement in SCHEMA {
            sqlx::query(*statement).execute(&db).await?;
        }
        Ok(Self {
            db,
            dummy_hash: hash_password("not anyone's password").into(),
        })
    }

    /// Adds a user with `password` (stored as its Argon2 hash) and its own `permissions`;
    /// returns its ID.
    pub(crate) async fn add_user(
        &self,
        username: &str,
        password: &str,
        permissions: &[&str],
    ) -> Result<i64, BackendError> {
        let id: i64 =
            sqlx::query("INSERT INTO users (username, password_hash) VALUES (?, ?) RETURNING id")
                .bind(username)
                .bind(hash_password(password))
                .fetch_one(&self.db)
                .await?
                .try_get("id")?;
        for permission in permissions {
            sqlx::query("INSERT INTO user_permissions (user_id, permission) VALUES (?, ?)")
                .bind(id)
                .bind(permission)
                .execute(&self.db)
                .await?;
        }
        Ok(id)
    }

    /// Puts a user in a group, which gives it the group's permissions.
    pub(crate) async fn add_to_group(&self, user_id: i64, group: &str) -> Result<(), BackendError> {
        sqlx::query("INSERT INTO user_groups (user_id, group_name) VALUES (?, ?)")
            .bind(user_id)
            .bind(group)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// Gives a group a permission.
    pub(crate) async fn grant_group(&self, group: &str, permission: &str) -> Result<(), BackendError> {
        sqlx::query("INSERT INTO group_permissions (group_name, permission) VALUES (?, ?)")
            .bind(group)
            .bind(permission)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// Changes a user's password. Nothing else is needed to sign out its other sessions:
    /// their stored auth hash no longer matches.
    pub(crate) async fn set_password(&self, user_id: i64, password: &str) -> Result<(), BackendError> {
        sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(hash_password(password))
            .bind(user_id)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// Deletes a user.
    pub(crate) async fn delete_user(&self, user_id: i64) -> Result<(), BackendError> {
        sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(user_id)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// Closes the database: every later backend call fails (tests use it to see what a
    /// failing backend does to a request).
    pub(crate) async fn close(&self) {
        self.db.close().await;
    }
}

impl AuthnBackend for Backend {
    type User = User;
    type Credentials = Credentials;
    type Error = BackendError;

    async fn authenticate(
        &self,
        creds: Self::Credentials,
    ) -> Result<Option<Self::User>, Self::Error> {
        let row = sqlx::query("SELECT id, username, password_hash FROM users WHERE username = ?")
            .bind(&creds.username)
            .fetch_optional(&self.db)
            .await?;
        if creds.password.len() > MAX_PASSWORD_LEN {
            return Ok(None);
        }
        let user = row.as_ref().map(user_from).transpose()?;
        let hash = user
            .as_ref()
            .map_or_else(|| self.dummy_hash.to_string(), |u| u.password_hash.clone());
        // Argon2 is slow on purpose: keep it off the async worker threads.
        let verified = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(creds.password.as_bytes(), &parsed)
                    .is_ok()
            })
        })
        .await
        .map_err(BackendError::TaskJoin)?;
        Ok(user.filter(|_| verified))
    }

    async fn get_user(&self, user_id: &UserId<Self>) -> Result<Option<Self::User>, Self::Error> {
        let row = sqlx::query("SELECT id, username, password_hash FROM users WHERE id = ?")
            .bind(user_id)
            .fetch_optional(&self.db)
            .await?;
        Ok(row.as_ref().map(user_from).transpose()?)
    }
}

impl AuthzBackend for Backend {
    type Permission = String;

    async fn get_user_permissions(
        &self,
        user: &Self::User,
    ) -> Result<HashSet<Self::Permission>, Self::Error> {
        let rows = sqlx::query("SELECT permission FROM user_permissions WHERE user_id = ?")
            .bind(user.id)
            .fetch_all(&self.db)
            .await?;
        Ok(rows
            .iter()
            .map(|row| row.try_get("permission"))
            .collect::<Result<_, _>>()?)
    }

    async fn get_group_permissions(
        &self,
        user: &Self::User,
    ) -> Result<HashSet<Self::Permission>, Self::Error> {
        let rows = sqlx::query(
            "SELECT DISTINCT gp.permission FROM user_groups ug
             JOIN group_permissions gp ON gp.group_name = ug.group_name
             WHERE ug.user_id = ?",
        )
        .bind(user.id)
        .fetch_all(&self.db)
        .await?;
        Ok(rows
            .iter()
            .map(|row| row.try_get("permission"))
            .collect::<Result<_, _>>()?)
    }
}
