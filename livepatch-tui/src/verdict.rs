//! The verdict on loading a livepatch module: what it would replace, whether
//! the kernel would reject it, and what the validator would then report.

use std::path::Path;

use serde::Serialize;

use crate::{
    event::{Finding, PatchInfo},
    kernel::module_file::ModulePatch,
    validator,
};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    pub module: String,
    /// Enabled patches that loading it would replace.
    pub replaces: Vec<String>,
    /// Reasons the kernel would reject the load; empty when it would accept it.
    pub refused: Vec<String>,
    /// Findings on the patches as they would be after loading.
    pub findings: Vec<Finding>,
    /// Facts the verdict could not take into account.
    pub notes: Vec<String>,
}

impl Verdict {
    /// 2 when refused or with errors, 1 with warnings, 0 clean.
    pub fn exit_code(&self) -> u8 {
        if self.refused.is_empty() {
            validator::exit_code(&self.findings)
        } else {
            2
        }
    }
}

/// Judges loading `new` on top of the `loaded` patches. `module_loaded`
/// returns whether a kernel module (a patch target) is loaded now.
pub fn judge(
    loaded: &[PatchInfo],
    new: &ModulePatch,
    module_loaded: &dyn Fn(&str) -> bool,
) -> Verdict {
    let mut patch = new.patch.clone();
    for object in &mut patch.objects {
        object.patched = Some(object.name == "vmlinux" || module_loaded(&object.name));
    }
    let enabled: Vec<&PatchInfo> = loaded.iter().filter(|p| p.enabled).collect();

    let replaced: Vec<&PatchInfo> = match patch.replace_set {
        Some(set) => enabled
            .iter()
            .copied()
            .filter(|p| p.replace_set == Some(set))
            .collect(),
        None if new.replace => enabled.clone(),
        None => Vec::new(),
    };
    let refused = refusals(loaded, &enabled, &patch);

    let mut after: Vec<PatchInfo> = enabled
        .iter()
        .filter(|p| !replaced.iter().any(|r| r.name == p.name))
        .map(|p| (*p).clone())
        .collect();
    after.push(patch.clone());
    Verdict {
        module: patch.name.clone(),
        replaces: replaced.iter().map(|p| p.name.clone()).collect(),
        refused,
        findings: validator::validate(&after),
        notes: Vec::new(),
    }
}

/// Lists what the kernel checks before it accepts a patch: a unique name, and with
/// replace sets, no function or `klp_state` id owned by another set.
fn refusals(loaded: &[PatchInfo], enabled: &[&PatchInfo], new: &PatchInfo) -> Vec<String> {
    let mut reasons = Vec::new();
    if loaded.iter().any(|p| p.name == new.name) {
        reasons.push(format!("a patch named {} is already loaded", new.name));
    }
    let Some(set) = new.replace_set else {
        return reasons;
    };
    for other in enabled
        .iter()
        .filter(|p| p.replace_set.is_some_and(|s| s != set))
    {
        for object in &new.objects {
            let Some(theirs) = other.objects.iter().find(|o| o.name == object.name) else {
                continue;
            };
            for function in object
                .functions
                .iter()
                .filter(|f| theirs.functions.contains(f))
            {
                reasons.push(format!(
                    "{}:{},{} is already patched by {} in replace set {}",
                    object.name,
                    function.name,
                    function.sympos,
                    other.name,
                    other.replace_set.unwrap_or_default()
                ));
            }
        }
        for state in new
            .states
            .iter()
            .filter(|s| other.states.iter().any(|o| o.id == s.id))
        {
            reasons.push(format!(
                "klp_state id {} is already used by {} in replace set {}",
                state.id,
                other.name,
                other.replace_set.unwrap_or_default()
            ));
        }
    }
    reasons
}

/// Returns whether a module is loaded on this machine.
pub fn module_loaded_here(name: &str) -> bool {
    Path::new("/sys/module")
        .join(name.replace('-', "_"))
        .exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{FunctionInfo, ObjectInfo, StateInfo};

    fn patch(name: &str, set: Option<u32>, functions: &[&str]) -> PatchInfo {
        PatchInfo {
            name: name.into(),
            enabled: true,
            replace_set: set,
            objects: vec![ObjectInfo {
                name: "vmlinux".into(),
                patched: Some(true),
                functions: functions
                    .iter()
                    .map(|f| FunctionInfo {
                        name: (*f).into(),
                        sympos: 0,
                    })
                    .collect(),
            }],
            ..Default::default()
        }
    }

    fn module(patch: PatchInfo, replace: bool) -> ModulePatch {
        ModulePatch {
            patch,
            replace,
            parameters: Vec::new(),
        }
    }

    #[test]
    fn cumulative_replaces_all_enabled() {
        let loaded = [patch("a", None, &["f"]), patch("b", None, &["g"])];
        let verdict = judge(
            &loaded,
            &module(patch("c", None, &["f", "g"]), true),
            &|_| true,
        );
        assert_eq!(verdict.replaces, vec!["a", "b"]);
        assert!(verdict.refused.is_empty());
        assert!(verdict.findings.is_empty(), "{:?}", verdict.findings);
        assert_eq!(verdict.exit_code(), 0);
    }

    #[test]
    fn stacking_patch_warns_on_shared_function() {
        let loaded = [patch("a", None, &["f"])];
        let verdict = judge(&loaded, &module(patch("b", None, &["f"]), false), &|_| true);
        assert!(verdict.replaces.is_empty());
        assert_eq!(verdict.findings[0].rule, validator::RULE_STACKED_FUNCTION);
        assert_eq!(verdict.exit_code(), 1);
    }

    #[test]
    fn other_set_function_refused() {
        let loaded = [patch("a", Some(1), &["f"])];
        let verdict = judge(&loaded, &module(patch("b", Some(2), &["f"]), true), &|_| {
            true
        });
        assert_eq!(verdict.refused.len(), 1);
        assert!(
            verdict.refused[0].contains("vmlinux:f,0 is already patched by a in replace set 1")
        );
        assert_eq!(verdict.exit_code(), 2);
    }

    #[test]
    fn same_set_replaced_other_set_kept() {
        let loaded = [patch("a1", Some(1), &["f"]), patch("b", Some(2), &["g"])];
        let verdict = judge(
            &loaded,
            &module(patch("a2", Some(1), &["f"]), true),
            &|_| true,
        );
        assert_eq!(verdict.replaces, vec!["a1"]);
        assert!(verdict.refused.is_empty());
        assert_eq!(verdict.exit_code(), 0);
    }

    #[test]
    fn other_set_state_refused() {
        let mut a = patch("a", Some(1), &["f"]);
        a.states = vec![StateInfo { id: 9, version: 1 }];
        let mut b = patch("b", Some(2), &["g"]);
        b.states = vec![StateInfo { id: 9, version: 1 }];
        let verdict = judge(&[a], &module(b, true), &|_| true);
        assert!(
            verdict.refused[0].contains("klp_state id 9"),
            "{:?}",
            verdict.refused
        );
    }

    #[test]
    fn unloaded_target_module_warns() {
        let mut new = patch("p", None, &["f"]);
        new.objects[0].name = "ext4".into();
        let verdict = judge(&[], &module(new, false), &|_| false);
        assert_eq!(verdict.findings[0].rule, validator::RULE_OBJECT_NOT_LOADED);
    }

    #[test]
    fn duplicate_name_refused() {
        let loaded = [patch("a", None, &["f"])];
        let verdict = judge(&loaded, &module(patch("a", None, &["f"]), false), &|_| true);
        assert!(verdict.refused[0].contains("already loaded"));
    }
}
