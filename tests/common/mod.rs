//! What the tests of generated headers share.

use std::path::Path;

/// Fails unless `file` (under the crate root) holds exactly `generated`;
/// with EVETCD_WRITE_HEADER set, writes it instead. `test` names the test
/// that regenerates it.
pub fn check_generated(file: &str, generated: &str, test: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    if std::env::var_os("EVETCD_WRITE_HEADER").is_some() {
        std::fs::write(&path, generated).unwrap_or_else(|e| panic!("write {file}: {e}"));
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {file}: {e}"));
    assert!(
        current == generated,
        "{file} is out of date; regenerate it: \
         EVETCD_WRITE_HEADER=1 cargo test --release --test {test}"
    );
}
