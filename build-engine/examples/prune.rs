//! Shows what `kiln system df` shows and prunes the build cache, like
//! `kiln builder prune`: `cargo run -p kiln-build-engine --example prune [-a]`
//! (state directory: `$KILN_ROOT` or the default).

use kiln_build_engine::Root;
use kiln_build_engine::gc::{self, PruneOptions, human_size};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let all = std::env::args().any(|a| a == "-a");
    let root = Root::open_configured()?;
    let usage = gc::disk_usage(&root)?;
    for (name, row) in [
        ("Images", &usage.images),
        ("Containers", &usage.containers),
        ("Build Cache", &usage.build_cache),
    ] {
        println!(
            "{name:<12} {} total, {} active, {} ({} reclaimable)",
            row.total,
            row.active,
            human_size(row.size),
            human_size(row.reclaimable)
        );
    }
    let report = gc::prune(&root, &PruneOptions::build_cache().with_all(all))?;
    println!(
        "removed {} build cache objects; Total reclaimed space: {}",
        report.cache_objects.len(),
        human_size(report.reclaimed_bytes)
    );
    Ok(())
}
