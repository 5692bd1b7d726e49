//! The guard macros, in the style (and with the arguments) of axum-login's.

/// A guard that lets signed-in users through: [`RequireAuthLayer::login`](crate::RequireAuthLayer::login).
///
/// `login_required!(Backend)` answers anonymous requests with `401` and `WWW-Authenticate`;
/// `login_required!(Backend, login_url = "/login")` redirects them to the login URL with a
/// `next` parameter (`redirect_field = "..."` renames it).
///
/// ```
/// use axum::{routing::get, Router};
/// use session_layer_auth::login_required;
/// # use session_layer_auth::{AuthUser, AuthnBackend, UserId};
/// # #[derive(Debug, Clone)] struct User;
/// # impl AuthUser for User {
/// #     type Id = i64;
/// #     fn id(&self) -> i64 { 1 }
/// #     fn session_auth_hash(&self) -> &[u8] { b"" }
/// # }
/// # #[derive(Clone)] struct Backend;
/// # impl AuthnBackend for Backend {
/// #     type User = User;
/// #     type Credentials = ();
/// #     type Error = std::convert::Infallible;
/// #     async fn authenticate(&self, _: ()) -> Result<Option<User>, Self::Error> { Ok(None) }
/// #     async fn get_user(&self, _: &UserId<Self>) -> Result<Option<User>, Self::Error> { Ok(None) }
/// # }
///
/// let pages: Router = Router::new()
///     .route("/account", get(|| async { "yours" }))
///     .route_layer(login_required!(Backend, login_url = "/login"));
/// let api: Router = Router::new()
///     .route("/api/me", get(|| async { "you" }))
///     .route_layer(login_required!(Backend));
/// ```
#[macro_export]
macro_rules! login_required {
    ($backend_type:ty, login_url = $login_url:expr, redirect_field = $redirect_field:expr $(,)?) => {
        $crate::RequireAuthLayer::<$backend_type>::login()
            .with_login_url($login_url)
            .with_redirect_field($redirect_field)
    };
    ($backend_type:ty, login_url = $login_url:expr $(,)?) => {
        $crate::RequireAuthLayer::<$backend_type>::login().with_login_url($login_url)
    };
    ($backend_type:ty $(,)?) => {
        $crate::RequireAuthLayer::<$backend_type>::login()
    };
}

/// A guard that lets through signed-in users with every listed permission:
/// [`RequireAuthLayer::permissions`](crate::RequireAuthLayer::permissions). Each permission
/// goes through `.into()`.
///
/// A signed-in user without them gets `403`; an anonymous request gets `401` with
/// `WWW-Authenticate`, or with `login_url = "..."` a redirect to the login URL.
///
/// ```
/// use axum::{routing::get, Router};
/// use session_layer_auth::permission_required;
/// # use session_layer_auth::{AuthUser, AuthnBackend, AuthzBackend, UserId};
/// # #[derive(Debug, Clone)] struct User;
/// # impl AuthUser for User {
/// #     type Id = i64;
/// #     fn id(&self) -> i64 { 1 }
/// #     fn session_auth_hash(&self) -> &[u8] { b"" }
/// # }
/// # #[derive(Clone)] struct Backend;
/// # impl AuthnBackend for Backend {
/// #     type User = User;
/// #     type Credentials = ();
/// #     type Error = std::convert::Infallible;
/// #     async fn authenticate(&self, _: ()) -> Result<Option<User>, Self::Error> { Ok(None) }
/// #     async fn get_user(&self, _: &UserId<Self>) -> Result<Option<User>, Self::Error> { Ok(None) }
/// # }
/// # impl AuthzBackend for Backend { type Permission = String; }
///
/// let admin: Router = Router::new()
///     .route("/admin", get(|| async { "admins only" }))
///     .route_layer(permission_required!(Backend, login_url = "/login", "admin"));
/// ```
#[macro_export]
macro_rules! permission_required {
    ($backend_type:ty, login_url = $login_url:expr, redirect_field = $redirect_field:expr, $($perm:expr),+ $(,)?) => {
        $crate::RequireAuthLayer::<$backend_type>::permissions([$($perm.into()),+])
            .with_login_url($login_url)
            .with_redirect_field($redirect_field)
    };
    ($backend_type:ty, login_url = $login_url:expr, $($perm:expr),+ $(,)?) => {
        $crate::RequireAuthLayer::<$backend_type>::permissions([$($perm.into()),+])
            .with_login_url($login_url)
    };
    ($backend_type:ty, $($perm:expr),+ $(,)?) => {
        $crate::RequireAuthLayer::<$backend_type>::permissions([$($perm.into()),+])
    };
}

/// A guard that lets through the requests a predicate accepts:
/// [`RequireAuthLayer::predicate`](crate::RequireAuthLayer::predicate). The predicate is an
/// `async fn(AuthSession<Backend>) -> bool` (or a closure returning such a future).
///
/// `predicate_required!(predicate, alternative)` answers every refused request with
/// `alternative` (anything `IntoResponse`, evaluated per refusal);
/// `predicate_required!(predicate, login_url = "/login")` redirects anonymous requests to
/// the login URL and answers signed-in ones with `403`.
///
/// ```
/// use axum::{http::StatusCode, routing::get, Router};
/// use session_layer_auth::{predicate_required, AuthSession};
/// # use session_layer_auth::{AuthUser, AuthnBackend, UserId};
/// # #[derive(Debug, Clone)] struct User { verified: bool }
/// # impl AuthUser for User {
/// #     type Id = i64;
/// #     fn id(&self) -> i64 { 1 }
/// #     fn session_auth_hash(&self) -> &[u8] { b"" }
/// # }
/// # #[derive(Clone)] struct Backend;
/// # impl AuthnBackend for Backend {
/// #     type User = User;
/// #     type Credentials = ();
/// #     type Error = std::convert::Infallible;
/// #     async fn authenticate(&self, _: ()) -> Result<Option<User>, Self::Error> { Ok(None) }
/// #     async fn get_user(&self, _: &UserId<Self>) -> Result<Option<User>, Self::Error> { Ok(None) }
/// # }
///
/// async fn is_verified(auth: AuthSession<Backend>) -> bool {
///     matches!(auth.user().await, Ok(Some(user)) if user.verified)
/// }
///
/// let app: Router = Router::new()
///     .route("/beta", get(|| async { "welcome" }))
///     .route_layer(predicate_required!(is_verified, StatusCode::FORBIDDEN));
/// ```
#[macro_export]
macro_rules! predicate_required {
    ($predicate:expr, login_url = $login_url:expr, redirect_field = $redirect_field:expr $(,)?) => {
        $crate::RequireAuthLayer::predicate($predicate)
            .with_login_url($login_url)
            .with_redirect_field($redirect_field)
    };
    ($predicate:expr, login_url = $login_url:expr $(,)?) => {
        $crate::RequireAuthLayer::predicate($predicate).with_login_url($login_url)
    };
    ($predicate:expr, $alternative:expr $(,)?) => {
        $crate::RequireAuthLayer::predicate($predicate).with_rejection(move || $alternative)
    };
}
