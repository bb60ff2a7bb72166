//! Minimal OCI image layout bookkeeping (`oci-layout`, `index.json`), enough
//! to pull into a directory that skopeo and umoci read, and to push from one
//! they wrote. The full image store lives in `kiln-image-layers`.

use std::path::Path;

use oci_spec::image::Descriptor;
use serde_json::{Value, json};

use crate::error::Error;

/// The annotation naming a tag in an OCI layout's `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// Adds (or replaces) `tag` -> `desc` in `dir/index.json`, creating the
/// layout files if needed.
pub fn add_to_index(dir: &Path, desc: &Descriptor, tag: &str) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating layout", dir, e))?;
    let layout = dir.join("oci-layout");
    if !layout.exists() {
        std::fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)
            .map_err(|e| Error::io("writing oci-layout", &layout, e))?;
    }
    let index_path = dir.join("index.json");
    let mut index: Value = match std::fs::read(&index_path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::InvalidManifest {
            reference: index_path.display().to_string(),
            media_type: crate::manifest::media_types::OCI_INDEX.to_owned(),
            what: e.to_string(),
        })?,
        Err(_) => {
            json!({"schemaVersion": 2, "mediaType": crate::manifest::media_types::OCI_INDEX, "manifests": []})
        }
    };
    let mut entry = serde_json::to_value(desc).map_err(|e| Error::Config {
        what: e.to_string(),
    })?;
    entry["annotations"] = json!({ REF_NAME_ANNOTATION: tag });
    let manifests = index.get_mut("manifests").and_then(Value::as_array_mut);
    match manifests {
        Some(list) => {
            list.retain(|m| {
                m.pointer("/annotations/org.opencontainers.image.ref.name")
                    .and_then(Value::as_str)
                    != Some(tag)
            });
            list.push(entry);
        }
        None => index["manifests"] = json!([entry]),
    }
    let tmp = dir.join(".index.json.kiln-tmp");
    let body = serde_json::to_vec(&index).map_err(|e| Error::Config {
        what: e.to_string(),
    })?;
    std::fs::write(&tmp, body).map_err(|e| Error::io("writing index.json", &tmp, e))?;
    std::fs::rename(&tmp, &index_path)
        .map_err(|e| Error::io("replacing index.json", &index_path, e))
}

/// The descriptor tagged `tag` in `dir/index.json` (or the only entry when
/// `tag` is `None`).
pub fn find_in_index(dir: &Path, tag: Option<&str>) -> Result<Descriptor, Error> {
    let index_path = dir.join("index.json");
    let b =
        std::fs::read(&index_path).map_err(|e| Error::io("reading index.json", &index_path, e))?;
    let idx: oci_spec::image::ImageIndex =
        serde_json::from_slice(&b).map_err(|e| Error::InvalidManifest {
            reference: index_path.display().to_string(),
            media_type: crate::manifest::media_types::OCI_INDEX.to_owned(),
            what: e.to_string(),
        })?;
    let found = idx.manifests().iter().find(|m| match tag {
        Some(t) => {
            m.annotations()
                .as_ref()
                .and_then(|a| a.get(REF_NAME_ANNOTATION))
                .map(String::as_str)
                == Some(t)
        }
        None => idx.manifests().len() == 1,
    });
    found.cloned().ok_or_else(|| Error::NotFound {
        reference: format!("{}:{}", dir.display(), tag.unwrap_or("<only entry>")),
    })
}
