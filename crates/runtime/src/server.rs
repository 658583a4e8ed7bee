//! Starting the HTTP API.

use std::net::SocketAddr;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::oneshot;
use warden_api::{ApiState, SharedLive, TokenTable, otlp_router, router};
use warden_config::Config;
use warden_model::Timestamp;
use warden_store::Store;

/// A running API server.
pub struct ServerHandle {
    /// The address it listens on (the real port when 0 was asked for).
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// Stops accepting connections and waits for the server task.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = self.task.await;
    }
}

/// The API's state; `clock` holds the loop's current time in milliseconds
/// (simulated in the demo, wall time in `serve`).
pub fn api_state(
    config: Arc<Config>,
    store: Arc<dyn Store>,
    live: SharedLive,
    admin_token: Option<&str>,
    clock: Arc<AtomicI64>,
) -> ApiState {
    let tokens = TokenTable::from_config(&config.api, admin_token);
    ApiState {
        config,
        store,
        live,
        tokens: Arc::new(tokens),
        clock: Arc::new(move || Timestamp(clock.load(Ordering::Relaxed))),
    }
}

/// Binds `listen` and serves the API in a background task.
pub async fn start_api(state: ApiState, listen: SocketAddr) -> std::io::Result<ServerHandle> {
    serve_router(router(state), listen).await
}

/// The OTLP listeners `integrations.otlp` asks for (none when it is
/// disabled), each serving both OTLP/gRPC and OTLP/HTTP, as `(protocol,
/// handle)`.
pub async fn start_otlp(state: ApiState) -> std::io::Result<Vec<(&'static str, ServerHandle)>> {
    let c = state.config.integrations.otlp.clone();
    let mut out = Vec::new();
    if !c.enabled {
        return Ok(out);
    }
    for (proto, listen) in [("OTLP/gRPC", &c.grpc_listen), ("OTLP/HTTP", &c.http_listen)] {
        if listen.is_empty() {
            continue;
        }
        let addr: SocketAddr = listen.parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("integrations.otlp listen address {listen:?} is not host:port"),
            )
        })?;
        out.push((proto, serve_router(otlp_router(state.clone()), addr).await?));
    }
    Ok(out)
}

async fn serve_router(app: axum::Router, listen: SocketAddr) -> std::io::Result<ServerHandle> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {listen}: {e}")))?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = rx.await;
        });
        if let Err(e) = served.await {
            tracing::error!("api server: {e}");
        }
    });
    Ok(ServerHandle {
        addr,
        shutdown: Some(tx),
        task,
    })
}

/// The admin token: WARDEN_ADMIN_TOKEN when set, otherwise 32 random bytes
/// as hex (returned with `generated = true`).
pub fn admin_token() -> (String, bool) {
    match std::env::var("WARDEN_ADMIN_TOKEN") {
        Ok(t) if !t.trim().is_empty() => (t.trim().to_string(), false),
        _ => {
            let mut b = [0u8; 32];
            if getrandom::fill(&mut b).is_err() {
                // No OS randomness: derive from the clock and pid; still
                // unguessable enough for a local demo, and said so.
                let seed = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0)
                    ^ u64::from(std::process::id());
                let mut r = warden_model::Rng::new(seed);
                for x in &mut b {
                    *x = r.next_u64() as u8;
                }
            }
            (b.iter().map(|x| format!("{x:02x}")).collect(), true)
        }
    }
}
