//! Runs the committed fuzz corpora (and the named regressions found by fuzzing) through the
//! same functions as the cargo-fuzz targets, so that stable-only machines check them too.

use std::path::Path;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).expect("corpus file"))
        .collect()
}

#[test]
fn message_decode_corpus() {
    let inputs = corpus("message_decode");
    assert!(!inputs.is_empty());
    for data in inputs {
        let _ = bgp_testkit::fuzz::decode_stream(&data);
    }
}

#[test]
fn round_trip_corpus() {
    let inputs = corpus("round_trip");
    assert!(!inputs.is_empty());
    for data in inputs {
        bgp_testkit::fuzz::round_trip(&data);
    }
}

/// Found by `round_trip`: an unknown optional attribute whose unused low flag bits were set
/// came back from a re-encode without them (RFC 4271 §4.3: they are ignored on receipt).
#[test]
fn regression_unknown_attribute_unused_flag_bits() {
    bgp_testkit::fuzz::round_trip(include_bytes!(
        "../fuzz/regressions/round_trip-unknown-attribute-unused-flag-bits"
    ));
}

#[test]
fn fsm_sequence_corpus() {
    let inputs = corpus("fsm_sequence");
    assert!(!inputs.is_empty());
    for data in inputs {
        if let Err(v) = bgp_fsm::script::fuzz(&data) {
            panic!("invariant violated: {v:?}");
        }
    }
}

#[test]
fn rib_updates_corpus() {
    let inputs = corpus("rib_updates");
    assert!(!inputs.is_empty());
    let mut told = 0;
    for data in inputs {
        told += bgp_testkit::fuzz::rib_updates(&data).1;
    }
    assert!(told > 0, "the corpus never gets a route to a peer");
}

#[test]
fn core_bytes_corpus() {
    let inputs = corpus("core_bytes");
    assert!(!inputs.is_empty());
    let (mut established, mut updates) = (0, 0);
    for data in inputs {
        let run = bgp_testkit::fuzz::core_bytes(&data);
        established += run.established;
        updates += run.updates;
    }
    assert!(
        established > 0 && updates > 0,
        "the corpus never gets routes in"
    );
}

#[test]
fn hand_over_images_corpus() {
    let mut inputs = corpus("hand_over_images");
    // The seeds are built from live structures: they run even before a campaign.
    inputs.extend(bgp_testkit::fuzz::hand_over::seeds());
    assert!(inputs.len() >= 3);
    for data in inputs {
        bgp_testkit::fuzz::hand_over_images(&data);
    }
}

/// Writes the seeds of `hand_over_images` into its corpus directory (run once by hand:
/// `cargo test --test fuzz_corpus -- --ignored write_hand_over_seeds`).
#[test]
#[ignore = "writes into fuzz/corpus"]
fn write_hand_over_seeds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/hand_over_images");
    std::fs::create_dir_all(&dir).expect("corpus dir");
    for (i, s) in bgp_testkit::fuzz::hand_over::seeds().iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i}")), s).expect("write seed");
    }
}
