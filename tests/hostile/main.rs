//! The hostile peer suite (issue 7): a scripted peer drives a real speaker over loopback TCP
//! with malformed, unexpected and abusive input, and each case asserts the reaction the RFCs
//! prescribe (RFC 4271 §6, RFC 7606, RFC 5492, RFC 6793, RFC 4760, RFC 8654, RFC 6608) and
//! that nothing else was lost: after every case the speaker answers, the witness session never
//! flapped and keeps its routes, and a fresh session from the hostile address establishes.
//!
//! Real sockets and real time, every wait bounded; each case has its own loopback addresses,
//! so they run in parallel.
//!
//! - [`header`]: marker, lengths (too short, too long, wrong for the type, the 4096 boundary,
//!   RFC 8654), types, garbage after a message, one-byte writes;
//! - [`open`]: version, peer AS (RFC 6793), identifier (RFC 6286), hold time, malformed,
//!   repeated and unknown capabilities, optional parameter lengths (RFC 9072), 2-octet peers;
//! - [`update`]: every RFC 7606 case (treat-as-withdraw, attribute discard, the resets that
//!   remain), MP_REACH_NLRI and MP_UNREACH_NLRI errors (RFC 4760), NLRI errors;
//! - [`behaviour`]: messages in the wrong state (RFC 6608), silent and stalled peers, a peer
//!   that stops reading, hang-ups, strangers, bursts, collisions, route refresh.
//!
//! The lab ([`harness::Lab`]) and the raw message builders ([`raw`]) make each case a few
//! lines. Cases marked `#[ignore = "bug: ..."]` assert the RFC's behaviour where the speaker
//! does not follow it yet.

mod harness;
mod raw;

mod behaviour;
mod header;
mod open;
mod update;

/// A case whose bad input comes once the hostile session is Established with its base
/// routes, and which the SUT must answer with this NOTIFICATION and a close.
#[macro_export]
macro_rules! reset_case {
    ($(#[$m:meta])* $name:ident, $bytes:expr, $code:expr, $sub:expr) => {
        $(#[$m])*
        #[tokio::test]
        async fn $name() {
            let lab = $crate::harness::Lab::start().await;
            let mut w = lab.established().await;
            lab.announce_base(&mut w).await;
            #[allow(clippy::redundant_closure_call)]
            let bytes: Vec<u8> = ($bytes)(&lab);
            w.send(&bytes).await;
            lab.expect_reset(&mut w, $code, $sub).await;
            lab.finish().await;
        }
    };
}
