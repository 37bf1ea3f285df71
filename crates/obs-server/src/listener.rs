//! Binding listeners and serving the [`Mux`] on them until shutdown.

use std::io;
use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;

use crate::Mux;

/// A bound, not yet serving, listener.
#[derive(Debug)]
pub struct BoundListener {
    listener: std::net::TcpListener,
    addr: SocketAddr,
}

impl BoundListener {
    /// The address actually bound (the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Binds `addr` now, so that "address in use" is found before anything else starts.
pub fn bind(addr: SocketAddr) -> io::Result<BoundListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    Ok(BoundListener { listener, addr })
}

/// Serves `mux` on every listener (HTTP/1.1, and HTTP/2 with or without prior knowledge, which
/// gRPC uses) until `shutdown` is cancelled, then stops accepting and waits for the requests in
/// flight to finish.
pub async fn serve(listeners: Vec<BoundListener>, mux: Mux, shutdown: CancellationToken) -> io::Result<()> {
    let router = mux.into_router();
    let mut servers = tokio::task::JoinSet::new();
    for bound in listeners {
        let listener = tokio::net::TcpListener::from_std(bound.listener)?;
        let router = router.clone();
        let shutdown = shutdown.clone();
        servers.spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
        });
    }
    let mut first_error = None;
    while let Some(result) = servers.join_next().await {
        let outcome = result.map_err(io::Error::other).and_then(|served| served);
        if let Err(err) = outcome {
            tracing::error!(error = %err, "listener failed");
            shutdown.cancel();
            first_error.get_or_insert(err);
        }
    }
    first_error.map_or(Ok(()), Err)
}
