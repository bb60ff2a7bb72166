//! A small command-line front end to the crate, used by the side-by-side
//! benchmark scripts in `benches/scripts/layers*.sh`.
//!
//! ```text
//! layer_tool write <dir> <out-blob> [none|gzip|zstd] [threads]   # dir as pure additions
//! layer_tool diff <before> <after> <out-blob> [none|gzip|zstd]   # tree compare + write
//! layer_tool upper <upper-dir> <out-blob> [none|gzip|zstd]       # overlay upper fast path
//! layer_tool apply <blob> <target-dir>
//! layer_tool sha256 <file>
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};

use kiln_image_layers::{
    Algorithm, ApplyOptions, ChangeSet, Compression, DigestWriter, WriteOptions, apply_layer,
    write_layer,
};

fn compression(arg: Option<&String>) -> Compression {
    match arg.map(String::as_str) {
        Some("none") => Compression::None,
        Some("zstd") => Compression::Zstd,
        _ => Compression::Gzip,
    }
}

fn write(
    cs: &ChangeSet,
    out: &str,
    c: Compression,
    threads: Option<&String>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut o = WriteOptions::with_compression(c);
    if let Some(t) = threads {
        o.threads = t.parse()?;
    }
    let mut f = BufWriter::new(File::create(out)?);
    let info = write_layer(cs, &mut f, &o)?;
    f.flush()?;
    println!(
        "{} {} diffID {} ({} bytes uncompressed)",
        info.digest, info.size, info.diff_id, info.uncompressed_size
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    match a.get(1).map(String::as_str) {
        Some("write") if a.len() >= 4 => write(
            &ChangeSet::added_tree(&a[2])?,
            &a[3],
            compression(a.get(4)),
            a.get(5),
        ),
        Some("diff") if a.len() >= 5 => write(
            &ChangeSet::diff_trees(&a[2], &a[3])?,
            &a[4],
            compression(a.get(5)),
            None,
        ),
        Some("upper") if a.len() >= 4 => write(
            &ChangeSet::from_overlay_upper(&a[2])?,
            &a[3],
            compression(a.get(4)),
            None,
        ),
        Some("apply") if a.len() >= 4 => {
            let r = apply_layer(
                File::open(&a[2])?,
                std::path::Path::new(&a[3]),
                &ApplyOptions::default(),
            )?;
            println!(
                "{} entries, {} bytes, diffID {}",
                r.entries, r.bytes, r.diff_id
            );
            Ok(())
        }
        Some("sha256") if a.len() >= 3 => {
            let mut w = DigestWriter::new(std::io::sink(), Algorithm::Sha256);
            std::io::copy(&mut File::open(&a[2])?, &mut w)?;
            let (_, d, _) = w.finish();
            println!("{}  {}", d.hex(), a[2]);
            Ok(())
        }
        _ => {
            eprintln!("usage: layer_tool write|diff|upper|apply|sha256 ... (see the source)");
            std::process::exit(2);
        }
    }
}
