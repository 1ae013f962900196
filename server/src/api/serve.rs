//! The HTTP accept loop: hyper's HTTP/1 connection driver under our own limits, instead of
//! `axum::serve` (which has neither): at most `server.max_http_connections` connections at
//! once (more are closed at accept), and a request's headers must arrive within
//! `server.http_header_timeout_secs` (a half-open connection is closed, not kept), and its
//! body within `server.http_body_timeout_secs` (`api::deadline`). Upgrades
//! (`/ws`) leave this loop's accounting once upgraded; WebSocket sessions have their own slots.
//!
//! Shared fairly: one address holds at most `server.max_http_per_address` of the slots, and
//! past the cap `server.http_reserve_connections` more are accepted (2 per address) for one
//! short request each, never a stream ([`Reserved`]): health probes and admin calls get in
//! while SSE streams or idle sockets fill the cap.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::auth::limits::AddrSlots;
use crate::config::ServerConfig;
use crate::metrics as m;
use crate::tasks::Tracker;

/// Serves `router` on `listener` until `shutdown` flips; open connections then finish their
/// request in flight and close (graceful), tracked by `tasks`.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    cfg: &ServerConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut shutdown: watch::Receiver<bool>,
    tasks: Tracker,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(cfg.max_http_connections));
    let reserve = Arc::new(Semaphore::new(cfg.http_reserve_connections));
    let (shares, reserve_shares) = (Arc::new(AddrSlots::default()), Arc::new(AddrSlots::default()));
    let header_timeout = Duration::from_secs(cfg.http_header_timeout_secs);
    let body_timeout = Duration::from_secs(cfg.http_body_timeout_secs);
    let router = router
        .layer(axum::middleware::from_fn(move |req, next| super::deadline::body(body_timeout, req, next)));
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors, usually: do not spin; slots free up.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        // A slot of the cap within the address's share, else a reserve slot, else closed at
        // once (dropped: its descriptor freed).
        let ip = peer.ip();
        let take = |shares: &Arc<AddrSlots>, per_address, pool: &Arc<Semaphore>| {
            let share = shares.take(ip, per_address)?;
            Some((pool.clone().try_acquire_owned().ok()?, share))
        };
        let taken = take(&shares, cfg.max_http_per_address, &slots)
            .map(|slot| (slot, false))
            .or_else(|| take(&reserve_shares, RESERVE_PER_ADDRESS, &reserve).map(|slot| (slot, true)));
        let Some((slot, reserved)) = taken else {
            metrics::counter!(m::HTTP_CONNECTIONS_REFUSED_TOTAL).increment(1);
            continue;
        };
        // Subscribers get small frames that must leave now: no Nagle delay.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        // Handlers learn the peer address (per-address limits, backoff, audit) from this.
        let mut app = router.clone().layer(axum::Extension(super::credential::Peer(peer)));
        if reserved {
            app = app.layer(axum::Extension(Reserved));
        }
        let service = TowerToHyperService::new(app);
        let timeout = if reserved { header_timeout.min(RESERVE_TIMEOUT) } else { header_timeout };
        let stop = shutdown.clone();
        let acceptor = acceptor.clone();
        tasks.spawn(async move {
            let _slot = slot;
            match acceptor {
                None => drive(tcp, service, timeout, !reserved, stop).await,
                Some(acceptor) => {
                    // The TLS handshake is held to the same clock as the headers.
                    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => drive(tls, service, timeout, !reserved, stop).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// Marks a request that came on a reserve connection: streams (SSE, WebSocket) refuse it.
#[derive(Debug, Clone, Copy)]
pub struct Reserved;

/// Reserve slots one address may hold.
const RESERVE_PER_ADDRESS: usize = 2;
/// A reserve connection's time for its headers (and TLS handshake).
const RESERVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves one connection (plain or TLS) until it ends or shutdown asks it to finish; without
/// `keep_alive`, after its first request.
async fn drive<S>(
    io: S,
    service: TowerToHyperService<axum::Router>,
    header_timeout: Duration,
    keep_alive: bool,
    mut stop: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(keep_alive)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        done = conn.as_mut() => {
            if let Err(e) = done {
                tracing::debug!(error = %e, "HTTP connection ended");
            }
        }
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
