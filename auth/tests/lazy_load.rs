//! The user is loaded lazily, at most once per request, however many guards, extractors and
//! handler calls ask for it; a request that asks nothing loads nothing.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use common::{serve, Backend, ALICE_PASSWORD};
use session_layer::SessionLayer;
use session_layer_auth::{
    login_required, permission_required, AuthManagerLayer, AuthSession, AuthnBackend, AuthzBackend,
    Error, RequireUser, UserId,
};

/// The SQLite backend, counting its `get_user` calls.
#[derive(Clone)]
struct Counting {
    inner: Backend,
    loads: Arc<AtomicUsize>,
}

impl AuthnBackend for Counting {
    type User = <Backend as AuthnBackend>::User;
    type Credentials = <Backend as AuthnBackend>::Credentials;
    type Error = <Backend as AuthnBackend>::Error;

    async fn authenticate(
        &self,
        creds: Self::Credentials,
    ) -> Result<Option<Self::User>, Self::Error> {
        self.inner.authenticate(creds).await
    }

    async fn get_user(&self, id: &UserId<Self>) -> Result<Option<Self::User>, Self::Error> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.get_user(id).await
    }
}

impl AuthzBackend for Counting {
    type Permission = String;

    async fn get_group_permissions(
        &self,
        user: &Self::User,
    ) -> Result<std::collections::HashSet<String>, Self::Error> {
        self.inner.get_group_permissions(user).await
    }
}

/// Three guards, the extractor and two handler calls: every one wants the user.
async fn greedy(
    auth: AuthSession<Counting>,
    RequireUser(user): RequireUser<Counting>,
) -> Result<String, Error<Counting>> {
    let again = auth.user().await?.expect("signed in");
    let once_more = auth.user().await?.expect("signed in");
    assert_eq!((again.id, once_more.id), (user.id, user.id));
    Ok(user.username)
}

async fn sign_in(mut auth: AuthSession<Counting>) -> Result<&'static str, Error<Counting>> {
    let creds = common::Credentials {
        username: "alice".into(),
        password: ALICE_PASSWORD.into(),
        next: None,
    };
    let user = auth.authenticate(creds).await?.expect("alice's password");
    auth.login(&user).await?;
    Ok("signed in")
}

async fn the_user_is_loaded_at_most_once_per_request_and_only_when_asked(sessions: SessionLayer) {
    let inner = Backend::open("sqlite::memory:").await.unwrap();
    let alice = inner.add_user("alice", ALICE_PASSWORD, &[]).await.unwrap();
    inner.grant_group("admins", "admin").await.unwrap();
    inner.add_to_group(alice, "admins").await.unwrap();
    let loads = Arc::new(AtomicUsize::new(0));
    let backend = Counting {
        inner,
        loads: loads.clone(),
    };
    let app = Router::new()
        .route("/greedy", get(greedy))
        .route_layer(login_required!(Counting, login_url = "/login"))
        .route_layer(permission_required!(Counting, "admin"))
        .route_layer(login_required!(Counting))
        .route("/untouched", get(|| async { "no auth here" }))
        .route(
            "/session-only",
            get(|_: AuthSession<Counting>| async { "held, not asked" }),
        )
        .route("/login", axum::routing::post(sign_in))
        .layer(AuthManagerLayer::new(backend))
        .layer(sessions);
    let browser = common::Browser::new(serve(app).await);
    browser.post("/login", &[]).await;
    assert_eq!(
        loads.load(Ordering::SeqCst),
        0,
        "signing in loaded the user"
    );

    for (path, loaded) in [
        ("/untouched", 0),
        ("/session-only", 0),
        ("/greedy", 1),
        ("/greedy", 1),
        ("/untouched", 0),
    ] {
        let before = loads.load(Ordering::SeqCst);
        let res = browser.get(path).await;
        assert!(res.status.is_success(), "{path}: {res:?}");
        assert_eq!(
            loads.load(Ordering::SeqCst) - before,
            loaded,
            "{path} loaded the user a wrong number of times"
        );
    }
}

on_every_store!(the_user_is_loaded_at_most_once_per_request_and_only_when_asked);
