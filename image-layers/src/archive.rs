//! `docker save` / `docker load` archives and rootfs tarball import.
//!
//! Two archive layouts exist in the wild, and [`docker_load`] reads both:
//!
//! - the classic one (Docker < 25, `skopeo copy ... docker-archive:`):
//!   `manifest.json` listing each image's `Config` (`<id>.json`), its
//!   `RepoTags` and its `Layers` (`<id>/layer.tar`), plus `repositories`;
//! - the OCI-layout style Docker 25+ writes: the same `manifest.json` whose
//!   paths point into `blobs/sha256/`, next to `oci-layout` and
//!   `index.json` (an archive with only `index.json`, as `skopeo copy ...
//!   oci-archive:` writes, is read through the index).
//!
//! [`docker_save`] writes the Docker 25+ form, which old and new `docker
//! load`, skopeo and containerd all read.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, MediaType};
use serde_json::{Value, json};

use crate::compression::{Compression, Encoder, EncoderSettings};
use crate::digest::{Algorithm, Digest, DigestReader, DigestWriter};
use crate::error::{Error, Result, io_err};
use crate::store::Store;

fn arch_err(what: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Archive {
        what: what.into(),
        reason: reason.into(),
    }
}

/// Choices for [`import_rootfs_tar`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ImportOptions {
    /// Compression of the stored layer. Default: gzip.
    pub compression: Compression,
    /// `architecture` of the image config. Default: the host's, in Go's
    /// naming (`amd64`, `arm64`, ...).
    pub architecture: String,
    /// `os` of the image config. Default: `linux`.
    pub os: String,
    /// Tag the imported image with this name. Default: none (the image is
    /// recorded untagged).
    pub tag: Option<String>,
    /// `created` timestamp (RFC 3339) of the config and its history entry.
    /// Default: none, which keeps imports reproducible.
    pub created: Option<String>,
}

/// The host architecture in GOARCH naming, as image configs use it.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "arm" => "arm",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            compression: Compression::Gzip,
            architecture: host_architecture().to_owned(),
            os: "linux".to_owned(),
            tag: None,
            created: None,
        }
    }
}

/// Imports a root filesystem tarball (plain, gzip or zstd) as a
/// single-layer image: the tar stream is recompressed into a layer blob in
/// one pass (diffID and blob digest computed on the way), then a config and
/// manifest are written. Returns the manifest descriptor.
pub fn import_rootfs_tar(
    store: &Store,
    reader: impl Read,
    options: &ImportOptions,
) -> Result<Descriptor> {
    let (layer, diff_id) = import_rootfs_layer(store, reader, options.compression)?;
    image_from_layers(store, &[(layer, diff_id)], options)
}

/// Stores a root filesystem tarball (plain, gzip or zstd, as
/// [`Compression::auto_decoder`] detects) as one layer blob,
/// recompressed with `compression` in one pass. Returns the layer's
/// descriptor and its diffID; writing a config and manifest for it is the
/// caller's business (see [`import_rootfs_tar`] for a default one).
pub fn import_rootfs_layer(
    store: &Store,
    reader: impl Read,
    compression: Compression,
) -> Result<(Descriptor, Digest)> {
    let read_err = |source| Error::LayerRead {
        layer: "rootfs tarball".into(),
        entry: None,
        source,
    };
    let (_, mut decoder) = Compression::auto_decoder(reader).map_err(read_err)?;
    let mut blob = store.blob_writer()?;
    let settings = EncoderSettings {
        compression,
        level: None,
        threads: std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1),
    };
    let enc = Encoder::new(&mut blob, settings).map_err(io_err("compress rootfs", store.root()))?;
    let mut tar = DigestWriter::new(enc, Algorithm::Sha256);
    io::copy(&mut decoder, &mut tar).map_err(read_err)?;
    let (enc, diff_id, _) = tar.finish();
    enc.finish()
        .map_err(io_err("compress rootfs", store.root()))?;
    let layer = blob.commit(compression.oci_media_type())?;
    Ok((layer, diff_id))
}

/// Writes config and manifest for already stored layers; tags or records
/// the image. Returns the manifest descriptor.
fn image_from_layers(
    store: &Store,
    layers: &[(Descriptor, Digest)],
    options: &ImportOptions,
) -> Result<Descriptor> {
    let mut config = json!({
        "architecture": options.architecture,
        "os": options.os,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|(_, d)| d.to_string()).collect::<Vec<_>>()},
        "history": [{"created_by": "kiln import", "comment": "imported from a rootfs tarball"}],
    });
    if let Some(c) = &options.created {
        config["created"] = json!(c);
        config["history"][0]["created"] = json!(c);
    }
    let config_bytes = serde_json::to_vec(&config).map_err(|source| Error::Json {
        what: "image config".into(),
        source,
    })?;
    let config_desc = store.put_bytes(MediaType::ImageConfig, &config_bytes)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": layers.iter().map(|(d, _)| d).collect::<Vec<_>>(),
    });
    let bytes = serde_json::to_vec(&manifest).map_err(|source| Error::Json {
        what: "image manifest".into(),
        source,
    })?;
    let desc = store.put_bytes(MediaType::ImageManifest, &bytes)?;
    match &options.tag {
        Some(t) => store.tag(t, &desc)?,
        None => store.add_untagged(&desc)?,
    }
    Ok(desc)
}

/// `name` as Docker records it in `RepoTags` (`:latest` added when the
/// reference has no tag).
fn repo_tag(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || name.contains('@') {
        name.to_owned()
    } else {
        format!("{name}:latest")
    }
}

/// Writes a `docker save` archive of the images named by `references`
/// (tags or digests in `store`) to `out`.
pub fn docker_save(store: &Store, references: &[&str], out: impl Write) -> Result<()> {
    let images: Vec<SaveImage<'_>> = references
        .iter()
        .map(|r| SaveImage {
            reference: r,
            name: if Digest::parse(r).is_ok() {
                None
            } else {
                Some(r)
            },
        })
        .collect();
    docker_save_named(store, &images, out)
}

/// One image for [`docker_save_named`].
#[derive(Debug, Clone, Copy)]
pub struct SaveImage<'a> {
    /// How to find the image in the store (a tag or a manifest digest).
    pub reference: &'a str,
    /// The name to record in the archive (`RepoTags`, `repositories`,
    /// `io.containerd.image.name`), as `docker save` writes it
    /// (`busybox:latest`); `None` writes the image without a name, as
    /// `docker save <image id>` does.
    pub name: Option<&'a str>,
}

/// Writes a `docker save` archive like [`docker_save`], with the name of
/// each image in the archive chosen by the caller (the store may hold
/// normalised names that Docker would write in their short form).
pub fn docker_save_named(store: &Store, images: &[SaveImage<'_>], out: impl Write) -> Result<()> {
    let mut builder = tar::Builder::new(out);
    let mut written = std::collections::BTreeSet::new();
    let mut manifest_json = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut index_entries = Vec::new();
    let werr = |path: &str| {
        let p = PathBuf::from(path);
        move |e: io::Error| io_err("write docker archive", p)(e)
    };
    let add_blob = |builder: &mut tar::Builder<_>,
                    d: &Digest,
                    written: &mut std::collections::BTreeSet<Digest>|
     -> Result<String> {
        let name = format!("blobs/{}/{}", d.algorithm(), d.hex());
        if written.insert(d.clone()) {
            let f = store.open_blob(d)?;
            let len = f
                .metadata()
                .map_err(io_err("stat blob", store.blob_path(d)))?
                .len();
            let mut h = tar::Header::new_ustar();
            h.set_size(len);
            h.set_mode(0o444);
            h.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut h, &name, f).map_err(werr(&name))?;
        }
        Ok(name)
    };
    for image in images {
        let reference = image.reference;
        let desc = store.resolve(reference)?;
        let mdigest = Digest::from_oci(desc.digest())?;
        let (manifest, _) = store.manifest(&mdigest)?;
        let cdigest = Digest::from_oci(manifest.config().digest())?;
        let config_path = add_blob(&mut builder, &cdigest, &mut written)?;
        let mut layer_paths = Vec::new();
        for l in manifest.layers() {
            layer_paths.push(add_blob(
                &mut builder,
                &Digest::from_oci(l.digest())?,
                &mut written,
            )?);
        }
        add_blob(&mut builder, &mdigest, &mut written)?;
        let tags: Vec<String> = image.name.map(repo_tag).into_iter().collect();
        for t in &tags {
            if let Some((repo, tag)) = t.rsplit_once(':') {
                let top = manifest
                    .layers()
                    .last()
                    .map(|l| l.digest().digest().to_owned())
                    .unwrap_or_default();
                repositories
                    .entry(repo.to_owned())
                    .or_default()
                    .insert(tag.to_owned(), top);
            }
        }
        // One manifest.json entry per image, listing all its names, as
        // `docker save a:1 a:2` writes (skopeo expects one item per image).
        let existing = manifest_json
            .iter_mut()
            .find(|m: &&mut Value| m.get("Config").and_then(Value::as_str) == Some(&config_path));
        match existing {
            Some(m) => {
                if let Some(Value::Array(list)) = m.get_mut("RepoTags") {
                    for t in &tags {
                        if !list.iter().any(|x| x.as_str() == Some(t)) {
                            list.push(json!(t));
                        }
                    }
                }
            }
            None => manifest_json
                .push(json!({"Config": config_path, "RepoTags": tags, "Layers": layer_paths})),
        }
        let mut entry = serde_json::to_value(&desc).map_err(|source| Error::Json {
            what: "descriptor".into(),
            source,
        })?;
        if let (Some(obj), Some(name)) = (entry.as_object_mut(), image.name) {
            let full = repo_tag(name);
            let tag = full
                .rsplit_once(':')
                .map(|(_, t)| t.to_owned())
                .unwrap_or_default();
            obj.insert(
                "annotations".into(),
                json!({"io.containerd.image.name": full, "org.opencontainers.image.ref.name": tag}),
            );
        }
        index_entries.push(entry);
    }
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": index_entries});
    let files: [(&str, Vec<u8>); 4] = [
        (
            "manifest.json",
            serde_json::to_vec(&manifest_json).unwrap_or_default(),
        ),
        (
            "repositories",
            serde_json::to_vec(&repositories).unwrap_or_default(),
        ),
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        ("index.json", serde_json::to_vec(&index).unwrap_or_default()),
    ];
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut h, name, &data[..])
            .map_err(werr(name))?;
    }
    builder
        .into_inner()
        .map_err(werr("end of archive"))?
        .flush()
        .map_err(werr("flush"))?;
    Ok(())
}

/// Loads a `docker save` archive (either layout; the archive itself may be
/// gzip or zstd compressed) into `store`, tagging each image with its
/// `RepoTags`. Returns the manifest descriptors of the loaded images.
///
/// The archive is unpacked to a temporary directory inside the store
/// first, because `manifest.json` usually comes last in it.
pub fn docker_load(store: &Store, reader: impl Read) -> Result<Vec<Descriptor>> {
    Ok(docker_load_named(store, reader, &|n: &str| n.to_owned())?
        .into_iter()
        .map(|l| l.descriptor)
        .collect())
}

/// An image [`docker_load_named`] stored.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LoadedImage {
    /// The manifest descriptor in the store.
    pub descriptor: Descriptor,
    /// The names it was tagged with in the store (after renaming), in
    /// archive order; empty for an image the archive did not name.
    pub names: Vec<String>,
}

/// Loads a `docker save` archive like [`docker_load`]; each name found in
/// the archive (`RepoTags`, `io.containerd.image.name`) goes through
/// `rename` before it becomes a tag in the store, so a caller can
/// normalise `busybox:latest` to `docker.io/library/busybox:latest`.
pub fn docker_load_named(
    store: &Store,
    reader: impl Read,
    rename: &dyn Fn(&str) -> String,
) -> Result<Vec<LoadedImage>> {
    let tmp = tempfile::Builder::new()
        .prefix("load-")
        .tempdir_in(store.root().join(".kiln-tmp"))
        .map_err(io_err("create temp dir", store.root()))?;
    let files = unpack_plain_files(reader, tmp.path())?;
    let get = |name: &str| files.get(name.trim_start_matches("./"));
    if let Some(mpath) = get("manifest.json") {
        let text = std::fs::read(mpath).map_err(io_err("read", mpath))?;
        let entries: Vec<Value> = serde_json::from_slice(&text).map_err(|source| Error::Json {
            what: "manifest.json".into(),
            source,
        })?;
        let mut out = Vec::new();
        for e in entries {
            let cpath = e
                .get("Config")
                .and_then(Value::as_str)
                .ok_or_else(|| arch_err("manifest.json", "entry without Config"))?;
            let cfile =
                get(cpath).ok_or_else(|| arch_err(cpath, "listed in manifest.json but missing"))?;
            let config_raw = std::fs::read(cfile).map_err(io_err("read", cfile))?;
            let config: Value =
                serde_json::from_slice(&config_raw).map_err(|source| Error::Json {
                    what: cpath.to_owned(),
                    source,
                })?;
            let diff_ids: Vec<Digest> = config
                .pointer("/rootfs/diff_ids")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(Digest::parse)
                        .collect::<Result<Vec<_>>>()
                })
                .transpose()?
                .unwrap_or_default();
            let config_desc = store.put_bytes(MediaType::ImageConfig, &config_raw)?;
            let mut layers = Vec::new();
            let lpaths: Vec<&str> = e
                .get("Layers")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if lpaths.len() != diff_ids.len() {
                return Err(arch_err(
                    cpath,
                    format!("{} layers but {} diff_ids", lpaths.len(), diff_ids.len()),
                ));
            }
            for (lp, diff_id) in lpaths.iter().zip(&diff_ids) {
                let lfile =
                    get(lp).ok_or_else(|| arch_err(*lp, "listed in manifest.json but missing"))?;
                layers.push(store_layer_file(store, lfile, diff_id)?);
            }
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config_desc,
                "layers": layers,
            });
            let bytes = serde_json::to_vec(&manifest).map_err(|source| Error::Json {
                what: "image manifest".into(),
                source,
            })?;
            let desc = store.put_bytes(MediaType::ImageManifest, &bytes)?;
            let tags: Vec<&str> = e
                .get("RepoTags")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if tags.is_empty() {
                store.add_untagged(&desc)?;
            }
            let mut names = Vec::new();
            for t in tags {
                let name = rename(t);
                store.tag(&name, &desc)?;
                names.push(name);
            }
            out.push(LoadedImage {
                descriptor: desc,
                names,
            });
        }
        return Ok(out);
    }
    if let Some(ipath) = get("index.json") {
        // An OCI layout archive: copy every blob (verified), then take over
        // the index entries and their names.
        for (name, path) in &files {
            if let Some(rest) = name.strip_prefix("blobs/")
                && let Some((alg, hex)) = rest.split_once('/')
            {
                let d = Digest::parse(&format!("{alg}:{hex}"))?;
                let f = File::open(path).map_err(io_err("open", path))?;
                store.put_blob_expecting(
                    BufReader::new(f),
                    &d,
                    None,
                    MediaType::Other("application/octet-stream".into()),
                )?;
            }
        }
        let text = std::fs::read(ipath).map_err(io_err("read", ipath))?;
        let index: Value = serde_json::from_slice(&text).map_err(|source| Error::Json {
            what: "index.json".into(),
            source,
        })?;
        let mut out = Vec::new();
        for e in index
            .get("manifests")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            let mut desc: Descriptor =
                serde_json::from_value(e.clone()).map_err(|source| Error::Json {
                    what: "index.json entry".into(),
                    source,
                })?;
            let name = e
                .pointer("/annotations/io.containerd.image.name")
                .or_else(|| e.pointer("/annotations/org.opencontainers.image.ref.name"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            desc.set_annotations(None);
            let names = match name {
                Some(n) => {
                    let n = rename(&n);
                    store.tag(&n, &desc)?;
                    vec![n]
                }
                None => {
                    store.add_untagged(&desc)?;
                    Vec::new()
                }
            };
            out.push(LoadedImage {
                descriptor: desc,
                names,
            });
        }
        return Ok(out);
    }
    Err(arch_err(
        "docker archive",
        "neither manifest.json nor index.json found",
    ))
}

/// Stores a layer file from an archive, keeping its compression, and checks
/// it decompresses to `diff_id`.
fn store_layer_file(store: &Store, path: &Path, diff_id: &Digest) -> Result<Descriptor> {
    let mut f = File::open(path).map_err(io_err("open", path))?;
    let mut head = [0u8; 4];
    let n = f.read(&mut head).map_err(io_err("read", path))?;
    f.seek(SeekFrom::Start(0)).map_err(io_err("seek", path))?;
    let compression = Compression::detect(&head[..n]);
    // Verify the diffID while storing: one read of the file through both
    // the blob writer and (via a second reader) the decompressor.
    let (_, mut dec) = Compression::auto_decoder(BufReader::new(
        File::open(path).map_err(io_err("open", path))?,
    ))
    .map_err(io_err("read layer", path))?;
    let mut check = DigestReader::new(&mut dec, diff_id.algorithm());
    io::copy(&mut check, &mut io::sink()).map_err(io_err("decompress layer", path))?;
    let (_, actual, _) = check.finish();
    if &actual != diff_id {
        return Err(Error::DigestMismatch {
            what: format!("layer {} of docker archive", path.display()),
            expected: diff_id.clone(),
            actual,
        });
    }
    store.put_blob(BufReader::new(f), compression.oci_media_type())
}

/// Extracts the regular files of an archive (never links or anything
/// outside `dir`) and maps their archive names to where they were put.
fn unpack_plain_files(reader: impl Read, dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let read_err = |source| Error::LayerRead {
        layer: "docker archive".into(),
        entry: None,
        source,
    };
    let (_, dec) = Compression::auto_decoder(reader).map_err(read_err)?;
    let mut ar = tar::Archive::new(dec);
    let mut files = BTreeMap::new();
    for (i, e) in ar.entries().map_err(read_err)?.enumerate() {
        let mut e = e.map_err(read_err)?;
        let name = String::from_utf8_lossy(&e.path_bytes())
            .trim_start_matches("./")
            .to_owned();
        if e.header().entry_type().is_symlink() || e.header().entry_type().is_hard_link() {
            // Old docker archives link identical layers: resolve to the target's copy.
            if let Some(target) = e.link_name_bytes() {
                let t = String::from_utf8_lossy(&target).into_owned();
                let base = Path::new(&name).parent().unwrap_or(Path::new("")).join(&t);
                let key = normalize(&base.to_string_lossy());
                if let Some(p) = files
                    .get(&key)
                    .or_else(|| files.get(&normalize(&t)))
                    .cloned()
                {
                    files.insert(name, p);
                }
            }
            continue;
        }
        if !e.header().entry_type().is_file() {
            continue;
        }
        let p = dir.join(format!("f{i}"));
        let mut out = File::create(&p).map_err(io_err("create", &p))?;
        io::copy(&mut e, &mut out).map_err(read_err)?;
        files.insert(name, p);
    }
    Ok(files)
}

fn normalize(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_tags_get_latest() {
        assert_eq!(repo_tag("busybox"), "busybox:latest");
        assert_eq!(repo_tag("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(repo_tag("app:1"), "app:1");
    }

    #[test]
    fn normalize_paths() {
        assert_eq!(normalize("a/../b/./c"), "b/c");
        assert_eq!(normalize("../x"), "x");
    }
}
