//! The demo users, with passwords hashed by Argon2id, as a session-layer-auth backend. A real
//! app keeps them in its database (`auth/examples/sqlite_users` shows one in SQLite).
//!
//! Argon2 is slow and hungry on purpose: each hash takes tens of milliseconds of CPU and
//! 19 MiB of memory. So hashes run on a pool of their own with
//! [`default_concurrent_hashes`] threads (not the blocking pool, which would run hundreds at
//! once, each thread keeping its allocator's memory afterwards); a check that finds every
//! thread busy waits up to [`DEFAULT_HASH_WAIT`] for a turn and then fails with
//! [`UsersError::Busy`] (a `503` page). A burst of sign-in attempts therefore costs bounded
//! memory instead of a hash per request.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use std::cell::RefCell;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use session_layer_auth::{AuthUser, AuthnBackend, UserId};
use tokio::sync::Semaphore;

/// The demo accounts. Demo passwords, printed at start-up; never do this with real ones.
pub const DEMO_USERS: &[(&str, &str)] = &[("alice", "alice-password"), ("bob", "bob-password")];

/// The shortest new password the password form accepts.
pub const MIN_PASSWORD_LEN: usize = 8;
/// The longest password any form accepts (hashing a megabyte is a cheap denial of service).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// How long a password check waits for a free hashing slot before giving up.
pub const DEFAULT_HASH_WAIT: Duration = Duration::from_secs(2);

/// How many hashes run at once unless configured: one per CPU (more would only queue for
/// the CPU while holding their memory).
#[must_use]
pub fn default_concurrent_hashes() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
}

/// A user. `Debug` leaves the password hash out.
#[derive(Clone)]
pub struct User {
    name: String,
    password_hash: String,
}

impl User {
    /// The user's name, which is also its ID.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl AuthUser for User {
    type Id = String;

    fn id(&self) -> String {
        self.name.clone()
    }

    /// The password hash: a new password (a new salt, too) ends every session signed in with
    /// the old one on its next request. This is the example's credential epoch: a sign-in
    /// that checked the old password, however late it completes, stored the old hash's
    /// digest and is ended on its next request.
    fn session_auth_hash(&self) -> &[u8] {
        self.password_hash.as_bytes()
    }
}

/// What a sign-in checks. `Debug` leaves the password out.
#[derive(Clone)]
pub struct Credentials {
    /// The name typed in.
    pub username: String,
    /// The password typed in.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Why a password check or hash did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UsersError {
    /// Every hashing slot stayed taken for the whole wait: try again in a moment.
    Busy,
}

impl std::fmt::Display for UsersError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Busy => f.write_str("too many password checks at once; try again in a moment"),
        }
    }
}

impl std::error::Error for UsersError {}

/// A new password, hashed and not yet stored: see [`Users::hash`].
#[derive(Clone)]
pub struct NewPassword(String);

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(REDACTED)")
    }
}

/// Users by name, each with an Argon2id hash in PHC string form. Clones share the users.
#[derive(Clone)]
pub struct Users {
    inner: Arc<Inner>,
}

struct Inner {
    hashes: RwLock<HashMap<String, String>>,
    /// Checked when the name is unknown, so a wrong name takes as long as a wrong password
    /// and timing does not tell which names exist.
    dummy: String,
    /// One permit per hashing thread: who holds one has a hash running or about to run.
    slots: Arc<Semaphore>,
    hashers: rayon::ThreadPool,
    wait: Duration,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users")
            .field("free_hashing_slots", &self.inner.slots.available_permits())
            .finish_non_exhaustive()
    }
}

impl Users {
    /// The demo users, hashed now (takes a moment), with the default hashing bound.
    #[must_use]
    pub fn demo() -> Self {
        Self::demo_with_limit(default_concurrent_hashes(), DEFAULT_HASH_WAIT)
    }

    /// The demo users, with at most `concurrent` hashes at once and checks that wait up to
    /// `wait` for a slot.
    ///
    /// # Panics
    ///
    /// If `concurrent` is 0 (no password could ever be checked), or if the operating system
    /// refuses to start the hashing threads.
    #[must_use]
    pub fn demo_with_limit(concurrent: usize, wait: Duration) -> Self {
        assert!(
            concurrent > 0,
            "at least one password hash must be able to run"
        );
        let hashers = rayon::ThreadPoolBuilder::new()
            .num_threads(concurrent)
            .thread_name(|i| format!("argon2-{i}"))
            .build()
            .expect("the password hashing threads start");
        // On the hashing threads, whose working memory is kept anyway.
        let (hashes, dummy) = hashers.install(|| {
            let hashes = DEMO_USERS
                .iter()
                .map(|(name, password)| ((*name).to_owned(), hash(password)))
                .collect();
            (hashes, hash("not anyone's password"))
        });
        Self {
            inner: Arc::new(Inner {
                hashes: RwLock::new(hashes),
                dummy,
                slots: Arc::new(Semaphore::new(concurrent)),
                hashers,
                wait,
            }),
        }
    }

    /// The user `name`, if there is one.
    #[must_use]
    pub fn user(&self, name: &str) -> Option<User> {
        self.read().get(name).map(|hash| User {
            name: name.to_owned(),
            password_hash: hash.clone(),
        })
    }

    /// `name`'s user if `password` is theirs, `None` if the name or the password is wrong.
    ///
    /// # Errors
    ///
    /// [`UsersError::Busy`] if no hashing slot came free in time.
    pub async fn check(&self, name: &str, password: &str) -> Result<Option<User>, UsersError> {
        if password.len() > MAX_PASSWORD_LEN {
            return Ok(None);
        }
        let user = self.user(name);
        let stored = user
            .as_ref()
            .map_or_else(|| self.inner.dummy.clone(), |u| u.password_hash.clone());
        let password = password.to_owned();
        let matches = self
            .hashing(move || matches_hash(&password, &stored))
            .await?;
        Ok(user.filter(|_| matches))
    }

    /// Whether `password` is `name`'s (`false` when the check could not run either).
    pub async fn verify(&self, name: &str, password: &str) -> bool {
        matches!(self.check(name, password).await, Ok(Some(_)))
    }

    /// Hashes a new password, without storing it: a password change hashes first, then ends
    /// the other sessions, and only then [stores](Self::set_password) it.
    ///
    /// # Errors
    ///
    /// [`UsersError::Busy`] if no hashing slot came free in time.
    pub async fn hash(&self, password: &str) -> Result<NewPassword, UsersError> {
        let password = password.to_owned();
        Ok(NewPassword(self.hashing(move || hash(&password)).await?))
    }

    /// Gives `name` the new password and returns the user as it is now, or `None` if there
    /// is no such user.
    pub fn set_password(&self, name: &str, new: NewPassword) -> Option<User> {
        let mut hashes = self
            .inner
            .hashes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let stored = hashes.get_mut(name)?;
        stored.clone_from(&new.0);
        Some(User {
            name: name.to_owned(),
            password_hash: new.0,
        })
    }

    /// Runs `work` (one Argon2 hash) on a hashing thread once one is free. The slot is held
    /// until the hash ends, even if the request that asked for it is gone.
    async fn hashing<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, UsersError> {
        let slot = tokio::time::timeout(self.inner.wait, self.inner.slots.clone().acquire_owned())
            .await
            .map_err(|_| UsersError::Busy)?
            .expect("the semaphore is never closed");
        let (done, out) = tokio::sync::oneshot::channel();
        self.inner.hashers.spawn(move || {
            let _ = done.send(work());
            drop(slot);
        });
        Ok(out.await.expect("a hashing job always sends its result"))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, String>> {
        self.inner
            .hashes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl AuthnBackend for Users {
    type User = User;
    type Credentials = Credentials;
    type Error = UsersError;

    async fn authenticate(&self, creds: Credentials) -> Result<Option<User>, UsersError> {
        self.check(&creds.username, &creds.password).await
    }

    async fn get_user(&self, name: &UserId<Self>) -> Result<Option<User>, UsersError> {
        Ok(self.user(name))
    }
}

thread_local! {
    /// The Argon2 working memory of this hashing thread, kept between hashes. Allocating
    /// 19 MiB per hash and freeing it makes the allocator keep ever more of it: a burst of
    /// a few dozen checks grew the process by hundreds of MiB, with two threads. Reused, each
    /// thread holds exactly one hash's worth.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Argon2 into `out`, in this thread's kept working memory.
fn argon2_into(
    argon2: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    MEMORY.with_borrow_mut(|memory| {
        memory.resize(params.block_count(), Block::default());
        argon2.hash_password_into_with_memory(password, salt, out, &mut memory[..])
    })
}

/// Whether `password` hashes to `stored` (a PHC string): the steps of `argon2`'s own
/// `verify_password`, with the working memory kept (see [`MEMORY`]). The final comparison
/// is `Output`'s, in constant time.
fn matches_hash(password: &str, stored: &str) -> bool {
    let Ok(hash) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) =
        (Algorithm::try_from(hash.algorithm), Params::try_from(&hash))
    else {
        return false;
    };
    let Ok(version) = hash
        .version
        .map_or(Ok(Version::default()), Version::try_from)
    else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    argon2_into(&argon2, &params, password.as_bytes(), salt, &mut out).is_ok()
        && Output::new(&out).is_ok_and(|computed| computed == expected)
}

/// A new Argon2id hash of `password` with a random salt and the default parameters, as a
/// PHC string.
fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    let params = Params::default();
    let argon2 = Argon2::new(Algorithm::default(), Version::default(), params.clone());
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt
        .as_salt()
        .decode_b64(&mut salt_bytes)
        .expect("a generated salt decodes");
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2_into(&argon2, &params, password.as_bytes(), salt_raw, &mut out)
        .expect("Argon2 with default parameters hashes any password");
    PasswordHash {
        algorithm: Algorithm::default().ident(),
        version: Some(Version::default().into()),
        params: ParamsString::try_from(&params).expect("default parameters encode"),
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).expect("a 32-byte output")),
    }
    .to_string()
}
