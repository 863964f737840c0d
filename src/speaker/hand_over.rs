//! The speaker's side of a hand-over ([`crate::handover`]): the old process giving its
//! sessions away ([`Runner::hand_over`]) and the new one taking them
//! ([`Speaker::take_over`]).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bgp_fsm::{Session, SessionImage};
use bgp_wire::notification::cease_subcode;
use bgp_wire::{Context, Message, Notification};
use bytes::BytesMut;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{
    Command, EventStream, GlobalSettings, PeerEntry, PeerSettings, Runner, Speaker, SpeakerError,
    SpeakerHandle, lock,
};
use crate::core::{CoreOutbox, CoreOutput, Event, PeerImage};
use crate::handover::{
    self, AnnouncementImage, Answer, FORMAT_VERSION, HandOverError, Image, Meta, PeerMeta,
    Received, families_in, families_out,
};
use crate::peer::{Frozen, OutboxHandle, PeerCommand, PeerContext, PeerId, spawn_resumed_peer};

/// Runs blocking I/O on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, HandOverError> + Send + 'static,
) -> Result<T, HandOverError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| HandOverError::Io(io::Error::other(e.to_string())))?
}

/// A session the new process will carry on.
struct Resumable {
    settings: PeerSettings,
    session: Session,
    meta: PeerMeta,
    /// Its index in the image's peers.
    index: usize,
}

/// A resumed session waiting for its routes.
struct Waiting {
    id: PeerId,
    meta: PeerMeta,
    index: usize,
    negotiated: Option<bgp_fsm::Negotiated>,
}

impl Runner {
    /// Listens on [`GlobalSettings::hand_over_socket`], when set, for a process that takes
    /// the sessions over. Each connection becomes a [`Command::HandOver`].
    pub(super) fn listen_for_hand_over(
        &mut self,
        commands: mpsc::WeakSender<Command>,
    ) -> Result<(), SpeakerError> {
        let Some(path) = self.settings.hand_over_socket.clone() else {
            return Ok(());
        };
        let listener = bind_unix(&path).map_err(|e| SpeakerError::HandOverSocket {
            path: path.clone(),
            source: e,
        })?;
        let task = tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "hand-over socket: accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Some(tx) = commands.upgrade() else { break };
                let std = match stream.into_std() {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "hand-over socket: connection dropped");
                        continue;
                    }
                };
                // Blocking I/O from here on (on the blocking pool), with timeouts.
                if std.set_nonblocking(false).is_err()
                    || tx.send(Command::HandOver(std)).await.is_err()
                {
                    break;
                }
            }
        });
        self.hand_over_listener = Some(task);
        Ok(())
    }

    /// Hands every Established session to the process at the other end of `stream`.
    /// Returns true when this speaker has stopped (handed over, or stopped for a graceful
    /// restart because the new process could not read the image).
    pub(super) async fn hand_over(&mut self, mut stream: UnixStream) -> bool {
        let timeout = self.settings.hand_over_timeout;
        let _ = stream.set_write_timeout(Some(timeout));
        if !lock(&self.core).is_initial_routes_done() && self.restart.is_some() {
            let why = "this speaker is restarting and its initial routes are not in yet";
            tracing::info!("hand-over declined: {why}");
            let _ = blocking(move || Ok(handover::decline(&mut stream, why)?)).await;
            return false;
        }
        let started = Instant::now();
        tracing::info!(peers = self.peers.len(), "hand-over: pausing the sessions");
        let frozen = match self.freeze_all(timeout).await {
            Ok(f) => f,
            Err(why) => {
                self.resume_all().await;
                tracing::warn!("hand-over declined: {why}");
                let w = why.clone();
                let _ = blocking(move || Ok(handover::decline(&mut stream, &w)?)).await;
                self.emit(Event::HandOverFailed {
                    reason: why,
                    stopped: false,
                });
                return false;
            }
        };
        let (image, moved) = self.image(frozen);
        let sessions = moved.len();
        let outcome = blocking(move || {
            handover::send(&mut stream, &image)?;
            // The sockets and parts are out: this process's copies of the descriptors stay
            // with the sessions until the answer.
            drop(image);
            let a = handover::answer(&mut stream, timeout);
            Ok((stream, a))
        })
        .await;
        let (mut stream, answer) = match outcome {
            Ok((s, a)) => (Some(s), a),
            Err(e) => (None, Err(e)),
        };
        match answer {
            Ok(Answer::Ack) => {
                let released = match stream.take() {
                    Some(mut s) => {
                        blocking(move || {
                            handover::say(&mut s, "RELEASED")?;
                            Ok(s)
                        })
                        .await
                    }
                    None => Err(HandOverError::RolledBack),
                };
                let stream = match released {
                    Ok(s) => s,
                    // The new process is gone before it heard: it started nothing.
                    Err(e) => {
                        return self
                            .roll_back(None, format!("confirmation not delivered: {e}"))
                            .await;
                    }
                };
                let paused = started.elapsed();
                self.release_all().await;
                tracing::info!(
                    sessions,
                    ?paused,
                    "sessions handed over; sending their routes"
                );
                // The routes follow, session by session, while the new process already
                // serves the sessions (it queues what they bring meanwhile).
                let core = self.core.clone();
                let sent = blocking(move || {
                    let mut s = stream;
                    for (i, id) in moved.iter().enumerate() {
                        let part = lock(&core).peer_image(id, true);
                        let routes = part.map(|p| p.adj_in).unwrap_or_default();
                        let i = u32::try_from(i).unwrap_or(u32::MAX - 1);
                        handover::send_routes(&mut s, i, &routes)?;
                    }
                    handover::end_routes(&mut s)?;
                    Ok(())
                })
                .await;
                if let Err(e) = sent {
                    tracing::warn!(error = %e, "routes not all handed over (the new process re-learns them)");
                }
                self.emit(Event::HandedOver { sessions, paused });
                true
            }
            Ok(Answer::Refuse(why)) => {
                tracing::warn!(reason = %why, "hand-over refused: stopping for a graceful restart");
                self.resume_all().await;
                if let Err(e) = self.stop_for_restart().await {
                    tracing::warn!(error = %e, "restart state not written");
                }
                // Closing the socket tells the new process that it may start now.
                drop(stream);
                self.emit(Event::HandOverFailed {
                    reason: why,
                    stopped: true,
                });
                true
            }
            Err(e) => self.roll_back(stream, e.to_string()).await,
        }
    }

    /// The hand-over failed: the sessions carry on here.
    async fn roll_back(&mut self, stream: Option<UnixStream>, why: String) -> bool {
        tracing::warn!(reason = %why, "hand-over failed: the sessions carry on here");
        if let Some(mut s) = stream {
            let _ = blocking(move || Ok(handover::say(&mut s, "ROLLBACK")?)).await;
        }
        self.resume_all().await;
        self.emit(Event::HandOverFailed {
            reason: why,
            stopped: false,
        });
        false
    }

    /// Quiesces every peer task (the core takes in what they produced meanwhile), then
    /// freezes them. Fails (with the peers still quiesced) when a peer does not answer or
    /// is not ready to move.
    async fn freeze_all(
        &mut self,
        timeout: std::time::Duration,
    ) -> Result<Vec<(PeerId, Frozen)>, String> {
        let deadline = Instant::now() + timeout;
        let mut waits = Vec::new();
        for (id, e) in &self.peers {
            let (tx, rx) = oneshot::channel();
            let _ = e.handle.send(PeerCommand::Quiesce(tx)).await;
            waits.push((id.clone(), rx));
        }
        for (id, mut rx) in waits {
            loop {
                tokio::select! {
                    r = &mut rx => {
                        if r.is_err() {
                            return Err(format!("peer {id} did not pause"));
                        }
                        break;
                    }
                    Some(ev) = self.peer_events.recv() => {
                        let out = lock(&self.core).handle(ev);
                        self.apply(out).await;
                    }
                    () = tokio::time::sleep_until(deadline) => {
                        return Err(format!("peer {id} did not pause in time"));
                    }
                }
            }
        }
        // Every event of a paused task is in the channel now.
        while let Ok(ev) = self.peer_events.try_recv() {
            let out = lock(&self.core).handle(ev);
            self.apply(out).await;
        }
        let mut frozen = Vec::new();
        for (id, e) in &self.peers {
            let (tx, rx) = oneshot::channel();
            let _ = e.handle.send(PeerCommand::Freeze(tx)).await;
            match tokio::time::timeout_at(deadline, rx).await {
                Ok(Ok(f)) => frozen.push((id.clone(), f)),
                _ => return Err(format!("peer {id} did not freeze in time")),
            }
        }
        let core = lock(&self.core);
        for (id, f) in &frozen {
            if f.session.is_some() && f.socket.is_some() && !core.ready_to_move(id) {
                return Err(format!("peer {id} is still owed routes"));
            }
        }
        Ok(frozen)
    }

    /// The image of the frozen sessions.
    /// The image of the frozen sessions (their routes follow later), and the peers it holds,
    /// in order.
    fn image(&self, frozen: Vec<(PeerId, Frozen)>) -> (Image, Vec<PeerId>) {
        let core = lock(&self.core);
        let mut image = Image {
            meta: Meta {
                software: format!("{} {}", env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION")),
                asn: self.settings.asn.0,
                router_id: Some(self.settings.router_id),
                initial_routes_done: core.is_initial_routes_done(),
                graceful_shutdown: core.is_graceful_shutdown(),
                announcements: core.announced().map(AnnouncementImage::from).collect(),
                ..Meta::default()
            },
            ..Image::default()
        };
        for l in &self.tcp_listeners {
            match (l.local_addr(), l.as_fd().try_clone_to_owned()) {
                (Ok(addr), Ok(fd)) => {
                    let i = image.socket(fd);
                    image.meta.listeners.push((addr, i));
                }
                (_, Err(e)) | (Err(e), _) => {
                    tracing::warn!(error = %e, "listening socket not handed over");
                }
            }
        }
        let mut moved = Vec::new();
        for (id, f) in frozen {
            let (Some(session), Some(socket)) = (f.session, f.socket) else {
                continue;
            };
            let Some(part) = core.peer_image(&id, false) else {
                continue;
            };
            let mut s = BytesMut::new();
            if let Err(e) = session.encode(&mut s) {
                tracing::warn!(peer = %id, error = %e, "session not imaged");
                continue;
            }
            let meta = PeerMeta {
                address: Some(id.addr),
                port: id.port,
                interface: id.interface.clone(),
                socket: image.socket(socket),
                router_id: Some(part.router_id),
                session: image.blob(s.freeze()),
                read: image.blob(f.read),
                write: image.blob(f.write),
                stale: families_out(part.stale),
                limit_warned: families_out(part.limit_warned),
                limit_exceeded: families_out(part.limit_exceeded),
                told: part.told.as_deref().map(handover::counts_out),
            };
            image.meta.peers.push(meta);
            moved.push(id);
        }
        (image, moved)
    }

    async fn resume_all(&mut self) {
        for e in self.peers.values() {
            let _ = e.handle.send(PeerCommand::Resume).await;
        }
    }

    /// Lets every peer task go without a word to the peers, and stops listening.
    async fn release_all(&mut self) {
        for l in &self.listeners {
            l.abort();
        }
        let peers = std::mem::take(&mut self.peers);
        for (id, e) in peers {
            self.dispatcher.unregister(id.addr);
            let _ = e.handle.send(PeerCommand::Release).await;
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), e.handle.join()).await;
        }
    }

    /// Sets the core up for the sessions of an image (new side), before the answer: the
    /// old process's flags, the peers to resume (down, without routes yet), the embedder's
    /// routes.
    fn prepare(
        &mut self,
        image: &Image,
        resumable: &[Resumable],
    ) -> Result<CoreOutput, SpeakerError> {
        let mut out = CoreOutput::default();
        let mut core = lock(&self.core);
        core.restore_flags(image.meta.initial_routes_done, image.meta.graceful_shutdown);
        for r in resumable {
            let added = core
                .add_peer(r.settings.id(), r.settings.core_peer(false))
                .ok_or(SpeakerError::TooManyPeers)?;
            out.merge(added);
        }
        for a in &image.meta.announcements {
            match a.to_announcement() {
                Ok(a) => out.merge(core.announce(a)),
                Err(e) => tracing::warn!(error = %e, "announcement not taken over"),
            }
        }
        Ok(out)
    }

    fn add_resumed_peer(&mut self, r: Resumable, image: &Image) -> Result<(), SpeakerError> {
        let id = r.settings.id();
        if r.settings.password.is_some() {
            self.set_md5(r.settings.address, r.settings.password.as_ref())?;
        }
        let cfg = r.settings.peer_config(&self.settings);
        let socket = cfg.socket.clone();
        let stream = image
            .sockets
            .get(r.meta.socket)
            .and_then(|fd| fd.try_clone().ok())
            .map(std::net::TcpStream::from)
            .ok_or(SpeakerError::Unsupported("hand-over socket missing"))?;
        stream
            .set_nonblocking(true)
            .map_err(|e| SpeakerError::SocketOption(e.into()))?;
        let stream = tokio::net::TcpStream::from_std(stream)
            .map_err(|e| SpeakerError::SocketOption(e.into()))?;
        let ctx = PeerContext {
            clock: self.clock,
            connector: self.connector(&r.settings),
            events: self.peer_events_tx.clone(),
        };
        let outbox = OutboxHandle::new(Arc::new(Mutex::new(CoreOutbox::new(
            self.core.clone(),
            id.clone(),
        ))));
        let handle = spawn_resumed_peer(
            id.clone(),
            cfg,
            ctx,
            outbox.clone(),
            r.session,
            Box::new(stream),
            image.part(r.meta.read),
            image.part(r.meta.write),
        );
        self.dispatcher.register(&id, handle.commands(), socket);
        self.peers.insert(
            id,
            PeerEntry {
                settings: r.settings,
                handle,
                outbox,
            },
        );
        Ok(())
    }
}

/// Binds the hand-over socket (replacing a stale socket file) with mode 0600.
fn bind_unix(path: &Path) -> io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if m.file_type().is_socket() {
            std::fs::remove_file(path)?;
        }
    }
    let l = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Refuses an image (new side) and waits, boundedly, until the old process has stopped
/// for a graceful restart and closed the socket.
async fn refuse_and_wait(mut stream: UnixStream, why: String, timeout: std::time::Duration) {
    let _ = blocking(move || {
        handover::say(&mut stream, &format!("REFUSE {why}"))?;
        stream.set_read_timeout(Some(timeout))?;
        while handover::hear(&mut stream)?.is_some() {}
        Ok(())
    })
    .await;
}

/// Sends Cease/Peer De-configured on a handed-over connection that no peer of the new
/// settings matches, and closes it.
fn deconfigure(fd: &OwnedFd, session: &SessionImage) {
    use std::io::Write;
    let Ok(fd) = fd.try_clone() else { return };
    let mut stream = std::net::TcpStream::from(fd);
    let ctx: Context = session_context(session);
    let mut out = BytesMut::new();
    let n = Notification::cease(cease_subcode::PEER_DECONFIGURED);
    if Message::Notification(n).encode(&ctx, &mut out).is_ok() {
        let _ = stream.set_write_timeout(Some(std::time::Duration::from_secs(1)));
        let _ = stream.write_all(&out);
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

fn session_context(session: &SessionImage) -> Context {
    let n = bgp_fsm::Negotiated::new(
        &session.local_open,
        &session.peer_open,
        Some(session.keepalive_time),
    );
    n.context()
}

impl Speaker {
    /// Takes over the sessions of a running speaker that listens on `from`
    /// ([`GlobalSettings::hand_over_socket`]), and carries them on: the peers see nothing.
    /// See [`crate::handover`] for how.
    ///
    /// Peers are matched by address, port and interface. A session whose peer is no longer
    /// in `settings` is ended with Cease/Peer De-configured; one whose new settings need a
    /// new session (another AS, hold time, family...) is closed so that it restarts
    /// gracefully; the other peers of `settings` start as [`Speaker::start`] starts them. The
    /// routes of the running speaker's embedder are taken over with the sessions:
    /// `settings.announcements` is not used (change them with
    /// [`SpeakerHandle::set_routes`] afterwards).
    ///
    /// On [`HandOverError::Refused`] (the image is not one this build reads) the running
    /// speaker has stopped for a graceful restart, and the caller should
    /// [`Speaker::start`]. On any other error the running speaker carries on, or (when it is
    /// gone) the peers' graceful restart keeps our routes: the caller may start afresh.
    pub async fn take_over(
        settings: GlobalSettings,
        from: impl AsRef<Path>,
    ) -> Result<(SpeakerHandle, EventStream), HandOverError> {
        let path = from.as_ref().to_path_buf();
        let timeout = settings.hand_over_timeout;
        let (stream, received) = blocking(move || {
            let mut s = UnixStream::connect(&path)?;
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            let r = handover::receive(&mut s)?;
            Ok((s, r))
        })
        .await?;
        let image = match received {
            Received::Image(i) => i,
            Received::Unknown(v) => {
                let why = format!(
                    "hand-over format version {v}; this build reads version {FORMAT_VERSION}"
                );
                refuse_and_wait(stream, why.clone(), timeout).await;
                return Err(HandOverError::Refused(why));
            }
            Received::Declined(why) => return Err(HandOverError::NotNow(why)),
        };
        tracing::info!(from = %image.meta.software, sessions = image.meta.peers.len(),
            "taking over");
        if image.meta.asn != settings.asn.0 || image.meta.router_id != Some(settings.router_id) {
            let why = format!(
                "the running speaker is AS {} with router id {:?}; this one is AS {} with {}",
                image.meta.asn, image.meta.router_id, settings.asn, settings.router_id
            );
            refuse_and_wait(stream, why.clone(), timeout).await;
            return Err(HandOverError::Refused(why));
        }
        // Everything that can fail, before the answer.
        let inherited: Vec<(SocketAddr, OwnedFd)> = image
            .meta
            .listeners
            .iter()
            .filter_map(|(a, i)| Some((*a, image.sockets.get(*i)?.try_clone().ok()?)))
            .collect();
        let (tx, commands) = mpsc::channel(settings.command_capacity.max(1));
        let (events_tx, rx) = mpsc::channel(settings.event_capacity.max(1));
        let mut runner = match Runner::new(settings.clone(), commands, events_tx, inherited) {
            Ok(r) => r,
            Err(e) => {
                refuse_and_wait(stream, e.to_string(), timeout).await;
                return Err(e.into());
            }
        };
        let mut sessions = Vec::new();
        for (index, p) in image.meta.peers.iter().enumerate() {
            let id = PeerId {
                addr: p
                    .address
                    .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
                port: p.port,
                interface: p.interface.clone(),
            };
            match SessionImage::decode(&image.part(p.session)) {
                Ok(s) => sessions.push((id, index, p, s)),
                Err(e) => {
                    let why = format!("session image of {id}: {e}");
                    refuse_and_wait(stream, why.clone(), timeout).await;
                    return Err(HandOverError::BadImage(why));
                }
            }
        }
        // The sessions' pasts (when they came up, when routes went stale) must fall after
        // this process's epoch: it is put back by the oldest of them.
        let oldest = sessions
            .iter()
            .map(|(_, _, _, s)| s.oldest())
            .max()
            .unwrap_or_default();
        let back = oldest + std::time::Duration::from_secs(1);
        if let Some(base) = Instant::now().checked_sub(back) {
            runner.clock = crate::clock::Clock::starting_at(base);
            runner.epoch = std::time::SystemTime::now()
                .checked_sub(back)
                .unwrap_or(runner.epoch);
        }
        let now = runner.clock.now();
        let mut resumable = Vec::new();
        let mut ended = Vec::new();
        let mut others: Vec<PeerSettings> = settings.peers.clone();
        for (id, index, p, session) in sessions {
            match others.iter().position(|s| s.id() == id) {
                None => ended.push((p.socket, Some(session))),
                Some(i) => {
                    let s = others.swap_remove(i);
                    let cfg = s.peer_config(&settings);
                    match Session::resume(cfg.session, session, now) {
                        Ok(session) => resumable.push(Resumable {
                            settings: s,
                            session,
                            meta: p.clone(),
                            index,
                        }),
                        Err(e) => {
                            tracing::info!(peer = %id, reason = %e,
                                "session not carried on: it restarts gracefully");
                            ended.push((p.socket, None));
                            others.push(s);
                        }
                    }
                }
            }
        }
        let prepared = match runner.prepare(&image, &resumable) {
            Ok(out) => out,
            Err(e) => {
                refuse_and_wait(stream, e.to_string(), timeout).await;
                return Err(e.into());
            }
        };
        // The answer; nothing is touched before the old process confirms.
        let (stream, heard) = blocking(move || {
            let mut s = stream;
            let _ = handover::say(&mut s, "ACK");
            let h = handover::hear(&mut s);
            Ok((s, h))
        })
        .await?;
        let released = match heard {
            Ok(Some(l)) if l == "RELEASED" => true,
            // No answer at all: the old process is gone, and nobody else holds the sessions;
            // their routes are asked for again below.
            Ok(None) => {
                tracing::warn!("the running speaker went away before confirming: carrying on");
                false
            }
            Ok(Some(_)) => return Err(HandOverError::RolledBack),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(HandOverError::Timeout(timeout));
            }
            Err(e) => return Err(e.into()),
        };
        for (socket, session) in ended {
            if let Some(fd) = image.sockets.get(socket) {
                match session {
                    Some(s) => deconfigure(fd, &s),
                    None => {
                        let _ = socket2::SockRef::from(fd).shutdown(std::net::Shutdown::Both);
                    }
                }
            }
        }
        // Back in service: from here on the sessions' keepalives and messages flow (what the
        // peers send waits in the channel to the core until the routes are in).
        let mut waiting = Vec::new();
        for r in resumable {
            waiting.push(Waiting {
                id: r.settings.id(),
                meta: r.meta.clone(),
                index: r.index,
                negotiated: r.session.negotiated().cloned(),
            });
            runner.add_resumed_peer(r, &image)?;
        }
        let mut out = prepared;
        let mut restored = std::collections::HashSet::new();
        let mut stream = released.then_some(stream);
        while let Some(s) = stream.take() {
            let got = blocking(move || {
                let mut s = s;
                let r = handover::receive_routes(&mut s);
                Ok((s, r))
            })
            .await;
            let (s, r) = match got {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "routes of the sessions cut short");
                    break;
                }
            };
            match r {
                Ok(Some((i, routes))) => {
                    if let Some(w) = waiting.iter().find(|w| w.index == i as usize) {
                        let part = PeerImage {
                            router_id: w.meta.router_id.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
                            adj_in: routes,
                            stale: families_in(&w.meta.stale),
                            limit_warned: families_in(&w.meta.limit_warned),
                            limit_exceeded: families_in(&w.meta.limit_exceeded),
                            told: None,
                        };
                        match lock(&runner.core).restore_peer(&w.id, &part) {
                            Ok(o) => {
                                out.merge(o);
                                restored.insert(w.index);
                            }
                            Err(e) => {
                                tracing::warn!(peer = %w.id, error = %e, "routes not restored")
                            }
                        }
                    }
                    // Let the sessions' tasks run between two tables.
                    tokio::task::yield_now().await;
                    stream = Some(s);
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "routes of the sessions cut short");
                    break;
                }
            }
        }
        let mut ask_again = Vec::new();
        {
            let mut core = lock(&runner.core);
            for w in &waiting {
                if let Some(n) = &w.negotiated {
                    let told = w.meta.told.as_deref().map(handover::counts_in);
                    out.merge(core.resume_peer(&w.id, n.clone(), told.as_deref()));
                    if !restored.contains(&w.index) {
                        ask_again.push((w.id.clone(), n.route_refresh));
                    }
                }
            }
        }
        runner.apply(out).await;
        for (id, route_refresh) in ask_again {
            // The routes did not come: the peer sends them again (route refresh), or, when it
            // cannot, the session restarts and its graceful restart keeps our routes.
            tracing::warn!(peer = %id, "routes missing after the hand-over: asking again");
            let cmd = if route_refresh {
                PeerCommand::SoftResetIn(None)
            } else {
                PeerCommand::LivenessDown { keep_routes: true }
            };
            let _ = runner.peer_command(&id, cmd).await;
        }
        for p in others {
            runner.add_peer(p).await?;
        }
        runner.listen_for_hand_over(tx.downgrade())?;
        drop(image);
        tokio::spawn(runner.run());
        Ok((SpeakerHandle { tx }, EventStream { rx }))
    }
}
