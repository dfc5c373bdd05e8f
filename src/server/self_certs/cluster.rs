//! The cluster side of `--certificates self`: the Secret, the caBundle, the served pair.
//!
//! Every replica runs the same loop: read the Secret; create it when there is none (the first
//! `create` wins; a replica that gets AlreadyExists reads again and adopts the winner's pair);
//! renew it with `update` at the resourceVersion it read (optimistic concurrency: a Conflict
//! means another replica renewed first, so it reads again and adopts that); make sure both
//! webhook configurations carry the Secret's CA bundle (a JSON patch, only where it differs);
//! then, and only then, serve the pair (a lock-free swap in [`CertResolver`]). It looks again
//! at the renewal time or every check interval, whichever is first, so a pair another replica
//! renewed, or a caBundle someone erased, is picked up within that interval.

use super::{decide, not_after, renew, Decision, Pki, Settings};
use crate::metrics::Metrics;
use crate::server::tls::{certified_key, CertResolver};
use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use rustls::crypto::CryptoProvider;
use std::sync::Arc;
use std::time::Duration;

/// Where the pair is kept and whose caBundle it fills (`serve` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfCertConfig {
    pub namespace: String,
    pub secret: String,
    /// ValidatingWebhookConfiguration to inject into (empty: none).
    pub validating_webhook: String,
    /// MutatingWebhookConfiguration to inject into (empty: none).
    pub mutating_webhook: String,
    pub settings: Settings,
    /// Longest time between two looks at the Secret and the webhook configurations.
    pub check_interval: Duration,
}

/// How many read-decide-write rounds one look may take before it gives up until the next.
const ROUNDS: usize = 5;

/// How long startup may try to obtain a pair before `serve` stops with an error.
const STARTUP_DEADLINE: Duration = Duration::from_secs(60);

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Keeps the pair, the Secret and the caBundle current.
pub struct Keeper {
    config: SelfCertConfig,
    secrets: Api<Secret>,
    validating: Api<ValidatingWebhookConfiguration>,
    mutating: Api<MutatingWebhookConfiguration>,
    provider: Arc<CryptoProvider>,
    metrics: Arc<Metrics>,
    resolver: Option<Arc<CertResolver>>,
    active: Option<Pki>,
}

/// What one look found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The pair in use is the Secret's.
    Unchanged,
    /// The pair created, adopted or renewed here is served now.
    Switched(&'static str),
}

impl Keeper {
    pub fn new(
        client: Client,
        config: SelfCertConfig,
        provider: Arc<CryptoProvider>,
        metrics: Arc<Metrics>,
    ) -> Keeper {
        Keeper {
            secrets: Api::namespaced(client.clone(), &config.namespace),
            validating: Api::all(client.clone()),
            mutating: Api::all(client),
            config,
            provider,
            metrics,
            resolver: None,
            active: None,
        }
    }

    /// Obtains a pair (retrying until [`STARTUP_DEADLINE`]) and returns the resolver serving it.
    pub async fn start(&mut self) -> anyhow::Result<Arc<CertResolver>> {
        let started = tokio::time::Instant::now();
        let mut delay = Duration::from_millis(250);
        loop {
            match self.look().await {
                Ok(_) => {
                    if let Some(resolver) = &self.resolver {
                        return Ok(resolver.clone());
                    }
                }
                Err(e) if started.elapsed() >= STARTUP_DEADLINE => {
                    anyhow::bail!(
                        "--certificates self: no serving certificate after {}s: {e}",
                        STARTUP_DEADLINE.as_secs()
                    )
                }
                Err(e) => tracing::warn!(error = %e, "self-managed certificates: retrying"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// One look: the Secret read (created or renewed if need be), the caBundle made to match,
    /// and the pair served if it changed. Errors leave the pair in use serving.
    pub async fn look(&mut self) -> Result<Outcome, String> {
        let (pki, how) = self.current_pki().await?;
        self.inject(&pki.ca_bundle).await?;
        if self.active.as_ref() == Some(&pki) {
            return Ok(Outcome::Unchanged);
        }
        let key = certified_key(
            pki.tls_cert.as_bytes(),
            pki.tls_key.as_bytes(),
            &self.provider,
        )
        .map_err(|e| format!("the new pair does not load: {e}"))?;
        match &self.resolver {
            Some(r) => r.store(key),
            None => self.resolver = Some(Arc::new(CertResolver::new(key))),
        }
        if let Some(t) = not_after(&pki.tls_cert) {
            self.metrics.tls_certificate_expiry(t);
        }
        let first = self.active.is_none();
        self.active = Some(pki);
        if !first {
            self.metrics.tls_reload(true);
        }
        tracing::info!(
            secret = %format!("{}/{}", self.config.namespace, self.config.secret),
            how,
            "self-managed serving certificate in use"
        );
        Ok(Outcome::Switched(how))
    }

    /// The Secret's pair, after creating or renewing it when needed.
    async fn current_pki(&self) -> Result<(Pki, &'static str), String> {
        let name = &self.config.secret;
        let where_ = format!("Secret {}/{name}", self.config.namespace);
        for _ in 0..ROUNDS {
            let now = now();
            let existing = self
                .secrets
                .get_opt(name)
                .await
                .map_err(|e| format!("cannot read {where_}: {e}"))?;
            let Some(mut secret) = existing else {
                let pki = renew(
                    &Decision::RenewCa("no Secret".into()),
                    None,
                    &self.config.settings,
                    now,
                )
                .map_err(|e| format!("cannot issue certificates: {e}"))?;
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        labels: Some(
                            [(
                                "app.kubernetes.io/managed-by".to_string(),
                                "rollout-guard".to_string(),
                            )]
                            .into(),
                        ),
                        ..ObjectMeta::default()
                    },
                    type_: Some("Opaque".into()),
                    data: Some(to_bytes(&pki)),
                    ..Secret::default()
                };
                match self.secrets.create(&PostParams::default(), &secret).await {
                    Ok(_) => return Ok((pki, "created")),
                    // Another replica created it first: read it and adopt its pair.
                    Err(kube::Error::Api(s)) if s.is_already_exists() => continue,
                    Err(e) => return Err(format!("cannot create {where_}: {e}")),
                }
            };
            let data = from_bytes(secret.data.as_ref());
            let stored = Pki::from_data(&data);
            let decision = match &stored {
                Ok(pki) => decide(pki, &self.config.settings, now, &self.provider),
                Err(e) => Decision::RenewCa(format!("{where_}: {e}")),
            };
            let why = match decision {
                Decision::Keep { .. } => {
                    let pki = stored.map_err(|e| format!("{where_}: {e}"))?;
                    let how = if self.active.is_none() {
                        "adopted"
                    } else {
                        "renewed elsewhere"
                    };
                    return Ok((pki, how));
                }
                Decision::RenewServing(ref why) | Decision::RenewCa(ref why) => why.clone(),
            };
            let pki = renew(&decision, stored.as_ref().ok(), &self.config.settings, now)
                .map_err(|e| format!("cannot issue certificates: {e}"))?;
            secret.data = Some(to_bytes(&pki));
            // replace sends the resourceVersion read above: a Conflict means another replica
            // wrote in between, and its pair is the one to adopt.
            match self
                .secrets
                .replace(name, &PostParams::default(), &secret)
                .await
            {
                Ok(_) => {
                    tracing::info!(reason = %why, "renewing the self-managed certificates");
                    return Ok((pki, "renewed"));
                }
                Err(kube::Error::Api(s)) if s.is_conflict() => continue,
                Err(e) => return Err(format!("cannot update {where_}: {e}")),
            }
        }
        Err(format!(
            "{where_} kept changing under {ROUNDS} read-write rounds; trying again later"
        ))
    }

    /// Sets every entry's clientConfig.caBundle of both configurations to `bundle`. A
    /// configuration that does not exist (deleted for break-glass, or not created yet) is
    /// skipped with a warning: the pair is still kept and renewed, and injected once it is back.
    async fn inject(&self, bundle: &str) -> Result<(), String> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(bundle.as_bytes());
        let raw = bundle.as_bytes();
        if !self.config.validating_webhook.is_empty() {
            let name = &self.config.validating_webhook;
            let what = format!("ValidatingWebhookConfiguration {name}");
            let found = self
                .validating
                .get_opt(name)
                .await
                .map_err(|e| format!("cannot read {what}: {e}"))?;
            let entries = found.map(|c| {
                c.webhooks
                    .unwrap_or_default()
                    .into_iter()
                    .map(|w| (w.name, w.client_config.ca_bundle))
                    .collect::<Vec<_>>()
            });
            if let Some(patch) = patch_for(&what, entries, &encoded, raw) {
                self.validating
                    .patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
                    .await
                    .map_err(|e| format!("cannot patch {what}: {e}"))?;
                tracing::info!(configuration = %what, "caBundle injected");
            }
        }
        if !self.config.mutating_webhook.is_empty() {
            let name = &self.config.mutating_webhook;
            let what = format!("MutatingWebhookConfiguration {name}");
            let found = self
                .mutating
                .get_opt(name)
                .await
                .map_err(|e| format!("cannot read {what}: {e}"))?;
            let entries = found.map(|c| {
                c.webhooks
                    .unwrap_or_default()
                    .into_iter()
                    .map(|w| (w.name, w.client_config.ca_bundle))
                    .collect::<Vec<_>>()
            });
            if let Some(patch) = patch_for(&what, entries, &encoded, raw) {
                self.mutating
                    .patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
                    .await
                    .map_err(|e| format!("cannot patch {what}: {e}"))?;
                tracing::info!(configuration = %what, "caBundle injected");
            }
        }
        Ok(())
    }

    /// Looks at the renewal time or every check interval, whichever comes first, until aborted.
    pub async fn run(mut self) {
        loop {
            let wait = self.next_wait();
            tokio::time::sleep(wait).await;
            if let Err(e) = self.look().await {
                tracing::error!(error = %e, "self-managed certificates: the pair in use keeps serving");
            }
        }
    }

    fn next_wait(&self) -> Duration {
        let due = self
            .active
            .as_ref()
            .map(|pki| decide(pki, &self.config.settings, now(), &self.provider));
        let until = match due {
            Some(Decision::Keep { renew_at }) => {
                Duration::from_secs((renew_at - now()).max(0) as u64)
            }
            _ => Duration::ZERO,
        };
        until
            .min(self.config.check_interval)
            .max(Duration::from_secs(1))
    }
}

/// The patch for one configuration's entries, or None when it has the bundle or is missing.
fn patch_for(
    what: &str,
    entries: Option<Vec<(String, Option<ByteString>)>>,
    encoded: &str,
    raw: &[u8],
) -> Option<json_patch::Patch> {
    match entries {
        Some(entries) => ca_bundle_patch(&entries, encoded, raw),
        None => {
            tracing::warn!(configuration = %what, "not found; caBundle not injected");
            None
        }
    }
}

/// The JSON patch that sets each entry's caBundle to `encoded`, or None when all have it. Each
/// change is guarded by a test of the entry's name, so a reordered list fails the patch instead
/// of writing the bundle into the wrong entry.
pub fn ca_bundle_patch(
    entries: &[(String, Option<ByteString>)],
    encoded: &str,
    raw: &[u8],
) -> Option<json_patch::Patch> {
    let mut ops = Vec::new();
    for (i, (name, current)) in entries.iter().enumerate() {
        if current.as_ref().map(|b| b.0.as_slice()) == Some(raw) {
            continue;
        }
        ops.push(
            serde_json::json!({"op": "test", "path": format!("/webhooks/{i}/name"), "value": name}),
        );
        ops.push(serde_json::json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": encoded}));
    }
    if ops.is_empty() {
        return None;
    }
    serde_json::from_value(serde_json::Value::Array(ops)).ok()
}

fn to_bytes(pki: &Pki) -> std::collections::BTreeMap<String, ByteString> {
    pki.to_data()
        .into_iter()
        .map(|(k, v)| (k, ByteString(v)))
        .collect()
}

fn from_bytes(
    data: Option<&std::collections::BTreeMap<String, ByteString>>,
) -> std::collections::BTreeMap<String, Vec<u8>> {
    data.into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patch_touches_only_entries_without_the_bundle() {
        let raw = b"PEM".to_vec();
        let encoded = base64::engine::general_purpose::STANDARD.encode(&raw);
        let entries = vec![
            (
                "a.rollout-guard.io".to_string(),
                Some(ByteString(raw.clone())),
            ),
            ("b.rollout-guard.io".to_string(), None),
            (
                "c.rollout-guard.io".to_string(),
                Some(ByteString(b"old".to_vec())),
            ),
        ];
        let patch = ca_bundle_patch(&entries, &encoded, &raw).unwrap();
        let json = serde_json::to_value(&patch).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"op": "test", "path": "/webhooks/1/name", "value": "b.rollout-guard.io"},
                {"op": "add", "path": "/webhooks/1/clientConfig/caBundle", "value": encoded},
                {"op": "test", "path": "/webhooks/2/name", "value": "c.rollout-guard.io"},
                {"op": "add", "path": "/webhooks/2/clientConfig/caBundle", "value": encoded},
            ])
        );
        // Applied to a configuration, it sets the bundle and nothing else.
        let mut doc = serde_json::json!({"webhooks": [
            {"name": "a.rollout-guard.io", "clientConfig": {"caBundle": encoded}},
            {"name": "b.rollout-guard.io", "clientConfig": {"url": "https://127.0.0.1:1/validate"}},
            {"name": "c.rollout-guard.io", "clientConfig": {"caBundle": "b2xk"}},
        ]});
        json_patch::patch(&mut doc, &patch).unwrap();
        for w in doc["webhooks"].as_array().unwrap() {
            assert_eq!(w["clientConfig"]["caBundle"], encoded);
        }
        assert_eq!(
            doc["webhooks"][1]["clientConfig"]["url"],
            "https://127.0.0.1:1/validate"
        );
        // Reordered under us: the test op fails the whole patch.
        let mut reordered = serde_json::json!({"webhooks": [
            {"name": "a.rollout-guard.io", "clientConfig": {}},
            {"name": "c.rollout-guard.io", "clientConfig": {}},
            {"name": "b.rollout-guard.io", "clientConfig": {}},
        ]});
        assert!(json_patch::patch(&mut reordered, &patch).is_err());

        let all = vec![("a".to_string(), Some(ByteString(raw.clone())))];
        assert!(ca_bundle_patch(&all, &encoded, &raw).is_none());
    }
}
