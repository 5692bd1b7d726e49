use std::error::Error;
use std::fmt;

type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// A backend failed. Never built from client input: a bad cookie is an anonymous request, not
/// a store error.
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
    source: Option<BoxError>,
}

/// What kind of failure a [`StoreError`] is, for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The backend could not be reached or refused the operation.
    Unavailable,
    /// The backend did not answer within the configured timeout.
    Timeout,
    /// A stored record could not be decoded (corrupt or from an unknown format version).
    Corrupt,
    /// The store is full (for example, [`MemoryStore`](crate::MemoryStore) at capacity).
    Full,
    /// The record is larger than the backend accepts.
    TooLarge,
    /// Any other backend failure.
    Other,
}

impl StoreError {
    /// A failure of `kind`, with a message that says what to check.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// A failure of `kind` caused by `source`, which is kept for [`Error::source`].
    pub fn with_source(
        kind: StoreErrorKind,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Self {
            kind,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// The backend did not answer in time.
    pub fn timeout(what: impl fmt::Display) -> Self {
        Self::new(
            StoreErrorKind::Timeout,
            format!("{what} timed out; check the backend's health or raise the store's timeout"),
        )
    }

    /// What kind of failure this is.
    #[must_use]
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("session store: ")?;
        f.write_str(&self.message)
    }
}

impl Error for StoreError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}
