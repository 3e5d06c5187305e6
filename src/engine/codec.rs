//! The bytes of a unary call as tonic carries them: request bodies the XS
//! side encoded, replies decoded later by their route, and the client's
//! message size limits.

use crate::conn::Shared;
use crate::error::EtcdError;
use bytes::{Buf, BufMut, Bytes};
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::Status;

/// Passes request bytes (already protobuf, encoded by the XS side) through
/// unchanged and hands the reply bytes back undecoded.
#[derive(Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

/// tonic starts every request's and reply's buffer at 8 KiB; etcd requests
/// and most replies are a few hundred bytes, and thousands may be in flight.
const CODEC_BUFFER: usize = 512;

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(CODEC_BUFFER, 32 * 1024)
    }
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(CODEC_BUFFER, 32 * 1024)
    }
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// A tonic client for `channel` with the client's message size limits
/// (none by default: etcd serves ranges far beyond gRPC's 4 MiB default).
pub fn grpc(shared: &Shared, channel: Channel) -> tonic::client::Grpc<Channel> {
    // The send limit is checked before a request is handed to tonic, whose
    // own check would reset the HTTP/2 stream mid-request.
    tonic::client::Grpc::new(channel)
        .max_decoding_message_size(shared.cfg.max_recv_size)
        .max_encoding_message_size(usize::MAX)
}

/// tonic reports a reply over the decoding limit as OUT_OF_RANGE; the
/// gRPC spec (and every other client) calls it RESOURCE_EXHAUSTED.
pub fn over_recv_limit(
    shared: &Shared,
    status: &Status,
    source: &'static str,
) -> Option<EtcdError> {
    let limit = shared.cfg.max_recv_size;
    if limit == usize::MAX
        || status.code() != tonic::Code::OutOfRange
        || !status
            .message()
            .starts_with("Error, decoded message length too large")
    {
        return None;
    }
    Some(EtcdError::new(
        tonic::Code::ResourceExhausted,
        format!(
            "reply exceeds max_recv_size ({limit} bytes): {}",
            status.message()
        ),
        source,
    ))
}
