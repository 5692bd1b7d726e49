//! Sign-in, guards and the end of sessions over real HTTP, on the memory store and on Redis.

mod common;

use axum::http::StatusCode;
use common::{get_with_cookie, start, ALICE_PASSWORD, BOB_PASSWORD};
use session_layer::SessionLayer;

on_every_store!(
    sign_in_rotates_the_id_and_records_the_owner,
    a_wrong_password_signs_nobody_in,
    login_required_redirects_with_a_same_site_next,
    the_next_a_login_form_posts_never_leaves_the_site,
    api_routes_answer_401_with_www_authenticate,
    a_missing_permission_is_403,
    a_predicate_guard_answers_its_alternative,
    a_password_change_ends_every_other_session,
    a_password_reset_in_the_backend_ends_every_session,
    a_deleted_user_is_anonymous,
    signing_in_as_another_user_keeps_none_of_the_previous_data,
    sign_out_ends_the_session,
    your_devices_and_revoking_the_others,
    a_failing_backend_is_an_error_not_an_anonymous_request,
);

async fn sign_in_rotates_the_id_and_records_the_owner(sessions: SessionLayer) {
    let app = start(sessions).await;
    let browser = app.browser();
    // An anonymous session with the visitor's own data.
    assert_eq!(browser.post("/note/cart", &[]).await.status, StatusCode::OK);
    let before = browser.cookie().expect("an anonymous session");
    assert_eq!(browser.whoami().await, "anonymous");

    browser.sign_in("alice", ALICE_PASSWORD).await;
    let after = browser.cookie().expect("a session cookie");
    assert_ne!(before, after, "sign-in must give the session a new ID");
    assert_eq!(browser.whoami().await, "alice");
    assert_eq!(browser.get("/owner").await.body, app.alice.to_string());
    // The anonymous session's data came along; the ID planted before sign-in is dead.
    assert_eq!(browser.get("/note").await.body, "cart");
    let old = get_with_cookie(app.addr, "/whoami", Some(&before)).await;
    assert_eq!(old.body, "anonymous");
    assert_eq!(
        get_with_cookie(app.addr, "/note", Some(&before)).await.body,
        "none"
    );
}

async fn a_wrong_password_signs_nobody_in(sessions: SessionLayer) {
    let app = start(sessions).await;
    let browser = app.browser();
    for (name, password) in [
        ("alice", BOB_PASSWORD),
        ("mallory", "whatever"),
        ("alice", ""),
    ] {
        let res = browser
            .post("/login", &[("username", name), ("password", password)])
            .await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{name}/{password}");
    }
    assert_eq!(browser.whoami().await, "anonymous");
    assert_eq!(browser.get("/account").await.status, StatusCode::SEE_OTHER);
}

async fn login_required_redirects_with_a_same_site_next(sessions: SessionLayer) {
    let app = start(sessions).await;
    let browser = app.browser();
    for (path, next) in [
        ("/account", "/account"),
        (
            "/account?tab=devices&x=a%20b",
            "/account%3Ftab%3Ddevices%26x%3Da%2520b",
        ),
        ("/me", "/me"),
        ("/admin", "/admin"),
    ] {
        let res = browser.get(path).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(
            res.location.unwrap(),
            format!("/login?next={next}"),
            "{path}"
        );
    }
    // Following the redirect and signing in lands on the page asked for.
    let res = browser
        .post(
            "/login",
            &[
                ("username", "alice"),
                ("password", ALICE_PASSWORD),
                ("next", "/account?tab=devices"),
            ],
        )
        .await;
    assert_eq!(res.location.as_deref(), Some("/account?tab=devices"));
    let res = browser.get("/account?tab=devices").await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "your account")
    );
    assert_eq!(browser.get("/me").await.body, "alice");
}

async fn the_next_a_login_form_posts_never_leaves_the_site(sessions: SessionLayer) {
    let app = start(sessions).await;
    for evil in [
        "//evil.example",
        "///evil.example",
        "https://evil.example",
        "http:evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "/%2F/evil.example",
        "%2F%2Fevil.example",
        "/%5Cevil.example",
        "/%5cevil.example",
        "/%252F%252Fevil.example",
        "/\t/evil.example",
        "/%09/evil.example",
        "javascript:alert(1)",
    ] {
        let browser = app.browser();
        let res = browser
            .post(
                "/login",
                &[
                    ("username", "bob"),
                    ("password", BOB_PASSWORD),
                    ("next", evil),
                ],
            )
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{evil:?}");
        assert_eq!(res.location.as_deref(), Some("/"), "next={evil:?}");
    }
}

async fn api_routes_answer_401_with_www_authenticate(sessions: SessionLayer) {
    let app = start(sessions).await;
    let browser = app.browser();
    for path in ["/api/me", "/api/admin"] {
        let res = browser.get(path).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(res.www_authenticate.as_deref(), Some("Cookie"), "{path}");
        assert_eq!(res.location, None, "{path}");
    }
    browser.sign_in("alice", ALICE_PASSWORD).await;
    assert_eq!(browser.get("/api/me").await.status, StatusCode::OK);
    assert_eq!(browser.get("/api/admin").await.status, StatusCode::OK);
}

async fn a_missing_permission_is_403(sessions: SessionLayer) {
    let app = start(sessions).await;
    let bob = app.browser();
    bob.sign_in("bob", BOB_PASSWORD).await;
    // Signed in but not an admin: refused, not sent to sign in again.
    for path in ["/admin", "/api/admin"] {
        let res = bob.get(path).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(res.location, None, "{path}");
    }
    // alice has it through her group.
    let alice = app.browser();
    alice.sign_in("alice", ALICE_PASSWORD).await;
    let res = alice.get("/admin").await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "admins only")
    );
}

async fn a_predicate_guard_answers_its_alternative(sessions: SessionLayer) {
    let app = start(sessions).await;
    let anonymous = app.browser();
    assert_eq!(anonymous.get("/beta").await.status, StatusCode::NOT_FOUND);
    let alice = app.browser();
    alice.sign_in("alice", ALICE_PASSWORD).await;
    assert_eq!(alice.get("/beta").await.status, StatusCode::NOT_FOUND);
    let bob = app.browser();
    bob.sign_in("bob", BOB_PASSWORD).await;
    let res = bob.get("/beta").await;
    assert_eq!(
        (res.status, res.body.as_str()),
        (StatusCode::OK, "the beta")
    );
}

async fn a_password_change_ends_every_other_session(sessions: SessionLayer) {
    let app = start(sessions).await;
    let laptop = app.browser();
    let phone = app.browser();
    let other_user = app.browser();
    laptop.sign_in("alice", ALICE_PASSWORD).await;
    phone.sign_in("alice", ALICE_PASSWORD).await;
    other_user.sign_in("bob", BOB_PASSWORD).await;
    let phone_cookie = phone.cookie().unwrap();

    let res = laptop
        .post("/password", &[("password", "a much better password")])
        .await;
    assert_eq!(res.body, "password changed");

    // No revoke call was made: the phone's next request finds the hash changed.
    assert_eq!(phone.whoami().await, "anonymous");
    assert_eq!(phone.get("/account").await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        get_with_cookie(app.addr, "/whoami", Some(&phone_cookie))
            .await
            .body,
        "anonymous"
    );
    // The session that changed it, and other users, stay signed in.
    assert_eq!(laptop.whoami().await, "alice");
    assert_eq!(other_user.whoami().await, "bob");
    // The old password no longer works, the new one does.
    let res = phone
        .post(
            "/login",
            &[("username", "alice"), ("password", ALICE_PASSWORD)],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    phone.sign_in("alice", "a much better password").await;
    assert_eq!(phone.whoami().await, "alice");
}

async fn a_password_reset_in_the_backend_ends_every_session(sessions: SessionLayer) {
    let app = start(sessions).await;
    let browser = app.browser();
    browser.sign_in("alice", ALICE_PASSWORD).await;
    browser.post("/note/private", &[]).await;
    app.backend
        .set_password(app.alice, "reset by an admin")
        .await
        .unwrap();
    assert_eq!(browser.whoami().await, "anonymous");
    // The session ended with everything in it, not just the sign-in.
    assert_eq!(browser.get("/note").await.body, "none");
}

async fn a_deleted_user_is_anonymous(sessions: SessionLayer) {
    let app = start(sessions).await;
    let browser = app.browser();
    browser.sign_in("bob", BOB_PASSWORD).await;
    assert_eq!(browser.whoami().await, "bob");
    app.backend.delete_user(app.bob).await.unwrap();
    assert_eq!(browser.whoami().await, "anonymous");
    assert_eq!(browser.get("/account").await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        browser.get("/api/me").await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn signing_in_as_another_user_keeps_none_of_the_previous_data(sessions: SessionLayer) {
    let app = start(sessions).await;
    let alices_phone = app.browser();
    alices_phone.sign_in("alice", ALICE_PASSWORD).await;
    let browser = app.browser();
    browser.sign_in("alice", ALICE_PASSWORD).await;
    browser.post("/note/alice-secret", &[]).await;
    browser.post("/remember", &[]).await;
    assert_eq!(browser.get("/remembered").await.body, "true");
    let alices = browser.cookie().unwrap();

    browser.sign_in("bob", BOB_PASSWORD).await;
    assert_eq!(browser.whoami().await, "bob");
    assert_eq!(browser.get("/note").await.body, "none");
    assert_eq!(browser.get("/owner").await.body, app.bob.to_string());
    // Not alice's session handed over: a new one, without her "remember me".
    assert_eq!(browser.get("/remembered").await.body, "false");
    assert_ne!(browser.cookie().unwrap(), alices);
    let old = get_with_cookie(app.addr, "/note", Some(&alices)).await;
    assert_eq!(old.body, "none", "alice's session still holds her data");
    // Her session on that browser ended; her phone's did not.
    assert_eq!(alices_phone.get("/devices").await.body, "1");
    // Signing in again as the same user keeps the session's data.
    browser.post("/note/bobs", &[]).await;
    browser.sign_in("bob", BOB_PASSWORD).await;
    assert_eq!(browser.get("/note").await.body, "bobs");
}

async fn sign_out_ends_the_session(sessions: SessionLayer) {
    let app = start(sessions).await;
    let browser = app.browser();
    browser.sign_in("alice", ALICE_PASSWORD).await;
    let cookie = browser.cookie().unwrap();
    assert_eq!(browser.post("/logout", &[]).await.body, "signed out alice");
    assert_eq!(browser.whoami().await, "anonymous");
    assert_eq!(
        get_with_cookie(app.addr, "/whoami", Some(&cookie))
            .await
            .body,
        "anonymous"
    );
    assert_eq!(browser.post("/logout", &[]).await.body, "signed out nobody");
}

async fn your_devices_and_revoking_the_others(sessions: SessionLayer) {
    let app = start(sessions).await;
    let laptop = app.browser();
    let phone = app.browser();
    laptop.sign_in("alice", ALICE_PASSWORD).await;
    phone.sign_in("alice", ALICE_PASSWORD).await;
    let bob = app.browser();
    bob.sign_in("bob", BOB_PASSWORD).await;
    assert_eq!(laptop.get("/devices").await.body, "2");
    assert_eq!(app.browser().get("/devices").await.body, "0");

    assert_eq!(laptop.post("/revoke-others", &[]).await.body, "1");
    assert_eq!(phone.whoami().await, "anonymous");
    assert_eq!(laptop.whoami().await, "alice");
    assert_eq!(laptop.get("/devices").await.body, "1");
    assert_eq!(bob.whoami().await, "bob");
}

async fn a_failing_backend_is_an_error_not_an_anonymous_request(sessions: SessionLayer) {
    let app = start(sessions).await;
    let browser = app.browser();
    browser.sign_in("alice", ALICE_PASSWORD).await;
    app.backend.close().await;
    for path in ["/whoami", "/account", "/api/me", "/me", "/admin"] {
        let res = browser.get(path).await;
        assert_eq!(
            res.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{path}: {res:?}"
        );
        assert_eq!(res.location, None, "{path}");
    }
}
