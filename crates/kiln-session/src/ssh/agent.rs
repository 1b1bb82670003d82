//! The ssh-agent protocol (draft-miller-ssh-agent) as far as forwarding
//! needs it: length-prefixed messages, the request types a build may use,
//! and a loop that answers them from a local agent socket or a [`Keyring`].

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use futures::{Stream, StreamExt};
use kiln_proto::moby::sshforward::v1::BytesMessage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tonic::Status;

use super::Keyring;
use crate::error::{Error, Result};

/// `SSH_AGENT_FAILURE`.
pub(crate) const FAILURE: u8 = 5;
/// `SSH_AGENTC_REQUEST_IDENTITIES`.
pub(crate) const REQUEST_IDENTITIES: u8 = 11;
/// `SSH_AGENT_IDENTITIES_ANSWER`.
pub(crate) const IDENTITIES_ANSWER: u8 = 12;
/// `SSH_AGENTC_SIGN_REQUEST`.
pub(crate) const SIGN_REQUEST: u8 = 13;
/// `SSH_AGENT_SIGN_RESPONSE`.
pub(crate) const SIGN_RESPONSE: u8 = 14;

/// Largest request accepted from the daemon (OpenSSH's agent uses 256 KiB).
const MAX_REQUEST: usize = 256 * 1024;
/// Largest answer accepted from the local agent.
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// Who answers the requests.
pub(crate) enum Backend {
    /// A connection to the user's agent.
    Socket(UnixStream),
    /// Keys loaded in process.
    Keys(Arc<Keyring>),
}

impl Backend {
    async fn answer(&mut self, request: &[u8]) -> Result<Vec<u8>> {
        let kind = request.first().copied().unwrap_or(0);
        // Read-only, like BuildKit's readOnlyAgent: a build may list keys
        // and sign, never add, remove, lock or extend.
        if kind != REQUEST_IDENTITIES && kind != SIGN_REQUEST {
            tracing::debug!(request = kind, "refused ssh-agent request");
            return Ok(vec![FAILURE]);
        }
        match self {
            Self::Keys(keys) => Ok(keys.answer(request)),
            Self::Socket(conn) => {
                let len = u32::try_from(request.len())
                    .map_err(|_| Error::protocol("ssh-agent request too large"))?;
                let io = |e| Error::io("talk to", "ssh agent socket", e);
                conn.write_all(&len.to_be_bytes()).await.map_err(io)?;
                conn.write_all(request).await.map_err(io)?;
                let len = conn.read_u32().await.map_err(io)? as usize;
                if len > MAX_RESPONSE {
                    return Err(Error::protocol("ssh-agent answer too large"));
                }
                let mut answer = vec![0u8; len];
                conn.read_exact(&mut answer).await.map_err(io)?;
                Ok(answer)
            }
        }
    }
}

/// Answers agent requests arriving in `inbound` until the daemon closes it.
///
/// # Errors
/// [`Error::Stream`] when the daemon's stream fails, [`Error::Io`] when the
/// local agent fails, [`Error::PacketProtocol`] for oversized messages.
pub(crate) async fn serve<S>(
    mut inbound: S,
    tx: mpsc::Sender<Result<BytesMessage, Status>>,
    mut backend: Backend,
) -> Result<()>
where
    S: Stream<Item = Result<BytesMessage, Status>> + Unpin,
{
    let mut buf = BytesMut::new();
    while let Some(msg) = inbound.next().await {
        buf.extend_from_slice(&msg.map_err(Error::Stream)?.data);
        while buf.len() >= 4 {
            let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if len > MAX_REQUEST {
                return Err(Error::protocol("ssh-agent request too large"));
            }
            if buf.len() < 4 + len {
                break;
            }
            buf.advance(4);
            let request = buf.split_to(len);
            let answer = backend.answer(&request).await?;
            let mut framed = Vec::with_capacity(4 + answer.len());
            framed.extend_from_slice(&(answer.len() as u32).to_be_bytes());
            framed.extend_from_slice(&answer);
            if tx.send(Ok(BytesMessage { data: framed })).await.is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Reads an SSH `string` (u32 length + bytes) from the front of `buf`.
pub(crate) fn read_string<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    if buf.len() < 4 {
        return None;
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let rest = &buf[4..];
    if rest.len() < len {
        return None;
    }
    let (s, tail) = rest.split_at(len);
    *buf = tail;
    Some(s)
}

/// Appends an SSH `string`.
pub(crate) fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_roundtrip() {
        let mut out = Vec::new();
        put_string(&mut out, b"ssh-ed25519");
        put_string(&mut out, b"");
        let mut cur = out.as_slice();
        assert_eq!(read_string(&mut cur), Some(&b"ssh-ed25519"[..]));
        assert_eq!(read_string(&mut cur), Some(&b""[..]));
        assert_eq!(read_string(&mut cur), None);
    }
}
