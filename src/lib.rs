//! rollout-guard: an admission webhook that validates Argo Rollouts + Istio references at apply
//! time and keeps the controller-owned fields of a canary when GitOps re-applies them.
//!
//! Dependencies point one way: `cli` → `server`/`lint` → `admission` → `rules`/`drift` →
//! `index` → `model`. The core never sees HTTP, TLS, files or the kube client.

pub mod admission;
pub mod audit;
pub mod cli;
pub mod devcerts;
pub mod drift;
pub mod events;
pub mod explain;
pub mod index;
pub mod lint;
pub mod metrics;
pub mod model;
pub mod parallel;
pub mod rules;
pub mod schema;
pub mod server;
pub mod source;
mod yaml_guard;
