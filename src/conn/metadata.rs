//! gRPC metadata a request carries besides the token: its deadline for
//! the server (grpc-timeout) and etcd's require-leader.

use std::time::Duration;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};

/// A grpc-timeout value ("30000m"): at most 8 digits and a unit.
pub fn grpc_timeout_value(timeout: Duration) -> AsciiMetadataValue {
    // Round up: a deadline under a millisecond must not read as none.
    let ms = timeout.as_micros().div_ceil(1000).max(1);
    let text = if ms <= 99_999_999 {
        format!("{ms}m")
    } else {
        format!("{}H", (timeout.as_secs() / 3600).clamp(1, 99_999_999))
    };
    MetadataValue::try_from(text.as_str()).expect("digits and a unit are ASCII")
}

/// Adds etcd's require-leader metadata: a member without a leader refuses
/// the call, or ends the stream, with UNAVAILABLE "etcdserver: no leader",
/// and the client moves to another endpoint.
pub fn require_leader<T>(req: &mut tonic::Request<T>) {
    req.metadata_mut()
        .insert("hasleader", MetadataValue::from_static("true"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_header_fits_eight_digits() {
        assert_eq!(grpc_timeout_value(Duration::from_secs(30)), "30000m");
        assert_eq!(grpc_timeout_value(Duration::from_millis(1500)), "1500m");
        assert_eq!(grpc_timeout_value(Duration::from_micros(300)), "1m");
        assert_eq!(
            grpc_timeout_value(Duration::from_secs(1_000_000_000)),
            "277777H"
        );
    }
}
