//! Builders for ordinary and hostile layer tar archives.
//!
//! [`TarBuilder`] writes ustar headers byte by byte (PAX records where a
//! value does not fit), so tests can make exactly the archives real tools
//! make *and* the ones no honest tool makes: `..` paths, absolute paths,
//! symlinks out of the root followed by writes through them, hardlinks to
//! outside, device nodes, headers claiming absurd sizes, truncated data.
//!
//! ```
//! use kiln_testutil::tar::TarBuilder;
//! let layer = TarBuilder::new()
//!     .dir("etc", 0o755)
//!     .file("etc/motd", b"hi\n", 0o644)
//!     .symlink("escape", "/")
//!     .file("escape/etc/passwd", b"pwned", 0o644)
//!     .gzip();
//! assert_eq!(&layer[..2], &[0x1f, 0x8b]);
//! ```

use std::io::Write;

/// Builds a tar archive in memory.
#[derive(Debug, Clone, Default)]
pub struct TarBuilder {
    buf: Vec<u8>,
    mtime: u64,
}

/// The fields of one raw header; see [`TarBuilder::raw`].
#[derive(Debug, Clone)]
pub struct RawEntry<'a> {
    /// Path bytes exactly as they go into the archive.
    pub path: &'a [u8],
    /// Entry type byte (`b'0'` file, `b'5'` dir, `b'2'` symlink, ...).
    pub kind: u8,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Size written in the header (may differ from `data.len()`).
    pub size: u64,
    /// Link target bytes.
    pub link: &'a [u8],
    /// Device major and minor.
    pub dev: (u32, u32),
    /// Modification time.
    pub mtime: u64,
    /// Data written after the header (padded to 512).
    pub data: &'a [u8],
}

fn octal(field: &mut [u8], v: u64) {
    let n = field.len() - 1;
    let s = format!("{:0width$o}", v, width = n);
    let b = s.as_bytes();
    let start = b.len().saturating_sub(n);
    field[..n].copy_from_slice(&b[start..]);
    field[n] = 0;
}

fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

impl TarBuilder {
    /// An empty archive; entries get modification time 1_700_000_000.
    pub fn new() -> TarBuilder {
        TarBuilder {
            buf: Vec::new(),
            mtime: 1_700_000_000,
        }
    }

    fn header(&mut self, e: &RawEntry<'_>) {
        let mut h = [0u8; 512];
        let n = e.path.len().min(100);
        h[..n].copy_from_slice(&e.path[..n]);
        octal(&mut h[100..108], u64::from(e.mode));
        octal(&mut h[108..116], e.uid.min(0o7777777));
        octal(&mut h[116..124], e.gid.min(0o7777777));
        octal(&mut h[124..136], e.size.min(0o77777777777));
        octal(&mut h[136..148], e.mtime);
        h[156] = e.kind;
        let l = e.link.len().min(100);
        h[157..157 + l].copy_from_slice(&e.link[..l]);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        octal(&mut h[329..337], u64::from(e.dev.0));
        octal(&mut h[337..345], u64::from(e.dev.1));
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        octal(&mut h[148..155], sum);
        h[155] = b' ';
        self.buf.extend_from_slice(&h);
    }

    fn pad(&mut self) {
        let rem = self.buf.len() % 512;
        if rem != 0 {
            self.buf.resize(self.buf.len() + 512 - rem, 0);
        }
    }

    /// Appends one entry exactly as described, preceded by a PAX header
    /// when the path or link is longer than 100 bytes, the size does not
    /// fit 11 octal digits, or `pax` holds extra records.
    pub fn raw_with_pax(mut self, e: RawEntry<'_>, pax: &[(&[u8], &[u8])]) -> TarBuilder {
        let mut records = Vec::new();
        if e.path.len() > 100 {
            pax_record(&mut records, b"path", e.path);
        }
        if e.link.len() > 100 {
            pax_record(&mut records, b"linkpath", e.link);
        }
        if e.size > 0o77777777777 {
            pax_record(&mut records, b"size", e.size.to_string().as_bytes());
        }
        for (k, v) in pax {
            pax_record(&mut records, k, v);
        }
        if !records.is_empty() {
            let h = RawEntry {
                path: b"PaxHeaders/entry",
                kind: b'x',
                mode: 0o644,
                uid: 0,
                gid: 0,
                size: records.len() as u64,
                link: b"",
                dev: (0, 0),
                mtime: 0,
                data: &[],
            };
            self.header(&h);
            self.buf.extend_from_slice(&records);
            self.pad();
        }
        self.header(&e);
        self.buf.extend_from_slice(e.data);
        self.pad();
        self
    }

    /// Appends one entry exactly as described (see [`RawEntry`]).
    pub fn raw(self, e: RawEntry<'_>) -> TarBuilder {
        self.raw_with_pax(e, &[])
    }

    fn simple<'a>(
        &self,
        path: &'a [u8],
        kind: u8,
        mode: u32,
        data: &'a [u8],
        link: &'a [u8],
    ) -> RawEntry<'a> {
        RawEntry {
            path,
            kind,
            mode,
            uid: 0,
            gid: 0,
            size: data.len() as u64,
            link,
            dev: (0, 0),
            mtime: self.mtime,
            data,
        }
    }

    /// A directory (`path` gets a trailing `/`).
    pub fn dir(self, path: &str, mode: u32) -> TarBuilder {
        let p = format!("{}/", path.trim_end_matches('/'));
        let e = self.simple(p.as_bytes(), b'5', mode, b"", b"");
        let e = RawEntry { data: &[], ..e };
        self.raw(e)
    }

    /// A regular file.
    pub fn file(self, path: &str, data: &[u8], mode: u32) -> TarBuilder {
        let e = self.simple(path.as_bytes(), b'0', mode, data, b"");
        self.raw(e)
    }

    /// A regular file with owner and xattrs (`SCHILY.xattr.*` PAX records).
    pub fn file_owned(
        self,
        path: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
        xattrs: &[(&str, &[u8])],
    ) -> TarBuilder {
        let e = RawEntry {
            uid,
            gid,
            ..self.simple(path.as_bytes(), b'0', mode, data, b"")
        };
        let keys: Vec<Vec<u8>> = xattrs
            .iter()
            .map(|(k, _)| format!("SCHILY.xattr.{k}").into_bytes())
            .collect();
        let pax: Vec<(&[u8], &[u8])> = keys
            .iter()
            .zip(xattrs)
            .map(|(k, (_, v))| (k.as_slice(), *v))
            .collect();
        self.raw_with_pax(e, &pax)
    }

    /// A symbolic link.
    pub fn symlink(self, path: &str, target: &str) -> TarBuilder {
        let e = self.simple(path.as_bytes(), b'2', 0o777, b"", target.as_bytes());
        self.raw(e)
    }

    /// A hard link to an earlier entry.
    pub fn hardlink(self, path: &str, target: &str) -> TarBuilder {
        let e = self.simple(path.as_bytes(), b'1', 0o644, b"", target.as_bytes());
        self.raw(e)
    }

    /// A character device.
    pub fn char_device(self, path: &str, major: u32, minor: u32) -> TarBuilder {
        let e = RawEntry {
            dev: (major, minor),
            ..self.simple(path.as_bytes(), b'3', 0o666, b"", b"")
        };
        self.raw(e)
    }

    /// A block device.
    pub fn block_device(self, path: &str, major: u32, minor: u32) -> TarBuilder {
        let e = RawEntry {
            dev: (major, minor),
            ..self.simple(path.as_bytes(), b'4', 0o660, b"", b"")
        };
        self.raw(e)
    }

    /// A named pipe.
    pub fn fifo(self, path: &str) -> TarBuilder {
        let e = self.simple(path.as_bytes(), b'6', 0o644, b"", b"");
        self.raw(e)
    }

    /// An OCI whiteout for `path` (`dir/.wh.name`).
    pub fn whiteout(self, path: &str) -> TarBuilder {
        let (dir, name) = match path.rsplit_once('/') {
            Some((d, n)) => (format!("{d}/"), n),
            None => (String::new(), path),
        };
        let p = format!("{dir}.wh.{name}");
        self.file(&p, b"", 0o644)
    }

    /// An OCI opaque-directory marker for `dir`.
    pub fn opaque(self, dir: &str) -> TarBuilder {
        let p = format!("{}/.wh..wh..opq", dir.trim_end_matches('/'));
        self.file(&p, b"", 0o644)
    }

    /// A header claiming `claimed` bytes followed by only `data` and no end
    /// marker (a truncated or lying archive).
    pub fn lying_size(mut self, path: &str, claimed: u64, data: &[u8]) -> TarBuilder {
        let e = RawEntry {
            size: claimed,
            ..self.simple(path.as_bytes(), b'0', 0o644, data, b"")
        };
        let mut records = Vec::new();
        if claimed > 0o77777777777 {
            pax_record(&mut records, b"size", claimed.to_string().as_bytes());
            let h = RawEntry {
                path: b"PaxHeaders/entry",
                kind: b'x',
                mode: 0o644,
                uid: 0,
                gid: 0,
                size: records.len() as u64,
                link: b"",
                dev: (0, 0),
                mtime: 0,
                data: &[],
            };
            self.header(&h);
            self.buf.extend_from_slice(&records);
            self.pad();
        }
        self.header(&e);
        self.buf.extend_from_slice(data);
        self
    }

    /// The archive with its end-of-archive marker.
    pub fn build(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&[0u8; 1024]);
        self.buf
    }

    /// The archive without an end marker (as a truncated download).
    pub fn build_unterminated(self) -> Vec<u8> {
        self.buf
    }

    /// The archive, gzip-compressed.
    pub fn gzip(self) -> Vec<u8> {
        gzip(&self.build())
    }

    /// The archive, zstd-compressed.
    pub fn zstd(self) -> Vec<u8> {
        zstd(&self.build())
    }
}

/// gzip-compresses `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

/// zstd-compresses `data`.
pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(data, 3).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gnu_tar_lists_what_we_build() {
        let tar = TarBuilder::new()
            .dir("a", 0o755)
            .file("a/f", b"hello", 0o644)
            .file(&format!("a/{}", "x".repeat(150)), b"long", 0o600)
            .symlink("a/l", "f")
            .build();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = dir.path().join("t.tar");
        std::fs::write(&p, &tar).unwrap_or_else(|e| panic!("{e}"));
        let out = std::process::Command::new("tar")
            .arg("-tf")
            .arg(&p)
            .output()
            .unwrap_or_else(|e| panic!("tar (Debian package tar): {e}"));
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            listing.contains(&format!("a/{}", "x".repeat(150))),
            "{listing}"
        );
        assert!(listing.contains("a/l"), "{listing}");
    }
}
