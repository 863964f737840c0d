//! # bgp-fsm
//!
//! The BGP session of RFC 4271 §8 with graceful restart (RFC 4724, RFC 8538, RFC 9494), as a
//! pure state machine that anyone can drive: no tokio, no sockets, no clock (STYLE 1, 2).
//!
//! A [`Session`] takes [`Input`]s (start and stop, TCP events, bytes or decoded messages,
//! what the embedder says) with the current [`Time`], and returns [`Action`]s (connect, send,
//! close, established, routes, End-of-RIB, stale marking, session down and why).
//! [`Session::poll_timeout`] gives the next deadline of its timer table and
//! [`Session::handle_timeout`] runs what is due.
//!
//! ```
//! use bgp_fsm::{Action, Input, Session, SessionConfig, Time};
//!
//! let mut s = Session::new(SessionConfig::default());
//! let actions = s.handle(Time::ZERO, Input::ManualStart);
//! assert_eq!(actions, vec![Action::Connect]);
//! let actions = s.handle(Time::from_secs(1), Input::TcpConnected);
//! assert!(matches!(actions[0], Action::Send(bgp_wire::Message::Open(_))));
//! assert_eq!(s.state().name(), "OpenSent");
//! ```
//!
//! What the OPENs negotiated is one [`Negotiated`] value, which also yields the wire
//! [`bgp_wire::Context`]. The graceful-restart machine is documented in [`gr`], the choices
//! left open by RFC 4271 in [`session`].
//!
//! Time is a [`Time`]: a `Duration` since an epoch the driver picks, so that a session is
//! plain data and tests need no clock. An Established session can leave the process as a
//! [`SessionImage`] ([`Session::image`], with a versioned encoding) and go on in another one
//! with [`Session::resume`], for a hitless upgrade (see [`image`]). The [`script`] module drives a session through a
//! sequence of steps on a virtual clock and checks its invariants; its [`script::fuzz`] is
//! the body of the FSM fuzz target.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod config;
pub mod gr;
pub mod image;
pub mod negotiated;
pub mod script;
pub mod session;
pub mod time;
pub mod timer;
pub mod validate;

pub use config::{GracefulRestartConfig, SessionConfig};
pub use gr::{GrMachine, Phase};
pub use image::{GrFamilyImage, IMAGE_VERSION, ImageError, ResumeError, SessionImage};
pub use negotiated::Negotiated;
pub use session::{
    Action, DownReason, Established, Input, Session, State, collision_keeps_local_connection,
};
pub use time::Time;
pub use timer::{Timer, Timers};
pub use validate::validate_open;
