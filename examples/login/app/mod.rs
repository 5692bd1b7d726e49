//! The login app: routes, handlers and the store selection. `main.rs` runs it; the browser
//! tests build it in-process with [`router`].

pub(crate) mod config;
pub(crate) mod pages;
pub(crate) mod users;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use session_layer::flash::{set_flash, take_flash, Flash, FlashKind};
use session_layer::id::SessionHandle;
use session_layer::{MemoryStore, Session, SessionError, SessionLayer, SessionStore};
use time::OffsetDateTime;
use tower_http::csrf::{CsrfLayer, ProtectionError};
use tower_http::set_header::SetResponseHeaderLayer;

use self::config::Config;
use self::pages::{Page, SessionRow};
use self::users::{Users, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN};

/// Opens the session store `url` names: `memory` (the default: in this process, nothing to
/// install), or `sqlite://PATH`, `postgres://...`, `mysql://...` (MySQL or MariaDB),
/// `redis://...`.
pub(crate) async fn open_store(url: &str) -> Result<Arc<dyn SessionStore>, String> {
    let scheme = url.split_once("://").map_or(url, |(scheme, _)| scheme);
    match scheme.to_ascii_lowercase().as_str() {
        "memory" => Ok(Arc::new(MemoryStore::default())),
        "sqlite" => open_sqlite(url.split_once("://").map_or("", |(_, p)| p).to_owned()).await,
        "postgres" | "postgresql" => open_postgres(url.to_owned()).await,
        "mysql" | "mariadb" => open_mysql(url.to_owned()).await,
        "redis" | "rediss" => session_layer_redis::RedisStore::connect(url)
            .await
            .map(|store| Arc::new(store) as Arc<dyn SessionStore>)
            .map_err(|e| format!("cannot open the Redis store: {e}")),
        _ => Err(format!(
            "unknown session store {scheme:?}; use memory, sqlite://PATH, postgres://..., \
             mysql://... or redis://..."
        )),
    }
}

/// What [`open_store`] returns, boxed: sqlx's futures are `Send`, but the compiler only sees
/// it at a concrete boxing site, not through the closures of a spawned test.
type Opening = Pin<Box<dyn Future<Output = Result<Arc<dyn SessionStore>, String>> + Send>>;

fn open_sqlite(path: String) -> Opening {
    Box::pin(async move {
        if path.is_empty() {
            return Err("give the SQLite file as sqlite://PATH".to_owned());
        }
        let store = session_layer_sqlite::SqliteStore::open(&path)
            .await
            .map_err(|e| format!("cannot open the SQLite store: {e}"))?;
        store
            .migrate()
            .await
            .map_err(|e| format!("cannot create the SQLite sessions table: {e}"))?;
        Ok(Arc::new(store) as Arc<dyn SessionStore>)
    })
}

fn open_postgres(url: String) -> Opening {
    Box::pin(async move {
        let store = session_layer_postgres::PostgresStore::connect(&url)
            .await
            .map_err(|e| format!("cannot open the PostgreSQL store: {e}"))?;
        store
            .migrate()
            .await
            .map_err(|e| format!("cannot create the PostgreSQL sessions table: {e}"))?;
        Ok(Arc::new(store) as Arc<dyn SessionStore>)
    })
}

fn open_mysql(url: String) -> Opening {
    Box::pin(async move {
        // sqlx reads `mysql://` URLs for MariaDB too.
        let url = match url.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => url,
        };
        let store = session_layer_mysql::MySqlStore::connect(&url)
            .await
            .map_err(|e| format!("cannot open the MySQL store: {e}"))?;
        store
            .migrate()
            .await
            .map_err(|e| format!("cannot create the MySQL sessions table: {e}"))?;
        Ok(Arc::new(store) as Arc<dyn SessionStore>)
    })
}

/// The session layer as `config` asks for it.
pub(crate) fn build_session_layer(
    config: &Config,
    store: Arc<dyn SessionStore>,
) -> Result<SessionLayer, String> {
    let mut builder = SessionLayer::builder(store);
    if !config.behind_tls {
        // Plain http on a developer's machine: the one switch that turns `Secure` off (and
        // with it the `__Host-` name). Behind TLS the audited defaults apply unchanged.
        builder = builder.with_plain_http_for_development();
    }
    if let Some(idle) = config.idle_timeout {
        // The touch step must stay below the idle timeout, or activity would never extend a
        // session before it ends.
        builder = builder
            .with_idle_timeout(idle)
            .with_touch_step((idle / 3).min(Duration::from_secs(60)));
    }
    builder.build().map_err(|e| e.to_string())
}

/// What the handlers share.
#[derive(Debug, Clone)]
struct AppState {
    users: Arc<Users>,
}

/// The whole app: pages, the session layer, CSRF protection and security headers.
pub(crate) fn router(
    config: &Config,
    store: Arc<dyn SessionStore>,
    users: Arc<Users>,
) -> Result<Router, String> {
    // Cross-site POSTs are refused by `Sec-Fetch-Site` (and `Origin` for older browsers):
    // the cookie's `SameSite=Lax` already keeps it off them, and this refuses the request
    // itself, whoever sent it, before any handler runs.
    let csrf = CsrfLayer::new().with_rejection_response(refused);
    Ok(Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/account", get(account))
        .route("/sessions", get(sessions))
        .route("/sessions/end", post(end_session))
        .route("/sessions/end-others", post(end_other_sessions))
        .route("/password", get(password_page).post(change_password))
        .route("/style.css", get(style))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .fallback(not_found)
        .with_state(AppState { users })
        .layer(build_session_layer(config, store)?)
        .layer(csrf)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; form-action 'self'; \
                 frame-ancestors 'none'; base-uri 'none'",
            ),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        )))
}

type Result<T = axum::response::Response, E = SessionError> = std::result::Result<T, E>;

/// Who is asking, and the flash message left for this page.
struct Visitor {
    user: Option<String>,
    flash: Option<Flash>,
}

impl Visitor {
    async fn of(session: &Session) -> Result<Self> {
        let user = session.user().await?;
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

/// The signed-in user, or a redirect to the sign-in page that comes back to `here`.
async fn signed_in(session: &Session, here: &'static str) -> Result<Result<Visitor, Redirect>> {
    let visitor = Visitor::of(session).await?;
    Ok(if visitor.user.is_some() {
        Ok(visitor)
    } else {
        Err(Redirect::to(&format!("/login?next={here}")))
    })
}

/// Where to go after signing in: a path on this site only, never another host (an open
/// redirect would let a phishing link bounce through the sign-in page).
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && !p.chars().any(char::is_control) =>
        {
            p.to_owned()
        }
        _ => "/account".to_owned(),
    }
}

async fn home(session: Session) -> Result {
    let visitor = Visitor::of(&session).await?;
    let body = pages::home(visitor.user.as_deref());
    Ok(visitor
        .page("home", "Welcome", body)
        .render()
        .into_response())
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

async fn login_page(session: Session, Query(query): Query<LoginQuery>) -> Result {
    let visitor = Visitor::of(&session).await?;
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

#[derive(Debug, Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    /// Present (as "on") only when the box is ticked.
    remember: Option<String>,
    next: Option<String>,
}

async fn login(
    State(app): State<AppState>,
    session: Session,
    Form(form): Form<LoginForm>,
) -> Result {
    let next = local_path(form.next.as_deref());
    if !app.users.verify(&form.username, &form.password).await {
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
    }
    // A new ID at sign-in: an ID planted in this browser before (session fixation) is dead.
    session.rotate().await;
    session.set_user(Some(form.username.clone())).await;
    session.set_persistent(form.remember.is_some()).await;
    set_flash(
        &session,
        FlashKind::Success,
        format!("Signed in as {}.", form.username),
    )
    .await?;
    tracing::info!(user = %form.username, remember = form.remember.is_some(), "signed in");
    Ok(Redirect::to(&next).into_response())
}

async fn logout(session: Session) -> Result {
    // The record is deleted and the cookie removed; the flash goes into a new session that
    // the next page ends once it has shown it.
    session.destroy().await;
    set_flash(&session, FlashKind::Info, "Signed out.").await?;
    Ok(Redirect::to("/").into_response())
}

async fn account(session: Session) -> Result {
    let visitor = match signed_in(&session, "/account").await? {
        Ok(visitor) => visitor,
        Err(redirect) => return Ok(redirect.into_response()),
    };
    let meta = session.metadata().await?;
    let user = visitor.user.clone().unwrap_or_default();
    let body = pages::account(&user, &meta, OffsetDateTime::now_utc());
    Ok(visitor
        .page("account", "Your account", body)
        .render()
        .into_response())
}

async fn sessions(session: Session) -> Result {
    let visitor = match signed_in(&session, "/sessions").await? {
        Ok(visitor) => visitor,
        Err(redirect) => return Ok(redirect.into_response()),
    };
    let current = session.handle();
    let mut rows: Vec<SessionRow> = session
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
struct EndForm {
    handle: String,
}

async fn end_session(session: Session, Form(form): Form<EndForm>) -> Result {
    if session.user().await?.is_none() {
        return Ok(Redirect::to("/login?next=/sessions").into_response());
    }
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
        return logout(session).await;
    }
    // `revoke` ends only sessions of this session's user: a handle of someone else's is
    // refused, whatever the form says.
    let (kind, message) = if session.revoke(handle).await? {
        (FlashKind::Success, "Session ended.")
    } else {
        (FlashKind::Warning, "That session had already ended.")
    };
    set_flash(&session, kind, message).await?;
    Ok(Redirect::to("/sessions").into_response())
}

async fn end_other_sessions(session: Session) -> Result {
    if session.user().await?.is_none() {
        return Ok(Redirect::to("/login?next=/sessions").into_response());
    }
    let ended = session.revoke_others().await?;
    set_flash(
        &session,
        FlashKind::Success,
        format!("Signed out {ended} other session(s)."),
    )
    .await?;
    Ok(Redirect::to("/sessions").into_response())
}

async fn password_page(session: Session) -> Result {
    match signed_in(&session, "/password").await? {
        Ok(visitor) => Ok(visitor
            .page("password", "Change password", pages::password_form(None))
            .render()
            .into_response()),
        Err(redirect) => Ok(redirect.into_response()),
    }
}

#[derive(Debug, Deserialize)]
struct PasswordForm {
    current: String,
    new: String,
    confirm: String,
}

async fn change_password(
    State(app): State<AppState>,
    session: Session,
    Form(form): Form<PasswordForm>,
) -> Result {
    let Some(user) = session.user().await? else {
        return Ok(Redirect::to("/login?next=/password").into_response());
    };
    let problem = if form.new != form.confirm {
        Some((StatusCode::BAD_REQUEST, "The new passwords do not match."))
    } else if form.new.chars().count() < MIN_PASSWORD_LEN || form.new.len() > MAX_PASSWORD_LEN {
        Some((
            StatusCode::BAD_REQUEST,
            "The new password must have 8 to 1024 characters.",
        ))
    } else if !app.users.verify(&user, &form.current).await {
        Some((StatusCode::UNAUTHORIZED, "The current password is wrong."))
    } else {
        None
    };
    if let Some((status, error)) = problem {
        let page = Page {
            id: "password",
            title: "Change password",
            user: Some(user),
            flash: None,
            body: pages::password_form(Some(error)),
        };
        return Ok((status, page.render()).into_response());
    }
    app.users.set_password(&user, &form.new).await;
    // Whoever knew the old password may hold a session: end all but this one, and give this
    // one a new ID too.
    let ended = session.revoke_others().await?;
    session.rotate().await;
    set_flash(
        &session,
        FlashKind::Success,
        format!("Password changed. Signed out {ended} other session(s)."),
    )
    .await?;
    tracing::info!(user = %user, ended, "password changed");
    Ok(Redirect::to("/account").into_response())
}

async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        pages::STYLE,
    )
}

async fn not_found(session: Session) -> Result {
    // Not `Visitor::of`: a stray request (a probe, a missing asset) must not eat the flash
    // message meant for the page the user is about to see.
    let page = Page {
        id: "not-found",
        title: "Not found",
        user: session.user().await?,
        flash: None,
        body: pages::not_found(),
    };
    Ok((StatusCode::NOT_FOUND, page.render()).into_response())
}

/// The page a cross-site form post gets instead of its effect.
fn refused(error: ProtectionError) -> Response<Body> {
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
