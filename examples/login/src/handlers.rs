//! The pages and the forms. Who may see what is decided by the guards in
//! [`router`](crate::router); the handlers of signed-in pages take the user from
//! [`RequireUser`].

use axum::body::Body;
use axum::extract::Query;
use axum::http::{header, Response, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use serde::Deserialize;
use session_layer::flash::{set_flash, take_flash, Flash, FlashKind};
use session_layer::id::SessionHandle;
use session_layer_auth::{safe_next, AuthSession, Error, RequireUser};
use time::OffsetDateTime;
use tower_http::csrf::ProtectionError;

use crate::pages::{self, Page, SessionRow};
use crate::users::{Credentials, User, Users, UsersError, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN};

type Auth = AuthSession<Users>;
type Result<T = axum::response::Response, E = Error<Users>> = std::result::Result<T, E>;

/// Who is asking, and the flash message left for this page.
struct Visitor {
    user: Option<String>,
    flash: Option<Flash>,
}

impl Visitor {
    async fn of(auth: &Auth) -> Result<Self> {
        let user = auth.user().await?.map(|u| u.name().to_owned());
        let session = auth.session();
        let flash = take_flash(session).await?;
        if user.is_none() && flash.is_some() {
            // A signed-out visitor's session exists only to carry the flash across one
            // redirect. Shown now, it ends, so a signed-out browser keeps no session cookie.
            session.destroy().await;
        }
        Ok(Self { user, flash })
    }

    fn page(self, id: &'static str, title: &'static str, body: String) -> Page {
        Page {
            id,
            title,
            user: self.user,
            flash: self.flash,
            body,
        }
    }
}

/// Where to go after signing in: a path on this site only, never another host (an open
/// redirect would let a phishing link bounce through the sign-in page).
fn local_path(next: Option<&str>) -> String {
    next.and_then(safe_next).unwrap_or("/account").to_owned()
}

/// A `503` page saying the server is too busy checking passwords, and that nothing changed.
fn busy(user: Option<String>) -> axum::response::Response {
    let page = Page {
        id: "busy",
        title: "Try again in a moment",
        user,
        flash: None,
        body: pages::busy(),
    };
    (StatusCode::SERVICE_UNAVAILABLE, page.render()).into_response()
}

pub(crate) async fn home(auth: Auth) -> Result {
    let visitor = Visitor::of(&auth).await?;
    let body = pages::home(visitor.user.as_deref());
    Ok(visitor
        .page("home", "Welcome", body)
        .render()
        .into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
}

pub(crate) async fn login_page(auth: Auth, Query(query): Query<LoginQuery>) -> Result {
    let visitor = Visitor::of(&auth).await?;
    if visitor.user.is_some() {
        return Ok(Redirect::to(&local_path(query.next.as_deref())).into_response());
    }
    let notice = query
        .next
        .is_some()
        .then_some("Please sign in to see that page.");
    let next = local_path(query.next.as_deref());
    let body = pages::login_form(None, notice, "", &next);
    Ok(visitor
        .page("login", "Sign in", body)
        .render()
        .into_response())
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    username: String,
    password: String,
    /// Present (as "on") only when the box is ticked.
    remember: Option<String>,
    next: Option<String>,
}

pub(crate) async fn login(mut auth: Auth, Form(form): Form<LoginForm>) -> Result {
    let next = local_path(form.next.as_deref());
    let creds = Credentials {
        username: form.username.clone(),
        password: form.password,
    };
    let user = match auth.authenticate(creds).await {
        Ok(user) => user,
        Err(Error::Backend(UsersError::Busy)) => return Ok(busy(None)),
        Err(e) => return Err(e),
    };
    let Some(user) = user else {
        tracing::info!(user = %form.username.escape_debug(), "failed sign-in");
        // One message for a wrong name and a wrong password, so the form does not tell an
        // attacker which names exist.
        let body = pages::login_form(
            Some("Wrong username or password."),
            None,
            &form.username,
            &next,
        );
        let page = Page {
            id: "login",
            title: "Sign in",
            user: None,
            flash: None,
            body,
        };
        return Ok((StatusCode::UNAUTHORIZED, page.render()).into_response());
    };
    // A new ID (an ID planted in this browser before is dead), the owner recorded for "your
    // sessions", and, if someone else was signed in here, a new session with none of theirs.
    auth.login(&user).await?;
    let session = auth.session();
    session.set_persistent(form.remember.is_some()).await;
    set_flash(
        session,
        FlashKind::Success,
        format!("Signed in as {}.", user.name()),
    )
    .await?;
    tracing::info!(user = %user.name(), remember = form.remember.is_some(), "signed in");
    Ok(Redirect::to(&next).into_response())
}

pub(crate) async fn logout(mut auth: Auth) -> Result {
    // The record is deleted and the cookie removed.
    let was = auth.logout().await?;
    if was.is_some() {
        // The flash goes into a new session that the next page ends once it has shown it.
        // Only for someone who was signed in: a visitor without a session (a script posting
        // here in a loop, say) gets none, so sign-outs cannot fill the store.
        set_flash(auth.session(), FlashKind::Info, "Signed out.").await?;
    }
    Ok(Redirect::to("/").into_response())
}

pub(crate) async fn account(auth: Auth, RequireUser(user): RequireUser<Users>) -> Result {
    let visitor = Visitor::of(&auth).await?;
    let meta = auth.session().metadata().await?;
    let body = pages::account(user.name(), &meta, OffsetDateTime::now_utc());
    Ok(visitor
        .page("account", "Your account", body)
        .render()
        .into_response())
}

pub(crate) async fn sessions(auth: Auth, RequireUser(_): RequireUser<Users>) -> Result {
    let visitor = Visitor::of(&auth).await?;
    let current = auth.session().handle();
    let mut rows: Vec<SessionRow> = auth
        .user_sessions()
        .await?
        .into_iter()
        .map(|info| SessionRow {
            current: Some(info.handle) == current,
            handle: info.handle,
            meta: info.meta,
        })
        .collect();
    rows.sort_by_key(|row| (!row.current, std::cmp::Reverse(row.meta.created)));
    let body = pages::sessions(&rows, OffsetDateTime::now_utc());
    Ok(visitor
        .page("sessions", "Your sessions", body)
        .render()
        .into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct EndForm {
    handle: String,
}

pub(crate) async fn end_session(auth: Auth, Form(form): Form<EndForm>) -> Result {
    let session = auth.session().clone();
    let Ok(handle) = form.handle.parse::<SessionHandle>() else {
        set_flash(
            &session,
            FlashKind::Error,
            "That is not a session of yours.",
        )
        .await?;
        return Ok(Redirect::to("/sessions").into_response());
    };
    if Some(handle) == session.handle() {
        return logout(auth).await;
    }
    // `revoke` ends only sessions of this session's user: a handle of someone else's is
    // refused, whatever the form says.
    let (kind, message) = if auth.revoke(handle).await? {
        (FlashKind::Success, "Session ended.")
    } else {
        (FlashKind::Warning, "That session had already ended.")
    };
    set_flash(&session, kind, message).await?;
    Ok(Redirect::to("/sessions").into_response())
}

pub(crate) async fn end_other_sessions(auth: Auth) -> Result {
    let ended = auth.revoke_others().await?;
    set_flash(
        auth.session(),
        FlashKind::Success,
        format!("Signed out {ended} other session(s)."),
    )
    .await?;
    Ok(Redirect::to("/sessions").into_response())
}

pub(crate) async fn password_page(auth: Auth, RequireUser(_): RequireUser<Users>) -> Result {
    let visitor = Visitor::of(&auth).await?;
    Ok(visitor
        .page("password", "Change password", pages::password_form(None))
        .render()
        .into_response())
}

#[derive(Deserialize)]
pub(crate) struct PasswordForm {
    current: String,
    new: String,
    confirm: String,
}

/// The password form again, with what went wrong.
fn password_problem(user: &User, status: StatusCode, error: &str) -> axum::response::Response {
    let page = Page {
        id: "password",
        title: "Change password",
        user: Some(user.name().to_owned()),
        flash: None,
        body: pages::password_form(Some(error)),
    };
    (status, page.render()).into_response()
}

/// Changes the password in an order where every failure leaves a state the page can state
/// truthfully: hash the new password (busy: nothing changed), end the other sessions (a
/// store failure: nothing changed), and only then store the new password and sign this
/// session in again with it. A sign-in elsewhere that checked the old password just before
/// is ended on its next request all the same: its session holds the old password's auth
/// hash, which session-layer-auth compares on every request.
pub(crate) async fn change_password(
    mut auth: Auth,
    RequireUser(user): RequireUser<Users>,
    Form(form): Form<PasswordForm>,
) -> Result {
    let users = auth.backend().clone();
    if form.new != form.confirm {
        return Ok(password_problem(
            &user,
            StatusCode::BAD_REQUEST,
            "The new passwords do not match.",
        ));
    }
    if form.new.chars().count() < MIN_PASSWORD_LEN || form.new.len() > MAX_PASSWORD_LEN {
        return Ok(password_problem(
            &user,
            StatusCode::BAD_REQUEST,
            "The new password must have 8 to 1024 characters.",
        ));
    }
    let checked = users.check(user.name(), &form.current).await;
    let new = match checked {
        Ok(Some(_)) => users.hash(&form.new).await,
        Ok(None) => {
            return Ok(password_problem(
                &user,
                StatusCode::UNAUTHORIZED,
                "The current password is wrong.",
            ))
        }
        Err(e) => Err(e),
    };
    let Ok(new) = new else {
        return Ok(busy(Some(user.name().to_owned())));
    };
    let ended = match auth.revoke_others().await {
        Ok(ended) => ended,
        Err(error) => {
            tracing::error!(%error, user = %user.name(), "could not sign out the other sessions");
            return Ok(password_problem(
                &user,
                StatusCode::SERVICE_UNAVAILABLE,
                "Your password was not changed: your other sessions could not be signed \
                 out. Nothing changed; try again in a moment.",
            ));
        }
    };
    let Some(updated) = users.set_password(user.name(), new) else {
        return Ok(StatusCode::NOT_FOUND.into_response());
    };
    if let Err(error) = auth.login(&updated).await {
        tracing::error!(%error, user = %user.name(), "password changed, session not updated");
        return Ok(password_problem(
            &user,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Your password was changed and your other sessions were signed out, but this \
             session could not be updated: sign in again with the new password.",
        ));
    }
    set_flash(
        auth.session(),
        FlashKind::Success,
        format!("Password changed. Signed out {ended} other session(s)."),
    )
    .await?;
    tracing::info!(user = %user.name(), ended, "password changed");
    Ok(Redirect::to("/account").into_response())
}

pub(crate) async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        pages::STYLE,
    )
}

pub(crate) async fn not_found(auth: Auth) -> Result {
    // Not `Visitor::of`: a stray request (a probe, a missing asset) must not eat the flash
    // message meant for the page the user is about to see.
    let page = Page {
        id: "not-found",
        title: "Not found",
        user: auth.user().await?.map(|u| u.name().to_owned()),
        flash: None,
        body: pages::not_found(),
    };
    Ok((StatusCode::NOT_FOUND, page.render()).into_response())
}

/// The page a cross-site form post gets instead of its effect.
pub(crate) fn refused(error: ProtectionError) -> Response<Body> {
    tracing::warn!(%error, "refused a cross-site request");
    let page = Page {
        id: "refused",
        title: "Request refused",
        user: None,
        flash: None,
        body: pages::refused(),
    };
    (StatusCode::FORBIDDEN, page.render()).into_response()
}
