//! The bgp-speaker CLI. Until the runtime lands (issue 5), running it with no arguments shows
//! the codec at work: it builds the messages of a session's start, encodes them as they would
//! go on the wire, decodes them back and narrates each step.

use bgp_wire::notification::{Notification, cease_subcode};
use bgp_wire::{Context, Message};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ctx = Context::default();
    let script = [
        ("keepalive", Message::Keepalive),
        (
            "administrative shutdown",
            Message::Notification(Notification::shutdown(
                cease_subcode::ADMINISTRATIVE_SHUTDOWN,
                "demo over",
            )),
        ),
    ];
    for (what, msg) in script {
        let bytes = msg.to_bytes(&ctx)?;
        let back = Message::decode(bytes.clone(), &ctx)?;
        println!(
            "{what}: {} bytes on the wire, decoded back as {:?}",
            bytes.len(),
            back
        );
    }
    println!("demo done");
    Ok(())
}
