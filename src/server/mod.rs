//! The HTTPS server: our own accept loop over tokio-rustls, so that each connection's verified
//! client certificate identity is attached to its requests (and resolved to a principal per
//! request, so a revocation applies to open connections too).
//!
//! Slow or greedy clients cannot hold the server: connections are capped (in all and per
//! client address) at accept, before any TLS work; the TLS handshake, request headers, idle
//! connections and stalled request bodies have time limits (see [`limits`]). On shutdown it
//! stops accepting, lets in-flight requests finish (bounded), and returns.

pub mod limits;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::auth::{Authenticator, ConnectionInfo};
pub use limits::Limits;
use limits::{Activity, Check, ConnectionLimiter, Watched};

/// Serves `app` over TLS on `listener` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<tls::ServerTls>,
    app: Router,
    auth: Arc<Authenticator>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) {
    // Each connection holds a receiver; draining waits until all are gone.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let connections =
        ConnectionLimiter::new(limits.max_connections, limits.max_connections_per_addr);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper's header timer also runs while an HTTP/1 connection waits for its next request:
    // a backstop here; the split between idle and header time is the connection watchdog's.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.idle + limits.header_read);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .keep_alive_interval(limits.h2_keepalive)
        .keep_alive_timeout(limits.h2_keepalive);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);

    loop {
        let (tcp, remote_addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let permit = match connections.admit(remote_addr.ip()) {
            Ok(permit) => permit,
            Err(refused) => {
                // Dropped before any TLS work: a refused connection costs an accept and a close.
                tracing::debug!(%remote_addr, limit = refused.as_str(), "connection refused: too many");
                metrics::counter!("simvault_connections_refused_total", "limit" => refused.as_str())
                    .increment(1);
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        // The configuration in force now: a reload applies to the connections that follow.
        let acceptor = TlsAcceptor::from(tls.config());
        let app = app.clone();
        let auth = auth.clone();
        let builder = builder.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let stream = match tokio::time::timeout(limits.handshake, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(%remote_addr, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote_addr, "TLS handshake timed out");
                    return;
                }
            };
            let info = Arc::new(connection_info(&stream, remote_addr, &auth).await);
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
            let activity = Activity::new(h2);
            let service = {
                let activity = activity.clone();
                hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(info.clone());
                    limits::handle(app.clone(), limits, activity.clone(), req)
                })
            };
            let io = TokioIo::new(Watched::new(stream, activity.clone()));
            let conn = builder.serve_connection(io, service);
            tokio::pin!(conn);
            let mut closing = false;
            let mut next = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    ended = conn.as_mut() => {
                        if let Err(e) = ended {
                            tracing::debug!(%remote_addr, error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    _ = stop.wait_for(|stop| *stop), if !closing => {
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                    // Looked at on a coarse tick, not woken by every request: a wake-up per
                    // request head cost a quarter of the small-request throughput.
                    () = tokio::time::sleep_until(next) => match activity.check(&limits) {
                        Check::Until(at) => {
                            next = at.min(tokio::time::Instant::now() + limits.watch_tick());
                        }
                        Check::Idle if !closing => {
                            tracing::debug!(%remote_addr, "idle connection closed");
                            conn.as_mut().graceful_shutdown();
                            closing = true;
                            // hyper's HTTP/2 goodbye waits for the client to answer a
                            // ping; one that never does is not allowed to keep it.
                            next = tokio::time::Instant::now() + limits.close_grace();
                        }
                        Check::Idle => break,
                        Check::SlowHeaders => {
                            tracing::debug!(%remote_addr, "request headers too slow: connection cut");
                            break;
                        }
                    },
                }
            }
        });
    }

    drop(listener);
    drop(stop_rx);
    tracing::info!("shutting down: draining in-flight requests");
    let _ = stop_tx.send(true);
    if tokio::time::timeout(limits.drain, stop_tx.closed())
        .await
        .is_err()
    {
        tracing::warn!("drain timed out; closing remaining connections");
    }
}

/// What the peer's client certificate, if any, asserts. It is resolved to a principal for
/// each request (`api::extract`), so that a revocation reaches connections already open.
async fn connection_info(
    stream: &tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    remote_addr: SocketAddr,
    auth: &Authenticator,
) -> ConnectionInfo {
    let (_, session) = stream.get_ref();
    let leaf = session.peer_certificates().and_then(|chain| chain.first());
    let client_cert = leaf.map(|der| auth.peer_certificate(der));
    if client_cert == Some(crate::auth::PeerCert::Unnamed) {
        tracing::debug!(%remote_addr, "client certificate names no identity");
    }
    ConnectionInfo {
        remote_addr,
        client_cert,
    }
}
