//! A live migration from axum-login 0.18 + tower-sessions 0.14 to session-layer-auth,
//! as `MIGRATING.md` describes it: both session layers side by side under different cookie
//! names, each signed-in user moved to a new session on their next request, then the old
//! layer removed (`apps::after`).
//!
//! ```text
//! cargo run -p session-layer-auth --example migrate_from_axum_login
//! ```
//!
//! It serves today's app (axum-login) on http://127.0.0.1:3001 and the migrating app on
//! http://127.0.0.1:3000, over one users database and one old session store. Sign in on
//! 3001 (`ferris` / `hunter2-but-longer`):
//!
//! ```text
//! curl -c jar -d 'username=ferris&password=hunter2-but-longer' http://127.0.0.1:3001/login
//! curl -b jar -c jar http://127.0.0.1:3000/     # "ferris": moved, the old cookie removed
//! ```
//!
//! (Cookies do not tell ports apart, so a browser does the same.) The last step, the app
//! without the old layer, is `-- after`: it serves `apps::after` on 3000 instead. Plain http
//! for local use only.

mod apps;
mod migrate;

/// The backend as it was written for axum-login: `users.rs` with axum-login's traits.
#[allow(dead_code)]
mod theirs {
    use axum_login::{AuthUser, AuthnBackend, AuthzBackend, UserId};
    include!("../sqlite_users/users.rs");
}

/// The same file with this crate's traits: the only change a backend needs.
#[allow(dead_code)]
mod ours {
    use session_layer_auth::{AuthUser, AuthnBackend, AuthzBackend, UserId};
    include!("../sqlite_users/users.rs");
}

use session_layer::{MemoryStore, SessionLayer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("migrate-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let url = format!("sqlite://{}?mode=rwc", dir.join("users.db").display());
    let users = ours::Backend::open(&url).await?;
    users.add_user("ferris", "hunter2-but-longer", &[]).await?;

    let old_store = tower_sessions::MemoryStore::default();
    let old_sessions =
        || tower_sessions::SessionManagerLayer::new(old_store.clone()).with_secure(false);
    let new_sessions = SessionLayer::builder(MemoryStore::default())
        .with_plain_http_for_development()
        .build()?;

    let before = apps::before(theirs::Backend::open(&url).await?, old_sessions());
    let new_app = if std::env::args().nth(1).as_deref() == Some("after") {
        apps::after(users, new_sessions)
    } else {
        apps::during(users, new_sessions, old_sessions())
    };
    let old = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
    let new = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("today's app (axum-login): http://127.0.0.1:3001");
    println!("new app:                  http://127.0.0.1:3000");
    tokio::try_join!(axum::serve(old, before), axum::serve(new, new_app))?;
    Ok(())
}
