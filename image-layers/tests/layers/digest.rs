//! Digests: parsing against real tools' output.

use std::io::Write;

use kiln_image_layers::{Algorithm, Digest, DigestWriter};

use crate::common::TestResult;

#[test]
fn streaming_digest_matches_sha256sum() -> TestResult {
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let tmp = tempfile::NamedTempFile::new()?;
    std::fs::write(tmp.path(), &data)?;
    let out = std::process::Command::new("sha256sum")
        .arg(tmp.path())
        .output()?;
    let hex = String::from_utf8(out.stdout)?
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut w = DigestWriter::new(std::io::sink(), Algorithm::Sha256);
    for chunk in data.chunks(77_777) {
        w.write_all(chunk)?;
    }
    let (_, d, n) = w.finish();
    assert_eq!(n, data.len() as u64);
    assert_eq!(d, Digest::parse(&format!("sha256:{hex}"))?);
    Ok(())
}

#[test]
fn sha512_matches_sha512sum() -> TestResult {
    let tmp = tempfile::NamedTempFile::new()?;
    std::fs::write(tmp.path(), b"kiln")?;
    let out = std::process::Command::new("sha512sum")
        .arg(tmp.path())
        .output()?;
    let hex = String::from_utf8(out.stdout)?
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        Digest::of(Algorithm::Sha512, b"kiln").to_string(),
        format!("sha512:{hex}")
    );
    Ok(())
}
