//! The auth token every call carries, the credentials to get a new one
//! with, how etcd says a token went stale, and requests wrapped with the
//! token and their deadline.

use super::metadata::grpc_timeout_value;
use super::shared::Shared;
use crate::error::EtcdError;
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tonic::metadata::MetadataValue;
use tonic::Status;

impl Shared {
    pub fn set_token(&self, token: &str) -> Result<(), String> {
        let v = if token.is_empty() {
            None
        } else {
            Some(MetadataValue::try_from(token).map_err(|_| "auth token is not printable ASCII")?)
        };
        let mut t = self.token.write().unwrap_or_else(|p| p.into_inner());
        *t = v;
        self.token_gen.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Forgets token and credentials (auth was switched off).
    pub fn clear_auth(&self) {
        let mut t = self.token.write().unwrap_or_else(|p| p.into_inner());
        *t = None;
        self.token_gen.fetch_add(1, Ordering::AcqRel);
        *self.credentials.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The server called our token stale. Drops it (unless it has been
    /// replaced since `generation`, when given) so the next call logs in;
    /// false when there are no credentials to log in with.
    pub fn token_rejected(&self, generation: Option<u64>) -> bool {
        if self.credentials().is_none() {
            return false;
        }
        let mut t = self.token.write().unwrap_or_else(|p| p.into_inner());
        let current = self.token_gen.load(Ordering::Acquire);
        if generation.is_none_or(|g| g == current) && t.is_some() {
            *t = None;
            self.token_gen.fetch_add(1, Ordering::AcqRel);
        }
        true
    }

    fn needs_login(&self) -> bool {
        self.token
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
            && self.credentials().is_some()
    }

    /// Logs in unless a token is in place (or there are no credentials).
    /// Calls that arrive while a login is under way wait for it and share
    /// its outcome: a wrong password fails each of them once, and is only
    /// tried again for calls made after that.
    pub async fn ensure_login(&self) -> Result<(), EtcdError> {
        if !self.needs_login() {
            return Ok(());
        }
        let seen = self.logins_done.load(Ordering::Acquire);
        let mut last_error = self.login.lock().await;
        if !self.needs_login() {
            return Ok(());
        }
        if self.logins_done.load(Ordering::Acquire) != seen {
            if let Some(e) = last_error.as_ref() {
                return Err(e.clone());
            }
        }
        let outcome = (self.login_with)(self).await;
        *last_error = outcome.as_ref().err().cloned();
        self.logins_done.fetch_add(1, Ordering::AcqRel);
        outcome
    }

    pub fn set_credentials(&self, request: Bytes) {
        *self.credentials.write().unwrap_or_else(|p| p.into_inner()) = Some(request);
    }

    pub fn credentials(&self) -> Option<Bytes> {
        self.credentials
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Wraps a message with the auth token (when `with_token`) and, for
    /// calls with a deadline, the grpc-timeout the server should honour too.
    pub fn request<T>(
        &self,
        msg: T,
        with_token: bool,
        deadline: Option<Duration>,
    ) -> tonic::Request<T> {
        self.request_with_token(msg, with_token, deadline).0
    }

    /// `request`, also returning the generation of the token it carries.
    pub fn request_with_token<T>(
        &self,
        msg: T,
        with_token: bool,
        deadline: Option<Duration>,
    ) -> (tonic::Request<T>, u64) {
        let mut req = tonic::Request::new(msg);
        let mut generation = 0;
        if with_token {
            let t = self.token.read().unwrap_or_else(|p| p.into_inner());
            generation = self.token_gen.load(Ordering::Acquire);
            if let Some(t) = t.as_ref() {
                req.metadata_mut().insert("token", t.clone());
            }
        }
        if let Some(d) = deadline {
            let value = if d == self.cfg.timeout {
                self.grpc_timeout.clone()
            } else {
                grpc_timeout_value(d)
            };
            req.metadata_mut().insert("grpc-timeout", value);
        }
        (req, generation)
    }
}

/// etcd's ways of saying the token we sent is no longer good: 3.4 and 3.5
/// word a stale auth revision differently, and an expired simple token is
/// "invalid auth token".
pub fn is_stale_token(status: &Status) -> bool {
    is_stale_token_message(status.message())
}

/// `is_stale_token` for a bare message (a watch's cancel reason).
pub fn is_stale_token_message(m: &str) -> bool {
    m.contains("invalid auth token")
        || m.contains("revision of auth store is old")
        || m.contains("auth: revision in header is old")
        // a call that went out between a rejected token and the new login
        || m.contains("user name is empty")
}

/// For streams: when `status` says the token is stale and we can log in
/// again, drops the token (unless it was replaced since the stream took
/// generation `token_gen`) and returns true; the stream's next opening
/// logs in first.
pub fn renew_token_for_stream(
    shared: &Arc<Shared>,
    status: &Status,
    token_gen: Option<u64>,
) -> bool {
    is_stale_token(status) && shared.token_rejected(token_gen)
}
