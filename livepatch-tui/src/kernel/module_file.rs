//! Reads a livepatch module (`.ko`) without loading it: the `klp_patch`
//! it defines, its objects, functions and states, laid out as the running
//! kernel's BTF says.
//!
//! A `.ko` is a relocatable ELF file, so every pointer in the patch's
//! static data is a relocation: the reader follows relocations instead of
//! addresses.

use std::{collections::HashMap, path::Path};

use anyhow::{Context as _, bail};
use object::{Object as _, ObjectSection as _, ObjectSymbol as _, RelocationTarget, SectionIndex};

use super::btf::Btf;
use crate::event::{FunctionInfo, ObjectInfo, PatchInfo, StateInfo};

/// Struct layouts the reader needs, from BTF.
#[derive(Clone, Copy, Debug)]
pub struct Layouts {
    pub patch_size: u32,
    pub patch_objs: u32,
    pub patch_states: Option<u32>,
    /// `replace` (bool) before replace sets.
    pub patch_replace: Option<u32>,
    /// `replace_set` (u32) with replace sets.
    pub patch_replace_set: Option<u32>,
    pub object_size: u32,
    pub object_name: u32,
    pub object_funcs: u32,
    pub func_size: u32,
    pub func_old_name: u32,
    pub func_new_func: u32,
    pub func_old_sympos: u32,
    pub state_size: u32,
    pub state_id: u32,
    pub state_version: u32,
}

impl Layouts {
    pub fn from_btf(btf: &Btf) -> anyhow::Result<Self> {
        let member = |s: &str, m: &str| {
            btf.member_offset(s, m).with_context(|| {
                format!("the kernel's BTF has no {s}.{m}: is CONFIG_LIVEPATCH set?")
            })
        };
        let size = |s: &str| {
            btf.struct_size(s).with_context(|| {
                format!("the kernel's BTF has no struct {s}: is CONFIG_LIVEPATCH set?")
            })
        };
        Ok(Self {
            patch_size: size("klp_patch")?,
            patch_objs: member("klp_patch", "objs")?,
            patch_states: btf.member_offset("klp_patch", "states"),
            patch_replace: btf.member_offset("klp_patch", "replace"),
            patch_replace_set: btf.member_offset("klp_patch", "replace_set"),
            object_size: size("klp_object")?,
            object_name: member("klp_object", "name")?,
            object_funcs: member("klp_object", "funcs")?,
            func_size: size("klp_func")?,
            func_old_name: member("klp_func", "old_name")?,
            func_new_func: member("klp_func", "new_func")?,
            func_old_sympos: member("klp_func", "old_sympos")?,
            state_size: btf.struct_size("klp_state").unwrap_or(0),
            state_id: btf.member_offset("klp_state", "id").unwrap_or(0),
            state_version: btf.member_offset("klp_state", "version").unwrap_or(8),
        })
    }
}

/// A place in the module's data: a section and an offset in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Place {
    section: SectionIndex,
    offset: u64,
}

struct Elf<'data> {
    file: object::File<'data>,
    /// Relocations by (section, offset): the place they point to.
    pointers: HashMap<(SectionIndex, u64), Place>,
}

impl<'data> Elf<'data> {
    fn parse(data: &'data [u8]) -> anyhow::Result<Self> {
        let file = object::File::parse(data).context("not an ELF file")?;
        if file.kind() != object::ObjectKind::Relocatable {
            bail!("not a kernel module: the ELF file is not relocatable");
        }
        let mut pointers = HashMap::new();
        for section in file.sections() {
            for (offset, relocation) in section.relocations() {
                let RelocationTarget::Symbol(index) = relocation.target() else {
                    continue;
                };
                let Ok(symbol) = file.symbol_by_index(index) else {
                    continue;
                };
                let Some(target_section) = symbol.section_index() else {
                    continue;
                };
                // Pointers in static data are absolute 64-bit relocations
                // whose addend is the offset in the target.
                let target_offset = symbol.address().wrapping_add(relocation.addend() as u64);
                pointers.insert(
                    (section.index(), offset),
                    Place {
                        section: target_section,
                        offset: target_offset,
                    },
                );
            }
        }
        Ok(Self { file, pointers })
    }

    fn pointer(&self, at: Place) -> Option<Place> {
        self.pointers.get(&(at.section, at.offset)).copied()
    }

    fn bytes(&self, at: Place, len: usize) -> Option<Vec<u8>> {
        let section = self.file.section_by_index(at.section).ok()?;
        // .bss has no file data: it reads as zeros.
        let data = section.data().ok()?;
        let start = at.offset as usize;
        if data.is_empty() && section.size() >= (start + len) as u64 {
            return Some(vec![0; len]);
        }
        data.get(start..start + len).map(<[u8]>::to_vec)
    }

    fn u64_at(&self, at: Place) -> u64 {
        self.bytes(at, 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .unwrap_or(0)
    }

    fn u32_at(&self, at: Place) -> u32 {
        self.bytes(at, 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
            .unwrap_or(0)
    }

    fn string(&self, at: Place) -> Option<String> {
        let section = self.file.section_by_index(at.section).ok()?;
        let data = section.data().ok()?;
        let rest = data.get(at.offset as usize..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    }

    fn modinfo(&self, key: &str) -> Option<String> {
        self.modinfo_all(key).into_iter().next()
    }

    /// Returns every value of `key` in `.modinfo`, in file order.
    fn modinfo_all(&self, key: &str) -> Vec<String> {
        let Some(data) = self
            .file
            .section_by_name(".modinfo")
            .and_then(|section| section.data().ok())
        else {
            return Vec::new();
        };
        let prefix = format!("{key}=");
        data.split(|&b| b == 0)
            .filter_map(|entry| std::str::from_utf8(entry).ok())
            .filter_map(|entry| entry.strip_prefix(&prefix).map(str::to_owned))
            .collect()
    }
}

fn advance(place: Place, bytes: u32) -> Place {
    Place {
        section: place.section,
        offset: place.offset + u64::from(bytes),
    }
}

/// The patch a module would load, as far as the file shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ModulePatch {
    pub patch: PatchInfo,
    /// `replace` = true on kernels without replace sets.
    pub replace: bool,
    /// Names of the module's parameters, with which its init function may
    /// change the patch before enabling it.
    pub parameters: Vec<String>,
}

/// Reads the livepatch that `path` defines.
pub fn read_module(path: &Path, layouts: &Layouts) -> anyhow::Result<ModulePatch> {
    let data = std::fs::read(path).with_context(|| format!("failed to read {}", path.display()))?;
    read_module_bytes(&data, layouts)
        .with_context(|| format!("cannot read {} as a livepatch module", path.display()))
}

pub fn read_module_bytes(data: &[u8], layouts: &Layouts) -> anyhow::Result<ModulePatch> {
    let elf = Elf::parse(data)?;
    let name = elf
        .modinfo("name")
        .context("no module name in .modinfo: not a kernel module")?;
    if elf.modinfo("livepatch").as_deref() != Some("Y") {
        bail!("module {name} is not a livepatch (no livepatch=Y in .modinfo)");
    }

    let patch_place = find_patch(&elf, layouts)
        .with_context(|| format!("no struct klp_patch found in module {name}"))?;
    let objects = read_objects(&elf, layouts, patch_place)?;
    let states = read_states(&elf, layouts, patch_place);
    let replace = layouts
        .patch_replace
        .and_then(|offset| elf.bytes(advance(patch_place, offset), 1))
        .is_some_and(|b| b[0] != 0);
    let replace_set = layouts
        .patch_replace_set
        .map(|offset| elf.u32_at(advance(patch_place, offset)));

    let patch = PatchInfo {
        name,
        enabled: true,
        transition: false,
        replace_set,
        cumulative: Some(replace_set.is_some() || replace),
        stack_order: None,
        forced: false,
        objects,
        states,
    };
    // module_param() records "parmtype=NAME:TYPE" for each parameter.
    let parameters = elf
        .modinfo_all("parmtype")
        .iter()
        .filter_map(|entry| entry.split_once(':').map(|(name, _)| name.to_owned()))
        .collect();
    Ok(ModulePatch {
        patch,
        replace,
        parameters,
    })
}

/// Finds the data symbol shaped like a `klp_patch`: its size matches and its
/// `objs` member is a pointer (a relocation).
fn find_patch(elf: &Elf<'_>, layouts: &Layouts) -> Option<Place> {
    elf.file.symbols().find_map(|symbol| {
        if symbol.kind() != object::SymbolKind::Data
            || symbol.size() != u64::from(layouts.patch_size)
        {
            return None;
        }
        let place = Place {
            section: symbol.section_index()?,
            offset: symbol.address(),
        };
        elf.pointer(advance(place, layouts.patch_objs))
            .map(|_| place)
    })
}

fn read_objects(elf: &Elf<'_>, layouts: &Layouts, patch: Place) -> anyhow::Result<Vec<ObjectInfo>> {
    let mut objects = Vec::new();
    let mut object = elf
        .pointer(advance(patch, layouts.patch_objs))
        .context("klp_patch.objs is not set")?;
    // klp_for_each_object_static() ends at an entry with neither name nor
    // funcs; the bound only guards against a malformed file.
    for _ in 0..1024 {
        let name = elf.pointer(advance(object, layouts.object_name));
        let functions = elf.pointer(advance(object, layouts.object_funcs));
        let Some(functions) = functions else {
            if name.is_none() {
                break;
            }
            bail!("an object of the patch has a name but no functions");
        };
        let object_name = match name {
            Some(place) => elf.string(place).context("unreadable object name")?,
            None => "vmlinux".to_owned(),
        };
        objects.push(ObjectInfo {
            name: object_name,
            patched: None,
            functions: read_functions(elf, layouts, functions)?,
        });
        object = advance(object, layouts.object_size);
    }
    Ok(objects)
}

fn read_functions(
    elf: &Elf<'_>,
    layouts: &Layouts,
    mut function: Place,
) -> anyhow::Result<Vec<FunctionInfo>> {
    let mut functions = Vec::new();
    for _ in 0..65536 {
        let old_name = elf.pointer(advance(function, layouts.func_old_name));
        let new_func = elf.pointer(advance(function, layouts.func_new_func));
        let sympos = elf.u64_at(advance(function, layouts.func_old_sympos));
        // klp_for_each_func_static() ends at an all-zero entry.
        let Some(old_name) = old_name else {
            if new_func.is_none() && sympos == 0 {
                break;
            }
            bail!("a function of the patch has no old_name");
        };
        functions.push(FunctionInfo {
            name: elf.string(old_name).context("unreadable function name")?,
            sympos: super::sysfs::sysfs_sympos(sympos),
        });
        function = advance(function, layouts.func_size);
    }
    functions.sort();
    Ok(functions)
}

fn read_states(elf: &Elf<'_>, layouts: &Layouts, patch: Place) -> Vec<StateInfo> {
    let Some(mut state) = layouts
        .patch_states
        .and_then(|offset| elf.pointer(advance(patch, offset)))
    else {
        return Vec::new();
    };
    if layouts.state_size == 0 {
        return Vec::new();
    }
    let mut states = Vec::new();
    for _ in 0..1024 {
        let id = elf.u64_at(advance(state, layouts.state_id));
        if id == 0 {
            break;
        }
        let version = elf.u32_at(advance(state, layouts.state_version));
        states.push(StateInfo { id, version });
        state = advance(state, layouts.state_size);
    }
    states
}
