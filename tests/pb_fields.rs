//! xs-glue/pb_fields.h gives the XS side, which encodes the requests, the
//! field numbers and enum values of the request messages in proto/, read
//! from the descriptors that build.rs compiled: one definition. The test
//! fails when the checked-in file differs; with EVETCD_WRITE_HEADER set it
//! rewrites it.

use prost::Message;
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorSet};
use std::fmt::Write;
mod common;

const DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/etcd_descriptors.bin"));

/// The messages a request is made of: every *Request, and the parts that
/// are nested in one.
fn is_request_part(name: &str) -> bool {
    name.ends_with("Request")
        || matches!(name, "Compare" | "RequestOp" | "Permission" | "LeaderKey")
}

fn enum_lines(out: &mut String, prefix: &str, e: &EnumDescriptorProto) {
    for v in &e.value {
        let name = format!("PB_{prefix}_{}_{}", e.name(), v.name());
        writeln!(out, "#define {name:<60} {}", v.number()).unwrap();
    }
}

fn message_lines(out: &mut String, m: &DescriptorProto) {
    let msg = m.name();
    writeln!(out, "\n/* {msg} */").unwrap();
    for f in &m.field {
        let name = format!("PB_{msg}_{}", f.name());
        writeln!(out, "#define {name:<60} {}", f.number()).unwrap();
    }
    for e in &m.enum_type {
        enum_lines(out, msg, e);
    }
}

fn generate() -> String {
    let set = FileDescriptorSet::decode(DESCRIPTORS).expect("descriptors from build.rs");
    let mut out = String::from(
        "/* Field numbers and enum values of the request messages in proto/,\n \
         * generated from them by tests/pb_fields.rs: do not edit. To regenerate\n \
         * it, run EVETCD_WRITE_HEADER=1 cargo test --release --test pb_fields */\n\
         #ifndef EVETCD_PB_FIELDS_H\n#define EVETCD_PB_FIELDS_H\n",
    );
    let mut files: Vec<_> = set.file.iter().collect();
    files.sort_by(|a, b| a.name().cmp(b.name()));
    for file in files {
        let mut messages: Vec<_> = file
            .message_type
            .iter()
            .filter(|m| is_request_part(m.name()))
            .collect();
        messages.sort_by(|a, b| a.name().cmp(b.name()));
        if messages.is_empty() {
            continue;
        }
        writeln!(out, "\n/* ---- {} ---- */", file.name()).unwrap();
        for e in &file.enum_type {
            enum_lines(&mut out, file.package(), e);
        }
        for m in messages {
            message_lines(&mut out, m);
        }
    }
    out.push_str("\n#endif\n");
    out
}

#[test]
fn pb_fields_h_is_generated_from_proto() {
    common::check_generated("xs-glue/pb_fields.h", &generate(), "pb_fields");
}
