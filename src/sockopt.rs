//! Socket options for BGP transport: TCP MD5 (RFC 2385), TTL for eBGP multihop, GTSM
//! (RFC 5082), source address and bind-to-device.
//!
//! Sockets are built with `socket2`, configured here, then handed to tokio. This is the one
//! module of the workspace allowed `unsafe`: `setsockopt(TCP_MD5SIG)` and the minimum-TTL
//! options have no safe wrapper. Every `unsafe` block says why it is sound.
//!
//! A password that the kernel refuses is an error ([`SockOptError::Md5`]); a session is
//! never set up without the authentication it was configured with.

#![allow(unsafe_code)]

use std::io;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::config::Secret;

/// The largest TCP MD5 key Linux accepts (`TCP_MD5SIG_MAXKEYLEN`).
pub const MD5_MAX_KEY_LEN: usize = 80;

/// Per-peer transport settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SocketOptions {
    /// TCP MD5 signature password (RFC 2385).
    pub password: Option<Secret>,
    /// Outgoing IP TTL / hop limit for eBGP multihop.
    pub ttl: Option<u8>,
    /// GTSM (RFC 5082): the peer is at most this many hops away. Outgoing TTL 255, and
    /// packets arriving with a TTL below `256 - hops` are dropped by the kernel.
    pub ttl_security: Option<u8>,
    /// The local address to connect from.
    pub local_address: Option<IpAddr>,
    /// The network device to bind to (`SO_BINDTODEVICE`).
    pub device: Option<String>,
}

/// A socket option the kernel refused.
#[derive(Debug, thiserror::Error)]
pub enum SockOptError {
    /// The kernel refused the TCP MD5 key (no `CONFIG_TCP_MD5SIG`, or not permitted).
    #[error("TCP MD5 signature (RFC 2385) for {peer} refused by the kernel: {source}")]
    Md5 {
        /// The peer the key is for.
        peer: IpAddr,
        /// The kernel's error.
        source: io::Error,
    },
    /// The password is longer than the kernel allows.
    #[error("TCP MD5 password for {peer} is {len} bytes; at most {MD5_MAX_KEY_LEN} are allowed")]
    Md5KeyTooLong {
        /// The peer the key is for.
        peer: IpAddr,
        /// The password's length.
        len: usize,
    },
    /// TCP MD5 is not available on this platform.
    #[error("TCP MD5 signature (RFC 2385) is not supported on this platform")]
    Md5Unsupported,
    /// Setting the TTL or hop limit failed.
    #[error("setting the TTL to {ttl}: {source}")]
    Ttl {
        /// The TTL.
        ttl: u8,
        /// The kernel's error.
        source: io::Error,
    },
    /// Setting the GTSM minimum TTL failed.
    #[error("setting the GTSM minimum TTL to {min_ttl} (RFC 5082): {source}")]
    Gtsm {
        /// The minimum TTL.
        min_ttl: u8,
        /// The kernel's error.
        source: io::Error,
    },
    /// Binding to the local address failed.
    #[error("binding to local address {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The kernel's error.
        source: io::Error,
    },
    /// Binding to the device failed.
    #[error("binding to device {device:?}: {source}")]
    Device {
        /// The device.
        device: String,
        /// The kernel's error.
        source: io::Error,
    },
    /// Creating or configuring the socket failed otherwise.
    #[error("socket: {0}")]
    Socket(#[from] io::Error),
}

/// Creates a non-blocking TCP socket for `remote`'s address family with every option of
/// `opts` applied (MD5 key for the remote address, TTL or GTSM, device, local address).
pub fn connecting_socket(remote: SocketAddr, opts: &SocketOptions) -> Result<Socket, SockOptError> {
    let socket = Socket::new(
        Domain::for_address(remote),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    if let Some(device) = &opts.device {
        bind_device(&socket, device)?;
    }
    if let Some(pw) = &opts.password {
        set_md5(&socket, remote.ip(), Some(pw.expose().as_bytes()))?;
    }
    set_ttl_options(&socket, remote.is_ipv6(), opts)?;
    if let Some(local) = opts.local_address {
        let addr = SocketAddr::new(local, 0);
        socket
            .bind(&addr.into())
            .map_err(|source| SockOptError::Bind { addr, source })?;
    }
    Ok(socket)
}

/// Creates a non-blocking listening socket on `addr` with address reuse, `IPV6_V6ONLY` for
/// IPv6 (IPv4 peers need an IPv4 listener), and one MD5 key per `(peer, password)` of the
/// same family.
pub fn listening_socket(
    addr: SocketAddr,
    keys: &[(IpAddr, Secret)],
    backlog: i32,
) -> Result<Socket, SockOptError> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    for (peer, pw) in keys {
        if peer.is_ipv6() == addr.is_ipv6() {
            set_md5(&socket, *peer, Some(pw.expose().as_bytes()))?;
        }
    }
    socket
        .bind(&addr.into())
        .map_err(|source| SockOptError::Bind { addr, source })?;
    socket.listen(backlog)?;
    Ok(socket)
}

/// Applies the TTL options of `opts` (eBGP multihop TTL or GTSM) to a socket.
pub fn set_ttl_options(
    socket: &Socket,
    ipv6: bool,
    opts: &SocketOptions,
) -> Result<(), SockOptError> {
    if let Some(hops) = opts.ttl_security {
        // RFC 5082 §3: send with TTL 255, accept only TTL >= 256 - hops.
        set_ttl(socket, ipv6, 255)?;
        let min_ttl = 255u8.saturating_sub(hops.saturating_sub(1));
        set_min_ttl(socket, ipv6, min_ttl)?;
    } else if let Some(ttl) = opts.ttl {
        set_ttl(socket, ipv6, ttl)?;
    }
    Ok(())
}

fn set_ttl(socket: &Socket, ipv6: bool, ttl: u8) -> Result<(), SockOptError> {
    let r = if ipv6 {
        socket.set_unicast_hops_v6(u32::from(ttl))
    } else {
        socket.set_ttl_v4(u32::from(ttl))
    };
    r.map_err(|source| SockOptError::Ttl { ttl, source })
}

fn bind_device(socket: &Socket, device: &str) -> Result<(), SockOptError> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let r = socket.bind_device(Some(device.as_bytes()));
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let r = {
        let _ = socket;
        Err(io::Error::from(io::ErrorKind::Unsupported))
    };
    r.map_err(|source| SockOptError::Device {
        device: device.to_string(),
        source,
    })
}

/// The index of a network interface by name (for the scope of IPv6 link-local addresses).
#[cfg(unix)]
pub fn interface_index(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call; the function only
    // reads it.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (index != 0).then_some(index)
}

/// Interface indexes are not looked up on this platform.
#[cfg(not(unix))]
pub fn interface_index(_name: &str) -> Option<u32> {
    None
}

/// Sets the GTSM minimum TTL (`IP_MINTTL`) or hop count (`IPV6_MINHOPCOUNT`).
#[cfg(target_os = "linux")]
fn set_min_ttl(socket: &Socket, ipv6: bool, min_ttl: u8) -> Result<(), SockOptError> {
    use std::os::fd::AsRawFd;
    let (level, name) = if ipv6 {
        (libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT)
    } else {
        (libc::IPPROTO_IP, libc::IP_MINTTL)
    };
    let value: libc::c_int = libc::c_int::from(min_ttl);
    // SAFETY: `socket` owns a valid file descriptor for the duration of the call; the option
    // value points to a live `c_int` and the length passed is exactly its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(SockOptError::Gtsm {
            min_ttl,
            source: io::Error::last_os_error(),
        })
    }
}

#[cfg(not(target_os = "linux"))]
fn set_min_ttl(_socket: &Socket, _ipv6: bool, min_ttl: u8) -> Result<(), SockOptError> {
    Err(SockOptError::Gtsm {
        min_ttl,
        source: io::Error::from(io::ErrorKind::Unsupported),
    })
}

/// Linux `struct tcp_md5sig` (include/uapi/linux/tcp.h).
#[cfg(target_os = "linux")]
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: libc::c_int,
    key: [u8; MD5_MAX_KEY_LEN],
}

/// Installs (`Some(key)`) or removes (`None`) the TCP MD5 key for `peer` on `socket`
/// (RFC 2385). On a listening socket, one key per peer; on a connecting socket, the key for
/// the remote address. An IPv4 peer on an IPv6 socket is keyed by its v4-mapped address.
#[cfg(target_os = "linux")]
pub fn set_md5(socket: &Socket, peer: IpAddr, key: Option<&[u8]>) -> Result<(), SockOptError> {
    use std::os::fd::AsRawFd;
    let key = key.unwrap_or(&[]);
    if key.len() > MD5_MAX_KEY_LEN {
        return Err(SockOptError::Md5KeyTooLong {
            peer,
            len: key.len(),
        });
    }
    let ipv6_socket = socket.domain().map(|d| d == Domain::IPV6).unwrap_or(false);
    let addr = match peer {
        IpAddr::V4(v4) if ipv6_socket => IpAddr::V6(v4.to_ipv6_mapped()),
        other => other,
    };
    let sa = SockAddr::from(SocketAddr::new(addr, 0));
    // SAFETY: `sockaddr_storage` and `TcpMd5Sig` are plain C structs of integers and byte
    // arrays, for which all-zero bytes are a valid value.
    let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
    let sa_len = (sa.len() as usize).min(std::mem::size_of::<libc::sockaddr_storage>());
    // SAFETY: `sa.as_ptr()` points to `sa.len()` initialised bytes of a socket address, and
    // `sig.addr` is a distinct, writable `sockaddr_storage` at least `sa_len` bytes long.
    unsafe {
        std::ptr::copy_nonoverlapping(
            sa.as_ptr().cast::<u8>(),
            (&mut sig.addr as *mut libc::sockaddr_storage).cast::<u8>(),
            sa_len,
        );
    }
    sig.keylen = key.len() as u16;
    sig.key[..key.len()].copy_from_slice(key);
    // SAFETY: the descriptor is valid while `socket` lives; the option value points to a live
    // `TcpMd5Sig` laid out as the kernel's `struct tcp_md5sig`, and the length is its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            (&sig as *const TcpMd5Sig).cast(),
            std::mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(SockOptError::Md5 {
            peer,
            source: io::Error::last_os_error(),
        })
    }
}

/// TCP MD5 is Linux-only here.
#[cfg(not(target_os = "linux"))]
pub fn set_md5(_socket: &Socket, _peer: IpAddr, _key: Option<&[u8]>) -> Result<(), SockOptError> {
    Err(SockOptError::Md5Unsupported)
}

/// Takes ownership of a descriptor that arrived in an `SCM_RIGHTS` message (a hand-over)
/// and marks it close-on-exec, so that it does not leak into programs the process starts.
pub(crate) fn received_fd(fd: std::os::fd::RawFd) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    if fd < 0 {
        return Err(std::io::Error::other("negative descriptor"));
    }
    // SAFETY: the kernel installed `fd` in this process for the `recvmsg` that returned it,
    // and nothing else owns it: the caller passes each received descriptor here exactly
    // once, straight after the call.
    let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let socket = socket2::Socket::from(owned);
    socket.set_cloexec(true)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use super::*;

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn opts(pw: &str) -> SocketOptions {
        SocketOptions {
            password: Some(Secret::new(pw)),
            ..SocketOptions::default()
        }
    }

    async fn connect(remote: SocketAddr, o: &SocketOptions) -> io::Result<tokio::net::TcpStream> {
        let s = connecting_socket(remote, o).map_err(io::Error::other)?;
        let s = tokio::net::TcpSocket::from_std_stream(s.into());
        s.connect(remote).await
    }

    /// Whether this kernel takes MD5 keys at all.
    fn md5_available() -> bool {
        match Socket::new(Domain::IPV4, Type::STREAM, None) {
            Ok(s) => set_md5(&s, LOOPBACK, Some(b"probe")).is_ok(),
            Err(_) => false,
        }
    }

    #[tokio::test]
    async fn md5_matching_keys_connect_and_wrong_keys_do_not() {
        if !md5_available() {
            println!("skipped: this kernel refuses TCP_MD5SIG");
            return;
        }
        let keys = [(LOOPBACK, Secret::new("s3cret"))];
        let l = listening_socket(SocketAddr::new(LOOPBACK, 0), &keys, 16).unwrap();
        let addr = l.local_addr().unwrap().as_socket().unwrap();
        let listener = tokio::net::TcpListener::from_std(l.into()).unwrap();

        let ok = tokio::time::timeout(Duration::from_secs(5), connect(addr, &opts("s3cret")))
            .await
            .expect("matching keys connect in time")
            .unwrap();
        let (acc, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .unwrap()
            .unwrap();
        drop((ok, acc));

        // A wrong key: the listener drops the SYNs, the connect never completes.
        let wrong =
            tokio::time::timeout(Duration::from_millis(1500), connect(addr, &opts("nope"))).await;
        assert!(
            wrong.is_err() || wrong.unwrap().is_err(),
            "wrong key must not connect"
        );
        // No key at all: the same.
        let none = tokio::time::timeout(
            Duration::from_millis(1500),
            connect(addr, &SocketOptions::default()),
        )
        .await;
        assert!(
            none.is_err() || none.unwrap().is_err(),
            "no key must not connect"
        );
    }

    #[test]
    fn md5_key_too_long_is_a_typed_error() {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let e = set_md5(&s, LOOPBACK, Some(&[b'x'; 81])).unwrap_err();
        assert!(
            matches!(e, SockOptError::Md5KeyTooLong { len: 81, .. }),
            "{e}"
        );
    }

    #[test]
    fn ttl_and_gtsm_are_set() {
        let remote = SocketAddr::new(LOOPBACK, 179);
        let multihop = SocketOptions {
            ttl: Some(3),
            ..SocketOptions::default()
        };
        let s = connecting_socket(remote, &multihop).unwrap();
        assert_eq!(s.ttl_v4().unwrap(), 3);
        let gtsm = SocketOptions {
            ttl_security: Some(1),
            ..SocketOptions::default()
        };
        let s = connecting_socket(remote, &gtsm).unwrap();
        assert_eq!(s.ttl_v4().unwrap(), 255);
    }

    #[test]
    fn local_address_is_bound_before_connect() {
        let o = SocketOptions {
            local_address: Some(LOOPBACK),
            ..SocketOptions::default()
        };
        let s = connecting_socket(SocketAddr::new(LOOPBACK, 179), &o).unwrap();
        assert_eq!(s.local_addr().unwrap().as_socket().unwrap().ip(), LOOPBACK);
    }

    #[test]
    fn loopback_has_an_interface_index() {
        assert!(interface_index("lo").is_some());
        assert_eq!(interface_index("no-such-dev0"), None);
    }

    #[test]
    fn device_errors_are_typed() {
        let o = SocketOptions {
            device: Some("no-such-dev0".into()),
            ..SocketOptions::default()
        };
        let e = connecting_socket(SocketAddr::new(LOOPBACK, 179), &o).unwrap_err();
        assert!(matches!(e, SockOptError::Device { .. }), "{e}");
    }
}
