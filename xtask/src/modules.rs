//! Out-of-tree builds of the livepatch modules that the lab loads.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::command;
use crate::kernel::GuestKernel;

/// Builds the kernel's livepatch sample, its `test_klp_*` selftest modules and every
/// module directory under `lab/modules/`, and returns the `.ko` files by module name.
///
/// Each group is copied into its own directory under `build_root` and built there, so
/// the source trees stay clean. Files are copied only when their content changed, which
/// keeps the kernel's make incremental between runs. With `skip_unbuildable_lab_groups`,
/// a directory of `lab/modules/` that fails to build is reported and left out.
pub fn build_all(
    kernel: &GuestKernel,
    kernel_source: &Path,
    lab_modules: &Path,
    build_root: &Path,
    skip_unbuildable_lab_groups: bool,
) -> Result<BTreeMap<String, PathBuf>> {
    let mut groups = vec![kernel_group(kernel_source)?];
    groups.extend(lab_groups(lab_modules)?);

    let mut modules = BTreeMap::new();
    for (index, group) in groups.iter().enumerate() {
        let dir = build_root.join(&group.name);
        stage_group(group, &dir)?;
        let started = Instant::now();
        // The first group is the kernel's own, which must always build.
        if let Err(error) = make_modules(kernel, &dir) {
            if index == 0 || !skip_unbuildable_lab_groups {
                return Err(error);
            }
            println!(
                "lab: skipped {}: it does not build against {}: {}",
                group.name,
                kernel.version,
                first_error_line(&format!("{error:#}"))
            );
            continue;
        }
        let built = list_modules(&dir)?;
        println!(
            "lab: built {} module(s) of {} in {:.1} s",
            built.len(),
            group.name,
            started.elapsed().as_secs_f64()
        );
        for (name, path) in built {
            if let Some(previous) = modules.insert(name.clone(), path) {
                bail!(
                    "module {name} is built twice (also {}); rename one",
                    previous.display()
                );
            }
        }
    }
    Ok(modules)
}

/// Sources of one build directory: C files plus the Kbuild that lists them.
struct ModuleGroup {
    name: String,
    sources: Vec<PathBuf>,
    kbuild: String,
}

/// Collects the sample and the selftest modules from the kernel source, with a generated
/// Kbuild because their own Makefiles depend on config options of an in-tree build.
fn kernel_group(kernel_source: &Path) -> Result<ModuleGroup> {
    let mut sources = vec![kernel_source.join("samples/livepatch/livepatch-sample.c")];
    let selftest_dir = kernel_source.join("lib/livepatch");
    let mut selftests: Vec<PathBuf> = fs::read_dir(&selftest_dir)
        .with_context(|| format!("failed to list {}", selftest_dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("test_klp_") && name.ends_with(".c")
        })
        .collect();
    selftests.sort();
    if selftests.is_empty() {
        bail!("no test_klp_*.c found in {}", selftest_dir.display());
    }
    sources.extend(selftests);

    let objects: Vec<String> = sources
        .iter()
        .map(|path| {
            path.with_extension("o")
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    Ok(ModuleGroup {
        name: "kernel-livepatch".to_owned(),
        sources,
        kbuild: format!("obj-m += {}\n", objects.join(" ")),
    })
}

/// Collects every directory under `lab/modules/` that contains a Kbuild file.
fn lab_groups(lab_modules: &Path) -> Result<Vec<ModuleGroup>> {
    let Ok(entries) = fs::read_dir(lab_modules) else {
        return Ok(Vec::new());
    };
    let mut groups = Vec::new();
    for entry in entries {
        let dir = entry?.path();
        let kbuild_path = dir.join("Kbuild");
        if !kbuild_path.is_file() {
            continue;
        }
        let mut sources = Vec::new();
        for file in fs::read_dir(&dir)? {
            let path = file?.path();
            if path.extension().is_some_and(|ext| ext == "c" || ext == "h") {
                sources.push(path);
            }
        }
        sources.sort();
        groups.push(ModuleGroup {
            name: format!("lab-{}", dir.file_name().unwrap().to_string_lossy()),
            sources,
            kbuild: fs::read_to_string(&kbuild_path)?,
        });
    }
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(groups)
}

fn stage_group(group: &ModuleGroup, dir: &Path) -> Result<()> {
    fs::create_dir_all(dir)?;
    write_if_changed(&dir.join("Kbuild"), group.kbuild.as_bytes())?;
    for source in &group.sources {
        let content =
            fs::read(source).with_context(|| format!("failed to read {}", source.display()))?;
        write_if_changed(&dir.join(source.file_name().unwrap()), &content)?;
    }
    Ok(())
}

fn write_if_changed(path: &Path, content: &[u8]) -> Result<()> {
    if fs::read(path).ok().as_deref() == Some(content) {
        return Ok(());
    }
    fs::write(path, content).with_context(|| format!("failed to write {}", path.display()))
}

fn make_modules(kernel: &GuestKernel, dir: &Path) -> Result<()> {
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    command::output(
        Command::new("make")
            .arg("-C")
            .arg(&kernel.build_dir)
            .arg(format!("M={}", dir.display()))
            .arg(format!("-j{jobs}"))
            .arg("modules"),
    )
    .with_context(|| format!("failed to build the modules in {}", dir.display()))?;
    Ok(())
}

/// Returns the first compiler error in make's output, or its first line.
fn first_error_line(output: &str) -> &str {
    output
        .lines()
        .find(|line| line.contains("error:"))
        .or_else(|| output.lines().next())
        .unwrap_or("")
        .trim()
}

/// Lists the `.ko` files in `dir`, keyed by module name (file stem with `-` as `_`,
/// as the kernel names modules).
fn list_modules(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut modules = BTreeMap::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "ko") {
            let name = path
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .replace('-', "_");
            modules.insert(name, path);
        }
    }
    Ok(modules)
}
