//! The key set: parsed from a JWKS document, fetched and cached, refetched under a cooldown.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::DecodingKey;

use crate::clock::Clock;
use crate::error::{FetchError, VerifyError};

/// The most of a JWKS response the verifier reads.
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// The usable keys of one JWKS document, by `kid`.
#[derive(Clone, Default)]
pub(crate) struct Keys(HashMap<String, DecodingKey>);

impl Keys {
    /// The Ed25519 signing keys of a JWKS document. Keys of any other type, curve, algorithm
    /// or use, and keys without a `kid`, are skipped rather than failing the whole set.
    pub(crate) fn parse(json: &[u8]) -> Result<Self, FetchError> {
        #[derive(serde::Deserialize)]
        struct Doc {
            keys: Vec<serde_json::Value>,
        }
        let doc: Doc = serde_json::from_slice(json).map_err(FetchError::Json)?;
        let mut keys = HashMap::new();
        for value in doc.keys {
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
                continue;
            };
            if let Some((kid, key)) = usable(&jwk) {
                keys.insert(kid, key);
            }
        }
        if keys.is_empty() {
            return Err(FetchError::NoUsableKeys);
        }
        Ok(Self(keys))
    }

    pub(crate) fn get(&self, kid: &str) -> Option<&DecodingKey> {
        self.0.get(kid)
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

fn usable(jwk: &Jwk) -> Option<(String, DecodingKey)> {
    let kid = jwk.common.key_id.clone()?;
    if jwk
        .common
        .key_algorithm
        .is_some_and(|alg| alg != KeyAlgorithm::EdDSA)
    {
        return None;
    }
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return None;
    }
    let AlgorithmParameters::OctetKeyPair(okp) = &jwk.algorithm else {
        return None;
    };
    if okp.curve != EllipticCurve::Ed25519 {
        return None;
    }
    let key = DecodingKey::from_ed_components(&okp.x).ok()?;
    // An Ed25519 public key is 32 bytes; anything else is not one (and must never reach the
    // signature check).
    (key.try_get_as_bytes().ok()?.len() == 32).then_some((kid, key))
}

/// How the verifier caches a fetched key set.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CachePolicy {
    /// Used when the response names no `max-age`.
    pub(crate) default_max_age: Duration,
    /// The least time between two fetches, whatever triggers them.
    pub(crate) cooldown: Duration,
    /// The longest a response's `max-age` is trusted.
    pub(crate) longest_max_age: Duration,
    /// How long after it should have been refreshed the last good set is still used while
    /// fetches fail.
    pub(crate) max_stale: Duration,
    /// The timeout of one fetch.
    pub(crate) timeout: Duration,
}

#[derive(Clone)]
struct Snapshot {
    keys: Arc<Keys>,
    /// The set is fresh until then; after, the next request refreshes it.
    fresh_until: SystemTime,
    /// The last fetch attempt, good or not: the cooldown counts from here.
    last_attempt: SystemTime,
}

/// Where the keys come from.
pub(crate) enum Source {
    Static(Arc<Keys>),
    Remote(Remote),
}

pub(crate) struct Remote {
    url: String,
    client: reqwest::Client,
    policy: CachePolicy,
    snapshot: RwLock<Snapshot>,
    /// One fetch at a time: tasks that find the set stale or a `kid` unknown queue here and
    /// look again once the fetch ahead of them is done.
    fetching: tokio::sync::Mutex<()>,
}

impl Remote {
    /// Fetches the set a first time.
    pub(crate) async fn start(
        url: String,
        client: reqwest::Client,
        policy: CachePolicy,
        clock: &dyn Clock,
    ) -> Result<Self, FetchError> {
        let now = clock.now();
        let (keys, max_age) = fetch(&client, &url, &policy).await?;
        tracing::debug!(keys = keys.len(), "fetched the token key set");
        Ok(Self {
            url,
            client,
            policy,
            snapshot: RwLock::new(Snapshot {
                keys: Arc::new(keys),
                fresh_until: now + max_age,
                last_attempt: now,
            }),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    fn snapshot(&self) -> Snapshot {
        self.snapshot
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The key named `kid`, refreshing the set first if it is stale or does not have it
    /// and the cooldown allows a fetch.
    pub(crate) async fn key(
        &self,
        kid: &str,
        clock: &dyn Clock,
    ) -> Result<DecodingKey, VerifyError> {
        let now = clock.now();
        let snap = self.snapshot();
        let known = snap.keys.get(kid);
        if now < snap.fresh_until {
            if let Some(key) = known {
                return Ok(key.clone());
            }
        }
        if !self.may_fetch(&snap, now) {
            return self.stale_key(&snap, kid, now, None);
        }
        let _one_fetch = match self.fetching.try_lock() {
            Ok(guard) => guard,
            // A refresh is under way and the set it replaces still holds the key: use that
            // rather than wait for a slow issuer.
            Err(_) if known.is_some() && now < snap.fresh_until + self.policy.max_stale => {
                return self.stale_key(&snap, kid, now, None);
            }
            Err(_) => self.fetching.lock().await,
        };
        // Another task may have fetched while this one waited.
        let now = clock.now();
        let snap = self.snapshot();
        if let Some(key) = snap.keys.get(kid).filter(|_| now < snap.fresh_until) {
            return Ok(key.clone());
        }
        if !self.may_fetch(&snap, now) {
            return self.stale_key(&snap, kid, now, None);
        }
        match fetch(&self.client, &self.url, &self.policy).await {
            Ok((keys, max_age)) => {
                tracing::debug!(keys = keys.len(), "refetched the token key set");
                let keys = Arc::new(keys);
                *self
                    .snapshot
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Snapshot {
                    keys: keys.clone(),
                    fresh_until: now + max_age,
                    last_attempt: now,
                };
                keys.get(kid).cloned().ok_or(VerifyError::UnknownKey)
            }
            Err(e) => {
                tracing::warn!(error = %e, "refetching the token key set failed; keeping the last one");
                let mut guard = self
                    .snapshot
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                guard.last_attempt = now;
                let snap = guard.clone();
                drop(guard);
                self.stale_key(&snap, kid, now, Some(e))
            }
        }
    }

    fn may_fetch(&self, snap: &Snapshot, now: SystemTime) -> bool {
        now >= snap.last_attempt + self.policy.cooldown
    }

    /// The key from the last good set, while that set is not older than the verifier keeps
    /// one.
    fn stale_key(
        &self,
        snap: &Snapshot,
        kid: &str,
        now: SystemTime,
        error: Option<FetchError>,
    ) -> Result<DecodingKey, VerifyError> {
        if now >= snap.fresh_until + self.policy.max_stale {
            return Err(VerifyError::KeysUnavailable(
                error.unwrap_or(FetchError::RecentlyFailed),
            ));
        }
        snap.keys.get(kid).cloned().ok_or(VerifyError::UnknownKey)
    }
}

async fn fetch(
    client: &reqwest::Client,
    url: &str,
    policy: &CachePolicy,
) -> Result<(Keys, Duration), FetchError> {
    let mut res = client
        .get(url)
        .header(http::header::ACCEPT, "application/json")
        .timeout(policy.timeout)
        .send()
        .await
        .map_err(FetchError::Http)?;
    if res.status() != reqwest::StatusCode::OK {
        return Err(FetchError::Status(res.status()));
    }
    let max_age = res
        .headers()
        .get(http::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(max_age)
        .unwrap_or(policy.default_max_age)
        .clamp(policy.cooldown, policy.longest_max_age.max(policy.cooldown));
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(FetchError::Http)? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok((Keys::parse(&body)?, max_age))
}

/// The `max-age` of a `Cache-Control` value; `no-cache` and `no-store` count as zero.
fn max_age(value: &str) -> Option<Duration> {
    let mut found = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return Some(Duration::ZERO);
        }
        if let Some(secs) = lower.strip_prefix("max-age=") {
            found = secs
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_reads_the_directive_and_treats_no_cache_as_zero() {
        assert_eq!(
            max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(max_age("Max-Age=\"60\""), Some(Duration::from_secs(60)));
        assert_eq!(max_age("no-cache, max-age=300"), Some(Duration::ZERO));
        assert_eq!(max_age("private"), None);
        assert_eq!(max_age("max-age=-1"), None);
    }

    #[test]
    fn only_ed25519_signing_keys_with_a_kid_are_kept() {
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let doc = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "good", "alg": "EdDSA", "use": "sig"},
            {"kty": "OKP", "crv": "Ed25519", "x": x},
            {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "enc", "use": "enc"},
            {"kty": "OKP", "crv": "Ed25519", "x": "AAAA", "kid": "short"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "rsa"},
            {"kty": "what", "kid": "odd"},
        ]});
        let keys = Keys::parse(doc.to_string().as_bytes()).unwrap();
        assert_eq!(keys.len(), 1);
        assert!(keys.get("good").is_some());
        assert!(matches!(
            Keys::parse(br#"{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}"#),
            Err(FetchError::NoUsableKeys)
        ));
        assert!(matches!(Keys::parse(b"<html>"), Err(FetchError::Json(_))));
    }
}
