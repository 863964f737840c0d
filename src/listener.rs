//! Passive connections: listeners that accept, look the remote address up among the
//! configured peers, refuse the others at once, and hand the stream to the peer's task.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::Secret;
use crate::peer::{PeerCommand, PeerId};
use crate::sockopt::{self, SockOptError, SocketOptions};
use crate::transport::{BoxTransport, MemoryListener};

/// The backlog of listening sockets.
pub const BACKLOG: i32 = 128;

struct Entry {
    id: PeerId,
    commands: mpsc::Sender<PeerCommand>,
    socket: SocketOptions,
}

/// Routes accepted connections to peer tasks by the remote address (cloneable).
#[derive(Clone, Default)]
pub struct Dispatcher {
    peers: Arc<Mutex<HashMap<IpAddr, Entry>>>,
}

impl Dispatcher {
    /// No peers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes connections from `id.addr` to `commands`; `socket` gives the TTL and GTSM
    /// settings applied to accepted TCP connections.
    pub fn register(
        &self,
        id: &PeerId,
        commands: mpsc::Sender<PeerCommand>,
        socket: SocketOptions,
    ) {
        let e = Entry {
            id: id.clone(),
            commands,
            socket,
        };
        self.lock().insert(id.addr, e);
    }

    /// Stops routing connections from `addr`.
    pub fn unregister(&self, addr: IpAddr) {
        self.lock().remove(&addr);
    }

    /// The MD5 keys of the registered peers that have a password.
    pub fn md5_keys(&self) -> Vec<(IpAddr, Secret)> {
        self.lock()
            .iter()
            .filter_map(|(a, e)| e.socket.password.clone().map(|p| (*a, p)))
            .collect()
    }

    /// The socket options of the peer at `addr`, if configured.
    pub fn socket_options(&self, addr: IpAddr) -> Option<SocketOptions> {
        self.lock().get(&addr).map(|e| e.socket.clone())
    }

    /// Hands `stream` to the peer at `remote`'s address. Returns false (and drops, so
    /// closes, the stream) when no peer has that address or its task cannot take it now.
    pub fn dispatch(&self, stream: BoxTransport, remote: SocketAddr) -> bool {
        let ip = canonical(remote.ip());
        let target = self
            .lock()
            .get(&ip)
            .map(|e| (e.id.clone(), e.commands.clone()));
        let Some((id, tx)) = target else {
            tracing::debug!(%remote, "connection from an unconfigured address refused");
            return false;
        };
        match tx.try_send(PeerCommand::Accepted { stream, remote }) {
            Ok(()) => true,
            Err(_) => {
                tracing::debug!(peer = %id, %remote, "peer task busy or gone; connection refused");
                false
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Entry>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let peers: Vec<PeerId> = self.lock().values().map(|e| e.id.clone()).collect();
        f.debug_struct("Dispatcher").field("peers", &peers).finish()
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Binds a TCP listener on `addr` with one MD5 key per `(peer, password)` (RFC 2385).
pub fn bind_tcp(addr: SocketAddr, keys: &[(IpAddr, Secret)]) -> Result<TcpListener, SockOptError> {
    let socket = sockopt::listening_socket(addr, keys, BACKLOG)?;
    Ok(TcpListener::from_std(socket.into())?)
}

/// Adds (`Some`) or removes (`None`) the MD5 key for `peer` on a listening socket, for a
/// peer configured after the listener was bound (RFC 2385).
pub fn set_listener_md5(
    listener: &TcpListener,
    peer: IpAddr,
    password: Option<&Secret>,
) -> Result<(), SockOptError> {
    let sock = socket2::SockRef::from(listener);
    sockopt::set_md5(&sock, peer, password.map(|p| p.expose().as_bytes()))
}

/// Accepts TCP connections for ever, applies the peer's TTL or GTSM settings, and dispatches
/// them; connections from unconfigured addresses are closed at once.
pub fn spawn_tcp_listener(listener: TcpListener, dispatcher: Dispatcher) -> JoinHandle<()> {
    spawn_shared_tcp_listener(Arc::new(listener), dispatcher)
}

/// [`spawn_tcp_listener`] for a listener shared with whoever keeps its MD5 keys up to date
/// ([`set_listener_md5`]) as peers come and go.
pub fn spawn_shared_tcp_listener(
    listener: Arc<TcpListener>,
    dispatcher: Dispatcher,
) -> JoinHandle<()> {
    let local = listener.local_addr().ok();
    let span = tracing::debug_span!("listener", addr = ?local);
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            loop {
                let (stream, remote) = match listener.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of descriptors and the like: back off briefly, keep accepting.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Some(opts) = dispatcher.socket_options(canonical(remote.ip())) else {
                    tracing::debug!(%remote, "connection from an unconfigured address refused");
                    continue;
                };
                let sock = socket2::SockRef::from(&stream);
                if let Err(e) = sockopt::set_ttl_options(&sock, remote.is_ipv6(), &opts) {
                    tracing::warn!(%remote, error = %e, "socket options refused; connection closed");
                    continue;
                }
                let _ = stream.set_nodelay(true);
                dispatcher.dispatch(Box::new(stream), remote);
            }
        },
        span,
    ))
}

/// Accepts in-memory connections and dispatches them, until the network is dropped.
pub fn spawn_memory_listener(
    mut listener: MemoryListener,
    dispatcher: Dispatcher,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some((stream, remote)) = listener.accept().await {
            dispatcher.dispatch(Box::new(stream), remote);
        }
    })
}
