//! Adj-RIB-In, Loc-RIB and Adj-RIB-Out with stale-route retention. Being written.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
