//! The HTML, as plain formatted strings. Everything interpolated from a user, the session or
//! the store goes through [`esc`].

use std::fmt::Write as _;

use axum::response::Html;
use session_layer::flash::Flash;
use session_layer::id::SessionHandle;
use session_layer::record::Metadata;
use time::OffsetDateTime;

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// The stylesheet, served at `/style.css` (the CSP allows no inline style).
pub(crate) const STYLE: &str = "\
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,sans-serif;color:#1f2328;background:#f6f8fa}
header{background:#24292f;color:#fff;padding:.6rem 1.5rem;display:flex;gap:1rem;align-items:center}
header a{color:#fff;text-decoration:none}
header .brand{font-weight:600;margin-right:auto}
header form{margin:0}
header .muted{color:#d0d7de}
main{max-width:60rem;margin:2rem auto;padding:1.5rem 2rem;background:#fff;border:1px solid #d0d7de;border-radius:8px}
h1{margin-top:0;font-size:1.6rem}
.flash{padding:.6rem 1rem;border-radius:6px;margin-bottom:1rem;border:1px solid}
.flash.info{background:#ddf4ff;border-color:#54aeff}
.flash.success{background:#dafbe1;border-color:#4ac26b}
.flash.warning{background:#fff8c5;border-color:#d4a72c}
.flash.error{background:#ffebe9;border-color:#ff8182}
label{display:block;margin:.6rem 0 .2rem}
label.check{display:flex;gap:.4rem;align-items:center}
input[type=text],input[type=password]{width:100%;max-width:22rem;padding:.4rem;border:1px solid #d0d7de;border-radius:6px}
button{white-space:nowrap;padding:.4rem .9rem;border-radius:6px;border:1px solid #1f883d;background:#1f883d;color:#fff;cursor:pointer}
button.secondary{background:#f6f8fa;color:#1f2328;border-color:#d0d7de}
button.danger{background:#fff;color:#cf222e;border-color:#cf222e}
header button{background:transparent;border-color:#8c959f}
table{border-collapse:collapse;width:100%;margin:1rem 0}
th,td{text-align:left;padding:.5rem;border-bottom:1px solid #d0d7de;vertical-align:middle}
td form{margin:0}
td{white-space:nowrap}
td .muted{display:block}
tr.current{background:#ddf4ff}
.tag{white-space:nowrap;margin-left:.4rem;font-size:.8rem;padding:.1rem .5rem;border-radius:1rem;background:#0969da;color:#fff}
.muted{color:#656d76;font-size:.9rem}
";

/// One page: its id (the `data-page` attribute tests wait for), title, and body HTML.
pub(crate) struct Page {
    pub(crate) id: &'static str,
    pub(crate) title: &'static str,
    pub(crate) user: Option<String>,
    pub(crate) flash: Option<Flash>,
    pub(crate) body: String,
}

impl Page {
    pub(crate) fn render(self) -> Html<String> {
        let nav = match &self.user {
            Some(user) => format!(
                r#"<a href="/account">Account</a><a href="/sessions">Your sessions</a><a href="/password">Password</a>
<span class="muted" id="whoami">{user}</span>
<form method="post" action="/logout"><button type="submit" id="sign-out">Sign out</button></form>"#,
                user = esc(user)
            ),
            None => r#"<a href="/login" id="sign-in">Sign in</a>"#.to_owned(),
        };
        let flash = self.flash.map_or_else(String::new, |f| {
            format!(
                r#"<div class="flash {kind}" role="status">{message}</div>"#,
                kind = f.kind.as_str(),
                message = esc(&f.message)
            )
        });
        Html(format!(
            r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · session-layer login example</title>
<link rel="stylesheet" href="/style.css">
</head>
<body data-page="{id}">
<header><a class="brand" href="/">session-layer demo</a>{nav}</header>
<main>
{flash}<h1>{title}</h1>
{body}
</main>
</body>
</html>
"#,
            title = esc(self.title),
            id = self.id,
            body = self.body,
        ))
    }
}

pub(crate) fn home(user: Option<&str>) -> String {
    match user {
        Some(user) => format!(
            r#"<p>You are signed in as <strong>{}</strong>.</p>
<p>See <a href="/account">your account</a>, <a href="/sessions">where you are signed in</a>, or <a href="/password">change your password</a>.</p>"#,
            esc(user)
        ),
        None => r#"<p>This app shows session-layer in a sign-in flow: ID rotation at sign-in, "remember me", per-user session listing and revocation, idle timeouts, flash messages, and CSRF protection.</p>
<p><a href="/login">Sign in</a> as <code>alice</code> / <code>alice-password</code> or <code>bob</code> / <code>bob-password</code>.</p>"#
            .to_owned(),
    }
}

/// The sign-in form. `error` is shown above it; `username` and `next` are kept.
pub(crate) fn login_form(
    error: Option<&str>,
    notice: Option<&str>,
    username: &str,
    next: &str,
) -> String {
    let mut out = String::new();
    if let Some(notice) = notice {
        let _ = write!(
            out,
            r#"<div class="flash info" role="status">{}</div>"#,
            esc(notice)
        );
    }
    if let Some(error) = error {
        let _ = write!(
            out,
            r#"<div class="flash error" role="alert" id="login-error">{}</div>"#,
            esc(error)
        );
    }
    let _ = write!(
        out,
        r#"<form method="post" action="/login" id="login-form">
<input type="hidden" name="next" value="{next}">
<label for="username">Username</label>
<input type="text" id="username" name="username" value="{username}" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<label class="check"><input type="checkbox" id="remember" name="remember" value="on"> Remember me on this device</label>
<p><button type="submit" id="sign-in-button">Sign in</button></p>
</form>
<p class="muted">Without "remember me" the session ends when the browser closes.</p>"#,
        next = esc(next),
        username = esc(username),
    );
    out
}

pub(crate) fn account(user: &str, meta: &Metadata, now: OffsetDateTime) -> String {
    format!(
        r#"<p id="account-user">Signed in as <strong>{user}</strong>.</p>
<table>
<tr><th>Signed in</th><td>{created}</td></tr>
<tr><th>Remember me</th><td>{remember}</td></tr>
<tr><th>Ends without activity</th><td>{idle}</td></tr>
<tr><th>Ends at the latest</th><td>{absolute}</td></tr>
</table>
<p><a href="/sessions">Your sessions</a> · <a href="/password">Change password</a></p>"#,
        user = esc(user),
        created = when(meta.created, now),
        remember = if meta.persistent {
            "on: the session outlives the browser"
        } else {
            "off: the session ends with the browser"
        },
        idle = when(meta.idle_deadline, now),
        absolute = when(meta.absolute_deadline, now),
    )
}

/// One row of the sessions table.
pub(crate) struct SessionRow {
    pub(crate) handle: SessionHandle,
    pub(crate) meta: Metadata,
    pub(crate) current: bool,
}

pub(crate) fn sessions(rows: &[SessionRow], now: OffsetDateTime) -> String {
    let mut out = String::from(
        r#"<p>Every browser where you are signed in. End the ones you do not recognise.</p>
<table id="sessions">
<thead><tr><th>Signed in</th><th>Last seen</th><th>Kind</th><th></th></tr></thead>
<tbody>
"#,
    );
    for row in rows {
        let handle = esc(&row.handle.to_string());
        let kind = if row.meta.persistent {
            "remembered"
        } else {
            "browser session"
        };
        let (class, mark, action) = if row.current {
            (
                r#" class="current""#,
                r#" <span class="tag">this session</span>"#,
                r#"<form method="post" action="/logout"><button type="submit" class="secondary">Sign out</button></form>"#.to_owned(),
            )
        } else {
            (
                "",
                "",
                format!(
                    r#"<form method="post" action="/sessions/end"><input type="hidden" name="handle" value="{handle}"><button type="submit" class="danger end-session">End</button></form>"#
                ),
            )
        };
        let _ = writeln!(
            out,
            r#"<tr{class} data-handle="{handle}"><td>{created}{mark}</td><td>{seen}</td><td>{kind}</td><td>{action}</td></tr>"#,
            created = when(row.meta.created, now),
            seen = when(row.meta.last_seen, now),
        );
    }
    out.push_str(
        r#"</tbody>
</table>
<form method="post" action="/sessions/end-others"><button type="submit" class="danger" id="end-others">End all other sessions</button></form>
<p class="muted">"Last seen" moves when activity extends the session, at most once a touch step.</p>"#,
    );
    out
}

pub(crate) fn password_form(error: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(error) = error {
        let _ = write!(
            out,
            r#"<div class="flash error" role="alert" id="password-error">{}</div>"#,
            esc(error)
        );
    }
    out.push_str(
        r#"<form method="post" action="/password" id="password-form">
<label for="current">Current password</label>
<input type="password" id="current" name="current" autocomplete="current-password" required>
<label for="new">New password (at least 8 characters)</label>
<input type="password" id="new" name="new" autocomplete="new-password" required minlength="8">
<label for="confirm">New password, again</label>
<input type="password" id="confirm" name="confirm" autocomplete="new-password" required minlength="8">
<p><button type="submit" id="change-password">Change password</button></p>
</form>
<p class="muted">Changing your password signs out every other session.</p>"#,
    );
    out
}

pub(crate) fn slow_down(wait_secs: u64) -> String {
    format!(
        r#"<p id="slow-down">Too many sign-in attempts from your address. Try again in {wait_secs} s.</p>
<p><a href="/">Back to the home page</a></p>"#
    )
}

pub(crate) fn busy() -> String {
    r#"<p id="busy">Too many sign-ins are being checked right now. Nothing changed; try again in a moment.</p>
<p><a href="/login">Back to sign-in</a></p>"#
        .to_owned()
}

pub(crate) fn refused() -> String {
    r#"<p id="refused">This form was sent from another site, so it was refused. Nothing changed.</p>
<p><a href="/">Back to the home page</a></p>"#
        .to_owned()
}

pub(crate) fn not_found() -> String {
    r#"<p>There is no such page. <a href="/">Home</a></p>"#.to_owned()
}

/// A time as UTC, with how far it is from `now`.
pub(crate) fn when(at: OffsetDateTime, now: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let delta = (at - now).whole_seconds();
    let span = |secs: i64| match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    };
    let relative = match delta {
        0 => "now".to_owned(),
        d if d < 0 => format!("{} ago", span(-d)),
        d => format!("in {}", span(d)),
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC <span class=\"muted\">({relative})</span>",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
    )
}
