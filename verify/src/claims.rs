//! The claims a verified token carries.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// The claims of a verified token: the standard ones typed, the application's in `extra`.
///
/// `extra` is a JSON map by default; give your own type to read the application claims
/// the issuer added (every claim that is not a standard one lands there):
///
/// ```
/// use serde::Deserialize;
/// use session_layer_verify::Claims;
///
/// #[derive(Debug, Deserialize)]
/// struct Roles {
///     roles: Vec<String>,
/// }
///
/// let json = serde_json::json!({
///     "iss": "https://app.example", "aud": "api", "sub": "alice", "sid": "s1",
///     "iat": 1, "nbf": 1, "exp": 301, "jti": "j1", "roles": ["admin"],
/// });
/// let claims: Claims<Roles> = serde_json::from_value(json).unwrap();
/// assert_eq!(claims.sub, "alice");
/// assert_eq!(claims.extra.roles, ["admin"]);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Claims<T = Map<String, Value>> {
    /// Who issued the token (`iss`), checked against the verifier's issuer.
    pub iss: String,
    /// Who the token is for (`aud`, one value or several), checked against the verifier's
    /// audiences.
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    /// The signed-in user of the session that minted the token (`sub`).
    pub sub: String,
    /// An opaque handle of that session (`sid`): the same for every token the session mints,
    /// unrelated to its cookie. Ask the issuer's introspection endpoint whether it still lives.
    pub sid: String,
    /// When the token was issued (`iat`), in seconds since the Unix epoch.
    pub iat: u64,
    /// The token is not valid before this time (`nbf`), in seconds since the Unix epoch.
    pub nbf: u64,
    /// The token is not valid from this time on (`exp`), in seconds since the Unix epoch.
    pub exp: u64,
    /// This token's unique ID (`jti`).
    pub jti: String,
    /// The application claims: every claim that is not one of the above.
    #[serde(flatten)]
    pub extra: T,
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}
