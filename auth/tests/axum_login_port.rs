//! The project's own backend in axum-login 0.18's shape (`examples/sqlite_users/users.rs`:
//! users, permissions and groups in SQLite through sqlx, Argon2 hashes) compiles against
//! axum-login's traits and against this crate's, with only its `use` line changed, and
//! answers the same through both.

#[allow(dead_code)]
mod theirs {
    use axum_login::{AuthUser, AuthnBackend, AuthzBackend, UserId};
    include!("../examples/sqlite_users/users.rs");
}

#[allow(dead_code)]
mod ours {
    use session_layer_auth::{AuthUser, AuthnBackend, AuthzBackend, UserId};
    include!("../examples/sqlite_users/users.rs");
}

use std::collections::HashSet;

fn creds_ours(name: &str, password: &str) -> ours::Credentials {
    ours::Credentials {
        username: name.into(),
        password: password.into(),
        next: None,
    }
}

fn creds_theirs(name: &str, password: &str) -> theirs::Credentials {
    theirs::Credentials {
        username: name.into(),
        password: password.into(),
        next: None,
    }
}

#[tokio::test]
async fn one_backend_file_serves_axum_login_and_this_crate_alike() {
    use axum_login::{AuthUser as _, AuthnBackend as _, AuthzBackend as _};
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("users.db").display()
    );
    let ours = ours::Backend::open(&url).await.unwrap();
    let theirs = theirs::Backend::open(&url).await.unwrap();
    let alice = ours.add_user("alice", "alice-pw", &["beta"]).await.unwrap();
    ours.grant_group("admins", "admin").await.unwrap();
    ours.add_to_group(alice, "admins").await.unwrap();

    // Through axum-login's traits.
    let via_theirs = theirs
        .authenticate(creds_theirs("alice", "alice-pw"))
        .await
        .unwrap()
        .expect("alice's password, through axum-login's AuthnBackend");
    assert_eq!(via_theirs.id(), alice);
    let theirs_perms = theirs.get_all_permissions(&via_theirs).await.unwrap();
    assert!(theirs.has_perm(&via_theirs, "admin".into()).await.unwrap());
    assert!(theirs
        .authenticate(creds_theirs("alice", "wrong"))
        .await
        .unwrap()
        .is_none());

    // Through this crate's: the same answers.
    let via_ours = {
        use session_layer_auth::AuthnBackend as _;
        ours.authenticate(creds_ours("alice", "alice-pw"))
            .await
            .unwrap()
            .expect("alice's password, through this crate's AuthnBackend")
    };
    {
        use session_layer_auth::{AuthUser as _, AuthnBackend as _, AuthzBackend as _};
        assert_eq!(via_ours.id(), alice);
        assert_eq!(via_ours.session_auth_hash(), via_theirs.session_auth_hash());
        let ours_perms = ours.get_all_permissions(&via_ours).await.unwrap();
        assert_eq!(ours_perms, theirs_perms);
        assert_eq!(
            ours_perms,
            HashSet::from(["admin".to_owned(), "beta".to_owned()])
        );
        assert!(ours.has_perm(&via_ours, "admin".into()).await.unwrap());
        assert!(!ours.has_perm(&via_ours, "root".into()).await.unwrap());
        assert!(ours
            .authenticate(creds_ours("alice", "wrong"))
            .await
            .unwrap()
            .is_none());
        ours.delete_user(alice).await.unwrap();
        assert!(ours.get_user(&alice).await.unwrap().is_none());
    }
    assert!(theirs.get_user(&alice).await.unwrap().is_none());
}
