//! The error every failed call reports: `{code, status, message, source, retryable}`.

use std::error::Error as _;
use tonic::Code;

#[derive(Debug, Clone)]
pub struct EtcdError {
    pub code: Code,
    pub message: String,
    /// Name of the user-facing method (`get`, `watch`, ...).
    pub source: &'static str,
}

impl EtcdError {
    pub fn new(code: Code, message: impl Into<String>, source: &'static str) -> Self {
        EtcdError {
            code,
            message: message.into(),
            source,
        }
    }

    /// Maps a tonic status. A status that tonic made up from a transport
    /// failure carries an error source; one the server sent does not. Transport
    /// failures are UNAVAILABLE whatever tonic called them (a reset mid-call
    /// comes out as Unknown), so callers and the stream reconnect logic retry.
    pub fn from_status(status: &tonic::Status, source: &'static str) -> Self {
        let code = if is_deadline(status) {
            Code::DeadlineExceeded
        } else if is_transport_failure(status) {
            Code::Unavailable
        } else {
            status.code()
        };
        let mut message = status.message().to_string();
        // Transport errors say little at the top ("tcp connect error"): add
        // the causes beneath, e.g. "Connection refused (os error 111)".
        let mut cause = status.source();
        while let Some(e) = cause {
            let text = e.to_string();
            if !text.is_empty() && !message.contains(&text) {
                if !message.is_empty() {
                    message.push_str(": ");
                }
                message.push_str(&text);
            }
            cause = e.source();
        }
        if message.is_empty() {
            message = code.description().to_string();
        }
        EtcdError::new(code, message, source)
    }

    /// The error a server-side cancel reason stands for. etcd writes a Go
    /// status there ("rpc error: code = Unauthenticated desc = ..."): its
    /// code and text are the error, not CANCELLED around the whole string.
    pub fn from_cancel_reason(reason: &str, source: &'static str) -> Self {
        if let Some((code, desc)) = parse_go_status(reason) {
            return EtcdError::new(code, desc, source);
        }
        let code = if reason.contains("permission denied") {
            Code::PermissionDenied
        } else {
            Code::Cancelled
        };
        EtcdError::new(code, reason, source)
    }

    pub fn deadline(source: &'static str, secs: f64) -> Self {
        EtcdError::new(
            Code::DeadlineExceeded,
            format!("deadline of {secs}s exceeded"),
            source,
        )
    }

    pub fn internal(message: impl Into<String>, source: &'static str) -> Self {
        EtcdError::new(Code::Internal, message, source)
    }

    pub fn retryable(&self) -> bool {
        is_retryable(self.code)
    }

    /// The upper-case gRPC name of the code, as users match on it.
    pub fn status_name(&self) -> &'static str {
        status_name(self.code)
    }
}

pub fn is_retryable(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::ResourceExhausted | Code::Aborted | Code::DeadlineExceeded
    )
}

/// tonic enforces the grpc-timeout we send with its own timer and reports
/// it as a transport error; it is the call's deadline all the same.
pub fn is_deadline(status: &tonic::Status) -> bool {
    let mut cause = status.source();
    while let Some(e) = cause {
        if e.is::<tonic::TimeoutExpired>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// The request provably never left the client: no connection to the
/// server could be made (tonic wraps every connector failure in
/// `ConnectError`), so repeating even a write cannot apply it twice.
pub fn never_sent(status: &tonic::Status) -> bool {
    let mut cause = status.source();
    while let Some(e) = cause {
        if e.is::<tonic::ConnectError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

pub fn is_transport_failure(status: &tonic::Status) -> bool {
    if is_deadline(status) {
        return false;
    }
    match status.code() {
        Code::Unavailable => true,
        Code::Unknown | Code::Internal | Code::Cancelled => status.source().is_some(),
        _ => false,
    }
}

/// Splits the text of a Go gRPC status error, "rpc error: code = NAME desc =
/// TEXT", into its code and TEXT; None for any other text.
pub fn parse_go_status(text: &str) -> Option<(Code, &str)> {
    let rest = text.strip_prefix("rpc error: code = ")?;
    let (name, desc) = rest.split_once(" desc = ")?;
    let code = match name {
        "OK" => Code::Ok,
        "Canceled" => Code::Cancelled,
        "Unknown" => Code::Unknown,
        "InvalidArgument" => Code::InvalidArgument,
        "DeadlineExceeded" => Code::DeadlineExceeded,
        "NotFound" => Code::NotFound,
        "AlreadyExists" => Code::AlreadyExists,
        "PermissionDenied" => Code::PermissionDenied,
        "ResourceExhausted" => Code::ResourceExhausted,
        "FailedPrecondition" => Code::FailedPrecondition,
        "Aborted" => Code::Aborted,
        "OutOfRange" => Code::OutOfRange,
        "Unimplemented" => Code::Unimplemented,
        "Internal" => Code::Internal,
        "Unavailable" => Code::Unavailable,
        "DataLoss" => Code::DataLoss,
        "Unauthenticated" => Code::Unauthenticated,
        _ => return None,
    };
    Some((code, desc))
}

pub fn status_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_unknown_stays_unknown() {
        let s = tonic::Status::unknown("etcdserver: something");
        let e = EtcdError::from_status(&s, "get");
        assert_eq!(e.status_name(), "UNKNOWN");
        assert!(!e.retryable());
        assert_eq!(e.message, "etcdserver: something");
    }

    #[test]
    fn cancel_reason_with_a_go_status_takes_its_code() {
        let e = EtcdError::from_cancel_reason(
            "rpc error: code = Unauthenticated desc = etcdserver: invalid auth token",
            "watch",
        );
        assert_eq!(e.status_name(), "UNAUTHENTICATED");
        assert_eq!(e.message, "etcdserver: invalid auth token");
        let e = EtcdError::from_cancel_reason(
            "rpc error: code = PermissionDenied desc = etcdserver: permission denied",
            "watch",
        );
        assert_eq!(e.status_name(), "PERMISSION_DENIED");
        assert_eq!(e.message, "etcdserver: permission denied");
    }

    #[test]
    fn plain_cancel_reasons() {
        let e = EtcdError::from_cancel_reason("etcdserver: permission denied", "watch");
        assert_eq!(e.status_name(), "PERMISSION_DENIED");
        let e = EtcdError::from_cancel_reason("watch cancelled by the server", "watch");
        assert_eq!(e.status_name(), "CANCELLED");
        assert_eq!(e.message, "watch cancelled by the server");
        // an unknown Go code name leaves the text as it is
        let odd = "rpc error: code = Code(99) desc = odd";
        let e = EtcdError::from_cancel_reason(odd, "watch");
        assert_eq!((e.status_name(), e.message.as_str()), ("CANCELLED", odd));
    }

    #[test]
    fn transport_unknown_becomes_unavailable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let s = tonic::Status::from_error(Box::new(io));
        let e = EtcdError::from_status(&s, "put");
        assert_eq!(e.status_name(), "UNAVAILABLE");
        assert!(e.retryable());
        assert_eq!(e.source, "put");
    }
}
