// Compiles the etcd v3 API definitions in proto/ with protox, a protobuf
// compiler written in Rust, and hands its descriptors to tonic-prost-build:
// the build runs no protoc binary, so it needs nothing but cargo and a C
// compiler on any system.
use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/mvccpb/kv.proto",
        "proto/authpb/auth.proto",
        "proto/etcdserverpb/rpc.proto",
        "proto/v3lockpb/v3lock.proto",
        "proto/v3electionpb/v3election.proto",
    ];
    let descriptors = protox::compile(protos, ["proto"])?;
    // What tests/pb_fields.rs turns into xs-glue/pb_fields.h, the field
    // numbers and enum values the XS side encodes requests with.
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("etcd_descriptors.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        // Keys and values are decoded as slices of the reply buffer rather
        // than copied into a Vec each: ranges carry thousands of them.
        .bytes(".mvccpb.KeyValue")
        .build_server(false)
        .build_transport(false)
        .compile_fds(descriptors)?;
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
