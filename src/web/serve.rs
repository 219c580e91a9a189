//! The accept loop: each connection gets a deadline for its request head (which also closes an
//! idle keep-alive connection), the number of open connections is capped below the process's
//! open-file limit so the database always has descriptors, every request has a time limit, and
//! a stop waits a bounded time for requests in flight.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::Service;

use crate::error::AppError;
use crate::paths;

/// The limits of the accept loop.
#[derive(Clone, Copy, Debug)]
pub struct ServeLimits {
    /// A request head (and, on a kept-alive connection, the next one) must arrive within this.
    pub header_timeout: Duration,
    /// A request that runs longer is answered 503 (the audit downloads are exempt).
    pub request_timeout: Duration,
    /// Connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// How long a stop waits for requests in flight.
    pub shutdown_grace: Duration,
}

/// Descriptors kept free for the database pools, the session store, files and logs.
const RESERVED_FILES: u64 = 256;

impl ServeLimits {
    /// 10 s for a head, 30 s for a request, 30 s to stop, and a connection cap below the
    /// process's open-file limit.
    pub fn production() -> ServeLimits {
        ServeLimits {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: connection_cap(open_file_limit()),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// The soft limit on open files (1,024 when it cannot be read).
fn open_file_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct it is given and reads nothing else.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    if ok && limit.rlim_cur != libc::RLIM_INFINITY {
        limit.rlim_cur
    } else {
        1024
    }
}

/// Connections allowed at once for an open-file limit: what is left after the reserve, at
/// least 16, at most 10,000.
pub fn connection_cap(open_files: u64) -> usize {
    open_files.saturating_sub(RESERVED_FILES).clamp(16, 10_000) as usize
}

/// The slowest upload accepted: a request with a body gets `limit` plus the time to send its
/// declared length (at most its route's limit) at this rate, so a 50 MiB upload over a slow
/// link is not cut off.
pub const MIN_UPLOAD_BYTES_PER_SEC: u64 = 64 << 10;

/// Answers 503 when a request runs longer than `limit` (plus its declared body's time at
/// [`MIN_UPLOAD_BYTES_PER_SEC`]); the audit downloads may take longer.
pub async fn time_limit(limit: Duration, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == paths::AUDIT_EXPORT_CSV || path == paths::AUDIT_EXPORT_JSON {
        return next.run(req).await;
    }
    // Bounded by what the route accepts (a larger body is refused anyway); a body that goes
    // silent is stopped sooner (`limits::BODY_IDLE`).
    let declared = super::limits::declared_length(&req).unwrap_or(0).min(super::limits::request_limit(&req) as u64);
    let limit = limit + Duration::from_secs(declared / MIN_UPLOAD_BYTES_PER_SEC);
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => AppError::Unavailable(format!(
            "The request took longer than {} s and was stopped; try again.",
            limit.as_secs()
        ))
        .into_response(),
    }
}

/// Serves `app` on `listener` until `stop` resolves, then waits up to the grace period for
/// requests in flight.
pub async fn serve_on(listener: TcpListener, app: Router, limits: ServeLimits, stop: impl Future<Output = ()>) {
    let app = app.layer(axum::middleware::from_fn(move |req, next| time_limit(limits.request_timeout, req, next)));
    let mut make = app.into_make_service_with_connect_info::<SocketAddr>();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut full_logged = false;
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: wait a moment.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if !full_logged {
                tracing::warn!(
                    max = limits.max_connections,
                    "connection cap reached; new connections are closed until some end"
                );
                full_logged = true;
            }
            drop(stream);
            continue;
        };
        full_logged = false;
        let _ = stream.set_nodelay(true);
        let Ok(service) = make.call(peer).await;
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _slot = slot;
            let _ = conn.await;
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("every connection closed"),
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!(grace_secs = limits.shutdown_grace.as_secs(), "stopped with requests still in flight")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_the_database() {
        assert_eq!(connection_cap(1024), 768);
        assert_eq!(connection_cap(100), 16);
        assert_eq!(connection_cap(1 << 20), 10_000);
        assert!(open_file_limit() > 0);
    }
}
