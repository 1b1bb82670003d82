//! What loading an image into another image store (podman, containerd)
//! reports back.

use crate::digest::Digest;
use crate::platform::Platform;

/// An image loaded into a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// The name the store now gives it (as the store spells it).
    pub name: String,
    /// The digest the name points at: the index (manifest list) for a
    /// multi-platform image, else the image manifest.
    pub digest: Digest,
    /// Every platform the store now holds under the name.
    pub platforms: Vec<Platform>,
}
