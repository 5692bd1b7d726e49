//! The user backend traits: [`AuthUser`], [`AuthnBackend`] and [`AuthzBackend`].
//!
//! They have the names, associated types, bounds and method signatures of axum-login 0.18's,
//! so a backend written for axum-login compiles here with only its `use` lines changed.

use std::collections::HashSet;
use std::fmt::{Debug, Display};
use std::future::Future;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

/// The type of a backend's user IDs.
pub type UserId<Backend> = <<Backend as AuthnBackend>::User as AuthUser>::Id;

/// A user that can be identified and whose sessions end when its credentials change.
///
/// ```
/// use session_layer_auth::AuthUser;
///
/// #[derive(Debug, Clone)]
/// struct User {
///     id: i64,
///     password_hash: String,
/// }
///
/// impl AuthUser for User {
///     type Id = i64;
///
///     fn id(&self) -> Self::Id {
///         self.id
///     }
///
///     fn session_auth_hash(&self) -> &[u8] {
///         self.password_hash.as_bytes()
///     }
/// }
/// ```
pub trait AuthUser: Debug + Clone + Send + Sync {
    /// What identifies the user. It is stored in the session (as JSON) and, through its
    /// `Display` form, recorded as the session's owner and in the request's span.
    type Id: Debug + Display + Clone + Send + Sync + Serialize + for<'de> Deserialize<'de>;

    /// The user's ID.
    fn id(&self) -> Self::Id;

    /// Bytes that change whenever the user's credentials change, typically the password
    /// hash. Sign-in keeps a SHA-256 digest of them in the session (never the bytes
    /// themselves); every request that loads the user compares that digest, in constant time,
    /// with the digest of the backend's current value, and a mismatch ends the session.
    fn session_auth_hash(&self) -> &[u8];
}

/// A backend that checks credentials and finds users by ID.
///
/// ```
/// use std::collections::HashMap;
/// use session_layer_auth::{AuthUser, AuthnBackend, UserId};
/// # #[derive(Debug, Clone)]
/// # struct User { id: i64, password: String }
/// # impl AuthUser for User {
/// #     type Id = i64;
/// #     fn id(&self) -> i64 { self.id }
/// #     fn session_auth_hash(&self) -> &[u8] { self.password.as_bytes() }
/// # }
///
/// #[derive(Clone)]
/// struct Backend {
///     users: HashMap<i64, User>,
/// }
///
/// impl AuthnBackend for Backend {
///     type User = User;
///     type Credentials = (i64, String);
///     type Error = std::convert::Infallible;
///
///     async fn authenticate(
///         &self,
///         (id, password): Self::Credentials,
///     ) -> Result<Option<Self::User>, Self::Error> {
///         // A real backend compares a password hash (Argon2, say), not the password.
///         Ok(self.users.get(&id).filter(|u| u.password == password).cloned())
///     }
///
///     async fn get_user(&self, id: &UserId<Self>) -> Result<Option<Self::User>, Self::Error> {
///         Ok(self.users.get(id).cloned())
///     }
/// }
/// ```
pub trait AuthnBackend: Clone + Send + Sync {
    /// The users this backend knows.
    type User: AuthUser;

    /// What a user signs in with (a username and password, a token, ...).
    type Credentials: Send + Sync;

    /// How the backend fails (a database error, say). It becomes a `500` response, never an
    /// anonymous request.
    type Error: std::error::Error + Send + Sync;

    /// The user `creds` belong to, or `None` if they are wrong.
    fn authenticate(
        &self,
        creds: Self::Credentials,
    ) -> impl Future<Output = Result<Option<Self::User>, Self::Error>> + Send;

    /// The user with this ID, or `None` if there is none (any more): a session whose user
    /// is gone is ended, and its request is anonymous.
    fn get_user(
        &self,
        user_id: &UserId<Self>,
    ) -> impl Future<Output = Result<Option<Self::User>, Self::Error>> + Send;
}

/// A backend that also knows what users may do: permissions of their own and of their
/// groups.
///
/// ```
/// use std::collections::HashSet;
/// use session_layer_auth::AuthzBackend;
/// # use session_layer_auth::{AuthUser, AuthnBackend, UserId};
/// # #[derive(Debug, Clone)]
/// # struct User { id: i64, admin: bool }
/// # impl AuthUser for User {
/// #     type Id = i64;
/// #     fn id(&self) -> i64 { self.id }
/// #     fn session_auth_hash(&self) -> &[u8] { b"" }
/// # }
/// # #[derive(Clone)]
/// # struct Backend;
/// # impl AuthnBackend for Backend {
/// #     type User = User;
/// #     type Credentials = ();
/// #     type Error = std::convert::Infallible;
/// #     async fn authenticate(&self, _: ()) -> Result<Option<User>, Self::Error> { Ok(None) }
/// #     async fn get_user(&self, _: &UserId<Self>) -> Result<Option<User>, Self::Error> { Ok(None) }
/// # }
///
/// impl AuthzBackend for Backend {
///     type Permission = &'static str;
///
///     async fn get_group_permissions(
///         &self,
///         user: &User,
///     ) -> Result<HashSet<Self::Permission>, Self::Error> {
///         Ok(if user.admin { HashSet::from(["admin"]) } else { HashSet::new() })
///     }
/// }
/// ```
pub trait AuthzBackend
where
    Self: AuthnBackend,
{
    /// A permission ("admin", an enum variant, ...).
    type Permission: Hash + Eq + Send + Sync;

    /// The user's own permissions. Default: none.
    fn get_user_permissions(
        &self,
        _user: &Self::User,
    ) -> impl Future<Output = Result<HashSet<Self::Permission>, Self::Error>> + Send {
        async { Ok(HashSet::new()) }
    }

    /// The permissions of the user's groups. Default: none.
    fn get_group_permissions(
        &self,
        _user: &Self::User,
    ) -> impl Future<Output = Result<HashSet<Self::Permission>, Self::Error>> + Send {
        async { Ok(HashSet::new()) }
    }

    /// The user's own and group permissions together.
    fn get_all_permissions(
        &self,
        user: &Self::User,
    ) -> impl Future<Output = Result<HashSet<Self::Permission>, Self::Error>> + Send {
        async {
            let mut all = self.get_user_permissions(user).await?;
            all.extend(self.get_group_permissions(user).await?);
            Ok(all)
        }
    }

    /// Whether the user has `perm`, of its own or through a group.
    fn has_perm(
        &self,
        user: &Self::User,
        perm: Self::Permission,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send {
        async move { Ok(self.get_all_permissions(user).await?.contains(&perm)) }
    }
}
