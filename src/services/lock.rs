//! Lock service: lock, unlock.

use crate::engine::routes;
use crate::perl::k;
use crate::perl::{Builder, Hv, ToPerl};
use crate::proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};

/// This service's unary methods, numbered for the C side: cbindgen
/// writes them into xs-glue/evetcd.h as `EVETCD_LOCK_METHOD_LOCK`, ...
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMethod {
    Lock = 0x300,
    Unlock,
}

routes! {
    LockMethod;
    Lock => LockRequest => LockResponse, "/v3lockpb.Lock/Lock";
    Unlock => UnlockRequest => UnlockResponse, "/v3lockpb.Lock/Unlock";
}

impl ToPerl for LockResponse {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.header(h, &self.header);
        b.bytes(h, k!("key"), &self.key);
        h
    }
}

crate::perl::header_only_reply!(UnlockResponse);
