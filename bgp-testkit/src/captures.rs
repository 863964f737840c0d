//! Raw messages captured from FRR 8.4, BIRD 2.0.12 and GoBGP 3.10 peering on loopback
//! (`scripts/capture/run.sh`), one file per direction and TCP connection, with the session
//! context each needs (from `captures/manifest.tsv`).

use std::path::PathBuf;

use bgp_wire::{AfiSafi, Context, context};

/// One captured direction of one session.
#[derive(Clone, Debug)]
pub struct Capture {
    /// File name, e.g. `frr-to-bird-1.bin`.
    pub name: String,
    /// The context the receiver decoded it with.
    pub context: Context,
    /// The raw messages, back to back.
    pub bytes: Vec<u8>,
}

/// The directory holding the captures.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("captures")
}

/// Every capture listed in the manifest.
///
/// # Panics
/// When the manifest or a file it lists cannot be read: they are part of this crate.
pub fn all() -> Vec<Capture> {
    let manifest = std::fs::read_to_string(dir().join("manifest.tsv"))
        .unwrap_or_else(|e| panic!("captures/manifest.tsv: {e}"));
    manifest
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            let [name, as4, add_path, ext] = cols[..] else {
                panic!("bad manifest line: {line}");
            };
            let mut ctx = Context {
                four_octet_as: as4 == "1",
                ..Context::default()
            };
            for f in add_path.split(',').filter(|s| !s.is_empty()) {
                let fam = AfiSafi::from_name(f).unwrap_or_else(|| panic!("family {f}"));
                ctx.add_path_receive.insert(fam);
                ctx.add_path_send.insert(fam);
            }
            if ext == "1" {
                ctx.max_message_len = context::MAX_EXTENDED_MESSAGE_LEN;
            }
            let bytes = std::fs::read(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
            Capture {
                name: name.to_string(),
                context: ctx,
                bytes,
            }
        })
        .collect()
}
