//! Private keys served by an in-process agent (`--ssh ID=KEYFILE[,KEYFILE]`),
//! like BuildKit's keyring for key paths: it lists the keys and signs with
//! them, nothing else.

use std::io::Read;
use std::path::PathBuf;

use ssh_key::{Algorithm, HashAlg, PrivateKey, Signature};

use super::agent::{
    put_string, read_string, FAILURE, IDENTITIES_ANSWER, REQUEST_IDENTITIES, SIGN_REQUEST,
    SIGN_RESPONSE,
};

/// `SSH_AGENT_RSA_SHA2_256`: sign with `rsa-sha2-256`.
const RSA_SHA2_256: u32 = 2;
/// `SSH_AGENT_RSA_SHA2_512`: sign with `rsa-sha2-512`.
const RSA_SHA2_512: u32 = 4;

/// The most of a key file that is read (BuildKit reads 100 KiB).
const MAX_KEY_FILE: u64 = 100 * 1024;

struct Key {
    blob: Vec<u8>,
    comment: String,
    private: PrivateKey,
}

/// Keys loaded from OpenSSH private key files, answering agent requests.
/// `Debug` shows comments only, never key material.
pub struct Keyring {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field(
                "keys",
                &self.keys.iter().map(|k| &k.comment).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Keyring {
    /// Loads unencrypted OpenSSH-format private keys (Ed25519, ECDSA
    /// P-256/P-384, RSA).
    ///
    /// # Errors
    /// A reason naming the file when it cannot be read or parsed, or is
    /// passphrase-protected (load such keys into an ssh-agent instead).
    pub(crate) fn load(paths: &[PathBuf]) -> Result<Self, String> {
        let mut keys = Vec::new();
        for path in paths {
            let shown = path.display();
            let mut pem = Vec::new();
            std::fs::File::open(path)
                .and_then(|f| f.take(MAX_KEY_FILE).read_to_end(&mut pem))
                .map_err(|e| format!("failed to read {shown}: {e}"))?;
            let private = PrivateKey::from_openssh(&pem).map_err(|e| {
                format!("failed to parse {shown} (OpenSSH private key format expected): {e}")
            })?;
            if private.is_encrypted() {
                return Err(format!(
                    "{shown} is passphrase-protected: add it to an ssh-agent and pass the agent's socket"
                ));
            }
            let blob = private
                .public_key()
                .to_bytes()
                .map_err(|e| format!("failed to encode the public key of {shown}: {e}"))?;
            let comment = match private.comment() {
                "" => path.display().to_string(),
                c => c.to_owned(),
            };
            keys.push(Key {
                blob,
                comment,
                private,
            });
        }
        Ok(Self { keys })
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Answers one agent request (without its length prefix).
    pub(crate) fn answer(&self, request: &[u8]) -> Vec<u8> {
        match request.split_first() {
            Some((&REQUEST_IDENTITIES, _)) => self.identities(),
            Some((&SIGN_REQUEST, body)) => self.sign(body).unwrap_or_else(|| vec![FAILURE]),
            _ => vec![FAILURE],
        }
    }

    fn identities(&self) -> Vec<u8> {
        let mut out = vec![IDENTITIES_ANSWER];
        out.extend_from_slice(&(self.keys.len() as u32).to_be_bytes());
        for key in &self.keys {
            put_string(&mut out, &key.blob);
            put_string(&mut out, key.comment.as_bytes());
        }
        out
    }

    fn sign(&self, mut body: &[u8]) -> Option<Vec<u8>> {
        let blob = read_string(&mut body)?;
        let data = read_string(&mut body)?;
        let flags = match body {
            [a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]),
            _ => 0,
        };
        let key = self.keys.iter().find(|k| k.blob == blob)?;
        let signature = match key.private.algorithm() {
            Algorithm::Rsa { .. } => sign_rsa(&key.private, data, flags)?,
            _ => {
                use signature::Signer as _;
                key.private.try_sign(data).ok()?
            }
        };
        let mut encoded = Vec::new();
        ssh_encoding::Encode::encode(&signature, &mut encoded).ok()?;
        let mut out = vec![SIGN_RESPONSE];
        put_string(&mut out, &encoded);
        tracing::debug!(key = %key.comment, "signed with a forwarded key");
        Some(out)
    }
}

/// RSA signs with the hash the client asked for; plain `ssh-rsa` (SHA-1)
/// is refused.
fn sign_rsa(private: &PrivateKey, data: &[u8], flags: u32) -> Option<Signature> {
    use rsa::signature::{SignatureEncoding as _, Signer as _};
    let ssh_key::private::KeypairData::Rsa(keypair) = private.key_data() else {
        return None;
    };
    let key = rsa_private_key(keypair)?;
    let (hash, sig) = if flags & RSA_SHA2_512 != 0 {
        let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new(key);
        (HashAlg::Sha512, signer.try_sign(data).ok()?.to_vec())
    } else if flags & RSA_SHA2_256 != 0 {
        let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key);
        (HashAlg::Sha256, signer.try_sign(data).ok()?.to_vec())
    } else {
        tracing::debug!("refused an ssh-rsa (SHA-1) signature request");
        return None;
    };
    Signature::new(Algorithm::Rsa { hash: Some(hash) }, sig).ok()
}

/// The `rsa` crate's key for an OpenSSH RSA keypair. (ssh-key 0.6's own
/// conversion passes `p` twice instead of `p` and `q`, which `rsa` rejects.)
fn rsa_private_key(keypair: &ssh_key::private::RsaKeypair) -> Option<rsa::RsaPrivateKey> {
    let int = |m: &ssh_key::Mpint| m.as_positive_bytes().map(rsa::BigUint::from_bytes_be);
    rsa::RsaPrivateKey::from_components(
        int(&keypair.public.n)?,
        int(&keypair.public.e)?,
        int(&keypair.private.d)?,
        vec![int(&keypair.private.p)?, int(&keypair.private.q)?],
    )
    .ok()
}
