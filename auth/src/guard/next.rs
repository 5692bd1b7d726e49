//! The `next` parameter: where to go after signing in, only ever a path on this site.

use http::Uri;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// What a `next` value keeps unencoded in the login URL: the characters of a plain path.
const NEXT_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// How many rounds of percent-decoding a `next` value is checked through: enough for any
/// chain of proxies and frameworks that decode once each.
const DECODE_ROUNDS: usize = 4;

/// `next`, if it is a path on this site, to redirect to after sign-in; `None` otherwise.
///
/// A same-site path starts with one `/` followed by anything but `/` or `\` (browsers read
/// `//host` and `/\host` as another site), holds only visible ASCII and no `\`, and stays
/// that way however many times it is percent-decoded, so `/%2F/evil` and `/%5Cevil` are
/// refused too. Guards only ever put such a path in the login URL, but the value a login
/// form posts back comes from the client: check it with this before redirecting to it.
///
/// ```
/// use session_layer_auth::safe_next;
///
/// assert_eq!(safe_next("/account?tab=devices"), Some("/account?tab=devices"));
/// for evil in ["//evil.example", "https://evil.example", "/\\evil.example", "/%2F/evil.example", "%2F%2Fevil.example"] {
///     assert_eq!(safe_next(evil), None, "{evil}");
/// }
/// let next = safe_next("https://evil.example").unwrap_or("/");
/// assert_eq!(next, "/");
/// ```
#[must_use]
pub fn safe_next(next: &str) -> Option<&str> {
    if !visible_ascii(next) || !local(next) {
        return None;
    }
    let mut text = next.to_owned();
    for _ in 0..DECODE_ROUNDS {
        if !text.contains('%') {
            return Some(next);
        }
        let decoded = percent_decode_str(&text).decode_utf8().ok()?.into_owned();
        if decoded.chars().any(char::is_control) || !local(&decoded) {
            return None;
        }
        if decoded == text {
            return Some(next);
        }
        text = decoded;
    }
    // Still encoded after every round: nothing a real link needs.
    None
}

fn visible_ascii(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_graphic())
}

fn local(path: &str) -> bool {
    let mut bytes = path.bytes();
    bytes.next() == Some(b'/')
        && !matches!(bytes.next(), Some(b'/' | b'\\'))
        && !path.contains('\\')
}

/// `login_url` with `field` naming `original` (its path and query), or without it when
/// that is not a [`safe_next`] path or when `login_url` names a page in `field` already (as
/// `/login?next=/sessions` does for a form that posts elsewhere).
pub(crate) fn login_location(login_url: &str, field: &str, original: &Uri) -> String {
    let query = login_url.split_once('?').map_or("", |(_, q)| q);
    let named = query
        .split('&')
        .any(|pair| pair.split_once('=').map_or(pair, |(k, _)| k) == field);
    if named {
        return login_url.to_owned();
    }
    let target = original
        .path_and_query()
        .map_or_else(|| original.path(), |pq| pq.as_str());
    let Some(target) = safe_next(target) else {
        return login_url.to_owned();
    };
    let separator = if login_url.contains('?') { '&' } else { '?' };
    format!(
        "{login_url}{separator}{}={}",
        utf8_percent_encode(field, NON_ALPHANUMERIC),
        utf8_percent_encode(target, NEXT_VALUE)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_site_paths_pass() {
        for ok in [
            "/",
            "/account",
            "/a/b?x=1&y=%20z",
            "/search?q=%25",
            "/caf%C3%A9",
        ] {
            assert_eq!(safe_next(ok), Some(ok), "{ok}");
        }
    }

    #[test]
    fn other_origins_and_their_encodings_are_refused() {
        for evil in [
            "",
            "evil",
            "//evil",
            "///evil",
            "https://evil",
            "http:/evil",
            "/\\evil",
            "\\\\evil",
            "/%2Fevil",
            "/%2f%2fevil",
            "%2F%2Fevil",
            "/%5Cevil",
            "/%5cevil",
            "/%252F%252Fevil",
            "/%25252F/evil",
            "/%09/evil",
            "/\t/evil",
            "/ /evil",
            "/%0d%0aSet-Cookie:x",
            "/%FF",
            "/ok\\evil",
        ] {
            assert_eq!(safe_next(evil), None, "{evil:?}");
        }
    }

    #[test]
    fn the_login_location_names_only_safe_paths() {
        let uri: Uri = "/admin?tab=a%20b".parse().unwrap();
        assert_eq!(
            login_location("/login", "next", &uri),
            "/login?next=/admin%3Ftab%3Da%2520b"
        );
        assert_eq!(
            login_location("/login?lang=en", "next", &uri),
            "/login?lang=en&next=/admin%3Ftab%3Da%2520b"
        );
        let evil: Uri = "//evil.example/x".parse().unwrap();
        assert_eq!(login_location("/login", "next", &evil), "/login");
        // A login URL that names the page itself keeps it.
        assert_eq!(
            login_location("/login?next=/sessions", "next", &uri),
            "/login?next=/sessions"
        );
        assert_eq!(
            login_location("/login?nextpage=1", "next", &uri),
            "/login?nextpage=1&next=/admin%3Ftab%3Da%2520b"
        );
    }
}
