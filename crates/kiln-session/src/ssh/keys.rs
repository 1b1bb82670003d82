//! Private keys served by an in-process agent (`--ssh ID=KEYFILE`).

use std::path::PathBuf;

use super::agent::FAILURE;

/// Keys loaded from files, answering agent requests.
#[derive(Debug)]
pub struct Keyring {
    _paths: Vec<PathBuf>,
}

impl Keyring {
    /// Loads private keys.
    ///
    /// # Errors
    /// A reason when a key cannot be loaded.
    pub(crate) fn load(paths: &[PathBuf]) -> Result<Self, String> {
        let _ = paths;
        Err("ssh private key files are not supported yet; load them into an ssh-agent and pass its socket".to_owned())
    }

    /// Answers one agent request.
    pub(crate) fn answer(&self, _request: &[u8]) -> Vec<u8> {
        vec![FAILURE]
    }
}
