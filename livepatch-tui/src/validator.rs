//! The soundness rules over the loaded patches, and the one-shot `check`.
//!
//! Rules have stable ids; tools outside the project match on them.

use std::{collections::BTreeMap, path::Path, process::ExitCode};

use anyhow::Context as _;

use crate::{
    cli::{CheckArgs, Format},
    event::{Finding, PatchInfo, Severity},
    kernel::{
        btf::Btf,
        module_file::{Layouts, ModulePatch, read_module},
        sysfs,
    },
    verdict::{self, Verdict},
};

/// Functions of different replace sets overlap.
pub const RULE_CROSS_SET_FUNCTION: &str = "cross-set-function";
/// A `klp_state` id is used by patches of different replace sets.
pub const RULE_CROSS_SET_STATE: &str = "cross-set-state";
/// Several enabled patches in one replace set after the transition.
pub const RULE_SET_MULTIPLE_ENABLED: &str = "set-multiple-enabled";
/// Without replace sets, several enabled patches patch one function.
pub const RULE_STACKED_FUNCTION: &str = "stacked-function";
/// An object's module is not loaded, so nothing of it is applied.
pub const RULE_OBJECT_NOT_LOADED: &str = "object-not-loaded";

/// A function as the kernel identifies it: object, name, sympos.
type FunctionKey = (String, String, u32);

fn function_label((object, name, sympos): &FunctionKey) -> String {
    format!("{object}:{name},{sympos}")
}

/// Runs every rule on one inventory. Findings are sorted: errors first.
pub fn validate(patches: &[PatchInfo]) -> Vec<Finding> {
    validate_seen(patches, &[])
}

/// Runs every rule on one inventory, as [`validate`] does. Where the kernel
/// shows no load order, stacked patches are ordered by `seen_loading`: the
/// patches this run saw load, oldest first, all newer than the others.
pub fn validate_seen(patches: &[PatchInfo], seen_loading: &[String]) -> Vec<Finding> {
    let enabled: Vec<&PatchInfo> = patches.iter().filter(|p| p.enabled).collect();
    let in_transition = patches.iter().any(|p| p.transition);

    let mut findings = Vec::new();
    // A cumulative patch keeps the patches it replaces enabled until its
    // transition completes, so their overlap with it is no stacking.
    let cumulative_in_transition = patches
        .iter()
        .any(|p| p.transition && p.cumulative == Some(true));
    check_function_overlap(
        &enabled,
        cumulative_in_transition,
        seen_loading,
        &mut findings,
    );
    check_state_overlap(&enabled, &mut findings);
    if !in_transition {
        check_sets_with_several_patches(&enabled, &mut findings);
    }
    check_objects_not_loaded(&enabled, &mut findings);
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.rule.cmp(&b.rule))
    });
    findings
}

/// Patches of each function, in load order when the kernel shows it or
/// this run saw them load.
fn patches_by_function<'a>(
    enabled: &[&'a PatchInfo],
    seen_loading: &[String],
) -> BTreeMap<FunctionKey, Vec<&'a PatchInfo>> {
    let mut by_function: BTreeMap<FunctionKey, Vec<&PatchInfo>> = BTreeMap::new();
    for patch in enabled {
        for object in &patch.objects {
            for function in &object.functions {
                let key = (object.name.clone(), function.name.clone(), function.sympos);
                by_function.entry(key).or_default().push(patch);
            }
        }
    }
    for patches in by_function.values_mut() {
        if patches.iter().all(|p| p.stack_order.is_some()) {
            patches.sort_by_key(|p| p.stack_order);
        } else {
            // Patches not seen loading predate the run: they sort first.
            patches.sort_by_key(|p| seen_rank(p, seen_loading));
        }
    }
    by_function
}

/// Position of `patch` in `seen_loading`, from 1; 0 when it was not seen.
fn seen_rank(patch: &PatchInfo, seen_loading: &[String]) -> usize {
    seen_loading
        .iter()
        .position(|name| *name == patch.name)
        .map_or(0, |index| index + 1)
}

/// With `cumulative_in_transition`, stacking is judged once that transition
/// completes.
fn check_function_overlap(
    enabled: &[&PatchInfo],
    cumulative_in_transition: bool,
    seen_loading: &[String],
    findings: &mut Vec<Finding>,
) {
    for (function, patches) in patches_by_function(enabled, seen_loading) {
        if patches.len() < 2 {
            continue;
        }
        let names: Vec<String> = patches.iter().map(|p| p.name.clone()).collect();
        let label = function_label(&function);
        let sets: Vec<u32> = patches.iter().filter_map(|p| p.replace_set).collect();

        if sets.len() == patches.len() {
            let mut distinct = sets.clone();
            distinct.sort_unstable();
            distinct.dedup();
            if distinct.len() > 1 {
                findings.push(Finding {
                    rule: RULE_CROSS_SET_FUNCTION.into(),
                    severity: Severity::Error,
                    message: format!(
                        "{label} is patched by replace sets {distinct:?} ({}); sets must patch disjoint functions",
                        names.join(", ")
                    ),
                    function: Some(label),
                    state_id: None,
                    patches: names,
                });
            }
            continue;
        }

        if cumulative_in_transition {
            continue;
        }
        let top = names.last().cloned().unwrap_or_default();
        let top_seen = patches
            .last()
            .is_some_and(|p| seen_rank(p, seen_loading) > 0);
        let order_note = if patches.iter().all(|p| p.stack_order.is_some()) {
            format!("{top} runs, being loaded last")
        } else if top_seen {
            format!("{top} runs, seen loading last by this tool")
        } else {
            "the last loaded of them runs; this kernel does not show the load order".to_owned()
        };
        findings.push(Finding {
            rule: RULE_STACKED_FUNCTION.into(),
            severity: Severity::Warning,
            message: format!(
                "{label} is patched by {} enabled patches ({}): {order_note}",
                names.len(),
                names.join(", ")
            ),
            function: Some(label),
            state_id: None,
            patches: names,
        });
    }
}

fn check_state_overlap(enabled: &[&PatchInfo], findings: &mut Vec<Finding>) {
    let mut by_state: BTreeMap<u64, Vec<&PatchInfo>> = BTreeMap::new();
    for patch in enabled.iter().filter(|p| p.replace_set.is_some()) {
        for state in &patch.states {
            by_state.entry(state.id).or_default().push(patch);
        }
    }
    for (id, patches) in by_state {
        let mut sets: Vec<u32> = patches.iter().filter_map(|p| p.replace_set).collect();
        sets.sort_unstable();
        sets.dedup();
        if sets.len() < 2 {
            continue;
        }
        let names: Vec<String> = patches.iter().map(|p| p.name.clone()).collect();
        findings.push(Finding {
            rule: RULE_CROSS_SET_STATE.into(),
            severity: Severity::Error,
            message: format!(
                "klp_state id {id} is used by replace sets {sets:?} ({}); sets must not share state ids",
                names.join(", ")
            ),
            function: None,
            state_id: Some(id),
            patches: names,
        });
    }
}

fn check_sets_with_several_patches(enabled: &[&PatchInfo], findings: &mut Vec<Finding>) {
    let mut by_set: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for patch in enabled {
        if let Some(set) = patch.replace_set {
            by_set.entry(set).or_default().push(patch.name.clone());
        }
    }
    for (set, names) in by_set.into_iter().filter(|(_, names)| names.len() > 1) {
        findings.push(Finding {
            rule: RULE_SET_MULTIPLE_ENABLED.into(),
            severity: Severity::Warning,
            message: format!(
                "replace set {set} has {} enabled patches ({}) with no transition in progress; one should have replaced the others",
                names.len(),
                names.join(", ")
            ),
            function: None,
            state_id: None,
            patches: names,
        });
    }
}

fn check_objects_not_loaded(enabled: &[&PatchInfo], findings: &mut Vec<Finding>) {
    for patch in enabled {
        for object in patch.objects.iter().filter(|o| o.patched == Some(false)) {
            findings.push(Finding {
                rule: RULE_OBJECT_NOT_LOADED.into(),
                severity: Severity::Warning,
                message: format!(
                    "{}: object {} is not patched because its module is not loaded; it will be patched when the module loads",
                    patch.name, object.name
                ),
                function: None,
                state_id: None,
                patches: vec![patch.name.clone()],
            });
        }
    }
}

/// Exit code of `check`: 0 clean, 1 warnings, 2 errors.
pub fn exit_code(findings: &[Finding]) -> u8 {
    match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Error) => 2,
        Some(Severity::Warning) => 1,
        _ => 0,
    }
}

/// Runs the `check` command. With `--format json`, a failure is reported
/// on standard output too, as `{"error": ..., "exit_code": 3}`.
pub fn run_check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let result = check(args);
    if let (Err(error), Format::Json) = (&result, args.format) {
        let report = serde_json::json!({ "error": format!("{error:#}"), "exit_code": 3 });
        println!("{report}");
    }
    result
}

fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let candidate = match &args.module {
        Some(module) => Some((module, read_candidate(args, module)?)),
        None => None,
    };
    let root = args
        .sysfs_root
        .as_deref()
        .unwrap_or(Path::new(sysfs::SYSFS_ROOT));
    if !root.is_dir() {
        anyhow::bail!(
            "this kernel has no livepatch support: {} does not exist (it needs CONFIG_LIVEPATCH)",
            root.display()
        );
    }
    let patches = sysfs::read_inventory(root)?;
    if let Some((module, (layouts, new))) = candidate {
        return check_module(args, &patches, module, &layouts, new);
    }
    let findings = validate(&patches);

    match args.format {
        Format::Json => {
            let report = serde_json::json!({
                "patches": patches.len(),
                "findings": findings,
                "exit_code": exit_code(&findings),
            });
            println!("{report}");
        }
        Format::Text => print_text(&patches, &findings),
    }
    Ok(ExitCode::from(exit_code(&findings)))
}

/// Reads the module that `check --module` judges, with struct layouts from
/// the running kernel's BTF (or `--btf`).
fn read_candidate(args: &CheckArgs, module: &Path) -> anyhow::Result<(Layouts, ModulePatch)> {
    // A wrong path is reported before anything about the kernel.
    let metadata = std::fs::metadata(module)
        .with_context(|| format!("failed to read {}", module.display()))?;
    if !metadata.is_file() {
        anyhow::bail!("{} is not a file", module.display());
    }
    let btf = match &args.btf {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("failed to read BTF {}", path.display()))?;
            Btf::parse(&bytes).with_context(|| format!("failed to parse BTF {}", path.display()))?
        }
        None => Btf::from_sys_fs()?,
    };
    let layouts = Layouts::from_btf(&btf)?;
    let mut new = read_module(module, &layouts)?;
    if args.replace {
        new.replace = true;
        new.patch.cumulative = Some(true);
    }
    Ok((layouts, new))
}

/// `check --module`: the verdict on loading a module, without loading it.
fn check_module(
    args: &CheckArgs,
    patches: &[PatchInfo],
    module: &Path,
    layouts: &Layouts,
    new: ModulePatch,
) -> anyhow::Result<ExitCode> {
    // sysfs shows no klp_state ids, so they come from the loaded patches'
    // module files, where those can be found.
    let mut loaded = patches.to_vec();
    let mut unknown_states = Vec::new();
    for patch in &mut loaded {
        match find_module_file(&patch.name, module)
            .and_then(|path| read_module(&path, layouts).ok())
        {
            Some(file) => patch.states = file.patch.states,
            None => unknown_states.push(patch.name.clone()),
        }
    }
    let mut verdict = verdict::judge(&loaded, &new, &verdict::module_loaded_here);
    if !new.parameters.is_empty() && !args.replace {
        verdict.notes.push(format!(
            "{} takes parameters ({}): its init function may change the patch with them, which the file cannot show; if it makes the patch cumulative, judge it with --replace",
            new.patch.name,
            new.parameters.join(", ")
        ));
    }
    if !new.patch.states.is_empty() && !unknown_states.is_empty() {
        verdict.notes.push(format!(
            "klp_state ids of {} are unknown because their module files were not found next to {} or under /lib/modules; a clash of state ids would go unseen",
            unknown_states.join(", "),
            module.display()
        ));
    }

    match args.format {
        Format::Json => {
            let mut report =
                serde_json::to_value(&verdict).context("failed to encode the verdict")?;
            report["exit_code"] = verdict.exit_code().into();
            println!("{report}");
        }
        Format::Text => print_verdict(&verdict),
    }
    Ok(ExitCode::from(verdict.exit_code()))
}

/// Finds the module file of a loaded patch: next to the module being judged,
/// or where modules.dep of the running kernel puts it.
fn find_module_file(name: &str, beside: &Path) -> Option<std::path::PathBuf> {
    let file_names = [
        format!("{name}.ko"),
        format!("{}.ko", name.replace('_', "-")),
    ];
    let directory = beside.parent().unwrap_or(Path::new("."));
    for file_name in &file_names {
        let path = directory.join(file_name);
        if path.is_file() {
            return Some(path);
        }
    }

    let release = crate::kernel::release()?;
    let modules = Path::new("/lib/modules").join(release);
    let dependencies = std::fs::read_to_string(modules.join("modules.dep")).ok()?;
    dependencies.lines().find_map(|line| {
        let (path, _) = line.split_once(':')?;
        let file = Path::new(path).file_name()?.to_str()?;
        let stem = file.split(".ko").next()?;
        (stem.replace('-', "_") == name.replace('-', "_")).then(|| modules.join(path))
    })
}

fn print_verdict(verdict: &Verdict) {
    if verdict.refused.is_empty() {
        println!("loading {} would be accepted", verdict.module);
    } else {
        println!("loading {} would be refused by the kernel:", verdict.module);
        for reason in &verdict.refused {
            println!("  {reason}");
        }
    }
    if verdict.replaces.is_empty() {
        println!("it would replace no patch");
    } else {
        println!("it would replace: {}", verdict.replaces.join(", "));
    }
    print_findings(&verdict.findings);
    for note in &verdict.notes {
        println!("note: {note}");
    }
}

fn print_text(patches: &[PatchInfo], findings: &[Finding]) {
    println!("{} livepatch(es) loaded", patches.len());
    print_findings(findings);
}

fn print_findings(findings: &[Finding]) {
    if findings.is_empty() {
        println!("no findings");
        return;
    }
    for finding in findings {
        println!(
            "{:<7} {:<22} {}",
            finding.severity.as_str(),
            finding.rule,
            finding.message
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{FunctionInfo, ObjectInfo};

    fn patch(name: &str, set: Option<u32>, order: Option<u32>, functions: &[&str]) -> PatchInfo {
        PatchInfo {
            name: name.into(),
            enabled: true,
            replace_set: set,
            stack_order: order,
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

    #[test]
    fn cross_set_overlap_is_error() {
        let findings = validate(&[
            patch("a", Some(1), Some(1), &["f"]),
            patch("b", Some(2), Some(2), &["f", "g"]),
        ]);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].rule, RULE_CROSS_SET_FUNCTION);
        assert_eq!(findings[0].severity, Severity::Error);
        assert_eq!(findings[0].function.as_deref(), Some("vmlinux:f,0"));
        assert_eq!(findings[0].patches, vec!["a", "b"]);
        assert_eq!(exit_code(&findings), 2);
    }

    #[test]
    fn disjoint_sets_are_clean() {
        let findings = validate(&[
            patch("a", Some(1), Some(1), &["f"]),
            patch("b", Some(2), Some(2), &["g"]),
        ]);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(exit_code(&findings), 0);
    }

    #[test]
    fn stacked_order_from_loads_seen() {
        let patches = [
            patch("a", None, None, &["f"]),
            patch("b", None, None, &["f"]),
        ];
        let message = |seen: &[&str]| {
            let seen: Vec<String> = seen.iter().map(|name| name.to_string()).collect();
            let findings = validate_seen(&patches, &seen);
            assert_eq!(findings.len(), 1);
            findings[0].message.clone()
        };

        // "a" predates the run and "b" loaded during it.
        assert!(message(&["b"]).ends_with("b runs, seen loading last by this tool"));
        assert!(message(&["b", "a"]).ends_with("a runs, seen loading last by this tool"));
        assert!(message(&[]).contains("this kernel does not show the load order"));
    }

    #[test]
    fn stacked_patches_warn_and_name_top() {
        let findings = validate(&[
            patch("top", None, Some(2), &["f"]),
            patch("base", None, Some(1), &["f"]),
        ]);
        assert_eq!(findings[0].rule, RULE_STACKED_FUNCTION);
        assert_eq!(findings[0].patches, vec!["base", "top"]);
        assert!(
            findings[0].message.contains("top runs"),
            "{}",
            findings[0].message
        );
        assert_eq!(exit_code(&findings), 1);
    }

    #[test]
    fn no_stacking_during_cumulative_transition() {
        let base = patch("base", None, None, &["f"]);
        let mut cumulative = patch("cumulative", None, None, &["f"]);
        cumulative.transition = true;
        cumulative.cumulative = Some(true);
        assert!(validate(&[base.clone(), cumulative.clone()]).is_empty());

        cumulative.cumulative = Some(false);
        let findings = validate(&[base, cumulative]);
        assert_eq!(
            findings[0].rule, RULE_STACKED_FUNCTION,
            "a stacking patch in transition still warns"
        );
    }

    #[test]
    fn same_set_twice_warns_after_transition() {
        let patches = [
            patch("a", Some(3), Some(1), &["f"]),
            patch("b", Some(3), Some(2), &["g"]),
        ];
        let findings = validate(&patches);
        assert_eq!(findings[0].rule, RULE_SET_MULTIPLE_ENABLED);

        let mut in_transition = patches.clone();
        in_transition[1].transition = true;
        assert!(validate(&in_transition).is_empty());
    }

    #[test]
    fn unloaded_object_warns() {
        let mut p = patch("a", None, None, &["f"]);
        p.objects[0].name = "ext4".into();
        p.objects[0].patched = Some(false);
        let findings = validate(&[p]);
        assert_eq!(findings[0].rule, RULE_OBJECT_NOT_LOADED);
        assert!(findings[0].message.contains("ext4"));
    }

    #[test]
    fn shared_state_across_sets_is_error() {
        let mut a = patch("a", Some(1), Some(1), &["f"]);
        let mut b = patch("b", Some(2), Some(2), &["g"]);
        a.states = vec![crate::event::StateInfo { id: 5, version: 1 }];
        b.states = vec![crate::event::StateInfo { id: 5, version: 2 }];
        let findings = validate(&[a, b]);
        assert_eq!(findings[0].rule, RULE_CROSS_SET_STATE);
        assert_eq!(findings[0].state_id, Some(5));
        assert_eq!(exit_code(&findings), 2);
    }

    #[test]
    fn disabled_patches_ignored() {
        let mut b = patch("b", Some(2), None, &["f"]);
        b.enabled = false;
        assert!(validate(&[patch("a", Some(1), None, &["f"]), b]).is_empty());
    }
}
