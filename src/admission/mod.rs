//! Admission: an AdmissionReview body in, an AdmissionReview body out. Pure: the decision depends
//! only on the request, the index and the policy; the HTTP layer only translates.

pub mod confirm;
pub mod mutate;
pub mod review;
pub mod validate;

use crate::index::Lookup;
use review::{BadReview, Request, Verdict};

/// The admission policy, from the command line.
#[derive(Debug, Clone)]
pub struct Policy {
    pub mode: Mode,
    pub reference_severity: ReferenceSeverity,
    pub breaks_severity: BreaksSeverity,
    pub exempt_users: Vec<String>,
    pub exempt_groups: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            mode: Mode::Enforce,
            reference_severity: ReferenceSeverity::Auto,
            breaks_severity: BreaksSeverity::Auto,
            exempt_users: vec![DEFAULT_EXEMPT_USER.to_string()],
            exempt_groups: Vec::new(),
        }
    }
}

/// The Argo Rollouts controller's identity in a default install.
pub const DEFAULT_EXEMPT_USER: &str = "system:serviceaccount:argo-rollouts:argo-rollouts";

impl Policy {
    pub fn is_exempt(&self, request: &Request) -> bool {
        self.exempt_users.contains(&request.user)
            || request
                .groups
                .iter()
                .any(|g| self.exempt_groups.contains(g))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Deny what the rules deny.
    Enforce,
    /// Audit: every denial becomes an allowed response with warnings.
    Warn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReferenceSeverity {
    /// A Rollout's findings against other objects deny on CREATE and warn on UPDATE.
    Auto,
    Warn,
    Deny,
}

/// What `breaks-rollout` does: a VirtualService, DestinationRule or Service write that newly
/// breaks a live Rollout that uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BreaksSeverity {
    /// Warn, and deny only when the write and the Rollout cannot be halves of one coordinated
    /// change (both carry GitOps application markers, and they differ).
    Auto,
    Warn,
    Deny,
}

/// What a decision reads: the index (with the request not yet in it) and the policy.
pub struct Context<'a> {
    pub index: &'a dyn Lookup,
    pub policy: &'a Policy,
    /// The cluster state is stale (a watch broken longer than `--stale-after`): cross-object
    /// denials become warnings and mutation is skipped.
    pub stale: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Webhook {
    Validate,
    Mutate,
}

impl Webhook {
    pub fn as_str(self) -> &'static str {
        match self {
            Webhook::Validate => "validate",
            Webhook::Mutate => "mutate",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Allowed with a patch (mutate only).
    Patched,
    Denied,
    /// The body was not an AdmissionReview with a uid (HTTP 400).
    Invalid,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Patched => "patched",
            Decision::Denied => "denied",
            Decision::Invalid => "invalid",
        }
    }
}

/// What happened, for logs and metrics.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub webhook: Webhook,
    pub decision: Decision,
    pub uid: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub operation: String,
    /// The writer (`userInfo.username`), for the log: who was denied or patched.
    pub user: String,
    pub dry_run: bool,
    /// Rules whose findings denied (or would have, in warn mode).
    pub denied_rules: Vec<&'static str>,
    /// Restores made by the drift guard, by kind of object.
    pub restores: usize,
    pub exempt: bool,
    pub skipped: bool,
    pub degraded: Vec<&'static str>,
    pub confirmation: Option<Confirmation>,
    pub warnings: usize,
    /// Why the request could not be read (HTTP 400).
    pub error: Option<String>,
    /// What an Event on the written object should say: a restore or a denial of a write that is
    /// not a dry run. The server layer records it (`crate::events`); the decision stays pure.
    pub happening: Option<Happening>,
}

/// A restore or a denial, on the object as the request names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Happening {
    pub regarding: Regarding,
    /// Who wrote it (`request.userInfo.username`).
    pub user: String,
    pub operation: String,
    pub what: What,
}

/// The object an Event is about. A denied CREATE has no stored object (and so no uid): the Event
/// then names the object as the request does (Events may refer to objects that do not exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regarding {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// The drift guard kept controller-owned values: one line per restore.
    Restored { kept: Vec<String> },
    /// The write was refused by these rules, with the denial message.
    Denied {
        rules: Vec<&'static str>,
        message: String,
    },
    /// The write was allowed but breaks a live Rollout (`breaks-rollout` at warn): the warnings,
    /// which the writer may never read (a GitOps tool), so the Rollout's owners see an Event.
    Breaks { warnings: Vec<String> },
}

/// The HTTP answer: status code, body and what happened.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub outcome: Outcome,
}

/// What a handler returns besides the verdict.
#[derive(Debug, Default)]
pub struct Notes {
    pub denied_rules: Vec<&'static str>,
    pub restores: usize,
    /// What each restore kept (for the Event; the warnings may be cut short).
    pub kept: Vec<String>,
    /// The `breaks-rollout` warnings of an allowed write (for the Event).
    pub breaking: Vec<String>,
    pub exempt: bool,
    pub skipped: bool,
    /// What the decision could not do as usual (each also a warning): `old-object-unreadable`,
    /// `unconfirmed`. Static strings: bounded metric labels.
    pub degraded: Vec<&'static str>,
    /// How a cross-object denial was confirmed with the API server, if it was asked.
    pub confirmation: Option<Confirmation>,
}

/// The outcome of reading a denial's objects again from the API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// The fresh objects still produce the denial.
    Confirmed,
    /// The fresh objects no longer do: the cache was behind.
    Cleared,
    /// The read failed or timed out: the denial became warnings.
    Failed,
}

impl Confirmation {
    pub fn as_str(self) -> &'static str {
        match self {
            Confirmation::Confirmed => "confirmed",
            Confirmation::Cleared => "cleared",
            Confirmation::Failed => "failed",
        }
    }
}

/// Decides on the index alone (it is the truth: files source, tests, benchmarks).
pub fn handle(webhook: Webhook, body: &[u8], ctx: &Context<'_>) -> Reply {
    let request = match review::parse(body) {
        Ok(r) => r,
        Err(err) => return bad_request(webhook, err),
    };
    let (verdict, notes) = match webhook {
        Webhook::Validate => validate::validate(&request, ctx),
        Webhook::Mutate => mutate::mutate(&request, ctx),
    };
    reply(webhook, request, verdict, notes)
}

/// The whole pipeline: (1) read the review and its objects, touching no index; (2) decide on
/// `snapshot`, an immutable version of the index; (3) only when a cross-object finding would
/// deny, read the objects it rests on from the API server (`live`, within `budget`) and decide
/// again on them: deny only if the finding still holds, warn if they cannot be read.
pub async fn handle_live(
    webhook: Webhook,
    body: &[u8],
    snapshot: std::sync::Arc<crate::index::Index>,
    policy: &Policy,
    stale: bool,
    live: Option<&dyn confirm::LiveRead>,
    budget: std::time::Duration,
) -> Reply {
    let request = match review::parse(body) {
        Ok(r) => r,
        Err(err) => return bad_request(webhook, err),
    };
    let (verdict, notes) = match webhook {
        Webhook::Mutate => {
            let ctx = Context {
                index: &*snapshot,
                policy,
                stale,
            };
            mutate::mutate(&request, &ctx)
        }
        Webhook::Validate => match validate::prepare(&request, policy) {
            validate::Prepared::Answered(verdict, notes) => (verdict, notes),
            validate::Prepared::Object(written) => {
                let judgement = validate::judge(
                    &written,
                    &Context {
                        index: &*snapshot,
                        policy,
                        stale,
                    },
                );
                let judgement = match live {
                    Some(live) if judgement.needs_confirmation() => {
                        confirm::confirm(&written, judgement, &snapshot, policy, live, budget).await
                    }
                    _ => judgement,
                };
                validate::verdict(&written.object, judgement, policy)
            }
        },
    };
    reply(webhook, request, verdict, notes)
}

fn reply(webhook: Webhook, request: review::Request, verdict: Verdict, notes: Notes) -> Reply {
    let decision = match (verdict.allowed, verdict.patch.is_empty()) {
        (false, _) => Decision::Denied,
        (true, false) => Decision::Patched,
        (true, true) => Decision::Allowed,
    };
    let body = review::respond(&request.api_version, &request.uid, &verdict);
    let happening = happening(&request, &verdict, &notes, decision);
    Reply {
        status: 200,
        content_type: "application/json",
        body,
        outcome: Outcome {
            webhook,
            decision,
            kind: request
                .kind
                .map(|k| k.as_str().to_string())
                .unwrap_or(request.kind_name),
            uid: request.uid,
            namespace: request.namespace,
            name: request.name,
            operation: request.operation.as_str().to_string(),
            user: request.user,
            dry_run: request.dry_run,
            denied_rules: notes.denied_rules,
            restores: notes.restores,
            exempt: notes.exempt,
            skipped: notes.skipped,
            degraded: notes.degraded,
            confirmation: notes.confirmation,
            warnings: verdict.warnings.len(),
            error: None,
            happening,
        },
    }
}

/// The Event a decision calls for: none for dry runs (nothing is written), none when nothing was
/// restored or denied.
fn happening(
    request: &review::Request,
    verdict: &Verdict,
    notes: &Notes,
    decision: Decision,
) -> Option<Happening> {
    if request.dry_run {
        return None;
    }
    let what = match decision {
        Decision::Denied => What::Denied {
            rules: notes.denied_rules.clone(),
            message: verdict.message.clone().unwrap_or_default(),
        },
        _ if !notes.kept.is_empty() => What::Restored {
            kept: notes.kept.clone(),
        },
        _ if !notes.breaking.is_empty() => What::Breaks {
            warnings: notes.breaking.clone(),
        },
        _ => return None,
    };
    let mut regarding = regarding(request);
    if matches!(what, What::Denied { .. }) && request.operation == review::Operation::Create {
        // The API server drew a uid for the object, but a denied CREATE never stores it: the
        // Event names the object as the request does, and no uid that nothing will ever have.
        regarding.uid = None;
    }
    Some(Happening {
        regarding,
        user: request.user.clone(),
        operation: request.operation.as_str().to_string(),
        what,
    })
}

/// The request's object as an Event's `regarding`: apiVersion and uid from the object (the uid
/// from `oldObject` when the object has none).
fn regarding(request: &review::Request) -> Regarding {
    #[derive(serde::Deserialize, Default)]
    struct Head {
        #[serde(rename = "apiVersion", default)]
        api_version: Option<String>,
        #[serde(default)]
        metadata: Option<HeadMeta>,
    }
    #[derive(serde::Deserialize, Default)]
    struct HeadMeta {
        #[serde(default)]
        uid: Option<String>,
    }
    let head = |raw: Option<&serde_json::value::RawValue>| -> Head {
        raw.and_then(|r| serde_json::from_str(r.get()).ok())
            .unwrap_or_default()
    };
    let object = head(request.object.as_deref());
    let old = head(request.old_object.as_deref());
    let uid = |h: &Head| {
        h.metadata
            .as_ref()
            .and_then(|m| m.uid.clone())
            .filter(|u| !u.is_empty())
    };
    Regarding {
        api_version: object
            .api_version
            .clone()
            .or(old.api_version.clone())
            .unwrap_or_default(),
        kind: request
            .kind
            .map(|k| k.as_str().to_string())
            .unwrap_or_else(|| request.kind_name.clone()),
        namespace: request.namespace.clone(),
        name: request.name.clone(),
        uid: uid(&object).or_else(|| uid(&old)),
    }
}

fn bad_request(webhook: Webhook, err: BadReview) -> Reply {
    let reason = err.to_string();
    Reply {
        status: 400,
        content_type: "text/plain; charset=utf-8",
        body: format!("{}\n", review::shorten(&reason, 1024)).into_bytes(),
        outcome: Outcome {
            webhook,
            decision: Decision::Invalid,
            uid: String::new(),
            kind: String::new(),
            namespace: String::new(),
            name: String::new(),
            operation: String::new(),
            user: String::new(),
            dry_run: false,
            denied_rules: Vec::new(),
            restores: 0,
            exempt: false,
            skipped: false,
            degraded: Vec::new(),
            confirmation: None,
            warnings: 0,
            error: Some(reason),
            happening: None,
        },
    }
}

/// The verdict when nothing is to be judged.
pub(crate) fn pass() -> (Verdict, Notes) {
    (Verdict::allow(), Notes::default())
}

/// What both webhooks judge: a kind of ours, CREATE or UPDATE of the object itself (never a
/// subresource), from a writer that is not exempt. Anything else gets its answer here.
pub(crate) fn screen(
    request: &Request,
    policy: &Policy,
) -> Result<crate::model::Kind, Box<(Verdict, Notes)>> {
    let Some(kind) = request.kind else {
        return Err(Box::new(pass()));
    };
    if !matches!(
        request.operation,
        review::Operation::Create | review::Operation::Update
    ) || !request.sub_resource.is_empty()
    {
        return Err(Box::new(pass()));
    }
    if policy.is_exempt(request) {
        let notes = Notes {
            exempt: true,
            ..Notes::default()
        };
        return Err(Box::new((Verdict::allow(), notes)));
    }
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome_of(fixture: &str) -> Outcome {
        let path = format!(
            "{}/tests/fixtures/reviews/{fixture}",
            env!("CARGO_MANIFEST_DIR")
        );
        let body = std::fs::read(&path).expect("fixture");
        let index = crate::index::Index::new();
        let policy = Policy::default();
        let ctx = Context {
            index: &index,
            policy: &policy,
            stale: false,
        };
        handle(Webhook::Mutate, &body, &ctx).outcome
    }

    /// The log says who wrote: the controller's requests can be told from a GitOps writer's.
    #[test]
    fn the_outcome_names_the_writer() {
        let controller = outcome_of("virtualservice-update-by-controller.json");
        assert_eq!(
            controller.user,
            "system:serviceaccount:argo-rollouts:argo-rollouts"
        );
        assert!(controller.exempt);
        let gitops = outcome_of("virtualservice-update-gitops-100-0.json");
        assert_ne!(gitops.user, controller.user);
        assert!(!gitops.user.is_empty());
        assert!(outcome_of("no-uid.json").user.is_empty());
    }
}
