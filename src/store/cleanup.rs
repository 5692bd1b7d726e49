//! The background task that deletes expired sessions in bounded batches, for stores whose
//! backend does not expire records by itself (SQL tables; `MemoryStore` also benefits).

use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::SessionStore;
use crate::clock::to_millis;

/// Controls a cleanup task started by [`spawn_cleanup`].
///
/// [`shutdown`](Self::shutdown) stops it and waits for it; dropping the handle stops it
/// too, without waiting.
#[derive(Debug)]
pub struct CleanupHandle {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl CleanupHandle {
    /// Stops the task and waits until it has ended. A batch already running is allowed to
    /// finish (it is one statement, bounded by the query timeout), so no delete is cut off
    /// half way.
    pub async fn shutdown(mut self) {
        drop(self.stop.take());
        // The task never panics on purpose; a panic or an aborted runtime has nothing left
        // to clean up.
        let _ = (&mut self.task).await;
    }
}

/// Starts a task on the current Tokio runtime that calls
/// [`delete_expired`](SessionStore::delete_expired) every `every`, in batches of `batch` until
/// a batch comes back short. A failed pass is logged (`warn`, target `session_layer`) and the
/// next pass retries; the task never stops on its own.
///
/// # Panics
///
/// Panics if called outside a Tokio runtime.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::time::Duration;
/// use session_layer::store::spawn_cleanup;
/// use session_layer::MemoryStore;
///
/// let store = MemoryStore::default();
/// let cleanup = spawn_cleanup(store.clone(), Duration::from_secs(300), 1_000);
/// // ... serve the app ...
/// cleanup.shutdown().await;
/// # }
/// ```
pub fn spawn_cleanup<S: SessionStore>(store: S, every: Duration, batch: usize) -> CleanupHandle {
    let (stop, mut stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                // A send or a dropped handle both end the task.
                _ = &mut stopped => return,
                _ = ticks.tick() => {}
            }
            let mut removed = 0u64;
            loop {
                let now = to_millis(OffsetDateTime::now_utc());
                match store.delete_expired(now, batch).await {
                    Ok(n) => {
                        removed += n;
                        if usize::try_from(n).map_or(true, |n| n < batch) {
                            break;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(
                            target: "session_layer",
                            %error,
                            "deleting expired sessions failed; the next pass retries"
                        );
                        break;
                    }
                }
                // A long backlog must not keep a shutdown waiting.
                if matches!(
                    stopped.try_recv(),
                    Err(oneshot::error::TryRecvError::Closed) | Ok(())
                ) {
                    return;
                }
            }
            if removed > 0 {
                tracing::debug!(target: "session_layer", removed, "deleted expired sessions");
            }
        }
    });
    CleanupHandle {
        stop: Some(stop),
        task,
    }
}
