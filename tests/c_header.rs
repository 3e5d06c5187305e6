//! xs-glue/evetcd.h is what cbindgen makes of the Rust side of the C ABI:
//! one definition, so the two cannot disagree. With EVETCD_WRITE_HEADER
//! set, the header is rewritten instead of checked.

mod common;

use std::path::Path;

#[test]
fn evetcd_h_is_generated_from_the_rust_side() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    // The services' files for their method enums.
    let mut services: Vec<_> = std::fs::read_dir(root.join("src/services"))
        .expect("src/services")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    services.sort();
    let mut builder = cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join("src/ffi.rs"))
        .with_src(root.join("src/perl.rs"));
    for s in services {
        builder = builder.with_src(s);
    }
    let mut generated = Vec::new();
    builder
        .generate()
        .expect("cbindgen reads src/ffi.rs, src/perl.rs and src/services/*.rs")
        .write(&mut generated);
    let generated = String::from_utf8(generated).expect("UTF-8");
    common::check_generated("xs-glue/evetcd.h", &generated, "c_header");
}
