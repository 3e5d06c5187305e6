//! KV service: get, put, delete, txn, compact.

use crate::engine::{routes, Route};
use crate::perl::k;
use crate::perl::{Builder, Hv, ToPerl};
use crate::proto::etcdserverpb::{
    response_op, CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse,
};

/// This service's unary methods, numbered for the C side: cbindgen
/// writes them into xs-glue/evetcd.h as `EVETCD_KV_METHOD_GET`, ...
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvMethod {
    Get = 0x100,
    Put,
    Delete,
    Txn,
    Compact,
}

routes! {
    KvMethod;
    Get => RangeRequest => RangeResponse, "/etcdserverpb.KV/Range", Route::read_only, range_route;
    Put => PutRequest => PutResponse, "/etcdserverpb.KV/Put";
    Delete => DeleteRangeRequest => DeleteRangeResponse, "/etcdserverpb.KV/DeleteRange";
    Txn => TxnRequest => TxnResponse, "/etcdserverpb.KV/Txn";
    Compact => CompactionRequest => CompactionResponse, "/etcdserverpb.KV/Compact";
}

impl ToPerl for RangeResponse {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.header(h, &self.header);
        b.list(h, k!("kvs"), &self.kvs, Builder::kv);
        b.int(h, k!("count"), self.count);
        b.flag(h, k!("more"), self.more);
        h
    }
}

impl ToPerl for PutResponse {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.header(h, &self.header);
        if let Some(prev) = &self.prev_kv {
            b.hash(h, k!("prev_kv"), b.kv(prev));
        }
        h
    }
}

impl ToPerl for DeleteRangeResponse {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.header(h, &self.header);
        b.int(h, k!("deleted"), self.deleted);
        b.list(h, k!("prev_kvs"), &self.prev_kvs, Builder::kv);
        h
    }
}

impl ToPerl for TxnResponse {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.header(h, &self.header);
        b.flag(h, k!("succeeded"), self.succeeded);
        b.list(h, k!("responses"), &self.responses, |b, op| {
            let item = b.hv();
            match &op.response {
                Some(response_op::Response::ResponseRange(r)) => {
                    b.hash(item, k!("response_range"), r.to_perl(b))
                }
                Some(response_op::Response::ResponsePut(r)) => {
                    b.hash(item, k!("response_put"), r.to_perl(b))
                }
                Some(response_op::Response::ResponseDeleteRange(r)) => {
                    b.hash(item, k!("response_delete_range"), r.to_perl(b))
                }
                Some(response_op::Response::ResponseTxn(r)) => {
                    b.hash(item, k!("response_txn"), r.to_perl(b))
                }
                None => {}
            }
            item
        });
        h
    }
}

crate::perl::header_only_reply!(CompactionResponse);

/// A serializable get is answered by the member alone, leader or not.
pub fn range_route(r: Route) -> Route {
    Route {
        needs_leader: |body| !is_serializable(body),
        ..r
    }
}

/// Whether a RangeRequest body sets `serializable` (field 7), read
/// without decoding the message (a get's hot path).
fn is_serializable(mut body: &[u8]) -> bool {
    use prost::encoding::{decode_key, decode_varint, skip_field, DecodeContext, WireType};
    while !body.is_empty() {
        let Ok((tag, wire_type)) = decode_key(&mut body) else {
            return false;
        };
        if tag == 7 && wire_type == WireType::Varint {
            return decode_varint(&mut body).is_ok_and(|v| v != 0);
        }
        if skip_field(wire_type, tag, &mut body, DecodeContext::default()).is_err() {
            return false;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::is_serializable;
    use crate::proto::etcdserverpb::RangeRequest;
    use prost::Message;

    #[test]
    fn serializable_is_found_among_other_fields() {
        let plain = RangeRequest {
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
            limit: 5,
            ..Default::default()
        };
        assert!(!is_serializable(&plain.encode_to_vec()));
        let ser = RangeRequest {
            serializable: true,
            revision: 3,
            ..plain
        };
        assert!(is_serializable(&ser.encode_to_vec()));
        assert!(!is_serializable(&[0xff]));
    }
}
