//! The rest of the API: tags (paginated), catalog, deleting manifests, the
//! referrers API with the tag-schema fallback, and arbitrary artifacts.

use std::collections::HashMap;

use bytes::Bytes;
use oci_spec::image::{Descriptor, Digest, ImageIndex, ImageManifest};
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue, LINK};
use reqwest::{Method, StatusCode};

use crate::blob::{MemoryBlobs, ProgressSink};
use crate::challenge::parse_link_next;
use crate::client::{Client, Endpoint, ReqBody, describe, status_error};
use crate::error::Error;
use crate::manifest::{Manifest, media_types};
use crate::pull::pull_scope;
use crate::push::PushOptions;
use crate::reference::Reference;

/// The OCI empty JSON blob `{}` used as config of artifacts without one.
pub const EMPTY_JSON: &[u8] = b"{}";

/// An artifact to push with [`Client::push_artifact`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Artifact {
    /// `artifactType` of the manifest (e.g. `application/vnd.example+type`).
    pub artifact_type: String,
    /// Blobs with their media types, in order.
    pub layers: Vec<(String, Bytes)>,
    /// The manifest this artifact refers to (signatures, SBOMs).
    pub subject: Option<Descriptor>,
    /// Manifest annotations.
    pub annotations: HashMap<String, String>,
}

impl Artifact {
    /// An artifact of `artifact_type` without layers.
    pub fn new(artifact_type: &str) -> Artifact {
        Artifact {
            artifact_type: artifact_type.to_owned(),
            layers: Vec::new(),
            subject: None,
            annotations: HashMap::new(),
        }
    }
}

/// Docker Hub's search endpoint (the v1 index API `docker search` uses).
pub const DOCKER_HUB_SEARCH_URL: &str = "https://index.docker.io/v1/search";

/// One result of [`Client::search`] (Docker's `docker search` columns).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SearchResult {
    /// The repository name.
    pub name: String,
    /// Its description (empty where the registry has none).
    pub description: String,
    /// Stars (0 where the registry has none).
    pub stars: u64,
    /// Whether it is an official image.
    pub official: bool,
}

/// Parses Docker Hub's search answer.
fn parse_hub_search(body: &[u8], limit: usize) -> Result<Vec<SearchResult>, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Hit {
        name: String,
        #[serde(default)]
        description: Option<String>,
        #[serde(default)]
        star_count: u64,
        #[serde(default)]
        is_official: bool,
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(default)]
        results: Vec<Hit>,
    }
    let a: Answer = serde_json::from_slice(body)?;
    Ok(a.results
        .into_iter()
        .take(limit)
        .map(|h| SearchResult {
            name: h.name,
            description: h.description.unwrap_or_default(),
            stars: h.star_count,
            official: h.is_official,
        })
        .collect())
}

impl Client {
    async fn get_json_pages(
        &self,
        ep: &Endpoint,
        scopes: &[String],
        first: String,
        key: &str,
    ) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > 10_000 {
                break;
            }
            let resp = self
                .request(
                    ep,
                    scopes,
                    Method::GET,
                    &url,
                    HeaderMap::new(),
                    ReqBody::Empty,
                    true,
                )
                .await?;
            if resp.status() == StatusCode::NOT_FOUND {
                return Err(Error::NotFound {
                    reference: format!("{}{url}", ep.host),
                });
            }
            if !resp.status().is_success() {
                return Err(status_error(&Method::GET, &url, resp).await);
            }
            next = resp
                .headers()
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_link_next);
            let full = resp.url().to_string();
            let body = resp.bytes().await.map_err(|e| Error::Http {
                method: "GET".to_owned(),
                url: full.clone(),
                what: describe(&e),
                source: Some(e),
            })?;
            let v: serde_json::Value =
                serde_json::from_slice(&body).map_err(|source| Error::Json {
                    url: full.clone(),
                    source,
                })?;
            if let Some(list) = v.get(key).and_then(|l| l.as_array()) {
                out.extend(list.iter().filter_map(|t| t.as_str()).map(str::to_owned));
            }
        }
        Ok(out)
    }

    /// All tags of `repo`, following `Link` pagination. `page_size` asks
    /// the registry for that many per page (`n=`).
    pub async fn list_tags(
        &self,
        repo: &Reference,
        page_size: Option<usize>,
    ) -> Result<Vec<String>, Error> {
        let ep = self.endpoint(repo.registry()).await?;
        let mut url = format!("/v2/{}/tags/list", repo.repository());
        if let Some(n) = page_size {
            url.push_str(&format!("?n={n}"));
        }
        self.get_json_pages(&ep, &[pull_scope(repo.repository())], url, "tags")
            .await
    }

    /// All repositories of `registry` (`/v2/_catalog`), following `Link`
    /// pagination.
    pub async fn catalog(
        &self,
        registry: &str,
        page_size: Option<usize>,
    ) -> Result<Vec<String>, Error> {
        let ep = self.endpoint(registry).await?;
        let mut url = "/v2/_catalog".to_owned();
        if let Some(n) = page_size {
            url.push_str(&format!("?n={n}"));
        }
        self.get_json_pages(&ep, &["registry:catalog:*".to_owned()], url, "repositories")
            .await
    }

    /// Searches `registry` for repositories whose name contains `term`
    /// (case-insensitive), at most `limit` results. Docker Hub (`docker.io`)
    /// has a search endpoint (`GET https://index.docker.io/v1/search`),
    /// which also gives descriptions, stars and the official flag; other
    /// registries are searched through their catalog
    /// ([`Client::catalog`]), whose names come back as `registry/name` so
    /// they can be pulled as shown. A registry that offers neither answers
    /// with an error (404, 401 or 403 for the catalog).
    pub async fn search(
        &self,
        registry: &str,
        term: &str,
        limit: usize,
    ) -> Result<Vec<SearchResult>, Error> {
        if registry == crate::reference::DOCKER_HUB {
            return self.search_docker_hub(term, limit).await;
        }
        let needle = term.to_lowercase();
        Ok(self
            .catalog(registry, None)
            .await?
            .into_iter()
            .filter(|name| name.to_lowercase().contains(&needle))
            .take(limit)
            .map(|name| SearchResult {
                name: format!("{registry}/{name}"),
                description: String::new(),
                stars: 0,
                official: false,
            })
            .collect())
    }

    async fn search_docker_hub(
        &self,
        term: &str,
        limit: usize,
    ) -> Result<Vec<SearchResult>, Error> {
        let mut url = reqwest::Url::parse(DOCKER_HUB_SEARCH_URL).map_err(|e| Error::Config {
            what: format!("search URL: {e}"),
        })?;
        url.query_pairs_mut()
            .append_pair("q", term)
            .append_pair("n", &limit.to_string());
        let resp = self
            .inner
            .http
            .get(url.clone())
            .header(reqwest::header::USER_AGENT, &self.inner.config.user_agent)
            .send()
            .await
            .map_err(|e| Error::Http {
                method: "GET".to_owned(),
                url: url.to_string(),
                what: describe(&e),
                source: Some(e),
            })?;
        if !resp.status().is_success() {
            return Err(status_error(&Method::GET, url.as_str(), resp).await);
        }
        let body = resp.bytes().await.map_err(|e| Error::Http {
            method: "GET".to_owned(),
            url: url.to_string(),
            what: describe(&e),
            source: Some(e),
        })?;
        parse_hub_search(&body, limit).map_err(|source| Error::Json {
            url: url.to_string(),
            source,
        })
    }

    /// Deletes the manifest `reference` names (by digest; a tag is resolved
    /// first, as the spec only allows deleting by digest on most registries).
    pub async fn delete_manifest(&self, reference: &Reference) -> Result<(), Error> {
        let digest = match reference.digest() {
            Some(d) => d.clone(),
            None => self.resolve(reference).await?,
        };
        let ep = self.endpoint(reference.registry()).await?;
        let url = format!("/v2/{}/manifests/{digest}", reference.repository());
        let scopes = [format!("repository:{}:delete", reference.repository())];
        let resp = self
            .request(
                &ep,
                &scopes,
                Method::DELETE,
                &url,
                HeaderMap::new(),
                ReqBody::Empty,
                true,
            )
            .await?;
        match resp.status() {
            StatusCode::ACCEPTED | StatusCode::OK | StatusCode::NO_CONTENT => Ok(()),
            StatusCode::NOT_FOUND => Err(Error::NotFound {
                reference: format!("{}@{digest}", reference.name()),
            }),
            _ => Err(status_error(&Method::DELETE, &format!("{}{url}", ep.base), resp).await),
        }
    }

    /// Manifests that refer to `subject` in `repo` (signatures, SBOMs),
    /// optionally only of `artifact_type`. Uses the referrers API, falling
    /// back to the `<alg>-<hex>` tag schema when the registry lacks it.
    pub async fn referrers(
        &self,
        repo: &Reference,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, Error> {
        let ep = self.endpoint(repo.registry()).await?;
        let mut url = format!("/v2/{}/referrers/{subject}", repo.repository());
        if let Some(t) = artifact_type {
            url.push_str(&format!("?artifactType={t}"));
        }
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_static(media_types::OCI_INDEX));
        let resp = self
            .request(
                &ep,
                &[pull_scope(repo.repository())],
                Method::GET,
                &url,
                h,
                ReqBody::Empty,
                true,
            )
            .await?;
        let list = if resp.status().is_success()
            && resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.starts_with(media_types::OCI_INDEX))
        {
            let full = resp.url().to_string();
            let body = resp.bytes().await.map_err(|e| Error::Http {
                method: "GET".to_owned(),
                url: full.clone(),
                what: describe(&e),
                source: Some(e),
            })?;
            let idx: ImageIndex = serde_json::from_slice(&body)
                .map_err(|source| Error::Json { url: full, source })?;
            idx.manifests().clone()
        } else if resp.status() == StatusCode::NOT_FOUND || resp.status().is_success() {
            match self.pull_manifest(&fallback_tag(repo, subject)?).await {
                Ok(m) => match m.manifest {
                    Manifest::Index(i) => i.manifests().clone(),
                    Manifest::Image(_) => Vec::new(),
                },
                Err(Error::NotFound { .. }) => Vec::new(),
                Err(e) => return Err(e),
            }
        } else {
            return Err(status_error(&Method::GET, &format!("{}{url}", ep.base), resp).await);
        };
        Ok(list
            .into_iter()
            .filter(|d| {
                artifact_type.is_none_or(|t| {
                    d.artifact_type().as_ref().map(|a| a.to_string()).as_deref() == Some(t)
                })
            })
            .collect())
    }

    /// Adds `desc` to the referrers fallback index of `subject` (tag
    /// `sha256-<hex>`), creating it if needed.
    pub(crate) async fn add_to_referrers_fallback(
        &self,
        reference: &Reference,
        subject: &Digest,
        desc: Descriptor,
    ) -> Result<(), Error> {
        let tag_ref = fallback_tag(reference, subject)?;
        let mut manifests: Vec<Descriptor> = match self.pull_manifest(&tag_ref).await {
            Ok(PulledIndex {
                manifest: Manifest::Index(i),
                ..
            }) => i.manifests().clone(),
            Ok(_) | Err(Error::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        if manifests.iter().any(|d| d.digest() == desc.digest()) {
            return Ok(());
        }
        manifests.push(desc);
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_types::OCI_INDEX,
            "manifests": manifests,
        });
        let bytes = serde_json::to_vec(&index).map_err(|e| Error::Config {
            what: e.to_string(),
        })?;
        Box::pin(self.push_manifest(&tag_ref, Bytes::from(bytes), media_types::OCI_INDEX)).await?;
        Ok(())
    }

    /// Pushes an artifact (any media types) as an OCI image manifest with
    /// `artifactType`, the empty config, and `subject` if given, to
    /// `reference`. Returns the manifest's descriptor.
    pub async fn push_artifact(
        &self,
        reference: &Reference,
        artifact: &Artifact,
        progress: &ProgressSink,
    ) -> Result<Descriptor, Error> {
        let mut blobs = MemoryBlobs::new();
        let empty = blobs.insert(Bytes::from_static(EMPTY_JSON));
        let mut layers = Vec::new();
        for (mt, data) in &artifact.layers {
            let d = blobs.insert(data.clone());
            layers.push(
                serde_json::json!({"mediaType": mt, "digest": d.to_string(), "size": data.len()}),
            );
        }
        let mut m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_types::OCI_MANIFEST,
            "artifactType": artifact.artifact_type,
            "config": {"mediaType": media_types::OCI_EMPTY, "digest": empty.to_string(), "size": EMPTY_JSON.len()},
            "layers": layers,
        });
        if let Some(s) = &artifact.subject {
            m["subject"] = serde_json::to_value(s).map_err(|e| Error::Config {
                what: e.to_string(),
            })?;
        }
        if !artifact.annotations.is_empty() {
            m["annotations"] =
                serde_json::to_value(&artifact.annotations).map_err(|e| Error::Config {
                    what: e.to_string(),
                })?;
        }
        let bytes = Bytes::from(serde_json::to_vec(&m).map_err(|e| Error::Config {
            what: e.to_string(),
        })?);
        let digest = self
            .push_image(
                reference,
                bytes.clone(),
                media_types::OCI_MANIFEST,
                &blobs,
                &PushOptions::default(),
                progress,
            )
            .await?;
        let mut desc =
            Descriptor::new(media_types::OCI_MANIFEST.into(), bytes.len() as u64, digest);
        desc.set_artifact_type(Some(artifact.artifact_type.as_str().into()));
        Ok(desc)
    }

    /// Pulls an artifact's manifest and all its blobs into memory (for small
    /// artifacts: signatures, SBOMs, attestations). Each blob is verified.
    pub async fn pull_artifact(
        &self,
        reference: &Reference,
    ) -> Result<(ImageManifest, Vec<(Descriptor, Bytes)>), Error> {
        let m = self.pull_manifest(reference).await?;
        let Manifest::Image(img) = m.manifest else {
            return Err(Error::InvalidManifest {
                reference: reference.to_string(),
                media_type: m.media_type,
                what: "an index, not an artifact manifest".to_owned(),
            });
        };
        let mut out = Vec::new();
        for l in img.layers() {
            let mut buf = Vec::new();
            self.pull_blob(
                reference,
                l.digest(),
                Some(l.size()),
                &mut buf,
                &crate::blob::no_progress(),
            )
            .await?;
            out.push((l.clone(), Bytes::from(buf)));
        }
        Ok((img, out))
    }
}

type PulledIndex = crate::pull::PulledManifest;

/// The referrers fallback tag for `subject` (`sha256-<hex>`).
fn fallback_tag(repo: &Reference, subject: &Digest) -> Result<Reference, Error> {
    let tag = format!("{}-{}", subject.algorithm(), subject.digest());
    let tag: String = tag.chars().take(128).collect();
    Reference::from_parts(repo.registry(), repo.repository(), Some(&tag), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_search_answers_parse_and_are_limited() {
        let body = br#"{"num_results":3,"query":"busy","results":[
            {"name":"busybox","description":"Busybox base image.","star_count":3000,"is_official":true,"is_automated":false},
            {"name":"user/busy","description":null,"star_count":2,"is_official":false},
            {"name":"other/busy"}]}"#;
        let r = parse_hub_search(body, 2).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0],
            SearchResult {
                name: "busybox".into(),
                description: "Busybox base image.".into(),
                stars: 3000,
                official: true,
            }
        );
        assert_eq!(r[1].description, "");
        assert!(parse_hub_search(b"\"not an object\"", 5).is_err());
    }
}
