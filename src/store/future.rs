//! [`StoreFuture`]: what every [`SessionStore`](super::SessionStore) method returns.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::StoreError;

/// The answer of a store call: ready at once, or a boxed future to wait on.
///
/// A store that does its work in place (an in-process map such as
/// [`MemoryStore`](crate::MemoryStore)) answers with [`ready`](Self::ready): no allocation,
/// and the caller's `.await` completes at the first poll. A store that talks to a server
/// answers with [`boxed`](Self::boxed). Wrappers forward the future they get, so a wrapped
/// in-process store stays allocation-free. The layer never asks which kind it has: it awaits.
///
/// ```
/// use session_layer::store::StoreFuture;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let now: StoreFuture<'_, u64> = StoreFuture::ready(Ok(3));
/// let later: StoreFuture<'_, u64> = StoreFuture::boxed(async { Ok(4) });
/// assert_eq!(now.await.unwrap() + later.await.unwrap(), 7);
/// # });
/// ```
#[must_use = "a store call does nothing unless awaited"]
pub struct StoreFuture<'a, T> {
    kind: Kind<'a, T>,
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

enum Kind<'a, T> {
    Ready(Option<Result<T, StoreError>>),
    Boxed(Boxed<'a, T>),
}

impl<'a, T> StoreFuture<'a, T> {
    /// An answer the store already has.
    pub fn ready(result: Result<T, StoreError>) -> Self {
        Self {
            kind: Kind::Ready(Some(result)),
        }
    }

    /// An answer the store has to wait for.
    pub fn boxed(future: impl Future<Output = Result<T, StoreError>> + Send + 'a) -> Self {
        Self {
            kind: Kind::Boxed(Box::pin(future)),
        }
    }
}

impl<T> StoreFuture<'_, T> {
    /// The answer, if the store already gave it; otherwise the future to wait on.
    pub(crate) fn into_ready(self) -> Result<Result<T, StoreError>, Self> {
        match self.kind {
            Kind::Ready(Some(result)) => Ok(result),
            kind => Err(Self { kind }),
        }
    }
}

// Neither kind is pinned in place (an `Option` of the answer, a `Pin<Box<_>>`), whatever `T` is.
impl<T> Unpin for StoreFuture<'_, T> {}

impl<T> Future for StoreFuture<'_, T> {
    type Output = Result<T, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().kind {
            Kind::Ready(result) => Poll::Ready(
                result
                    .take()
                    .expect("a StoreFuture is not polled after it completed"),
            ),
            Kind::Boxed(future) => future.as_mut().poll(cx),
        }
    }
}

impl<T> fmt::Debug for StoreFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            Kind::Ready(_) => "StoreFuture::Ready",
            Kind::Boxed(_) => "StoreFuture::Boxed",
        })
    }
}
