//! The livepatch inventory from sysfs (`/sys/kernel/livepatch`).
//!
//! Attributes differ between kernels: `<object>/patched` since 6.1,
//! `replace` since 6.11, `stack_order` since 6.14, and `replace_set` in
//! place of `replace` with the replace-set series. Every one that exists is
//! read; none is assumed.

use std::{
    io::ErrorKind,
    path::{Path, PathBuf},
};

use anyhow::Context as _;

use crate::event::{FunctionInfo, ObjectInfo, PatchInfo};

pub const SYSFS_ROOT: &str = "/sys/kernel/livepatch";

/// Reads every patch under `root`, sorted by name. A patch that disappears
/// while it is read (its module removed meanwhile) is left out, not an
/// error.
pub fn read_inventory(root: &Path) -> anyhow::Result<Vec<PatchInfo>> {
    let entries =
        std::fs::read_dir(root).with_context(|| format!("failed to read {}", root.display()))?;
    let mut patches = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("failed to list {}", root.display()))?;
        match read_patch(&entry.path()) {
            Ok(Some(patch)) => patches.push(patch),
            Ok(None) => log::debug!("patch {:?} vanished while read", entry.file_name()),
            Err(error) => return Err(error),
        }
    }
    patches.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(patches)
}

/// Reads of one patch directory at most, while it keeps changing under
/// way; the last read is kept.
const MAX_PATCH_READS: u32 = 3;

/// Reads one patch directory; `None` when it vanished meanwhile.
///
/// The kernel can change a patch between the reads of its files: a
/// cumulative patch disables the patches it replaces, then unpatches their
/// objects. A read whose `enabled` or `transition` differs at its end would
/// pair the old flags with the new objects, so it is taken again.
fn read_patch(dir: &Path) -> anyhow::Result<Option<PatchInfo>> {
    let mut reads = 0;
    loop {
        let Some(patch) = read_patch_once(dir)? else {
            return Ok(None);
        };
        reads += 1;
        let enabled = read_optional(&dir.join("enabled"))?;
        let transition = read_optional(&dir.join("transition"))?;
        let (Some(enabled), Some(transition)) = (enabled, transition) else {
            return Ok(None);
        };
        let unchanged =
            (enabled == "1") == patch.enabled && (transition == "1") == patch.transition;
        if unchanged || reads == MAX_PATCH_READS {
            return Ok(Some(patch));
        }
        log::debug!("patch {} changed while read; reading it again", patch.name);
    }
}

fn read_patch_once(dir: &Path) -> anyhow::Result<Option<PatchInfo>> {
    let name = file_name(dir);
    let Some(enabled) = read_optional(&dir.join("enabled"))? else {
        return Ok(None);
    };
    let Some(transition) = read_optional(&dir.join("transition"))? else {
        return Ok(None);
    };
    let replace = read_optional(&dir.join("replace"))?;
    let replace_set = read_optional(&dir.join("replace_set"))?
        .map(|text| parse_u32(&text, &dir.join("replace_set")))
        .transpose()?;
    let stack_order = read_optional(&dir.join("stack_order"))?
        .map(|text| parse_u32(&text, &dir.join("stack_order")))
        .transpose()?;

    // With replace sets, every patch replaces the enabled patches of its set.
    let cumulative = match (replace_set, replace.as_deref()) {
        (Some(_), _) => Some(true),
        (None, Some(text)) => Some(text == "1"),
        (None, None) => None,
    };

    let Some(objects) = read_objects(dir)? else {
        return Ok(None);
    };
    Ok(Some(PatchInfo {
        name,
        enabled: enabled == "1",
        transition: transition == "1",
        replace_set,
        cumulative,
        stack_order,
        forced: false,
        objects,
        states: Vec::new(),
    }))
}

fn read_objects(dir: &Path) -> anyhow::Result<Option<Vec<ObjectInfo>>> {
    let Some(object_dirs) = subdirectories(dir)? else {
        return Ok(None);
    };
    let mut objects = Vec::new();
    for path in object_dirs {
        let patched = read_optional(&path.join("patched"))?.map(|text| text == "1");
        let mut functions = Vec::new();
        for function_dir in subdirectories(&path)?.into_iter().flatten() {
            functions.push(parse_function_dir(&file_name(&function_dir)));
        }
        functions.sort();
        objects.push(ObjectInfo {
            name: file_name(&path),
            patched,
            functions,
        });
    }
    objects.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Some(objects))
}

/// `klp_func.old_sympos` as sysfs names it: 0 ("the only symbol of that
/// name") appears as 1 in the function's directory name, so every reader
/// compares positions in that form.
pub fn sysfs_sympos(old_sympos: u64) -> u32 {
    old_sympos.max(1) as u32
}

/// Parses a function directory name, `name,sympos`.
pub fn parse_function_dir(text: &str) -> FunctionInfo {
    match text.rsplit_once(',') {
        Some((name, sympos)) => FunctionInfo {
            name: name.to_owned(),
            sympos: sympos.parse().unwrap_or(0),
        },
        None => FunctionInfo {
            name: text.to_owned(),
            sympos: 0,
        },
    }
}

/// Lists the subdirectories of `dir`; `None` when `dir` vanished.
fn subdirectories(dir: &Path) -> anyhow::Result<Option<Vec<PathBuf>>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error).with_context(|| format!("failed to read {}", dir.display()));
        }
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("failed to list {}", dir.display()))?;
        // file_type() does not follow links, so the `mod`-like symlinks of
        // other sysfs trees are never walked into.
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(Some(dirs))
}

/// Reads a sysfs attribute, trimmed; `None` when it does not exist (an older
/// kernel, or a patch removed meanwhile).
fn read_optional(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("failed to read {}", path.display())),
    }
}

fn parse_u32(text: &str, path: &Path) -> anyhow::Result<u32> {
    text.parse().with_context(|| {
        format!(
            "invalid value {text:?} in {}: expected an unsigned number",
            path.display()
        )
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::fs;

    use super::*;

    /// Writes a patch directory as the kernel would, for tests.
    pub fn write_patch(
        root: &Path,
        name: &str,
        attributes: &[(&str, &str)],
        objects: &[(&str, Option<&str>, &[&str])],
    ) {
        let dir = root.join(name);
        fs::create_dir_all(&dir).unwrap();
        for (attribute, value) in attributes {
            fs::write(dir.join(attribute), format!("{value}\n")).unwrap();
        }
        for (object, patched, functions) in objects {
            let object_dir = dir.join(object);
            fs::create_dir_all(&object_dir).unwrap();
            if let Some(patched) = patched {
                fs::write(object_dir.join("patched"), format!("{patched}\n")).unwrap();
            }
            for function in *functions {
                fs::create_dir_all(object_dir.join(function)).unwrap();
            }
        }
    }

    pub fn temp_root(test: &str) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("livepatch-tui-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        root
    }

    #[test]
    fn kernel_6_1_tree() {
        let root = temp_root("sysfs-6-1");
        write_patch(
            &root,
            "livepatch_sample",
            &[("enabled", "1"), ("transition", "0")],
            &[("vmlinux", Some("1"), &["cmdline_proc_show,1"])],
        );
        let patches = read_inventory(&root).unwrap();
        assert_eq!(patches.len(), 1);
        let patch = &patches[0];
        assert!(patch.enabled && !patch.transition);
        assert_eq!(patch.replace_set, None);
        assert_eq!(patch.cumulative, None);
        assert_eq!(patch.stack_order, None);
        assert_eq!(patch.objects[0].name, "vmlinux");
        assert_eq!(patch.objects[0].patched, Some(true));
        assert_eq!(
            patch.objects[0].functions,
            vec![FunctionInfo {
                name: "cmdline_proc_show".into(),
                sympos: 1
            }]
        );
    }

    #[test]
    fn kernel_6_11_replace_and_6_14_stack_order() {
        let root = temp_root("sysfs-6-14");
        write_patch(
            &root,
            "a",
            &[
                ("enabled", "1"),
                ("transition", "0"),
                ("replace", "0"),
                ("stack_order", "1"),
            ],
            &[],
        );
        write_patch(
            &root,
            "b",
            &[
                ("enabled", "1"),
                ("transition", "1"),
                ("replace", "1"),
                ("stack_order", "2"),
            ],
            &[],
        );
        let patches = read_inventory(&root).unwrap();
        assert_eq!(patches[0].cumulative, Some(false));
        assert_eq!(patches[1].cumulative, Some(true));
        assert_eq!(patches[1].stack_order, Some(2));
        assert!(patches[1].transition);
    }

    #[test]
    fn replace_set_tree() {
        let root = temp_root("sysfs-replace-set");
        write_patch(
            &root,
            "team_a",
            &[
                ("enabled", "1"),
                ("transition", "0"),
                ("replace_set", "7"),
                ("stack_order", "1"),
            ],
            &[("ext4", Some("0"), &["ext4_file_write_iter,0"])],
        );
        let patches = read_inventory(&root).unwrap();
        assert_eq!(patches[0].replace_set, Some(7));
        assert_eq!(patches[0].cumulative, Some(true));
        assert_eq!(patches[0].objects[0].patched, Some(false));
    }

    #[test]
    fn vanished_patch_left_out() {
        let root = temp_root("sysfs-vanished");
        // A directory without attributes looks like a patch removed mid-read.
        fs::create_dir_all(root.join("gone")).unwrap();
        write_patch(&root, "here", &[("enabled", "0"), ("transition", "0")], &[]);
        let names: Vec<String> = read_inventory(&root)
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, vec!["here"]);
    }

    #[test]
    fn invalid_number_named_in_error() {
        let root = temp_root("sysfs-invalid");
        write_patch(
            &root,
            "p",
            &[("enabled", "1"), ("transition", "0"), ("replace_set", "x")],
            &[],
        );
        let error = read_inventory(&root).unwrap_err();
        assert!(format!("{error:#}").contains("replace_set"), "{error:#}");
    }

    #[test]
    fn missing_root_is_an_error() {
        let error = read_inventory(Path::new("/nonexistent/livepatch")).unwrap_err();
        assert!(format!("{error:#}").contains("/nonexistent/livepatch"));
    }
}
