//! Election service: campaign, proclaim, leader, resign, and observe (one
//! server stream per observer, resumed after failures without repeating
//! the leader already reported).

use crate::conn::{require_leader, Shared};
use crate::engine::stream::{gave_up, moved, stream_failure, Backoff, Stop, TaskSlot};
use crate::engine::{routes, Route};
use crate::error::EtcdError;
use crate::perl::k;
use crate::perl::{Builder, Hv, ToPerl};
use crate::proto::v3electionpb::{
    election_client::ElectionClient, CampaignRequest, CampaignResponse, LeaderRequest,
    LeaderResponse, ProclaimRequest, ProclaimResponse, ResignRequest, ResignResponse,
};
use crate::queue::Disposition;
use std::sync::Arc;
use tokio::sync::oneshot;
use tonic::Status;

/// This service's unary methods, numbered for the C side: cbindgen
/// writes them into xs-glue/evetcd.h as `EVETCD_ELECTION_METHOD_ELECTION_CAMPAIGN`, ...
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElectionMethod {
    ElectionCampaign = 0x400,
    ElectionProclaim,
    ElectionLeader,
    ElectionResign,
}

routes! {
    ElectionMethod;
    ElectionCampaign => CampaignRequest => CampaignResponse, "/v3electionpb.Election/Campaign";
    ElectionProclaim => ProclaimRequest => ProclaimResponse, "/v3electionpb.Election/Proclaim";
    ElectionLeader => LeaderRequest => LeaderResponse, "/v3electionpb.Election/Leader", Route::read_only;
    ElectionResign => ResignRequest => ResignResponse, "/v3electionpb.Election/Resign";
}

pub const SOURCE: &str = "observe";

impl ToPerl for CampaignResponse {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.header(h, &self.header);
        if let Some(l) = &self.leader {
            let lh = b.hv();
            b.bytes(lh, k!("name"), &l.name);
            b.bytes(lh, k!("key"), &l.key);
            b.int(lh, k!("rev"), l.rev);
            b.int(lh, k!("lease"), l.lease);
            b.hash(h, k!("leader"), lh);
        }
        h
    }
}

impl ToPerl for LeaderResponse {
    fn to_perl(&self, b: &Builder) -> Hv {
        let h = b.hv();
        b.header(h, &self.header);
        if let Some(kv) = &self.kv {
            b.hash(h, k!("kv"), b.kv(kv));
        }
        h
    }
}

crate::perl::header_only_reply!(ProclaimResponse, ResignResponse);

pub struct ObserveTask {
    pub shared: Arc<Shared>,
    pub id: u64,
    pub name: Vec<u8>,
    pub auto_reconnect: bool,
    /// Ends the stream once, whichever way the task ends.
    pub slot: TaskSlot,
}

enum Ended {
    /// Cancelled by the user (already answered), or the client is gone.
    Stopped,
    /// The endpoint list moved away from the stream's endpoint.
    Moved,
    Failed(Status),
}

/// What one stream of an observer saw, besides why it ended.
#[derive(Default)]
struct Attempt {
    /// Generation of the token it carried.
    token_gen: Option<u64>,
    /// It delivered a message.
    heard: bool,
    /// The server ended it without a word and without an error.
    quiet_end: bool,
}

impl ObserveTask {
    pub async fn run(mut self, mut cancel: oneshot::Receiver<Stop>) {
        let mut backoff = Backoff::new(self.shared.cfg.max_retries);
        // Leader already reported, as (key, mod_revision).
        let mut last: Option<(Vec<u8>, i64)> = None;
        // A quiet end was answered with a new login, and nothing has been
        // heard since: the next quiet end is taken as it comes.
        let mut login_tried = false;
        loop {
            let mut attempt = Attempt::default();
            let mut moves = Some(self.shared.watch_moves());
            let (channel, generation) = self.shared.channel();
            let ended = tokio::select! {
                _stop = &mut cancel => {
                    #[cfg(feature = "test-hooks")]
                    if let Ok(Stop::Crash) = _stop {
                        panic!("observe task: crash requested by a test");
                    }
                    Ended::Stopped
                }
                _ = moved(&mut moves) => Ended::Moved,
                status = self.observe_once(channel, &mut last, &mut backoff, &mut attempt) => {
                    Ended::Failed(status)
                }
            };
            let status = match ended {
                Ended::Stopped => {
                    self.slot.stopped();
                    return;
                }
                Ended::Moved => continue, // reopen on the new endpoint now
                Ended::Failed(status) => status,
            };
            if attempt.heard {
                login_tried = false;
            }
            // etcd ends an observe whose token it no longer knows (expired,
            // or forgotten in a restart) without saying why: its own read
            // of the election fails. One new login and one reopen at once;
            // only a repeat of that goes the usual way.
            if attempt.quiet_end
                && !attempt.heard
                && !login_tried
                && self.shared.token_rejected(attempt.token_gen)
            {
                login_tried = true;
                continue;
            }
            let (err, retry) =
                stream_failure(&self.shared, &status, generation, attempt.token_gen, SOURCE);
            let delay = if retry && self.auto_reconnect {
                backoff.next_delay()
            } else {
                None
            };
            let Some(delay) = delay else {
                let err = if retry && self.auto_reconnect {
                    gave_up(&err, SOURCE, backoff.attempts())
                } else {
                    err
                };
                return self.fail(err, cancel);
            };
            tokio::select! {
                _stop = &mut cancel => {
                    #[cfg(feature = "test-hooks")]
                    if let Ok(Stop::Crash) = _stop {
                        panic!("observe task: crash requested by a test");
                    }
                    self.slot.stopped();
                    return;
                }
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Runs one stream until it fails; returns why.
    async fn observe_once(
        &self,
        channel: tonic::transport::Channel,
        last: &mut Option<(Vec<u8>, i64)>,
        backoff: &mut Backoff,
        attempt: &mut Attempt,
    ) -> Status {
        let mut client = ElectionClient::new(channel).max_decoding_message_size(usize::MAX);
        if let Err(e) = self.shared.ensure_login().await {
            return Status::new(e.code, format!("observe: {}", e.message));
        }
        let (mut req, current) = self.shared.request_with_token(
            LeaderRequest {
                name: self.name.clone(),
            },
            true,
            None,
        );
        attempt.token_gen = Some(current);
        require_leader(&mut req);
        let mut stream = match client.observe(req).await {
            Ok(resp) => resp.into_inner(),
            Err(status) => return status,
        };
        loop {
            match stream.message().await {
                Ok(Some(resp)) => {
                    backoff.reset();
                    attempt.heard = true;
                    let seen = resp
                        .kv
                        .as_ref()
                        .map(|kv| (kv.key.to_vec(), kv.mod_revision));
                    if seen.is_some() && seen == *last {
                        continue; // the current leader, resent on reconnect
                    }
                    *last = seen;
                    self.shared
                        .send(self.id, Disposition::Keep, Ok(Box::new(resp)));
                }
                Ok(None) => {
                    attempt.quiet_end = true;
                    return Status::unavailable("observe stream closed by the server");
                }
                Err(status) => return status,
            }
        }
    }

    fn fail(&mut self, err: EtcdError, cancel: oneshot::Receiver<Stop>) {
        drop(cancel);
        self.slot.finish(Err(err));
    }
}
