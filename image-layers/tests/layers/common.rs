//! Tree fixtures and a full-fidelity tree snapshot for comparisons.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use kiln_image_layers::Digest;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Everything observable about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    pub content: Option<Digest>,
    pub size: u64,
    pub link: Option<String>,
    pub rdev: u64,
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// Other paths sharing this inode (hardlinks), sorted.
    pub peers: Vec<String>,
}

pub fn xattrs(p: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut list = vec![0u8; 65536];
    let Ok(n) = rustix::fs::llistxattr(p, &mut list[..]) else {
        return out;
    };
    let mut val = vec![0u8; 65536];
    for name in list[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        if let Ok(len) = rustix::fs::lgetxattr(p, name, &mut val[..]) {
            out.insert(
                String::from_utf8_lossy(name).into_owned(),
                val[..len].to_vec(),
            );
        }
    }
    out
}

/// A snapshot of every entry below `root` (not the root itself).
pub fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    walk(root, root, &mut out, &mut inodes);
    for group in inodes.values().filter(|g| g.len() > 1) {
        for p in group {
            if let Some(n) = out.get_mut(p) {
                n.peers = group.clone();
            }
        }
    }
    out
}

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, Node>,
    inodes: &mut BTreeMap<(u64, u64), Vec<String>>,
) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    for p in names {
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        let rel = p
            .strip_prefix(root)
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ft = m.file_type();
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else if ft.is_fifo() {
            "fifo"
        } else {
            "file"
        };
        if kind == "file" {
            inodes
                .entry((m.dev(), m.ino()))
                .or_default()
                .push(rel.clone());
        }
        let node = Node {
            kind,
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            mtime: if kind == "symlink" {
                (0, 0)
            } else {
                (m.mtime(), m.mtime_nsec())
            },
            content: (kind == "file").then(|| Digest::sha256(&fs::read(&p).unwrap_or_default())),
            size: if kind == "dir" { 0 } else { m.len() },
            link: fs::read_link(&p)
                .ok()
                .map(|l| l.to_string_lossy().into_owned()),
            rdev: m.rdev(),
            xattrs: xattrs(&p),
            peers: Vec::new(),
        };
        out.insert(rel, node);
        if kind == "dir" {
            walk(root, &p, out, inodes);
        }
    }
}

/// Asserts two snapshots are equal, naming the first difference.
pub fn assert_same(a: &BTreeMap<String, Node>, b: &BTreeMap<String, Node>) {
    for (k, v) in a {
        match b.get(k) {
            None => panic!("{k} missing from the second tree"),
            Some(w) => assert_eq!(v, w, "entry {k} differs"),
        }
    }
    for k in b.keys() {
        assert!(a.contains_key(k), "{k} only in the second tree");
    }
}

pub fn set_mtime(p: &Path, sec: i64, nsec: i64) {
    let t = rustix::fs::Timespec {
        tv_sec: sec,
        tv_nsec: nsec as _,
    };
    let ts = rustix::fs::Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &ts,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap_or_else(|e| panic!("utimensat {}: {e}", p.display()));
}

pub fn set_xattr(p: &Path, k: &str, v: &[u8]) {
    rustix::fs::lsetxattr(p, k, v, rustix::fs::XattrFlags::empty())
        .unwrap_or_else(|e| panic!("setxattr {k} on {}: {e}", p.display()));
}

pub fn write(p: &Path, data: &[u8], mode: u32) {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).unwrap_or_else(|e| panic!("{e}"));
    }
    fs::write(p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap_or_else(|e| panic!("{e}"));
}

pub fn mknod(p: &Path, kind: rustix::fs::FileType, dev: u64) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p,
        kind,
        rustix::fs::Mode::from_raw_mode(0o640),
        dev,
    )
    .unwrap_or_else(|e| panic!("mknod {} (tests run as root): {e}", p.display()));
}

/// A tree with every file type a layer can carry.
pub fn rich_tree(root: &Path) {
    fs::create_dir_all(root.join("etc/conf.d")).unwrap_or_else(|e| panic!("{e}"));
    fs::create_dir_all(root.join("usr/bin")).unwrap_or_else(|e| panic!("{e}"));
    fs::create_dir_all(root.join("var/empty")).unwrap_or_else(|e| panic!("{e}"));
    write(
        &root.join("etc/passwd"),
        b"root:x:0:0:root:/root:/bin/sh\n",
        0o644,
    );
    write(&root.join("etc/shadow"), b"root:*:1::::::\n", 0o600);
    write(&root.join("usr/bin/tool"), &vec![0x7f; 300_000], 0o4755);
    fs::hard_link(root.join("usr/bin/tool"), root.join("usr/bin/tool-alias"))
        .unwrap_or_else(|e| panic!("{e}"));
    symlink("tool", root.join("usr/bin/tool-link")).unwrap_or_else(|e| panic!("{e}"));
    symlink("/nonexistent/absolute", root.join("etc/dangling")).unwrap_or_else(|e| panic!("{e}"));
    let long = root.join(format!("etc/conf.d/{}", "n".repeat(180)));
    write(&long, b"long name", 0o640);
    std::os::unix::fs::chown(&long, Some(1234), Some(4321)).unwrap_or_else(|e| panic!("{e}"));
    symlink("x".repeat(150), root.join("etc/long-target")).unwrap_or_else(|e| panic!("{e}"));
    mknod(&root.join("etc/fifo"), rustix::fs::FileType::Fifo, 0);
    mknod(
        &root.join("etc/null"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::makedev(1, 3),
    );
    mknod(
        &root.join("etc/blk"),
        rustix::fs::FileType::BlockDevice,
        rustix::fs::makedev(7, 0),
    );
    // A sparse file: 8 MiB with data only at the ends.
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = fs::File::create(root.join("var/sparse")).unwrap_or_else(|e| panic!("{e}"));
        f.write_all(b"head").unwrap_or_else(|e| panic!("{e}"));
        f.seek(SeekFrom::Start(8 << 20))
            .unwrap_or_else(|e| panic!("{e}"));
        f.write_all(b"tail").unwrap_or_else(|e| panic!("{e}"));
    }
    set_xattr(&root.join("etc/passwd"), "user.kiln", b"value\0binary");
    set_xattr(&root.join("usr/bin"), "user.dir", b"1");
    fs::set_permissions(root.join("var/empty"), fs::Permissions::from_mode(0o1777))
        .unwrap_or_else(|e| panic!("{e}"));
    // Sub-second times everywhere, directories last.
    let mut all: Vec<_> = walkdir(root);
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, p) in all.iter().enumerate() {
        set_mtime(p, 1_600_000_000 + i as i64, 123_456_789);
    }
}

pub fn walkdir(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)
            .map(|rd| rd.flatten().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let p = e.path();
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

/// `cp -a` (GNU coreutils) — keeps hardlinks, xattrs, times, devices.
pub fn copy_tree(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .unwrap_or_else(|e| panic!("cp (coreutils): {e}"));
    assert!(st.success());
}
