//! Image references, platforms, digests, OCI config/manifest/index and a registry client
