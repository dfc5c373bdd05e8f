//! Phase 3 of a decision: before a cross-object finding denies, the objects it depends on are read
//! again from the API server, because the index is a watch cache that lags the writes it reports.

use super::review::shorten;
use super::validate::{judge, Judgement, Written};
use super::{Confirmation, Context, Policy};
use crate::index::Index;
use crate::model::{Object, ObjectKey};
use futures::future::BoxFuture;
use std::time::Duration;

/// Each key asked with its current object (`None`: it does not exist).
pub type LiveObjects = Vec<(ObjectKey, Option<Object>)>;

/// Reads objects as the API server has them now (a quorum read), for confirming a denial.
///
/// The kube source implements it with the client it watches through; the files source has no API
/// server and none (there the index is the truth). Tests implement it to hold, change or fail reads.
pub trait LiveRead: Send + Sync {
    /// Every key with its current object (`None`: it does not exist now). An error (unreachable,
    /// forbidden, an object that cannot be read) when any of them cannot be told.
    fn read<'a>(&'a self, keys: &'a [ObjectKey]) -> BoxFuture<'a, Result<LiveObjects, String>>;
}

/// Reads what `judgement`'s cross-object denials rest on and decides again on the fresh objects.
/// The written object itself is never read (the request is its newest version). One round: a
/// finding the fresh state still produces denies, even if it rests on objects not read again.
pub async fn confirm(
    written: &Written,
    judgement: Judgement,
    snapshot: &Index,
    policy: &Policy,
    live: &dyn LiveRead,
    budget: Duration,
) -> Judgement {
    let written_key = written.object.key();
    let keys: Vec<ObjectKey> = judgement
        .depends_on
        .iter()
        .filter(|k| **k != written_key)
        .cloned()
        .collect();
    let read = match tokio::time::timeout(budget, live.read(&keys)).await {
        Ok(Ok(objects)) => objects,
        Ok(Err(err)) => {
            let mut j = judgement.unconfirmed(&shorten(&err, 120));
            j.notes.confirmation = Some(Confirmation::Failed);
            return j;
        }
        Err(_) => {
            let why = format!("no answer within {} ms", budget.as_millis());
            let mut j = judgement.unconfirmed(&why);
            j.notes.confirmation = Some(Confirmation::Failed);
            return j;
        }
    };
    let fresh = refreshed(snapshot, read);
    let ctx = Context {
        index: &fresh,
        policy,
        stale: false,
    };
    let mut again = judge(written, &ctx);
    again.notes.confirmation = Some(if again.needs_confirmation() {
        Confirmation::Confirmed
    } else {
        Confirmation::Cleared
    });
    again
}

/// The snapshot with the objects read from the API server in place of the cached ones.
fn refreshed(snapshot: &Index, read: LiveObjects) -> Index {
    let mut fresh = snapshot.clone();
    for (key, object) in read {
        match object {
            Some(object) => {
                fresh.upsert(object);
            }
            None => {
                fresh.remove(&key);
            }
        }
    }
    fresh
}

#[cfg(test)]
mod tests {
    //! The pipeline on reviews: coordinated renames in both orders of arrival, with and without
    //! the watch event of the first write, and what the API server's answer does to a denial.
    use super::*;
    use crate::admission::{handle_live, BreaksSeverity, Decision, Webhook};
    use crate::index::Index;
    use crate::rules::testing::*;
    use serde_json::{json, Value};
    use std::sync::{Arc, Mutex};

    /// The API server as a map of objects (what a quorum GET would return), or an error.
    struct FakeApiServer {
        objects: Result<Vec<Object>, String>,
        asked: Mutex<Vec<ObjectKey>>,
    }

    impl FakeApiServer {
        fn with(objects: Vec<Object>) -> Self {
            FakeApiServer {
                objects: Ok(objects),
                asked: Mutex::new(Vec::new()),
            }
        }
        fn failing(why: &str) -> Self {
            FakeApiServer {
                objects: Err(why.to_string()),
                asked: Mutex::new(Vec::new()),
            }
        }
    }

    impl LiveRead for FakeApiServer {
        fn read<'a>(&'a self, keys: &'a [ObjectKey]) -> BoxFuture<'a, Result<LiveObjects, String>> {
            self.asked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(keys.iter().cloned());
            let answer = self.objects.clone().map(|objects| {
                keys.iter()
                    .map(|k| (k.clone(), objects.iter().find(|o| o.key() == *k).cloned()))
                    .collect()
            });
            Box::pin(async move { answer })
        }
    }

    /// Never answers: a GET that hangs.
    struct HangingApiServer;

    impl LiveRead for HangingApiServer {
        fn read<'a>(
            &'a self,
            _keys: &'a [ObjectKey],
        ) -> BoxFuture<'a, Result<LiveObjects, String>> {
            Box::pin(futures::future::pending())
        }
    }

    fn body(op: &str, object: &Value, old: Option<&Value>) -> Vec<u8> {
        let kind = object["kind"].as_str().unwrap_or_default();
        let group = match kind {
            "Rollout" => "argoproj.io",
            "Service" => "",
            _ => "networking.istio.io",
        };
        serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u", "kind": {"group": group, "version": "v1", "kind": kind},
                "namespace": "shop", "name": object["metadata"]["name"], "operation": op,
                "userInfo": {"username": "system:serviceaccount:argocd:argocd-application-controller"},
                "object": object, "oldObject": old}}))
        .expect("serialises")
    }

    fn rollout_with_route(route: &str) -> Value {
        rollout_doc(host_level(json!({"name": "app-vs", "routes": [route]})))
    }

    fn vs_with_route(route: &str) -> Value {
        vs_doc(
            "app-vs",
            json!({"hosts": ["app"], "http": [{"name": route, "route": [
                {"destination": {"host": "app-stable"}, "weight": 100},
                {"destination": {"host": "app-canary"}, "weight": 0}]}]}),
        )
    }

    fn services() -> Vec<Object> {
        vec![
            service("app-canary", json!({"app": "app"})),
            service("app-stable", json!({"app": "app"})),
        ]
    }

    fn world(docs: &[&Value]) -> Index {
        let mut objects: Vec<Object> = docs.iter().map(|d| object((*d).clone())).collect();
        objects.extend(services());
        index(objects)
    }

    struct Answer {
        allowed: bool,
        warnings: Vec<String>,
        message: String,
        decision: Decision,
        confirmation: Option<Confirmation>,
    }

    async fn ask(
        body: &[u8],
        cache: Index,
        policy: &Policy,
        live: Option<&dyn LiveRead>,
        budget: Duration,
    ) -> Answer {
        let reply = handle_live(
            Webhook::Validate,
            body,
            Arc::new(cache),
            policy,
            false,
            live,
            budget,
        )
        .await;
        let review: Value = serde_json::from_slice(&reply.body).expect("a JSON review");
        let response = &review["response"];
        Answer {
            allowed: response["allowed"].as_bool().expect("allowed is a bool"),
            warnings: response["warnings"]
                .as_array()
                .map(|w| {
                    w.iter()
                        .filter_map(|w| w.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            message: response["status"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            decision: reply.outcome.decision,
            confirmation: reply.outcome.confirmation,
        }
    }

    const SECOND: Duration = Duration::from_secs(1);

    /// Renaming route `primary` to `main` in the Rollout and its VirtualService, as one sync
    /// applies it: each order of arrival, and for each the second write judged both after the
    /// first write's watch event and before it (the cache still holding the old first object).
    #[tokio::test]
    async fn a_route_rename_passes_in_both_orders_with_or_without_the_watch_event() {
        let policy = Policy::default();
        let (old_r, new_r) = (rollout_with_route("primary"), rollout_with_route("main"));
        let (old_vs, new_vs) = (vs_with_route("primary"), vs_with_route("main"));
        let api_after_both =
            FakeApiServer::with(vec![object(new_r.clone()), object(new_vs.clone())]);

        let r = (&new_r, &old_r);
        let vs = (&new_vs, &old_vs);
        // Rollout first: its UPDATE warns until the VirtualService lands.
        let caches = [world(&[&new_r, &old_vs]), world(&[&old_r, &old_vs])];
        rename_in_order(
            &policy,
            &api_after_both,
            r,
            vs,
            caches,
            "http-route-not-found",
        )
        .await;
        // VirtualService first: a breaks-rollout warning until the Rollout lands.
        let caches = [world(&[&old_r, &new_vs]), world(&[&old_r, &old_vs])];
        rename_in_order(&policy, &api_after_both, vs, r, caches, "[breaks-rollout]").await;
    }

    /// `first` then `second` (each `(new, old)`), the second judged on each of `caches`.
    async fn rename_in_order(
        policy: &Policy,
        api: &FakeApiServer,
        first: (&Value, &Value),
        second: (&Value, &Value),
        caches: [Index; 2],
        first_warning: &str,
    ) {
        let before = world(&[first.1, second.1]);
        let a = ask(
            &body("UPDATE", first.0, Some(first.1)),
            before,
            policy,
            Some(api),
            SECOND,
        )
        .await;
        assert!(a.allowed, "{}", a.message);
        assert!(
            a.warnings.iter().any(|w| w.contains(first_warning)),
            "{:?}",
            a.warnings
        );
        for cache in caches {
            let b = ask(
                &body("UPDATE", second.0, Some(second.1)),
                cache,
                policy,
                Some(api),
                SECOND,
            )
            .await;
            assert!(b.allowed, "{}", b.message);
        }
    }

    fn subset_rollout(stable: &str) -> Value {
        rollout_doc(json!({
            "trafficRouting": {"istio": {
                "virtualService": {"name": "app-vs", "routes": ["primary"]},
                "destinationRule": {"name": "app-dr", "canarySubsetName": "canary", "stableSubsetName": stable}}},
            "steps": [{"setWeight": 20}]
        }))
    }

    fn subset_vs(stable: &str) -> Value {
        vs_doc(
            "app-vs",
            json!({"hosts": ["app"], "http": [{"name": "primary", "route": [
                {"destination": {"host": "app", "subset": stable}, "weight": 100},
                {"destination": {"host": "app", "subset": "canary"}, "weight": 0}]}]}),
        )
    }

    fn subset_dr(stable: &str) -> Value {
        json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule",
            "metadata": {"name": "app-dr", "namespace": "shop"},
            "spec": {"host": "app", "subsets": [{"name": "canary"}, {"name": stable}]}})
    }

    /// Renaming the stable subset in the Rollout and the DestinationRule (the VirtualService's
    /// destination too): the DestinationRule, named before the Rollout, always arrives first.
    #[tokio::test]
    async fn a_subset_rename_passes_in_both_orders() {
        let policy = Policy::default();
        let (old_r, new_r) = (subset_rollout("stable"), subset_rollout("stable-v2"));
        let (old_dr, new_dr) = (subset_dr("stable"), subset_dr("stable-v2"));
        let (old_vs, new_vs) = (subset_vs("stable"), subset_vs("stable-v2"));
        let api = FakeApiServer::with(vec![
            object(new_r.clone()),
            object(new_dr.clone()),
            object(new_vs.clone()),
        ]);
        let start = || {
            index(vec![
                object(old_r.clone()),
                object(old_dr.clone()),
                object(old_vs.clone()),
            ])
        };
        let orders: [[(&Value, &Value); 3]; 2] = [
            [(&new_dr, &old_dr), (&new_r, &old_r), (&new_vs, &old_vs)],
            [(&new_r, &old_r), (&new_vs, &old_vs), (&new_dr, &old_dr)],
        ];
        for order in orders {
            // The cache never sees any of the three writes (every watch event late).
            for (new, old) in order {
                let a = ask(
                    &body("UPDATE", new, Some(old)),
                    start(),
                    &policy,
                    Some(&api),
                    SECOND,
                )
                .await;
                assert!(a.allowed, "{} {}", new["kind"], a.message);
            }
        }
    }

    /// Argo Rollouts' istio.md "Additional Subset DestinationRule's": the additional subset lives
    /// in a DestinationRule of its own; the Rollout CREATE and both DestinationRule writes pass.
    #[tokio::test]
    async fn the_documented_additional_subset_setup_is_accepted() {
        let rollout = rollout_doc(json!({
            "trafficRouting": {"istio": {
                "virtualService": {"name": "app-vs", "routes": ["primary"]},
                "destinationRule": {"name": "app-dr", "canarySubsetName": "canary", "stableSubsetName": "stable",
                    "additionalSubsetNames": ["extra"]}}},
            "steps": [{"setWeight": 20}]
        }));
        let vs = vs_doc(
            "app-vs",
            json!({"hosts": ["app"], "http": [{"name": "primary", "route": [
                {"destination": {"host": "app", "subset": "stable"}, "weight": 90},
                {"destination": {"host": "app", "subset": "canary"}, "weight": 0},
                {"destination": {"host": "app-extra", "subset": "extra"}, "weight": 10}]}]}),
        );
        let dr = subset_dr("stable");
        let mut extra = subset_dr("extra");
        extra["metadata"]["name"] = json!("app-extra-dr");
        extra["spec"] = json!({"host": "app-extra", "subsets": [{"name": "extra"}]});
        let policy = Policy::default();
        let cache = || {
            index(vec![
                object(vs.clone()),
                object(dr.clone()),
                object(extra.clone()),
            ])
        };
        let created = ask(
            &body("CREATE", &rollout, None),
            cache(),
            &policy,
            None,
            SECOND,
        )
        .await;
        assert!(created.allowed, "{}", created.message);
        assert!(
            !created.warnings.iter().any(|w| w.contains("subset")),
            "{:?}",
            created.warnings
        );
        let mut with_rollout = cache();
        with_rollout.upsert(object(rollout.clone()));
        let mut dr_update = dr.clone();
        dr_update["spec"]["trafficPolicy"] = json!({"tls": {"mode": "ISTIO_MUTUAL"}});
        let again = ask(
            &body("UPDATE", &dr_update, Some(&dr)),
            with_rollout,
            &policy,
            None,
            SECOND,
        )
        .await;
        assert!(again.allowed, "{}", again.message);
    }

    /// With `--breaks-severity deny`, a VirtualService rename whose Rollout was already renamed
    /// (its watch event not yet in the cache) is allowed: the fresh Rollout no longer breaks.
    #[tokio::test]
    async fn a_delayed_rollout_event_is_read_from_the_api_server() {
        let policy = Policy {
            breaks_severity: BreaksSeverity::Deny,
            ..Policy::default()
        };
        let (old_vs, new_vs) = (vs_with_route("primary"), vs_with_route("main"));
        let cache = world(&[&rollout_with_route("primary"), &old_vs]);
        let api =
            FakeApiServer::with([vec![object(rollout_with_route("main"))], services()].concat());
        let a = ask(
            &body("UPDATE", &new_vs, Some(&old_vs)),
            cache,
            &policy,
            Some(&api),
            SECOND,
        )
        .await;
        assert!(a.allowed, "{}", a.message);
        assert_eq!(a.confirmation, Some(Confirmation::Cleared));
        assert!(
            !a.warnings.iter().any(|w| w.contains("breaks-rollout")),
            "{:?}",
            a.warnings
        );
        let asked = api.asked.lock().unwrap_or_else(|p| p.into_inner()).clone();
        assert!(asked.contains(&ObjectKey::new(crate::model::Kind::Rollout, "shop", "app")));
        assert!(
            !asked
                .iter()
                .any(|k| k.kind == crate::model::Kind::VirtualService),
            "the written object is never read: {asked:?}"
        );
    }

    /// A Rollout CREATE that names the route its VirtualService got a moment ago (the
    /// VirtualService's event not yet in the cache) is allowed.
    #[tokio::test]
    async fn a_rollout_created_before_its_virtualservice_event_is_allowed() {
        let cache = world(&[&vs_with_route("primary")]);
        let api = FakeApiServer::with([vec![object(vs_with_route("main"))], services()].concat());
        let a = ask(
            &body("CREATE", &rollout_with_route("main"), None),
            cache,
            &Policy::default(),
            Some(&api),
            SECOND,
        )
        .await;
        assert!(a.allowed, "{}", a.message);
        assert_eq!(a.confirmation, Some(Confirmation::Cleared));
    }

    #[tokio::test]
    async fn a_real_cross_object_denial_still_denies() {
        let cache = world(&[&vs_with_route("primary")]);
        let api =
            FakeApiServer::with([vec![object(vs_with_route("primary"))], services()].concat());
        let a = ask(
            &body("CREATE", &rollout_with_route("primry"), None),
            cache,
            &Policy::default(),
            Some(&api),
            SECOND,
        )
        .await;
        assert!(!a.allowed);
        assert_eq!(a.decision, Decision::Denied);
        assert!(
            a.message.contains("[http-route-not-found]"),
            "{}",
            a.message
        );
        assert_eq!(a.confirmation, Some(Confirmation::Confirmed));
    }

    #[tokio::test]
    async fn an_unreachable_api_server_turns_the_denial_into_warnings() {
        let wrong = body("CREATE", &rollout_with_route("primry"), None);
        let failing = FakeApiServer::failing("connection refused");
        for (live, expect) in [
            (&failing as &dyn LiveRead, "connection refused"),
            (&HangingApiServer as &dyn LiveRead, "no answer within 20 ms"),
        ] {
            let cache = world(&[&vs_with_route("primary")]);
            let a = ask(
                &wrong,
                cache,
                &Policy::default(),
                Some(live),
                Duration::from_millis(20),
            )
            .await;
            assert!(a.allowed, "{}", a.message);
            assert_eq!(a.confirmation, Some(Confirmation::Failed));
            assert!(
                a.warnings
                    .iter()
                    .any(|w| w.contains("not confirmed") && w.contains(expect)),
                "{:?}",
                a.warnings
            );
            assert!(
                a.warnings
                    .iter()
                    .any(|w| w.contains("http-route-not-found")),
                "{:?}",
                a.warnings
            );
        }
    }

    /// Without a reader (files source) the index is the truth: the denial stands, unconfirmed.
    #[tokio::test]
    async fn without_an_api_server_the_index_is_the_truth() {
        let cache = world(&[&vs_with_route("primary")]);
        let a = ask(
            &body("CREATE", &rollout_with_route("primry"), None),
            cache,
            &Policy::default(),
            None,
            SECOND,
        )
        .await;
        assert!(!a.allowed);
        assert_eq!(a.confirmation, None);
    }
}
