//! Options of `new`, and what they say about the endpoints: their URIs,
//! and whether the client speaks TLS.

use crate::net::TlsOptions;
use std::time::Duration;
use tonic::transport::Endpoint;

/// Options of `EV::Etcd->new`, already checked by the XS side.
#[derive(Debug, Clone)]
pub struct Config {
    pub endpoints: Vec<String>,
    pub timeout: Duration,
    /// Stream reconnect attempts; negative means unlimited.
    pub max_retries: i64,
    pub health_interval: Option<Duration>,
    pub auth_token: Option<String>,
    /// Whether an `on_request` hook wants a CallInfo per unary call.
    pub on_request: bool,
    /// Largest unary reply and request, in bytes (`usize::MAX`: no limit).
    pub max_recv_size: usize,
    pub max_send_size: usize,
    /// `username` and `password` of `new`: log in before the first call.
    pub login: Option<(String, String)>,
    pub tls: TlsOptions,
    /// HTTP/2 ping interval and how long to wait for its answer; `None`:
    /// no pings.
    pub keepalive: Option<(Duration, Duration)>,
    /// Refresh the endpoint list from member_list this often.
    pub auto_sync: Option<Duration>,
    /// Probe an idle watch stream with a progress request this often.
    pub watch_probe: Option<Duration>,
    /// `retry`: how often a failed call may be repeated (see `may_repeat`).
    pub retry: u32,
    /// Run unary calls and the watch stream on the Perl thread (see
    /// `local`) when that can be set up; else on the background thread.
    pub inline_io: bool,
}

/// How an endpoint was written: its scheme, if any, and `host:port`.
pub fn split_scheme(e: &str) -> (Option<&'static str>, &str) {
    if let Some(rest) = e.strip_prefix("https://") {
        (Some("https"), rest)
    } else if let Some(rest) = e.strip_prefix("http://") {
        (Some("http"), rest)
    } else {
        (None, e)
    }
}

impl Config {
    /// Normalises endpoints to URIs and decides whether the client uses TLS
    /// (true: every URI is https). Errors name the endpoint or option at fault.
    pub fn endpoint_uris(&self) -> Result<(Vec<String>, bool), String> {
        if self.endpoints.is_empty() {
            return Err("endpoints must not be empty".into());
        }
        let scheme_of = |want: &str| {
            self.endpoints
                .iter()
                .find(|e| split_scheme(e).0 == Some(want))
        };
        let (https, http) = (scheme_of("https"), scheme_of("http"));
        if let (Some(s), Some(p)) = (https, http) {
            return Err(format!(
                "endpoints mix TLS and plaintext ('{s}' and '{p}'): a client uses one or the other"
            ));
        }
        let tls = match (self.tls.enabled, https, http) {
            (Some(true), _, Some(p)) => {
                return Err(format!(
                    "endpoint '{p}' asks for plaintext, but tls => 1 was given; \
                     write it as host:port or https://host:port"
                ))
            }
            (Some(false), Some(s), _) => {
                return Err(format!(
                    "endpoint '{s}' asks for TLS, but tls => 0 was given"
                ))
            }
            (Some(on), _, _) => on,
            (None, https, _) => https.is_some(),
        };
        if !tls {
            if let Some(option) = self.tls.first_given() {
                return Err(if self.tls.enabled == Some(false) {
                    format!("{option} was given, but tls => 0 turns TLS off")
                } else {
                    format!(
                        "{option} was given, but the endpoints are plaintext: \
                         add tls => 1 or use https:// endpoints"
                    )
                });
            }
        }
        let uris = self
            .endpoints
            .iter()
            .map(|e| endpoint_uri(e, tls))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((uris, tls))
    }
}

/// `e` as a URI of the client's scheme; `e` may carry that scheme.
pub fn endpoint_uri(e: &str, tls: bool) -> Result<String, String> {
    let scheme = if tls { "https" } else { "http" };
    let (_, rest) = split_scheme(e);
    // host:port, optionally with one trailing slash; no path.
    if rest.is_empty() || rest.trim_end_matches('/').contains('/') {
        return Err(format!("endpoint '{e}' is not host:port"));
    }
    let uri = format!("{scheme}://{}", rest.trim_end_matches('/'));
    Endpoint::from_shared(uri.clone()).map_err(|_| format!("endpoint '{e}' is not host:port"))?;
    Ok(uri)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A client config for tests: no pings, syncs or probes.
    pub(crate) fn config(endpoints: &[&str], tls: TlsOptions) -> Config {
        Config {
            endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
            timeout: Duration::from_secs(5),
            max_retries: 3,
            health_interval: None,
            auth_token: None,
            on_request: false,
            max_recv_size: usize::MAX,
            max_send_size: usize::MAX,
            login: None,
            tls,
            keepalive: None,
            auto_sync: None,
            watch_probe: None,
            retry: 0,
            inline_io: false,
        }
    }

    fn tls_on() -> TlsOptions {
        TlsOptions {
            enabled: Some(true),
            ..TlsOptions::default()
        }
    }

    #[test]
    fn the_endpoints_or_the_tls_option_decide_tls() {
        let none = TlsOptions::default;
        let uris = |e: &[&str], t| config(e, t).endpoint_uris().unwrap();
        assert_eq!(
            uris(&["a:1", "http://b:2/"], none()),
            (vec!["http://a:1".into(), "http://b:2".into()], false)
        );
        assert_eq!(
            uris(&["https://a:1", "b:2"], none()),
            (vec!["https://a:1".into(), "https://b:2".into()], true)
        );
        assert_eq!(uris(&["a:1"], tls_on()), (vec!["https://a:1".into()], true));
        let ca = TlsOptions {
            ca_file: Some("ca.pem".into()),
            ..TlsOptions::default()
        };
        assert!(uris(&["https://a:1"], ca).1);
    }

    #[test]
    fn contradictions_are_refused() {
        let err = |e: &[&str], t| config(e, t).endpoint_uris().unwrap_err();
        assert!(err(&["https://a:1", "http://b:2"], TlsOptions::default())
            .contains("mix TLS and plaintext"));
        assert!(err(&["http://a:1"], tls_on()).contains("asks for plaintext"));
        let off = TlsOptions {
            enabled: Some(false),
            ..TlsOptions::default()
        };
        assert!(err(&["https://a:1"], off.clone()).contains("asks for TLS"));
        let named = TlsOptions {
            server_name: Some("etcd.test".into()),
            ..off
        };
        assert!(err(&["a:1"], named.clone()).starts_with("tls_server_name was given, but tls => 0"));
        let implied = TlsOptions {
            enabled: None,
            ..named
        };
        assert!(err(&["a:1"], implied).contains("the endpoints are plaintext"));
    }
}
