//! Writes the synthetic benchmark state to a folder of YAML: N apps, each a Rollout, its
//! VirtualService, DestinationRule and two Services (5 objects), one file per app under
//! `DIR/<namespace>/<name>.yaml` (see `benches/support/gen.rs` for what the objects hold).
//!
//! `cargo run --release --example gen_state -- DIR [N=10000] [live|manifest]`
//!
//! `live` (the default) is the cluster's view (controller-owned weights and hashes, status): what
//! `rollout-guard serve --source files` should be given. `manifest` is what Git holds: what
//! `rollout-guard lint` sees before a sync.

#[path = "../benches/support/gen.rs"]
mod gen;

use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first().map(PathBuf::from) else {
        eprintln!("usage: gen_state DIR [N=10000] [live|manifest]");
        std::process::exit(2);
    };
    let n: usize = match args.get(1).map(|s| s.parse()) {
        None => 10_000,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("gen_state: N must be a number: {e}");
            std::process::exit(2);
        }
    };
    let form = match args.get(2).map(String::as_str) {
        None | Some("live") => gen::Form::Live,
        Some("manifest") => gen::Form::Manifest,
        Some(other) => {
            eprintln!("gen_state: expected live or manifest, found {other:?}");
            std::process::exit(2);
        }
    };
    match gen::write_tree(&dir, n, form) {
        Ok(objects) => println!(
            "{objects} objects ({n} apps) written under {}",
            dir.display()
        ),
        Err(e) => {
            eprintln!("gen_state: cannot write {}: {e}", dir.display());
            std::process::exit(1);
        }
    }
}
