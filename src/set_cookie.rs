//! `Set-Cookie` values, with the attributes rendered once when the layer is built.
//!
//! The `cookie` crate renders the attributes (`HttpOnly`, `SameSite`, `Secure`, `Path`,
//! `Domain`) of an empty cookie of the layer's name when the layer is built; each response
//! only puts the value (and, for a persistent session, its `Max-Age`) between them.

use http::HeaderValue;
use time::Duration;

use crate::config::CookieConfig;

/// The parts of the session cookie's `Set-Cookie` that never change.
#[derive(Debug)]
pub(crate) struct SetCookie {
    /// `name=`.
    prefix: String,
    /// `; HttpOnly; SameSite=Lax; Secure; Path=/` and so on.
    suffix: String,
    /// The whole header that removes the cookie.
    removal: HeaderValue,
}

impl SetCookie {
    pub(crate) fn new(config: &CookieConfig) -> Self {
        let rendered = base(config, "").to_string();
        let prefix = format!("{}=", config.name);
        let suffix = rendered
            .strip_prefix(&prefix)
            .expect("the cookie crate renders name=value first")
            .to_owned();
        let mut removal = base(config, "");
        removal.make_removal();
        Self {
            prefix,
            suffix,
            removal: HeaderValue::try_from(removal.to_string())
                .expect("names and attributes are checked at build time"),
        }
    }

    /// The header that sets the cookie to `value`, with a `Max-Age` of `max_age` if given
    /// (a persistent session), else a cookie that ends with the browser session.
    pub(crate) fn set(&self, value: &str, max_age: Option<Duration>) -> HeaderValue {
        const MAX_AGE: &str = "; Max-Age=";
        let mut seconds = itoa::Buffer::new();
        let max_age = max_age.map(|d| seconds.format(d.whole_seconds()));
        // Exactly as long as the header: a `Vec` with spare room would cost `HeaderValue`
        // a second allocation.
        let len = self.prefix.len()
            + value.len()
            + self.suffix.len()
            + max_age.map_or(0, |s| MAX_AGE.len() + s.len());
        let mut out = String::with_capacity(len);
        out.push_str(&self.prefix);
        out.push_str(value);
        out.push_str(&self.suffix);
        if let Some(max_age) = max_age {
            out.push_str(MAX_AGE);
            out.push_str(max_age);
        }
        debug_assert_eq!(out.len(), len, "the header's length is counted exactly");
        HeaderValue::try_from(out)
            .expect("names and attributes are checked at build time and values are base64")
    }

    /// The header that removes the cookie.
    pub(crate) fn removal(&self) -> HeaderValue {
        self.removal.clone()
    }
}

fn base(config: &CookieConfig, value: &str) -> cookie::Cookie<'static> {
    let mut builder = cookie::Cookie::build((config.name.clone(), value.to_owned()))
        .path(config.path.clone())
        .secure(config.secure)
        .http_only(config.http_only)
        .same_site(config.same_site);
    if let Some(domain) = &config.domain {
        builder = builder.domain(domain.clone());
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the `cookie` crate itself renders, for comparison.
    fn reference(config: &CookieConfig, value: &str, max_age: Option<Duration>) -> String {
        let mut cookie = base(config, value);
        if let Some(max_age) = max_age {
            cookie.set_max_age(max_age);
        }
        cookie.to_string()
    }

    #[test]
    fn renders_what_the_cookie_crate_renders() {
        let mut config = CookieConfig::default();
        for domain in [None, Some("example.com".to_owned())] {
            config.domain = domain;
            let template = SetCookie::new(&config);
            for max_age in [None, Some(Duration::seconds(1_209_600))] {
                assert_eq!(
                    template.set("abc", max_age).to_str().unwrap(),
                    reference(&config, "abc", max_age)
                );
            }
            let mut removal = base(&config, "");
            removal.make_removal();
            assert_eq!(template.removal().to_str().unwrap(), removal.to_string());
        }
    }
}
