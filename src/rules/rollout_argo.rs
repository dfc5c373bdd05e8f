//! Argo Rollouts' own generic Rollout validation (`pkg/apis/rollouts/validation`, what
//! `kubectl argo rollouts lint` and the controller's InvalidSpec check run besides the traffic
//! routing rules), in its wording: `rollout-spec-invalid`.

use super::{Finding, RuleId};
use crate::model::rollout::{IntOrString, Step};
use crate::model::{ObjectKey, Rollout};

const STEPS: &str = "spec.strategy.canary.steps";

pub fn check(rollout: &Rollout, key: &ObjectKey, out: &mut Vec<Finding>) {
    let spec = &rollout.spec;
    let mut invalid = |path: String, message: String| {
        out.push(Finding::new(RuleId::RolloutSpecInvalid, key, path, message));
    };
    for (field, value) in [
        ("replicas", spec.replicas),
        ("minReadySeconds", spec.min_ready_seconds),
        ("revisionHistoryLimit", spec.revision_history_limit),
        ("progressDeadlineSeconds", spec.progress_deadline_seconds),
    ] {
        if let Some(v) = value.filter(|v| *v < 0) {
            invalid(
                format!("spec.{field}"),
                format!("{v}: must be greater than or equal to 0"),
            );
        }
    }
    if let (Some(deadline), min_ready) = (spec.progress_deadline_seconds, spec.min_ready_seconds) {
        if deadline >= 0 && deadline <= min_ready.unwrap_or(0) {
            invalid(
                "spec.progressDeadlineSeconds".into(),
                format!("{deadline}: must be greater than minReadySeconds"),
            );
        }
    }
    if spec.workload_ref.is_none() {
        match &spec.selector {
            None => invalid(
                "spec.selector".into(),
                "Rollout has missing field '.spec.selector'; set the selector that matches the pod template labels"
                    .into(),
            ),
            Some(s) if s.match_labels.is_empty() && s.match_expressions.is_empty() => invalid(
                "spec.selector".into(),
                "empty selector is invalid for deployment; select the pod template labels".into(),
            ),
            Some(_) => {}
        }
    }
    let strategy = &spec.strategy;
    match (&strategy.canary, &strategy.blue_green) {
        (None, None) => invalid(
            "spec.strategy".into(),
            "Rollout has missing field '.spec.strategy.canary or .spec.strategy.blueGreen'".into(),
        ),
        (Some(_), Some(_)) => invalid(
            "spec.strategy".into(),
            "Multiple Strategies can not be listed; keep canary or blueGreen".into(),
        ),
        _ => {}
    }
    let Some(canary) = &strategy.canary else {
        return;
    };
    let scaled = |v: &Option<IntOrString>| v.as_ref().map_or(Some(25), int_or_percent);
    if scaled(&canary.max_surge) == Some(0) && scaled(&canary.max_unavailable) == Some(0) {
        invalid(
            "spec.strategy.canary.maxSurge".into(),
            "MaxSurge and MaxUnavailable both can not be zero; allow at least one extra or one missing pod".into(),
        );
    }
    let routing = canary.traffic_routing.as_ref();
    for (i, step) in canary.steps.iter().enumerate() {
        let first = out.len();
        step_shape(step, i, key, out);
        let templates = step.experiment.iter().flat_map(|e| e.templates.iter());
        for (k, t) in templates.enumerate().filter(|(_, t)| t.weight.is_some()) {
            let problem = match routing {
                None => Some("Experiment template weight cannot be set unless TrafficRouting is enabled"),
                Some(r) if r.istio.is_none() && r.smi.is_none() && r.alb.is_none() && r.plugins.is_none() => Some(
                    "Experiment template weight is only available for TrafficRouting with SMI, ALB, Istio and \
                     Plugins at this time",
                ),
                Some(_) => None,
            };
            if let Some(problem) = problem {
                out.push(Finding::new(
                    RuleId::RolloutSpecInvalid,
                    key,
                    format!("{STEPS}[{i}].experiment.templates[{k}].weight"),
                    format!(
                        "{problem}; found weight {} on template {:?}",
                        t.weight.unwrap_or(0),
                        t.name
                    ),
                ));
            }
        }
        let subject = format!("step {step:?}");
        for f in &mut out[first..] {
            f.subject.clone_from(&subject);
        }
    }
}

fn step_shape(step: &Step, i: usize, key: &ObjectKey, out: &mut Vec<Finding>) {
    let exclusive = [
        step.set_weight.is_some(),
        step.pause.is_some(),
        step.experiment.is_some(),
        step.analysis.is_some(),
    ]
    .into_iter()
    .filter(|set| *set)
    .count();
    let any = exclusive > 0
        || step.set_canary_scale.is_some()
        || step.set_header_route.is_some()
        || step.set_mirror_route.is_some()
        || step.plugin.is_some();
    if !any || exclusive > 1 {
        let found = if any {
            "several of setWeight, pause, experiment and analysis in one step"
        } else {
            "none"
        };
        out.push(Finding::new(
            RuleId::RolloutSpecInvalid,
            key,
            format!("{STEPS}[{i}]"),
            format!(
                "Step must have one of the following set: experiment, setWeight, setCanaryScale, plugin or pause; \
                 found {found}: give each action a step of its own"
            ),
        ));
    }
    if let Some(duration) = step.pause.as_ref().and_then(|p| p.duration.as_ref()) {
        if duration_seconds(duration).is_none_or(|s| s < 0) {
            out.push(Finding::new(
                RuleId::RolloutSpecInvalid,
                key,
                format!("{STEPS}[{i}].pause.duration"),
                format!(
                    "Duration needs to be greater than 0; found {}: write seconds (30) or a duration (30s, 5m, 1h)",
                    match duration {
                        IntOrString::Int(n) => n.to_string(),
                        IntOrString::Str(s) => format!("{s:?}"),
                    }
                ),
            ));
        }
    }
}

/// Argo's `getIntOrPercentValue`: `"25%"` → 25, `3` → 3, a string that is not a number → 0
/// (`intstr.IntValue`). `None` for a percentage that does not parse.
fn int_or_percent(v: &IntOrString) -> Option<i64> {
    match v {
        IntOrString::Int(n) => Some(*n),
        IntOrString::Str(s) => match s.strip_suffix('%') {
            Some(p) => p.parse().ok(),
            None => Some(s.parse().unwrap_or(0)),
        },
    }
}

/// Argo's `DurationSeconds`: an integer is seconds; a string is an integer of seconds or a Go
/// duration (`1h30m`, `1.5s`, `300ms`). `None` where Argo gets -1 (unparseable).
fn duration_seconds(v: &IntOrString) -> Option<i64> {
    match v {
        IntOrString::Int(n) => Some(*n),
        IntOrString::Str(s) => s
            .parse::<i64>()
            .ok()
            .or_else(|| go_duration_nanos(s).map(|n| (n / 1_000_000_000.0) as i64)),
    }
}

/// Go's `time.ParseDuration`, to nanoseconds: an optional sign, then one or more decimal numbers
/// each with a unit (ns, us, µs, ms, s, m, h); `0` alone is allowed.
fn go_duration_nanos(s: &str) -> Option<f64> {
    let (sign, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (-1.0, &s[1..]),
        Some(b'+') => (1.0, &s[1..]),
        _ => (1.0, s),
    };
    if rest == "0" {
        return Some(0.0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += number * scale;
    }
    Some(sign * total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::*;
    use serde_json::json;

    fn findings_of(doc: serde_json::Value) -> Vec<Finding> {
        let crate::model::Object::Rollout(r) = object(doc) else {
            panic!("a Rollout document");
        };
        let mut out = Vec::new();
        check(
            &r,
            &ObjectKey::new(crate::model::Kind::Rollout, "shop", "app"),
            &mut out,
        );
        out
    }

    fn findings(canary: serde_json::Value) -> Vec<Finding> {
        findings_of(rollout_doc(canary))
    }

    #[test]
    fn a_sound_rollout_passes() {
        assert!(findings(
            json!({"steps": [{"setWeight": 20}, {"pause": {"duration": "1m30s"}}, {"pause": {}}]})
        )
        .is_empty());
    }

    #[test]
    fn max_surge_and_max_unavailable_both_zero() {
        let f = findings(json!({"maxSurge": 0, "maxUnavailable": "0%"}));
        assert_eq!(rules_of(&f), ["rollout-spec-invalid"]);
        assert!(f[0]
            .message
            .starts_with("MaxSurge and MaxUnavailable both can not be zero"));
        assert!(
            findings(json!({"maxSurge": 0})).is_empty(),
            "maxUnavailable defaults to 25%"
        );
    }

    #[test]
    fn step_shapes_as_argo_checks_them() {
        let f = findings(
            json!({"steps": [{}, {"setWeight": 10, "pause": {}}, {"setWeight": 10, "setHeaderRoute": {"name": "h"}}]}),
        );
        let paths: Vec<&str> = f.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.strategy.canary.steps[0]",
                "spec.strategy.canary.steps[1]"
            ],
            "{f:?}"
        );
        assert!(f[0]
            .message
            .starts_with("Step must have one of the following set"));
    }

    #[test]
    fn experiment_weights_need_a_router_that_splits_by_weight() {
        let step = json!([{"experiment": {"templates": [{"name": "exp", "weight": 20}]}}]);
        let f = findings(json!({"steps": step}));
        assert!(
            f[0].message
                .starts_with("Experiment template weight cannot be set unless TrafficRouting"),
            "{f:?}"
        );
        let f = findings(json!({"steps": step, "trafficRouting": {"nginx": {}}}));
        assert!(
            f[0].message
                .starts_with("Experiment template weight is only available"),
            "{f:?}"
        );
        assert!(findings(json!({"steps": step, "trafficRouting": {"smi": {}}})).is_empty());
    }

    #[test]
    fn pause_durations() {
        for bad in [json!(-5), json!("-1s"), json!("ten minutes"), json!("5x")] {
            let f = findings(json!({"steps": [{"pause": {"duration": bad}}]}));
            assert_eq!(rules_of(&f), ["rollout-spec-invalid"], "{bad}");
        }
        for good in [
            json!(30),
            json!("30"),
            json!("30s"),
            json!("1h30m"),
            json!("1.5m"),
            json!("300ms"),
        ] {
            assert!(
                findings(json!({"steps": [{"pause": {"duration": good}}]})).is_empty(),
                "{good}"
            );
        }
    }

    #[test]
    fn selector_strategy_and_counts() {
        let mut doc = rollout_doc(json!({}));
        doc["spec"]["selector"] = json!({});
        doc["spec"]["replicas"] = json!(-1);
        doc["spec"]["progressDeadlineSeconds"] = json!(5);
        doc["spec"]["minReadySeconds"] = json!(10);
        let out = findings_of(doc);
        let paths: Vec<&str> = out.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.replicas",
                "spec.progressDeadlineSeconds",
                "spec.selector"
            ],
            "{out:?}"
        );
        let mut none = rollout_doc(json!({}));
        none["spec"]["strategy"] = json!({});
        let out = findings_of(none);
        assert!(
            out.iter()
                .any(|f| f.message.contains("missing field '.spec.strategy.canary")),
            "{out:?}"
        );
    }
}
