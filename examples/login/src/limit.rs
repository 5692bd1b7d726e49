//! Rate limiting of sign-in and sign-out per client address, with `tower_governor`.
//!
//! The key is the peer address of the TCP connection, so the app must be served with
//! `into_make_service_with_connect_info::<SocketAddr>()` (as [`serve`](crate::serve) does).
//! Behind a reverse proxy every request comes from the proxy: use `tower_governor`'s
//! `SmartIpKeyExtractor` there, which reads `X-Forwarded-For` and friends (only ever trust
//! them behind a proxy that sets them).

use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::response::IntoResponse;
use governor::middleware::NoOpMiddleware;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::PeerIpKeyExtractor;
use tower_governor::{GovernorError, GovernorLayer};

use crate::pages::{self, Page};

/// The layer [`sign_in_limit`] builds.
pub(crate) type SignInLimit = GovernorLayer<PeerIpKeyExtractor, NoOpMiddleware, Body>;

/// How often addresses that have been quiet for a while are forgotten, so the limiter's
/// memory does not grow with every address ever seen.
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// A limit of `per_minute` attempts per address (a burst of that many, then one every
/// `60 / per_minute` seconds), or `None` for no limit.
pub(crate) fn sign_in_limit(per_minute: u32) -> Option<SignInLimit> {
    if per_minute == 0 {
        return None;
    }
    let period = Duration::from_secs(60) / per_minute;
    let config: Arc<GovernorConfig<PeerIpKeyExtractor, NoOpMiddleware>> = Arc::new(
        GovernorConfigBuilder::default()
            .period(period)
            .burst_size(per_minute)
            .finish()
            .expect("a non-zero period and burst"),
    );
    forget_quiet_addresses(Arc::downgrade(&config));
    Some(GovernorLayer::new(config).error_handler(refused))
}

/// Forgets quiet addresses every [`FORGET_EVERY`], until the limiter is dropped.
fn forget_quiet_addresses(config: Weak<GovernorConfig<PeerIpKeyExtractor, NoOpMiddleware>>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let mut every = tokio::time::interval(FORGET_EVERY);
        loop {
            every.tick().await;
            let Some(config) = config.upgrade() else {
                return;
            };
            config.limiter().retain_recent();
        }
    });
}

/// The answer past the limit: `429` with `Retry-After`.
fn refused(error: GovernorError) -> Response<Body> {
    let (status, wait) = match error {
        GovernorError::TooManyRequests { wait_time, .. } => {
            (StatusCode::TOO_MANY_REQUESTS, wait_time.max(1))
        }
        other => {
            // Only a missing peer address gets here: the app was served without connect
            // info, which is a bug to fix, not the client's fault.
            tracing::error!(error = %other, "the sign-in limit could not tell the client");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    tracing::info!(wait, "sign-in or sign-out attempts over the limit");
    let page = Page {
        id: "slow-down",
        title: "Too many attempts",
        user: None,
        flash: None,
        body: pages::slow_down(wait),
    };
    let mut res = (status, page.render()).into_response();
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(wait));
    res
}
