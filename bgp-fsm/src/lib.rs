//! The RFC 4271 session state machine with graceful restart, sans-IO. Being written.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
