// The live-migration step: a middleware that moves a sign-in made under axum-login 0.18 and
// tower-sessions 0.14/0.15 to session-layer-auth, on the user's next request.
//
// Sessions cannot be imported: tower-sessions' IDs have another format and its stores hold
// them unhashed, while session-layer's stores only ever see a hash. So for a while both
// session layers run, under different cookie names, and every request that still carries
// the old cookie is moved: the old sign-in is checked the way axum-login checks it (the user
// still exists, its auth hash unchanged, compared in constant time), the user is signed in
// on a new session, the keys listed in `CARRIED_KEYS` are copied, and the old session is
// deleted (tower-sessions then removes its cookie). Once the old cookies have expired (their
// expiry, or a few weeks), remove the old layer and this middleware.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use session_layer_auth::{AuthSession, AuthUser, AuthnBackend, Error, UserId};
use subtle::ConstantTimeEq;

/// Where axum-login 0.18 keeps its sign-in: its default data key (use yours if you changed
/// it with `AuthManagerLayerBuilder::with_data_key`).
pub(crate) const OLD_DATA_KEY: &str = "axum-login.data";

/// The app's own session keys that come along to the new session (a cart, a theme...).
/// Nothing else does: list what your app keeps.
pub(crate) const CARRIED_KEYS: &[&str] = &["cart"];

/// What axum-login 0.18 stores under its data key.
#[derive(Deserialize)]
struct OldSignIn<Id> {
    user_id: Option<Id>,
    auth_hash: Option<Vec<u8>>,
}

/// The middleware: `.layer(axum::middleware::from_fn(move_old_session::<Backend>))`, added
/// to the router after the routes and before the `AuthManagerLayer`, so that it runs inside
/// both session layers and before any guard.
pub(crate) async fn move_old_session<B>(
    old: tower_sessions::Session,
    auth: AuthSession<B>,
    req: Request,
    next: Next,
) -> Response
where
    B: AuthnBackend + 'static,
{
    match move_to_new(&old, auth).await {
        Ok(()) => next.run(req).await,
        Err(failed) => failed,
    }
}

async fn move_to_new<B>(old: &tower_sessions::Session, auth: AuthSession<B>) -> Result<(), Response>
where
    B: AuthnBackend + 'static,
{
    // No old cookie: nothing to move, and tower-sessions reads no store.
    if old.id().is_none() {
        return Ok(());
    }
    let signed_in: Option<OldSignIn<UserId<B>>> =
        old.get(OLD_DATA_KEY).await.map_err(old_store_failed)?;
    let mut carried = Vec::new();
    for key in CARRIED_KEYS {
        if let Some(value) = old
            .get::<serde_json::Value>(key)
            .await
            .map_err(old_store_failed)?
        {
            carried.push((*key, value));
        }
    }
    // Someone already signed in on the new layer (again, or as someone else) keeps that
    // session: the old one is only deleted.
    if auth
        .user()
        .await
        .map_err(IntoResponse::into_response)?
        .is_none()
    {
        sign_in_again(auth.clone(), signed_in).await?;
        for (key, value) in carried {
            auth.session()
                .insert(key, value)
                .await
                .map_err(|e| Error::<B>::from(e).into_response())?;
        }
    }
    old.flush().await.map_err(old_store_failed)
}

/// Signs the old session's user in on the new one, if axum-login would still accept it.
async fn sign_in_again<B>(
    mut auth: AuthSession<B>,
    signed_in: Option<OldSignIn<UserId<B>>>,
) -> Result<(), Response>
where
    B: AuthnBackend + 'static,
{
    let Some(OldSignIn {
        user_id: Some(id),
        auth_hash: Some(hash),
    }) = signed_in
    else {
        return Ok(());
    };
    let user = auth
        .backend()
        .get_user(&id)
        .await
        .map_err(|e| Error::<B>::Backend(e).into_response())?;
    let Some(user) = user else {
        return Ok(());
    };
    if bool::from(hash.ct_eq(user.session_auth_hash())) {
        auth.login(&user)
            .await
            .map_err(IntoResponse::into_response)?;
    }
    Ok(())
}

fn old_store_failed(error: tower_sessions::session::Error) -> Response {
    tracing::error!(%error, "the old session store failed; nothing was moved");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "sessions unavailable, try again later",
    )
        .into_response()
}
