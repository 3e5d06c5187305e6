// Compiles the etcd v3 API definitions in proto/ with the protoc binary that
// the protoc-bin-vendored crate ships, so no system protoc is needed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    }
    let protos = [
        "proto/mvccpb/kv.proto",
        "proto/authpb/auth.proto",
        "proto/etcdserverpb/rpc.proto",
        "proto/v3lockpb/v3lock.proto",
        "proto/v3electionpb/v3election.proto",
    ];
    tonic_prost_build::configure()
        // Keys and values are decoded as slices of the reply buffer rather
        // than copied into a Vec each: ranges carry thousands of them.
        .bytes(".mvccpb.KeyValue")
        .build_server(false)
        .build_transport(false)
        // What tests/pb_fields.rs turns into xs-glue/pb_fields.h, the field
        // numbers and enum values the XS side encodes requests with.
        .file_descriptor_set_path(
            std::path::Path::new(&std::env::var("OUT_DIR")?).join("etcd_descriptors.bin"),
        )
        .compile_protos(&protos, &["proto"])?;
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
