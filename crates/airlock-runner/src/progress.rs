//! What the engine reports while it pulls an image or starts an environment.

use std::path::PathBuf;

/// Progress of a pull or a start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineEvent {
    ManifestResolved { reference: String, digest: String },
    BlobCached { digest: String, size: u64 },
    BlobDownloading { digest: String, size: u64 },
    BlobProgress { digest: String, received: u64, size: u64 },
    BlobDownloaded { digest: String, size: u64 },
    LayerUnpacking { digest: String, index: usize, count: usize },
    /// Device nodes in a layer are never created (the runtime provides `/dev`).
    DevicesSkipped { layer: String, count: usize },
    ImageReady { digest: String, rootfs: PathBuf },
    RootfsMounted { env: String },
    Started { env: String, pid: i32 },
}
