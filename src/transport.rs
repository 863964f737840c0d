//! Transports: anything `AsyncRead + AsyncWrite`, connectors that open them, and the
//! in-memory network that tests and embedders' test kits use instead of TCP.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::sync::mpsc;

use crate::peer::PeerId;
use crate::sockopt::{self, SockOptError, SocketOptions};

/// A byte stream a session can run over: TCP, an in-memory pipe, or anything else.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// The transport itself, to find out what it is (a hand-over passes the socket of a
    /// [`tokio::net::TcpStream`] to another process).
    fn as_any(&self) -> &dyn Any;
}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A duplicate of the socket under a transport, when it is a TCP stream.
pub fn tcp_socket(t: &BoxTransport) -> Option<io::Result<OwnedFd>> {
    // Through the trait object: `Box<dyn Transport>` is itself a `Transport`.
    let inner: &dyn Transport = &**t;
    let tcp = inner.as_any().downcast_ref::<tokio::net::TcpStream>()?;
    Some(tcp.as_fd().try_clone_to_owned())
}

/// A boxed [`Transport`].
pub type BoxTransport = Box<dyn Transport>;

/// Why a connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The connection itself failed (refused, unreachable, ...).
    #[error("{0}")]
    Io(#[from] io::Error),
    /// A socket option could not be set; the connection was not attempted.
    #[error("{0}")]
    SocketOption(#[from] SockOptError),
}

/// The future a [`Connector`] returns.
pub type ConnectFuture = Pin<Box<dyn Future<Output = Result<BoxTransport, ConnectError>> + Send>>;

/// Opens the transport to a peer (the active side of a session).
///
/// The attempt is dropped when the session gives up on it (its ConnectRetry timer), so an
/// implementation need not bound it itself.
pub trait Connector: Send + Sync + 'static {
    /// Connects to `peer` with the given socket options.
    fn connect(&self, peer: &PeerId, options: &SocketOptions) -> ConnectFuture;
}

/// Connects over TCP, with the socket options applied before the SYN goes out.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpConnector;

/// How long a TCP connection attempt waits for an answer before it is reported as failed.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Connector for TcpConnector {
    fn connect(&self, peer: &PeerId, options: &SocketOptions) -> ConnectFuture {
        let mut remote = peer.socket_addr();
        // An IPv6 link-local address needs its interface as the scope.
        if let (SocketAddr::V6(v6), Some(dev)) = (&mut remote, &peer.interface) {
            if v6.ip().is_unicast_link_local() {
                v6.set_scope_id(sockopt::interface_index(dev).unwrap_or(0));
            }
        }
        let mut options = options.clone();
        if options.device.is_none() {
            options.device.clone_from(&peer.interface);
        }
        let md5 = options.password.is_some();
        Box::pin(async move {
            let socket = sockopt::connecting_socket(remote, &options)?;
            let socket = tokio::net::TcpSocket::from_std_stream(socket.into());
            // A SYN that gets no answer at all is what a TCP MD5 mismatch looks like (the
            // kernel drops unsigned or wrongly signed segments silently): say so, instead of
            // waiting in silence until the session's ConnectRetry timer drops the attempt.
            let stream = match tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(remote)).await {
                Ok(r) => r?,
                Err(_) => {
                    let why = if md5 {
                        "TCP MD5 password mismatch, filtering, or the peer is down"
                    } else {
                        "filtering, or the peer is down"
                    };
                    return Err(ConnectError::Io(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no answer within {} s ({why})", CONNECT_TIMEOUT.as_secs()),
                    )));
                }
            };
            Ok(Box::new(stream) as BoxTransport)
        })
    }
}

/// An incoming in-memory connection: the stream and the remote address it comes from.
pub type MemoryIncoming = (DuplexStream, SocketAddr);

/// An in-memory network of `tokio::io::duplex` pipes, addressed like TCP.
///
/// A speaker [`listen`](MemoryNetwork::listen)s on an address; a
/// [`connector`](MemoryNetwork::connector) bound to a local address connects to listeners.
/// Connecting to an address nobody listens on is refused, like TCP.
#[derive(Clone, Debug)]
pub struct MemoryNetwork {
    listeners: Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<MemoryIncoming>>>>,
    pipe_capacity: usize,
}

impl MemoryNetwork {
    /// A network whose pipes buffer `pipe_capacity` bytes in each direction.
    pub fn new(pipe_capacity: usize) -> Self {
        MemoryNetwork {
            listeners: Arc::default(),
            pipe_capacity,
        }
    }

    /// Listens on `addr`; at most `backlog` connections wait to be accepted.
    pub fn listen(&self, addr: SocketAddr, backlog: usize) -> MemoryListener {
        let (tx, rx) = mpsc::channel(backlog.max(1));
        lock(&self.listeners).insert(addr, tx);
        MemoryListener { addr, rx }
    }

    /// A connector whose connections come from `local`.
    pub fn connector(&self, local: IpAddr) -> MemoryConnector {
        MemoryConnector {
            network: self.clone(),
            local,
        }
    }

    /// Connects from `from` to `to`.
    pub fn connect(&self, from: SocketAddr, to: SocketAddr) -> io::Result<DuplexStream> {
        let tx = lock(&self.listeners)
            .get(&to)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::ConnectionRefused))?;
        let (ours, theirs) = tokio::io::duplex(self.pipe_capacity);
        tx.try_send((theirs, from))
            .map_err(|_| io::Error::from(io::ErrorKind::ConnectionRefused))?;
        Ok(ours)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The accepting end of an in-memory address.
#[derive(Debug)]
pub struct MemoryListener {
    addr: SocketAddr,
    rx: mpsc::Receiver<MemoryIncoming>,
}

impl MemoryListener {
    /// The address listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The next connection; `None` once the network is gone.
    pub async fn accept(&mut self) -> Option<MemoryIncoming> {
        self.rx.recv().await
    }
}

/// Connects through a [`MemoryNetwork`] from one local address.
#[derive(Clone, Debug)]
pub struct MemoryConnector {
    network: MemoryNetwork,
    local: IpAddr,
}

impl Connector for MemoryConnector {
    fn connect(&self, peer: &PeerId, _options: &SocketOptions) -> ConnectFuture {
        let r = self
            .network
            .connect(SocketAddr::new(self.local, 0), peer.socket_addr());
        Box::pin(async move { Ok(Box::new(r?) as BoxTransport) })
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn memory_network_connects_and_refuses() {
        let net = MemoryNetwork::new(1024);
        let at: SocketAddr = "192.0.2.2:179".parse().unwrap();
        let mut l = net.listen(at, 4);
        let c = net.connector("192.0.2.1".parse().unwrap());
        let peer = PeerId::new(at.ip());
        let mut a = c.connect(&peer, &SocketOptions::default()).await.unwrap();
        let (mut b, from) = l.accept().await.unwrap();
        assert_eq!(from.ip(), "192.0.2.1".parse::<IpAddr>().unwrap());
        a.write_all(b"hi").await.unwrap();
        let mut buf = [0; 2];
        b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");
        let nobody = PeerId::new("192.0.2.9".parse().unwrap());
        let e = c
            .connect(&nobody, &SocketOptions::default())
            .await
            .err()
            .unwrap();
        assert!(
            matches!(e, ConnectError::Io(ref e) if e.kind() == io::ErrorKind::ConnectionRefused)
        );
    }
}
