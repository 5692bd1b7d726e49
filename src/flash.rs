//! Flash messages: a note for the next page only ("Signed out", "Password changed").
//!
//! A handler that redirects after a form post sets the message with [`set_flash`]; the page
//! the browser lands on takes it with [`take_flash`], which removes it, so a reload does not
//! show it again. The message lives in the session under [`FLASH_KEY`], so it survives the
//! redirect without a query string a user could forge or bookmark. One message at a time: a
//! second [`set_flash`] before the next page replaces the first.
//!
//! ```
//! use axum::response::Redirect;
//! use axum::{routing::{get, post}, Router};
//! use session_layer::flash::{set_flash, take_flash, FlashKind};
//! use session_layer::{MemoryStore, Session, SessionError, SessionLayer};
//!
//! async fn sign_out(session: Session) -> Result<Redirect, SessionError> {
//!     session.destroy().await;
//!     // Written after `destroy`, so it goes into a new, empty session.
//!     set_flash(&session, FlashKind::Info, "Signed out").await?;
//!     Ok(Redirect::to("/"))
//! }
//!
//! async fn home(session: Session) -> Result<String, SessionError> {
//!     Ok(match take_flash(&session).await? {
//!         Some(flash) => format!("[{}] {}", flash.kind.as_str(), flash.message),
//!         None => "Welcome".to_owned(),
//!     })
//! }
//!
//! let app: Router = Router::new()
//!     .route("/", get(home))
//!     .route("/sign-out", post(sign_out))
//!     .layer(SessionLayer::new(MemoryStore::default()));
//! # session_layer::doctest(|session| async move {
//! # set_flash(&session, FlashKind::Success, "Password changed").await?;
//! # let flash = take_flash(&session).await?.unwrap();
//! # assert_eq!((flash.kind, flash.message.as_str()), (FlashKind::Success, "Password changed"));
//! # assert_eq!(take_flash(&session).await?, None);
//! # Ok(()) });
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::SessionError;
use crate::session::Session;

/// The session key the flash message is kept under. Apps should not write it themselves.
pub const FLASH_KEY: &str = "_flash";

/// How a flash message should look: apps map it to a style (a CSS class, an icon).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum FlashKind {
    /// Neutral news, such as "Signed out".
    Info,
    /// Something the user asked for worked, such as "Password changed".
    Success,
    /// Worth attention, but nothing failed.
    Warning,
    /// Something the user asked for failed.
    Error,
}

impl FlashKind {
    /// A lowercase name (`info`, `success`, `warning`, `error`), usable as a CSS class.
    ///
    /// ```
    /// use session_layer::flash::FlashKind;
    ///
    /// assert_eq!(FlashKind::Success.as_str(), "success");
    /// ```
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Success => "success",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

/// A message for the next page, as [`take_flash`] returns it. The message is plain text:
/// escape it like any other text when you put it into HTML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Flash {
    /// How it should look.
    pub kind: FlashKind,
    /// What it says.
    pub message: String,
}

impl Flash {
    /// A message of `kind` saying `message`.
    ///
    /// ```
    /// use session_layer::flash::{Flash, FlashKind};
    ///
    /// let flash = Flash::new(FlashKind::Info, "Signed out");
    /// assert_eq!(flash.message, "Signed out");
    /// ```
    #[must_use]
    pub fn new(kind: FlashKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// Keeps `message` in the session for the next page that calls [`take_flash`], replacing any
/// message not shown yet. Like [`Session::insert`], it reads nothing from the store.
///
/// # Errors
///
/// As for [`Session::insert`]: [`SessionError::TooLarge`] if the message would pass the
/// layer's size limits.
///
/// ```
/// use session_layer::flash::{set_flash, FlashKind};
///
/// # session_layer::doctest(|session| async move {
/// set_flash(&session, FlashKind::Success, "Password changed").await?;
/// # Ok(()) });
/// ```
pub async fn set_flash(
    session: &Session,
    kind: FlashKind,
    message: impl Into<String>,
) -> Result<(), SessionError> {
    session.insert(FLASH_KEY, Flash::new(kind, message)).await
}

/// Takes the message [`set_flash`] left, removing it so it is shown once. A value under
/// [`FLASH_KEY`] that is not a [`Flash`] (written by hand, or by another version of the app)
/// is removed and reads as `None`: a garbled note is not worth an error page.
///
/// # Errors
///
/// [`SessionError::Store`] if the store could not be read.
///
/// ```
/// use session_layer::flash::{set_flash, take_flash, FlashKind};
///
/// # session_layer::doctest(|session| async move {
/// set_flash(&session, FlashKind::Info, "Signed out").await?;
/// let flash = take_flash(&session).await?.expect("a message");
/// assert_eq!(flash.kind, FlashKind::Info);
/// assert_eq!(flash.message, "Signed out");
/// assert_eq!(take_flash(&session).await?, None, "shown once");
/// # Ok(()) });
/// ```
pub async fn take_flash(session: &Session) -> Result<Option<Flash>, SessionError> {
    let value: Option<Value> = session.take(FLASH_KEY).await?;
    Ok(value.and_then(|v| serde_json::from_value(v).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_garbled_flash_reads_as_none_and_is_removed() {
        crate::doctest(|session| async move {
            session.insert(FLASH_KEY, "not a flash").await?;
            assert_eq!(take_flash(&session).await?, None);
            assert_eq!(session.get::<Value>(FLASH_KEY).await?, None);
            Ok(())
        });
    }

    #[test]
    fn a_second_flash_replaces_the_first() {
        crate::doctest(|session| async move {
            set_flash(&session, FlashKind::Info, "first").await?;
            set_flash(&session, FlashKind::Error, "second").await?;
            let flash = take_flash(&session).await?.expect("a message");
            assert_eq!(flash, Flash::new(FlashKind::Error, "second"));
            Ok(())
        });
    }

    #[test]
    fn the_kind_is_stored_as_its_lowercase_name() {
        let json = serde_json::to_value(Flash::new(FlashKind::Warning, "w")).unwrap();
        assert_eq!(json["kind"], "warning");
    }
}
