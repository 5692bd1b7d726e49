//! Starting on a database file that other processes may be starting on at the same moment:
//! the file is created private to its owner, and opening and migrating retry while another
//! process holds a lock that SQLite's busy timeout does not wait for, until a start-up
//! deadline.
//!
//! Opening a file that other processes are opening at the same moment can fail with
//! `SQLITE_BUSY` at once, without the busy timeout being waited out: switching the file to WAL
//! mode takes a lock that the busy timeout does not wait for. Four processes starting on one
//! new file together saw it a few times in a hundred starts.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::path::Path;
use std::time::Duration;

use session_layer::{StoreError, StoreErrorKind};
use tokio::time::Instant;

/// The first pause between two attempts; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(5);
const MAX_PAUSE: Duration = Duration::from_millis(200);

/// Creates `path` as an empty file readable and writable by its owner only (0600), unless
/// something exists there already, which is left as it is. An empty file is an empty SQLite
/// database; SQLite gives the `-wal` and `-shm` files it creates beside it the permissions
/// of the database file.
pub(crate) fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::with_source(
            StoreErrorKind::Unavailable,
            "creating the SQLite database file failed; check that its directory exists and \
             that this process may write there",
            e,
        )),
    }
}

/// Whether `error` comes from SQLite's `SQLITE_BUSY` (or one of its extended codes): the
/// file was locked by another connection or process.
pub(crate) fn is_busy(error: &StoreError) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        if let Some(sqlx::Error::Database(db)) = e.downcast_ref::<sqlx::Error>() {
            let code: i32 = db.code().and_then(|c| c.parse().ok()).unwrap_or(0);
            return code & 0xff == 5;
        }
        source = e.source();
    }
    false
}

/// Runs `attempt` again while it fails with `SQLITE_BUSY`, pausing a little longer each time
/// (with jitter, so processes that collided once do not collide again in step), until it
/// succeeds, fails otherwise, or `deadline` passes.
///
/// # Errors
///
/// The error of an attempt that failed otherwise, or a
/// [`Timeout`](StoreErrorKind::Timeout) error once the deadline passed.
pub(crate) async fn retry_while_busy<T, F, Fut>(
    deadline: Instant,
    what: &str,
    mut attempt: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut pause = FIRST_PAUSE;
    loop {
        let error = match tokio::time::timeout_at(deadline, attempt()).await {
            Ok(Err(e)) if is_busy(&e) => e,
            Ok(result) => return result,
            Err(_) => return Err(gave_up(what, None)),
        };
        let wake = Instant::now() + jittered(pause);
        if wake >= deadline {
            return Err(gave_up(what, Some(error)));
        }
        tokio::time::sleep_until(wake).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

fn gave_up(what: &str, last: Option<StoreError>) -> StoreError {
    let message = format!(
        "{what} failed: the SQLite database stayed locked by another connection or process \
         for the whole start-up timeout; look for a process holding a long transaction, or \
         raise the start-up timeout"
    );
    match last {
        Some(error) => StoreError::with_source(StoreErrorKind::Timeout, message, error),
        None => StoreError::new(StoreErrorKind::Timeout, message),
    }
}

/// `pause` scaled by a random factor between 0.5 and 1.5.
fn jittered(pause: Duration) -> Duration {
    // A randomly keyed hasher is random enough to spread retries; no RNG needed.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    pause.mul_f64(0.5 + (random % 1_000) as f64 / 1_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_half_and_one_and_a_half_times_the_pause() {
        for _ in 0..1_000 {
            let d = jittered(Duration::from_millis(100));
            assert!(
                d >= Duration::from_millis(50) && d < Duration::from_millis(150),
                "{d:?}"
            );
        }
    }
}
