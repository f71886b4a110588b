//! OCI basics every airlock component shares, defined once: image references, `sha256`
//! digests (parse, compute, verify), media types, descriptors, image manifests and indexes,
//! and hashing I/O adapters. No network and no async runtime: callers bring their own.

mod digest;
mod manifest;
mod reference;

pub use digest::{hash_reader, Digest, DigestParseError, Hasher, HashingReader, HashingWriter};
pub use manifest::{
    is_index_media_type, is_manifest_media_type, platform_matches, Descriptor, ImageIndex, ManifestLinks, SubjectRef,
    EMPTY_JSON, MAX_MANIFEST_SIZE, OCI_LAYOUT_FILE,
};
pub use manifest::{
    MEDIA_TYPE_DOCKER_CONFIG, MEDIA_TYPE_DOCKER_LAYER_GZIP, MEDIA_TYPE_DOCKER_LAYER_TAR, MEDIA_TYPE_DOCKER_LIST,
    MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_EMPTY, MEDIA_TYPE_IMAGE_CONFIG, MEDIA_TYPE_IMAGE_INDEX, MEDIA_TYPE_IMAGE_MANIFEST,
    MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_TAR, MEDIA_TYPE_LAYER_ZSTD,
};
pub use reference::{host_of, is_valid_tag, validate_repository, NameError, Reference, ReferenceError};
