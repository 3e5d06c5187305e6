//! The test hook `_echo_requests_for_testing`: a client that sends nothing
//! and answers every call and stream at once with prost's reading of the
//! request the XS side built, so that a test (t/48-request-encoding.t) can
//! check the protobuf the C writer produces, for every method and option,
//! against the types generated from the etcd protos. The bodies come from
//! the same XSUBs and the same submission path as any call's.

use crate::conn::Shared;
use crate::error::EtcdError;
use crate::perl::k;
use crate::perl::{Builder, Hv, ToPerl};
use crate::queue::Disposition;
use prost::Message;

/// prost's reading of one request body: `{method, type, value}` in Perl,
/// `value` being the decoded message in Rust's `Debug` notation.
#[derive(Debug)]
pub struct EchoedRequest {
    pub method: &'static str,
    pub request_type: &'static str,
    pub decoded: String,
}

impl ToPerl for EchoedRequest {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.bytes(h, k!("method"), self.method.as_bytes());
        b.bytes(h, k!("type"), self.request_type.as_bytes());
        b.bytes(h, k!("value"), self.decoded.as_bytes());
        h
    }
}

/// Decodes `body` as a `T` and insists that it is, byte for byte, prost's
/// own encoding of what it decoded to. Decoding alone would pass a body
/// with a field `T` does not have (prost skips unknown fields) or with a
/// singular field twice (the last one wins). prost writes fields in
/// field-number order, leaves out proto3 defaults (not an embedded message
/// or a oneof member that is present) and writes the shortest varints;
/// the C writer (xs-glue/pb.h) does the same on purpose, so equal bytes
/// need no normalizing and any difference is a mismatch.
pub fn decode_strictly<T>(method: &'static str, body: &[u8]) -> Result<EchoedRequest, String>
where
    T: Message + Default + std::fmt::Debug,
{
    let request_type = type_name::<T>();
    let message = T::decode(body).map_err(|e| {
        format!(
            "{method}: the body does not decode as {request_type}: {e} (body {})",
            hex(body)
        )
    })?;
    let canonical = message.encode_to_vec();
    if canonical != body {
        return Err(format!(
            "{method}: the body is not prost's encoding of the {request_type} it decodes to \
             (an unknown or repeated field, a default written out, or another field order): \
             sent {}, prost writes {} for {message:?}",
            hex(body),
            hex(&canonical)
        ));
    }
    Ok(EchoedRequest {
        method,
        request_type,
        decoded: format!("{message:?}"),
    })
}

/// The last part of T's path: the message name as prost generated it.
fn type_name<T>() -> &'static str {
    let path = std::any::type_name::<T>();
    path.rsplit("::").next().unwrap_or(path)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Answers call or stream `id` of `method` with the echo of its request
/// (its last answer: a stream ends with it).
pub fn answer(shared: &Shared, id: u64, method: &'static str, echo: Result<EchoedRequest, String>) {
    let result = echo
        .map(|e| Box::new(e) as crate::queue::Reply)
        .map_err(|msg| EtcdError::internal(msg, method));
    shared.send(id, Disposition::Last, result);
}

/// `answer` for a stream whose request the Rust side builds from what
/// the XS side passed (keepalive's lease id, observe's name).
pub fn answer_with<T>(shared: &Shared, id: u64, method: &'static str, request: &T)
where
    T: Message + Default + std::fmt::Debug,
{
    answer(
        shared,
        id,
        method,
        decode_strictly::<T>(method, &request.encode_to_vec()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::{range_request::SortOrder, PutRequest, RangeRequest};

    fn check(body: &[u8]) -> Result<EchoedRequest, String> {
        decode_strictly::<RangeRequest>("get", body)
    }

    #[test]
    fn prost_encoding_is_echoed_as_debug_text() {
        let req = RangeRequest {
            key: b"k".to_vec(),
            limit: 5,
            sort_order: SortOrder::Descend as i32,
            ..Default::default()
        };
        let echo = check(&req.encode_to_vec()).unwrap();
        assert_eq!(echo.request_type, "RangeRequest");
        assert_eq!(echo.decoded, format!("{req:?}"));
        assert!(
            echo.decoded.contains("sort_order: Descend"),
            "{}",
            echo.decoded
        );
        assert!(echo.decoded.contains("key: [107]"), "{}", echo.decoded);
    }

    #[test]
    fn what_plain_decoding_lets_through_is_refused() {
        let key = [0x0a, 0x01, b'k'];
        assert!(check(&key).is_ok());
        // field 99 (varint 1): unknown to RangeRequest, skipped by prost
        let unknown = [&key[..], &[0x98, 0x06, 0x01]].concat();
        assert!(RangeRequest::decode(&unknown[..]).is_ok());
        assert!(check(&unknown)
            .unwrap_err()
            .contains("not prost's encoding"));
        // the key twice: the last one wins
        let twice = [&key[..], &key[..]].concat();
        assert!(check(&twice).is_err());
        // limit 0 written out
        assert!(check(&[&key[..], &[0x18, 0x00]].concat()).is_err());
        // limit 1 as a two-byte varint
        assert!(check(&[&key[..], &[0x18, 0x81, 0x00]].concat()).is_err());
        // limit before key: valid protobuf, but not the order prost (and pb.h) write
        assert!(check(&[&[0x18, 0x01][..], &key[..]].concat()).is_err());
    }

    #[test]
    fn a_wrong_wire_type_or_a_cut_body_does_not_decode() {
        // key (bytes) sent as a varint
        let e = check(&[0x08, 0x01]).unwrap_err();
        assert!(e.contains("does not decode as RangeRequest"), "{e}");
        // length 5, one byte there
        assert!(decode_strictly::<PutRequest>("put", &[0x0a, 0x05, b'k']).is_err());
    }
}
