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
    pub exempt_users: Vec<String>,
    pub exempt_groups: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            mode: Mode::Enforce,
            reference_severity: ReferenceSeverity::Auto,
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
    pub dry_run: bool,
    /// Rules whose findings denied (or would have, in warn mode).
    pub denied_rules: Vec<&'static str>,
    /// Restores made by the drift guard, by kind of object.
    pub restores: usize,
    pub exempt: bool,
    pub skipped: bool,
    pub warnings: usize,
    /// Why the request could not be read (HTTP 400).
    pub error: Option<String>,
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
    pub exempt: bool,
    pub skipped: bool,
}

pub fn handle(webhook: Webhook, body: &[u8], ctx: &Context<'_>) -> Reply {
    let request = match review::parse(body) {
        Ok(r) => r,
        Err(err) => return bad_request(webhook, err),
    };
    let (verdict, notes) = match webhook {
        Webhook::Validate => validate::validate(&request, ctx),
        Webhook::Mutate => mutate::mutate(&request, ctx),
    };
    let decision = match (verdict.allowed, verdict.patch.is_empty()) {
        (false, _) => Decision::Denied,
        (true, false) => Decision::Patched,
        (true, true) => Decision::Allowed,
    };
    let body = review::respond(&request.api_version, &request.uid, &verdict);
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
            dry_run: request.dry_run,
            denied_rules: notes.denied_rules,
            restores: notes.restores,
            exempt: notes.exempt,
            skipped: notes.skipped,
            warnings: verdict.warnings.len(),
            error: None,
        },
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
            dry_run: false,
            denied_rules: Vec::new(),
            restores: 0,
            exempt: false,
            skipped: false,
            warnings: 0,
            error: Some(reason),
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
    ctx: &Context<'_>,
) -> Result<crate::model::Kind, (Verdict, Notes)> {
    let Some(kind) = request.kind else {
        return Err(pass());
    };
    if !matches!(
        request.operation,
        review::Operation::Create | review::Operation::Update
    ) || !request.sub_resource.is_empty()
    {
        return Err(pass());
    }
    if ctx.policy.is_exempt(request) {
        let notes = Notes {
            exempt: true,
            ..Notes::default()
        };
        return Err((Verdict::allow(), notes));
    }
    Ok(kind)
}
