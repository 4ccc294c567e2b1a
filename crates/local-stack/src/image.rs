//! Small but well-formed OCI image manifests for pushing "images" to ECR with `PutImage`.
//!
//! No registry blobs exist behind them; what matters is that every (repository, tag) pair
//! gets its own manifest and therefore its own digest, so a fault injected for one release's
//! digest can never match another release or another test's environment.

use sha2::{Digest, Sha256};

/// Media type of the manifests [`manifest`] makes.
pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// `sha256:<64 hex>` of `bytes`, the way registries name content.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in hash.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// An OCI image manifest (one config, two layers) unique to `repository` and `tag`.
///
/// The blob digests are derived from the repository and tag, so the same inputs always give
/// the same manifest (and digest) and different inputs never do.
pub fn manifest(repository: &str, tag: &str) -> String {
    let blob = |what: &str| sha256_digest(format!("{repository}:{tag}:{what}").as_bytes());
    let size = |what: &str| 1024 + (repository.len() + tag.len() + what.len()) as u64 * 97;
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": blob("config"),
            "size": size("config"),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": blob("base-layer"),
                "size": size("base-layer") * 1000,
            },
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": blob("app-layer"),
                "size": size("app-layer") * 100,
            }
        ],
        "annotations": {
            "org.opencontainers.image.ref.name": tag,
            "org.opencontainers.image.title": repository,
        }
    })
    .to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_of_nothing_is_the_well_known_empty_sha256() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn every_tag_and_repository_gets_its_own_digest() {
        let digests = [
            sha256_digest(manifest("orders", "v1").as_bytes()),
            sha256_digest(manifest("orders", "v2").as_bytes()),
            sha256_digest(manifest("other/orders", "v1").as_bytes()),
        ];
        assert_ne!(digests[0], digests[1]);
        assert_ne!(digests[0], digests[2]);
        assert_ne!(digests[1], digests[2]);
    }

    #[test]
    fn the_same_tag_always_gives_the_same_manifest() {
        assert_eq!(manifest("orders", "v1"), manifest("orders", "v1"));
    }

    #[test]
    fn a_manifest_is_an_oci_manifest_with_layers() {
        let m: serde_json::Value = serde_json::from_str(&manifest("orders", "v3")).unwrap();
        assert_eq!(m["schemaVersion"], 2);
        assert_eq!(m["mediaType"], OCI_MANIFEST_MEDIA_TYPE);
        assert_eq!(m["layers"].as_array().unwrap().len(), 2);
        let digest = m["config"]["digest"].as_str().unwrap();
        assert!(
            digest.starts_with("sha256:") && digest.len() == 71,
            "{digest}"
        );
        assert_eq!(m["annotations"]["org.opencontainers.image.ref.name"], "v3");
    }
}
