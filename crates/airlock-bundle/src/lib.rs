//! The airlock bundle format on its own: the streaming reader and verifier, the ustar entry
//! checks, the signed manifest and its constants, trust (keys and thresholds), minisign
//! signing, volumes, and the artifact model a bundle's index carries. No network and no
//! fetchers: the connected side (`airlock-bundler`) writes bundles with this crate and the
//! air-gapped side (`airlock-mirror`) reads them with it.

mod artifact;
pub mod format;
mod progress;
mod read;
mod signing;
mod trust;
pub mod ustar;
mod verify;
pub mod volumes;
mod writeback;

pub use artifact::{annotation, file_artifact_manifest, guess_media_type, tag_for, ArtifactKind, UnknownKind};
pub use format::{format_time, Artifact, BlobRecord, BundleManifest, FileRecord, FormatError};
pub use progress::{human_bytes, EntryLabels, Progress, Silent};
pub use read::{read_head, BundleError, BundleReader, EntryInfo, EntryKind, Limits, Summary, MAX_INDEX_SIZE, MAX_WINDOW_LOG};
pub use signing::{with_suffix, write_key_pair, KeyError, KeyId, PublicKey, SecretKey, SignatureError, SignatureFile};
pub use trust::{Requirement, Requirements, Signer, Trust, TrustError, TrustPolicy};
pub use verify::{verify_file, verify_volumes, Report, VolumesError};
pub use writeback::WritebackFile;
