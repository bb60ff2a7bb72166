//! Copies an image between a registry and an OCI layout directory.
//!
//! ```text
//! cargo run -p kiln-registry-client --example copy -- pull REFERENCE DIR[:TAG] [--platform os/arch] [--ca FILE]
//! cargo run -p kiln-registry-client --example copy -- push DIR[:TAG] REFERENCE [--ca FILE]
//! ```
//!
//! Credentials come from Docker's config file (`docker login`). The
//! benchmark script `benches/scripts/registry.sh` drives this against
//! `skopeo copy`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use bytes::Bytes;
use kiln_registry_client::{
    Client, ClientConfig, OciLayoutBlobs, Platform, PushOptions, Reference, find_in_index,
    no_progress,
};

fn split_dir(arg: &str) -> (PathBuf, String) {
    match arg.rsplit_once(':') {
        Some((d, t)) if !t.contains('/') => (PathBuf::from(d), t.to_owned()),
        _ => (PathBuf::from(arg), "latest".to_owned()),
    }
}

async fn run(args: Vec<String>) -> Result<String, Box<dyn std::error::Error>> {
    let mut positional = Vec::new();
    let mut platform = Platform::host();
    let mut config = ClientConfig::default();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--platform" => platform = it.next().ok_or("--platform needs a value")?.parse()?,
            "--ca" => config
                .ca_certificates_pem
                .push(std::fs::read(it.next().ok_or("--ca needs a file")?)?),
            _ => positional.push(a),
        }
    }
    let client = Client::new(config)?;
    let start = Instant::now();
    match positional.as_slice() {
        [cmd, reference, dir] if cmd == "pull" => {
            let reference = Reference::parse(reference)?;
            let (dir, tag) = split_dir(dir);
            let img = client.pull_image_to_layout(&reference, &platform, &dir, &tag, &no_progress()).await?;
            let bytes: u64 = img.image.layers().iter().map(|l| l.size()).sum();
            Ok(format!("pulled {} ({}) {bytes} bytes in {:.3}s", reference.familiar(), img.manifest.digest, start.elapsed().as_secs_f64()))
        }
        [cmd, dir, reference] if cmd == "push" => {
            let reference = Reference::parse(reference)?;
            let (dir, tag) = split_dir(dir);
            let desc = find_in_index(&dir, Some(&tag))?;
            let blobs = OciLayoutBlobs::new(&dir);
            let manifest = std::fs::read(blobs.path(desc.digest()))?;
            let digest = client
                .push_image(&reference, Bytes::from(manifest), desc.media_type().as_ref(), &blobs, &PushOptions::default(), &no_progress())
                .await?;
            Ok(format!("pushed {} ({digest}) in {:.3}s", reference.familiar(), start.elapsed().as_secs_f64()))
        }
        _ => Err("usage: copy pull REFERENCE DIR[:TAG] | copy push DIR[:TAG] REFERENCE [--platform os/arch] [--ca FILE]".into()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()).await {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("copy: {e}");
            let mut src = e.source();
            while let Some(s) = src {
                eprintln!("  caused by: {s}");
                src = s.source();
            }
            ExitCode::FAILURE
        }
    }
}
