//! A tonic codec that sends Go's bytes and reads replies with prost.

use std::marker::PhantomData;

use bytes::BufMut;
use tonic::codec::{Codec, EncodeBuf, Encoder};
use tonic::Status;
use tonic_prost::ProstDecoder;

use super::GoEncode;

/// Encodes requests with [`GoEncode`] and decodes replies with prost: the
/// codec for calls whose requests hold maps or definitions
/// (`Control.Solve`, `LLBBridge.Solve`, `LLBBridge.Return`, …). Use it with
/// `tonic::client::Grpc::unary` and the paths in [`crate::methods`].
///
/// ```
/// use kiln_proto::{control, wire};
/// type SolveCodec =
///     wire::GoCodec<wire::WithDefinition<control::SolveRequest>, control::SolveResponse>;
/// let _codec = SolveCodec::default();
/// ```
#[derive(Debug)]
pub struct GoCodec<E, D> {
    _types: PhantomData<fn(E) -> D>,
}

impl<E, D> Default for GoCodec<E, D> {
    fn default() -> Self {
        GoCodec {
            _types: PhantomData,
        }
    }
}

impl<E, D> Clone for GoCodec<E, D> {
    fn clone(&self) -> Self {
        GoCodec::default()
    }
}

impl<E, D> Codec for GoCodec<E, D>
where
    E: GoEncode + Send + 'static,
    D: prost::Message + Default + Send + 'static,
{
    type Encode = E;
    type Decode = D;
    type Encoder = GoEncoder<E>;
    type Decoder = ProstDecoder<D>;

    fn encoder(&mut self) -> Self::Encoder {
        GoEncoder {
            _types: PhantomData,
        }
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::default()
    }
}

/// The encoding half of [`GoCodec`].
#[derive(Debug)]
pub struct GoEncoder<E> {
    _types: PhantomData<fn(E)>,
}

impl<E: GoEncode> Encoder for GoEncoder<E> {
    type Item = E;
    type Error = Status;

    fn encode(&mut self, item: E, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item.to_go_bytes());
        Ok(())
    }
}
