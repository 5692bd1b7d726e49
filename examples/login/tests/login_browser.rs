//! The login example in a real headless Chromium, driven through chromedriver: what a user's
//! browser does with the session cookie (SECURITY.md item 28). See `browser/mod.rs` for how
//! the browser is run, and when these tests skip.

mod browser;
mod login_support;

use std::path::Path;
use std::time::Duration;

use axum::response::Html;
use axum::routing::get;
use browser::{click_to, find, goto, run, text, wait_page, Harness};
use fantoccini::{Client, Locator};
use login_support::app::config::Config;
use login_support::serve;

/// Fills the sign-in form the browser shows and waits for the account page.
async fn fill_sign_in(c: &Client, user: &str, password: &str, remember: bool) {
    wait_page(c, "login").await;
    find(c, "#username").await.send_keys(user).await.unwrap();
    find(c, "#password")
        .await
        .send_keys(password)
        .await
        .unwrap();
    if remember {
        find(c, "#remember").await.click().await.unwrap();
    }
    click_to(c, find(c, "#sign-in-button").await, "account").await;
}

async fn sign_in(c: &Client, base: &str, user: &str, password: &str, remember: bool) {
    goto(c, &format!("{base}/login"), "login").await;
    fill_sign_in(c, user, password, remember).await;
}

/// The session cookie the browser holds for the current page's site, if any.
async fn session_cookie(c: &Client) -> Option<cookie::Cookie<'static>> {
    c.get_all_cookies()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.name() == "session")
}

/// Whether `base`'s account page shows `user` signed in (rather than sending to sign-in).
async fn signed_in_as(c: &Client, base: &str) -> Option<String> {
    c.goto(&format!("{base}/account")).await.unwrap();
    let body = find(c, "body").await;
    match body.attr("data-page").await.unwrap().as_deref() {
        Some("account") => Some(text(c, "#whoami").await),
        Some("login") => None,
        other => panic!("/account showed page {other:?}"),
    }
}

async fn session_rows(c: &Client) -> usize {
    c.find_all(Locator::Css("#sessions tbody tr"))
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_user_stays_signed_in_and_scripts_cannot_read_the_cookie() {
    run("sign in", |h: Harness| async move {
        let app = serve(Config::default()).await;
        let c = h.open(&h.profile()).await;
        goto(&c, &format!("{}/", app.base), "home").await;
        click_to(&c, find(&c, "#sign-in").await, "login").await;
        fill_sign_in(&c, "alice", "alice-password", false).await;
        assert_eq!(text(&c, ".flash").await, "Signed in as alice.");

        for (path, page) in [
            ("/sessions", "sessions"),
            ("/", "home"),
            ("/password", "password"),
        ] {
            goto(&c, &format!("{}{path}", app.base), page).await;
            assert_eq!(text(&c, "#whoami").await, "alice", "signed out on {path}");
        }
        assert_eq!(signed_in_as(&c, &app.base).await.as_deref(), Some("alice"));

        let cookie = session_cookie(&c)
            .await
            .expect("the browser holds the session cookie");
        assert_eq!(cookie.http_only(), Some(true));
        assert_eq!(cookie.same_site(), Some(cookie::SameSite::Lax));
        assert_eq!(
            cookie.expires(),
            None,
            "without remember me, a browser-session cookie"
        );
        let seen = c.execute("return document.cookie", vec![]).await.unwrap();
        let seen = seen.as_str().expect("a string");
        assert!(
            !seen.contains("session") && !seen.contains(cookie.value()),
            "page scripts can read the session cookie"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_leaves_no_session_cookie_and_the_account_page_refuses() {
    run("sign out", |h: Harness| async move {
        let app = serve(Config::default()).await;
        let c = h.open(&h.profile()).await;
        sign_in(&c, &app.base, "alice", "alice-password", false).await;
        assert!(session_cookie(&c).await.is_some());

        click_to(&c, find(&c, "#sign-out").await, "home").await;
        assert_eq!(text(&c, ".flash").await, "Signed out.");
        assert!(
            session_cookie(&c).await.is_none(),
            "a session cookie outlived sign-out"
        );

        goto(&c, &format!("{}/account", app.base), "login").await;
        assert!(text(&c, "main")
            .await
            .contains("Please sign in to see that page."));
        assert!(session_cookie(&c).await.is_none());
        // Going back to a page seen while signed in shows it signed out.
        goto(&c, &format!("{}/sessions", app.base), "login").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remember_me_decides_whether_the_session_outlives_the_browser() {
    run("remember me", |h: Harness| async move {
        let app = serve(Config::default()).await;
        let profile = h.profile();

        let c = h.open(&profile).await;
        sign_in(&c, &app.base, "alice", "alice-password", false).await;
        h.quit(c).await;

        let c = h.open(&profile).await;
        assert_eq!(
            signed_in_as(&c, &app.base).await,
            None,
            "without remember me, the session outlived the browser"
        );
        fill_sign_in(&c, "alice", "alice-password", true).await;
        let cookie = session_cookie(&c).await.unwrap();
        assert!(cookie.expires().is_some(), "remember me sets no expiry");
        h.quit(c).await;

        let c = h.open(&profile).await;
        assert_eq!(
            signed_in_as(&c, &app.base).await.as_deref(),
            Some("alice"),
            "with remember me, the session ended with the browser"
        );
        h.quit(c).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_other_sessions_signs_the_other_browser_out() {
    run("two browsers", |h: Harness| async move {
        let app = serve(Config::default()).await;
        let laptop = h.open(&h.profile()).await;
        let phone = h.open(&h.profile()).await;
        sign_in(&laptop, &app.base, "alice", "alice-password", true).await;
        sign_in(&phone, &app.base, "alice", "alice-password", false).await;

        goto(&laptop, &format!("{}/sessions", app.base), "sessions").await;
        assert_eq!(session_rows(&laptop).await, 2);
        assert!(text(&laptop, "#sessions tr.current")
            .await
            .contains("this session"));
        save_screenshot(&laptop, "login-sessions.png").await;

        // "End all other sessions".
        click_to(&laptop, find(&laptop, "#end-others").await, "sessions").await;
        assert_eq!(
            text(&laptop, ".flash").await,
            "Signed out 1 other session(s)."
        );
        assert_eq!(session_rows(&laptop).await, 1);
        assert_eq!(
            signed_in_as(&phone, &app.base).await,
            None,
            "the phone is still signed in"
        );
        assert_eq!(
            signed_in_as(&laptop, &app.base).await.as_deref(),
            Some("alice")
        );

        // The "End" button of one session.
        fill_sign_in(&phone, "alice", "alice-password", false).await;
        goto(&laptop, &format!("{}/sessions", app.base), "sessions").await;
        assert_eq!(session_rows(&laptop).await, 2);
        click_to(
            &laptop,
            find(&laptop, "button.end-session").await,
            "sessions",
        )
        .await;
        assert_eq!(text(&laptop, ".flash").await, "Session ended.");
        assert_eq!(
            signed_in_as(&phone, &app.base).await,
            None,
            "the phone is still signed in"
        );
        assert_eq!(
            signed_in_as(&laptop, &app.base).await.as_deref(),
            Some("alice")
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_site_form_post_is_refused_and_carries_no_cookie() {
    run("cross-site post", |h: Harness| async move {
        let app = serve(Config::default()).await;
        // The attacker's page: another site (`localhost` is not `127.0.0.1`), with a form
        // that posts to the app's sign-out.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let evil_port = listener.local_addr().unwrap().port();
        let form = format!(
            r#"<!doctype html><body data-page="attacker"><form method="post" action="{}/logout">
<button id="prize" type="submit">Claim your prize</button></form></body>"#,
            app.base
        );
        let evil = axum::Router::new().route("/", get(move || async move { Html(form) }));
        tokio::spawn(async move { axum::serve(listener, evil).await.unwrap() });

        let c = h.open(&h.profile()).await;
        sign_in(&c, &app.base, "alice", "alice-password", false).await;
        goto(&c, &format!("http://localhost:{evil_port}/"), "attacker").await;
        click_to(&c, find(&c, "#prize").await, "refused").await;

        let post = app
            .seen()
            .into_iter()
            .last()
            .expect("the post reached the app");
        assert_eq!(
            (post.method.as_str(), post.path.as_str()),
            ("POST", "/logout")
        );
        assert_eq!(post.fetch_site.as_deref(), Some("cross-site"));
        assert!(
            !post.had_cookie,
            "the browser sent the session cookie cross-site"
        );
        assert_eq!(post.status, 403);
        assert_eq!(signed_in_as(&c, &app.base).await.as_deref(), Some("alice"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_ends_but_activity_keeps_it_alive() {
    run("idle timeout", |h: Harness| async move {
        let idle = Duration::from_secs(3);
        let app = serve(Config {
            idle_timeout: Some(idle),
            ..Config::default()
        })
        .await;
        let c = h.open(&h.profile()).await;
        sign_in(&c, &app.base, "alice", "alice-password", false).await;
        // Two requests 2 s apart carry the session past 3 s: activity moves the deadline.
        for _ in 0..2 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            assert_eq!(
                signed_in_as(&c, &app.base).await.as_deref(),
                Some("alice"),
                "an active session ended"
            );
        }
        // Time passing is the point here, so a sleep it is.
        tokio::time::sleep(idle + Duration::from_millis(700)).await;
        assert_eq!(
            signed_in_as(&c, &app.base).await,
            None,
            "an idle session lived on"
        );
        assert!(
            session_cookie(&c).await.is_none(),
            "the dead session's cookie stayed"
        );
    })
    .await;
}

/// Saves a screenshot under `target/tmp` (never in git) and says where.
async fn save_screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, png).unwrap();
    eprintln!("screenshot: {}", path.display());
}
