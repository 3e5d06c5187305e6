//! KV service: get, put, delete, txn, compact.

use crate::perl::k;
use crate::perl::{Builder, Hv, ToPerl};
use crate::proto::etcdserverpb::{
    response_op, CompactionResponse, DeleteRangeResponse, PutResponse, RangeResponse, TxnResponse,
};

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
