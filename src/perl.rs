//! Building Perl data from responses, through functions the XS side lends us.
//!
//! Rust never sees a Perl value: it gets opaque handles from the XS builder
//! and asks it to fill them. Each response is walked once, straight into
//! hashes and arrays (no intermediate encoding).

use crate::error::EtcdError;
use crate::proto::etcdserverpb::ResponseHeader;
use crate::proto::mvccpb::KeyValue;
use std::ffi::{c_char, c_void};

type Ctx = *mut c_void;
type Handle = *mut c_void;

/// Every hash key a reply can hold. The C side looks the names up once at
/// load (`evetcd_reply_key`) and hashes each once, so building a reply never
/// hashes a key; `k!` turns a name into its index at compile time.
pub const REPLY_KEYS: &[&str] = &[
    "alarm",
    "alarm_type",
    "alarms",
    "auth_revision",
    "blob",
    "client_urls",
    "cluster_id",
    "code",
    "compact_revision",
    "count",
    "create_revision",
    "created",
    "db_size",
    "db_size_in_use",
    "deleted",
    "duration",
    "enabled",
    "endpoint",
    "error",
    "errors",
    "events",
    "granted_ttl",
    "hash",
    "header",
    "healthy",
    "id",
    "is_learner",
    "key",
    "keys",
    "kv",
    "kvs",
    "leader",
    "lease",
    "leases",
    "member",
    "member_id",
    "members",
    "message",
    "method",
    "mod_revision",
    "more",
    "name",
    "peer_urls",
    "perm",
    "perm_type",
    "prev_kv",
    "prev_kvs",
    "raft_applied_index",
    "raft_index",
    "raft_term",
    "range_end",
    "response_delete_range",
    "response_put",
    "response_range",
    "response_txn",
    "responses",
    "retries",
    "resync",
    "retryable",
    "rev",
    "revision",
    "roles",
    "size",
    "source",
    "status",
    "succeeded",
    "token",
    "ttl",
    "type",
    "users",
    "value",
    "version",
    "watch_id",
];

/// The index of a name in REPLY_KEYS, as the builder functions take it.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key(pub u32);

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Compile-time lookup; a name missing from REPLY_KEYS fails the build.
pub const fn key(name: &str) -> Key {
    let mut i = 0;
    while i < REPLY_KEYS.len() {
        if same(REPLY_KEYS[i], name) {
            return Key(i as u32);
        }
        i += 1;
    }
    panic!("reply key missing from REPLY_KEYS")
}

/// `k!("name")`: the Key of a reply hash key, checked by the compiler.
macro_rules! k {
    ($name:literal) => {{
        const KEY: $crate::perl::Key = $crate::perl::key($name);
        KEY
    }};
}
pub(crate) use k;

/// The functions the XS side gives for building Perl data; `ctx` is the
/// interpreter.
#[repr(C)]
pub struct BuilderVtable {
    pub ctx: Ctx,
    pub hv_new: unsafe extern "C" fn(Ctx) -> Handle,
    pub av_new: unsafe extern "C" fn(Ctx, usize) -> Handle,
    pub hv_bytes: unsafe extern "C" fn(Ctx, Handle, Key, *const c_char, usize),
    pub hv_int: unsafe extern "C" fn(Ctx, Handle, Key, i64),
    pub hv_uint: unsafe extern "C" fn(Ctx, Handle, Key, u64),
    pub hv_ref: unsafe extern "C" fn(Ctx, Handle, Key, Handle),
    pub av_bytes: unsafe extern "C" fn(Ctx, Handle, *const c_char, usize),
    pub av_int: unsafe extern "C" fn(Ctx, Handle, i64),
    pub av_ref: unsafe extern "C" fn(Ctx, Handle, Handle),
    pub hv_num: unsafe extern "C" fn(Ctx, Handle, Key, f64),
}

/// A Perl hash under construction (owned by the XS side).
#[derive(Clone, Copy)]
pub struct Hv(Handle);
/// A Perl array under construction (owned by the XS side).
#[derive(Clone, Copy)]
pub struct Av(Handle);

impl Hv {
    pub fn into_raw(self) -> Handle {
        self.0
    }
}

impl Av {
    pub fn into_raw(self) -> Handle {
        self.0
    }
}

pub struct Builder<'a> {
    vt: &'a BuilderVtable,
}

impl<'a> Builder<'a> {
    /// # Safety
    /// `vt` must hold valid XS builder functions for the current Perl thread.
    pub unsafe fn new(vt: &'a BuilderVtable) -> Self {
        Builder { vt }
    }

    pub fn hv(&self) -> Hv {
        // SAFETY: valid XS builder per Builder::new's contract.
        Hv(unsafe { (self.vt.hv_new)(self.vt.ctx) })
    }

    pub fn av(&self, capacity: usize) -> Av {
        // SAFETY: as above.
        Av(unsafe { (self.vt.av_new)(self.vt.ctx, capacity) })
    }

    pub fn bytes(&self, hv: Hv, key: Key, v: &[u8]) {
        // SAFETY: handles come from this builder; slices live across the call.
        unsafe { (self.vt.hv_bytes)(self.vt.ctx, hv.0, key, v.as_ptr().cast(), v.len()) }
    }

    pub fn int(&self, hv: Hv, key: Key, v: i64) {
        // SAFETY: as above.
        unsafe { (self.vt.hv_int)(self.vt.ctx, hv.0, key, v) }
    }

    pub fn uint(&self, hv: Hv, key: Key, v: u64) {
        // SAFETY: as above.
        unsafe { (self.vt.hv_uint)(self.vt.ctx, hv.0, key, v) }
    }

    pub fn num(&self, hv: Hv, key: Key, v: f64) {
        // SAFETY: as above.
        unsafe { (self.vt.hv_num)(self.vt.ctx, hv.0, key, v) }
    }

    pub fn flag(&self, hv: Hv, key: Key, v: bool) {
        self.int(hv, key, v as i64)
    }

    pub fn hash(&self, hv: Hv, key: Key, child: Hv) {
        // SAFETY: as above; the XS side takes ownership of `child`.
        unsafe { (self.vt.hv_ref)(self.vt.ctx, hv.0, key, child.0) }
    }

    pub fn array(&self, hv: Hv, key: Key, child: Av) {
        // SAFETY: as above; the XS side takes ownership of `child`.
        unsafe { (self.vt.hv_ref)(self.vt.ctx, hv.0, key, child.0) }
    }

    pub fn push_bytes(&self, av: Av, v: &[u8]) {
        // SAFETY: as above.
        unsafe { (self.vt.av_bytes)(self.vt.ctx, av.0, v.as_ptr().cast(), v.len()) }
    }

    pub fn push_int(&self, av: Av, v: i64) {
        // SAFETY: as above.
        unsafe { (self.vt.av_int)(self.vt.ctx, av.0, v) }
    }

    pub fn push_hash(&self, av: Av, child: Hv) {
        // SAFETY: as above; the XS side takes ownership of `child`.
        unsafe { (self.vt.av_ref)(self.vt.ctx, av.0, child.0) }
    }

    /// `key => [ ... ]` built from a slice with `f` for each element.
    pub fn list<T>(&self, hv: Hv, key: Key, items: &[T], f: impl Fn(&Self, &T) -> Hv) {
        let av = self.av(items.len());
        for item in items {
            self.push_hash(av, f(self, item));
        }
        self.array(hv, key, av);
    }

    /// `key => [ byte strings ]`.
    pub fn strings<S: AsRef<[u8]>>(&self, hv: Hv, key: Key, items: &[S]) {
        let av = self.av(items.len());
        for item in items {
            self.push_bytes(av, item.as_ref());
        }
        self.array(hv, key, av);
    }

    /// Every response carries `header`; etcd omits it on a few maintenance
    /// replies, which then get a header of zeros.
    pub fn header(&self, hv: Hv, header: &Option<ResponseHeader>) {
        let h = self.hv();
        let d = ResponseHeader::default();
        let src = header.as_ref().unwrap_or(&d);
        self.uint(h, k!("cluster_id"), src.cluster_id);
        self.uint(h, k!("member_id"), src.member_id);
        self.int(h, k!("revision"), src.revision);
        self.uint(h, k!("raft_term"), src.raft_term);
        self.hash(hv, k!("header"), h);
    }

    pub fn kv(&self, kv: &KeyValue) -> Hv {
        let h = self.hv();
        self.bytes(h, k!("key"), &kv.key);
        self.bytes(h, k!("value"), &kv.value);
        self.int(h, k!("create_revision"), kv.create_revision);
        self.int(h, k!("mod_revision"), kv.mod_revision);
        self.int(h, k!("version"), kv.version);
        self.int(h, k!("lease"), kv.lease);
        h
    }

    /// `{}` plus a header: the reply of calls that return nothing else.
    pub fn header_only(&self, header: &Option<ResponseHeader>) -> Hv {
        let h = self.hv();
        self.header(h, header);
        h
    }
}

/// A response that knows how to become a Perl hash.
pub trait ToPerl {
    fn to_perl(&self, b: &Builder) -> Hv;
}

impl ToPerl for EtcdError {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.int(h, k!("code"), self.code as i64);
        b.bytes(h, k!("status"), self.status_name().as_bytes());
        b.bytes(h, k!("message"), self.message.as_bytes());
        b.bytes(h, k!("source"), self.source.as_bytes());
        b.flag(h, k!("retryable"), self.retryable());
        h
    }
}

/// The empty success reply of a cancel.
pub struct Empty;

impl ToPerl for Empty {
    fn to_perl(&self, b: &Builder) -> Hv {
        b.hv()
    }
}

/// Implements ToPerl for replies made of a header alone.
macro_rules! header_only_reply {
    ($($t:ty),* $(,)?) => {
        $(impl $crate::perl::ToPerl for $t {
            fn to_perl(&self, b: &$crate::perl::Builder) -> $crate::perl::Hv {
                b.header_only(&self.header)
            }
        })*
    };
}
pub(crate) use header_only_reply;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_keys_are_distinct_and_found() {
        for (i, name) in REPLY_KEYS.iter().enumerate() {
            assert_eq!(key(name), Key(i as u32), "{name} appears twice");
        }
        assert_eq!(
            k!("kvs"),
            Key(REPLY_KEYS.iter().position(|n| *n == "kvs").unwrap() as u32)
        );
    }
}
