//! Finding the session cookie in a request's `Cookie` headers.
//!
//! This scans bytes instead of handing the header to `cookie::Cookie::split_parse`, for three
//! reasons: a header may carry non-UTF-8 bytes from other cookies, which must not hide the
//! session cookie; the name must match byte for byte, with no percent-decoding or trimming
//! inside it; and the scan must be linear, allocation-free and capped, whatever a client
//! sends. Building and sealing cookies is left to the `cookie` crate.

use http::header::COOKIE;
use http::HeaderMap;

/// Cookie pairs examined per request at most; a header with more is not read past this.
pub(crate) const MAX_PAIRS: usize = 256;

/// What the request said about the session cookie.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Found<T> {
    /// The first value of a cookie with the session's name that parsed, parsed.
    pub(crate) first_valid: Option<T>,
    /// A cookie of that name was present at all.
    pub(crate) present: bool,
}

/// Finds the session cookie. Rule for duplicates: the first cookie of that name, across all
/// `Cookie` headers in order, whose value `parse` accepts wins; values are never merged.
pub(crate) fn find<'a, T>(
    headers: &'a HeaderMap,
    name: &[u8],
    parse: impl Fn(&'a [u8]) -> Option<T>,
) -> Found<T> {
    let mut found = Found {
        first_valid: None,
        present: false,
    };
    let mut pairs = 0;
    for header in headers.get_all(COOKIE) {
        let bytes = header.as_bytes();
        let mut start = 0;
        // `memchr` finds each `;` with SIMD; only a pair that starts with the name is looked
        // at more closely (names are tokens, so they hold no `=`).
        loop {
            let end = memchr::memchr(b';', &bytes[start..]).map_or(bytes.len(), |i| start + i);
            pairs += 1;
            if pairs > MAX_PAIRS {
                return found;
            }
            let pair = trim_ows(&bytes[start..end]);
            if pair.len() > name.len() && pair[name.len()] == b'=' && pair.starts_with(name) {
                found.present = true;
                let mut value = &pair[name.len() + 1..];
                // RFC 6265 allows a value in double quotes.
                if value.len() >= 2 && value[0] == b'"' && value[value.len() - 1] == b'"' {
                    value = &value[1..value.len() - 1];
                }
                if let Some(parsed) = parse(value) {
                    found.first_valid = Some(parsed);
                    return found;
                }
            }
            if end == bytes.len() {
                break;
            }
            start = end + 1;
        }
    }
    found
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(COOKIE, HeaderValue::from_bytes(v).unwrap());
        }
        map
    }

    fn any(v: &[u8]) -> Option<&[u8]> {
        (!v.is_empty()).then_some(v)
    }

    #[test]
    fn names_match_byte_for_byte() {
        for header in [
            &b"__host-id=x"[..],
            b"__Host%2Did=x",
            b"__Host-id =x",
            b"x__Host-id=x",
        ] {
            let h = headers(&[header]);
            assert_eq!(find(&h, b"__Host-id", any).first_valid, None, "{header:?}");
        }
        let h = headers(&[b"a=1; __Host-id=x; b=2"]);
        assert_eq!(find(&h, b"__Host-id", any).first_valid, Some(&b"x"[..]));
    }

    #[test]
    fn the_cookie_in_a_second_header_is_found() {
        let h = headers(&[b"a=1", b"b=2; sid=yes"]);
        assert_eq!(find(&h, b"sid", any).first_valid, Some(&b"yes"[..]));
    }

    #[test]
    fn the_first_valid_duplicate_wins_and_values_are_never_merged() {
        let h = headers(&[b"sid=; sid=first; sid=second"]);
        assert_eq!(find(&h, b"sid", any).first_valid, Some(&b"first"[..]));
    }

    #[test]
    fn non_utf8_bytes_elsewhere_do_not_hide_the_cookie() {
        let h = headers(&[b"junk=\xff\xfe; sid=ok"]);
        assert_eq!(find(&h, b"sid", any).first_valid, Some(&b"ok"[..]));
    }

    #[test]
    fn ten_thousand_cookies_are_cut_off_without_reading_them_all() {
        let mut big = Vec::new();
        for i in 0..10_000 {
            big.extend_from_slice(format!("c{i}=v; ").as_bytes());
        }
        big.extend_from_slice(b"sid=late");
        let h = headers(&[&big]);
        assert_eq!(find(&h, b"sid", any), Found::default());
    }
}
