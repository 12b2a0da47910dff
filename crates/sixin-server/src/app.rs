//! Putting the server together: open the store, lease a node id, serve HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sixin_proto::emoji::Catalog;
use tokio::sync::oneshot;

use crate::clock::Clock;
use crate::config::Config;
use crate::domain::Service;
use crate::http::AppState;
use crate::ids::KeyGen;

const NODE_LEASE_MS: i64 = 60_000;

/// Opens the database named by the config and builds the service around it.
pub async fn build(config: Config) -> anyhow::Result<AppState> {
    let store = crate::store::open(&config)
        .await
        .context("opening the database")?;
    let clock = Arc::new(Clock::new());
    let instance = format!(
        "{}-{}",
        std::process::id(),
        hex::encode(rand::random::<[u8; 8]>())
    );
    let node = store
        .lease_node_id(&instance, clock.now_ms(), NODE_LEASE_MS)
        .await
        .context("leasing a node id")?;
    tracing::info!(node, "leased msg_key node id");
    {
        let store = store.clone();
        let clock = clock.clone();
        let instance = instance.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis((NODE_LEASE_MS / 3) as u64)).await;
                if let Err(e) = store
                    .renew_node_id(node, &instance, clock.now_ms(), NODE_LEASE_MS)
                    .await
                {
                    tracing::warn!(error = %e, "renewing the node id lease failed");
                }
            }
        });
    }
    let mut emoji = Catalog::default_catalog().clone();
    if !config.emoji_file.is_empty() {
        let text = std::fs::read_to_string(&config.emoji_file)
            .with_context(|| format!("reading {}", config.emoji_file))?;
        emoji.extend(Catalog::from_json(&text).context("parsing the emoji file")?);
    }
    let svc = Service::new(
        store,
        clock,
        Arc::new(config),
        Arc::new(KeyGen::new(node)),
        emoji,
    );
    svc.ensure_system_accounts()
        .await
        .context("creating system accounts")?;
    Ok(Arc::new(svc))
}

/// How long a stop waits for what is in flight.
pub const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// A server running in the background (tests, `sixin serve`).
pub struct Running {
    pub addr: SocketAddr,
    pub service: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops accepting, finishes the requests in flight (for up to [`STOP_GRACE`]: a client
    /// that stopped reading its answer cannot hold the server), and returns.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match tokio::time::timeout(STOP_GRACE, &mut self.handle).await {
            Ok(r) => r??,
            Err(_) => {
                tracing::warn!("connections still open after {STOP_GRACE:?}: closing them");
                self.handle.abort();
            }
        }
        Ok(())
    }

    /// Waits until the server ends (on its own shutdown signal).
    pub async fn wait(mut self) -> anyhow::Result<()> {
        (&mut self.handle).await??;
        Ok(())
    }
}

/// Binds `config.listen` and serves in the background.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let listen = config.listen.clone();
    let service = build(config).await?;
    start_with(service, &listen).await
}

pub async fn start_with(service: AppState, listen: &str) -> anyhow::Result<Running> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let svc = service.clone();
    let handle = tokio::spawn(crate::http::serve(listener, service.clone(), async move {
        let _ = rx.await;
        // Event streams never finish by themselves: they end now, like the rest of what is
        // in flight.
        svc.close_streams();
    }));
    Ok(Running {
        addr,
        service,
        shutdown: Some(tx),
        handle,
    })
}
