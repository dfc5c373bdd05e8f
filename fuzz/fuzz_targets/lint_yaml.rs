//! lint's YAML input: arbitrary text never panics, and every finding names a file and a rule.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rollout_guard::lint::{lint, Input};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let report = lint(&[Input { name: "fuzz.yaml".into(), text: text.to_string() }]);
    for f in &report.findings {
        assert_eq!(f.file, "fuzz.yaml");
        assert!(!f.rule.is_empty());
    }
    assert_eq!(report.summary.deny + report.summary.warn, report.findings.len());
});
