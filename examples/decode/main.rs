//! Decodes raw BGP messages, back to back as on the wire, from a file or stdin, and prints one
//! JSON object per message.
//!
//! ```text
//! cargo run --release --example decode -- [--no-as4] [--add-path FAMILY]... [--extended-message] [FILE]
//! ```
//!
//! The context defaults to what modern sessions negotiate: 4-octet AS, no ADD-PATH, 4096-byte
//! messages. On malformed input it says which message, which field, the byte offset and the
//! NOTIFICATION it would send, and exits with status 1.

use std::io::Read;
use std::process::ExitCode;

use bgp_wire::{AfiSafi, Context, Message, context, split_message};
use bytes::BytesMut;
use serde_json::{Value, json};

mod json;

fn usage() -> ExitCode {
    eprintln!(
        "usage: decode [--no-as4] [--add-path FAMILY]... [--extended-message] [FILE]\n\
         FAMILY is one of ipv4-unicast, ipv6-unicast, ipv4-multicast, ipv6-multicast"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut ctx = Context::default();
    let mut file = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--no-as4" => ctx.four_octet_as = false,
            "--extended-message" => ctx.max_message_len = context::MAX_EXTENDED_MESSAGE_LEN,
            "--add-path" => match args.next().as_deref().and_then(AfiSafi::from_name) {
                Some(f) => {
                    ctx.add_path_receive.insert(f);
                }
                None => return usage(),
            },
            "-h" | "--help" => return usage(),
            _ if file.is_none() && !arg.starts_with("--") => file = Some(arg),
            _ => return usage(),
        }
    }
    let mut input = Vec::new();
    let read = match &file {
        Some(path) if path != "-" => {
            std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut input))
        }
        _ => std::io::stdin().read_to_end(&mut input),
    };
    if let Err(e) = read {
        eprintln!(
            "decode: cannot read {}: {e}",
            file.as_deref().unwrap_or("stdin")
        );
        return ExitCode::from(2);
    }
    run(&ctx, input)
}

fn run(ctx: &Context, input: Vec<u8>) -> ExitCode {
    let total = input.len();
    let mut buf = BytesMut::from(&input[..]);
    let mut index = 0usize;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    loop {
        let at = total - buf.len();
        let result = match split_message(&mut buf, ctx.max_message_len) {
            Ok(Some((header, msg))) => {
                Message::decode_body(header, msg.slice(context::HEADER_LEN..), ctx).map(Some)
            }
            Ok(None) if buf.is_empty() => Ok(None),
            Ok(None) => {
                eprintln!(
                    "decode: message {index} at byte {at}: input ends inside a message ({} bytes left)",
                    buf.len()
                );
                return ExitCode::from(1);
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(Some(m)) => {
                let mut v = json::message(&m);
                if let Value::Object(o) = &mut v {
                    o.insert("index".into(), json!(index));
                    o.insert("offset".into(), json!(at));
                }
                if std::io::Write::write_all(&mut out, format!("{v}\n").as_bytes()).is_err() {
                    return ExitCode::SUCCESS; // the reader went away (e.g. `| head`)
                }
                index += 1;
            }
            Ok(None) => return ExitCode::SUCCESS,
            Err(e) => {
                let n = e.notification();
                let (code, sub) = n.names();
                eprintln!(
                    "decode: message {index} at byte {at}: {} in field \"{}\" at byte {} of the message; \
                     would send NOTIFICATION {}/{} ({code} / {sub}) with {} bytes of data",
                    e.kind,
                    e.field,
                    e.offset,
                    n.code,
                    n.subcode,
                    n.data.len()
                );
                return ExitCode::from(1);
            }
        }
    }
}
