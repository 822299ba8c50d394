//! The patch tree flattened into rows: replace sets (when the kernel has
//! them), patches, objects and functions.

use std::collections::{BTreeSet, HashMap};

use crate::{
    event::{FunctionInfo, ObjectInfo, PatchInfo},
    model::Model,
};

/// The content of a tree row.
#[derive(Clone, Debug)]
pub enum Node<'a> {
    /// A replace set, `None` for patches the kernel gave no set.
    ReplaceSet(Option<u32>),
    Patch(&'a PatchInfo),
    /// An object of a patch, and whether that patch is in transition.
    Object(&'a ObjectInfo, bool),
    Function {
        /// The object's name, for looking up call counts.
        object: &'a str,
        function: &'a FunctionInfo,
        /// A later enabled patch whose version of this function runs
        /// instead, when load order is known.
        overridden_by: Option<&'a str>,
    },
}

/// One row of the flattened tree.
#[derive(Clone, Debug)]
pub struct TreeRow<'a> {
    pub depth: u16,
    /// Stable id, the key of the collapsed set.
    pub id: String,
    pub node: Node<'a>,
    /// `None` for a leaf.
    pub expanded: Option<bool>,
}

/// Flattens the patches into rows, skipping the children of collapsed
/// nodes. Patches are in load order when the kernel reports it
/// (`stack_order`, 6.14+), by name otherwise.
pub fn rows<'a>(model: &'a Model, collapsed: &BTreeSet<String>) -> Vec<TreeRow<'a>> {
    let mut ordered: Vec<&PatchInfo> = model.patches.values().collect();
    ordered.sort_by_key(|p| (p.stack_order.unwrap_or(u32::MAX), p.name.as_str()));
    let owners = function_owners(model, &ordered);
    let mut out = Vec::new();

    let has_sets = ordered.iter().any(|p| p.replace_set.is_some());
    if !has_sets {
        for patch in ordered {
            push_patch(&mut out, patch, 0, collapsed, &owners);
        }
        return out;
    }

    let sets: BTreeSet<Option<u32>> = ordered.iter().map(|p| p.replace_set).collect();
    for set in sets {
        let id = match set {
            Some(n) => format!("set:{n}"),
            None => "set:none".to_owned(),
        };
        let expanded = !collapsed.contains(&id);
        out.push(TreeRow {
            depth: 0,
            id,
            node: Node::ReplaceSet(set),
            expanded: Some(expanded),
        });
        if expanded {
            for patch in ordered.iter().filter(|p| p.replace_set == set) {
                push_patch(&mut out, patch, 1, collapsed, &owners);
            }
        }
    }
    out
}

type FunctionKey<'a> = (&'a str, &'a str, u32);

fn push_patch<'a>(
    out: &mut Vec<TreeRow<'a>>,
    patch: &'a PatchInfo,
    depth: u16,
    collapsed: &BTreeSet<String>,
    owners: &HashMap<FunctionKey<'a>, &'a str>,
) {
    let id = format!("p:{}", patch.name);
    let expanded = !collapsed.contains(&id);
    out.push(TreeRow {
        depth,
        id,
        node: Node::Patch(patch),
        expanded: Some(expanded),
    });
    if !expanded {
        return;
    }

    for object in &patch.objects {
        let id = format!("o:{}/{}", patch.name, object.name);
        let expanded = !collapsed.contains(&id);
        out.push(TreeRow {
            depth: depth + 1,
            id,
            node: Node::Object(object, patch.transition),
            expanded: Some(expanded),
        });
        if !expanded {
            continue;
        }
        push_functions(out, patch, object, depth + 2, owners);
    }
}

fn push_functions<'a>(
    out: &mut Vec<TreeRow<'a>>,
    patch: &'a PatchInfo,
    object: &'a ObjectInfo,
    depth: u16,
    owners: &HashMap<FunctionKey<'a>, &'a str>,
) {
    for function in &object.functions {
        let key = (
            object.name.as_str(),
            function.name.as_str(),
            function.sympos,
        );
        let overridden_by = owners
            .get(&key)
            .copied()
            .filter(|owner| *owner != patch.name && patch.enabled);
        let id = format!(
            "f:{}/{}/{},{}",
            patch.name, object.name, function.name, function.sympos
        );
        out.push(TreeRow {
            depth,
            id,
            node: Node::Function {
                object: &object.name,
                function,
                overridden_by,
            },
            expanded: None,
        });
    }
}

/// Maps each function to the enabled patch whose version runs outside a
/// transition, where the model can tell (see [`Model::function_owner`]).
fn function_owners<'a>(
    model: &'a Model,
    ordered: &[&'a PatchInfo],
) -> HashMap<FunctionKey<'a>, &'a str> {
    let mut owners = HashMap::new();
    for patch in ordered.iter().filter(|p| p.enabled) {
        for object in &patch.objects {
            for function in &object.functions {
                let key = (
                    object.name.as_str(),
                    function.name.as_str(),
                    function.sympos,
                );
                if let Some(owner) =
                    model.function_owner(&object.name, &function.name, function.sympos)
                {
                    owners.insert(key, owner);
                }
            }
        }
    }
    owners
}
