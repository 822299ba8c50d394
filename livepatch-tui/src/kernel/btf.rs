//! A small reader of BTF, the kernel's type information
//! (`/sys/kernel/btf/vmlinux`, format in the kernel's
//! Documentation/bpf/btf.rst). It finds struct member offsets and function
//! names; nothing else is needed, so nothing else is decoded.

use std::collections::HashMap;

use anyhow::{Context as _, bail, ensure};

const MAGIC: u16 = 0xeb9f;

const KIND_INT: u32 = 1;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

#[derive(Clone, Debug)]
struct Member {
    name: String,
    type_id: u32,
    /// Offset in bits from the start of the struct.
    bit_offset: u32,
}

#[derive(Clone, Debug)]
struct Type {
    kind: u32,
    name: String,
    /// `size` for sized kinds, the referenced type for the others.
    size_or_type: u32,
    members: Vec<Member>,
}

/// Parsed BTF: types by id (id 0 is `void`) and names to ids.
#[derive(Debug, Default)]
pub struct Btf {
    types: Vec<Type>,
    structs: HashMap<String, u32>,
    functions: HashMap<String, u32>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u32(&mut self) -> anyhow::Result<u32> {
        let end = self.pos + 4;
        let slice = self
            .bytes
            .get(self.pos..end)
            .context("BTF type section is truncated")?;
        self.pos = end;
        Ok(u32::from_le_bytes(slice.try_into().expect("4 bytes")))
    }

    fn skip(&mut self, bytes: usize) -> anyhow::Result<()> {
        ensure!(
            self.pos + bytes <= self.bytes.len(),
            "BTF type section is truncated"
        );
        self.pos += bytes;
        Ok(())
    }
}

impl Btf {
    /// Parses little-endian BTF as the kernel exposes it.
    pub fn parse(bytes: &[u8]) -> anyhow::Result<Self> {
        ensure!(bytes.len() >= 24, "BTF is shorter than its header");
        let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        if u16_at(0) != MAGIC {
            bail!(
                "not BTF: bad magic {:#06x} (big-endian BTF is not supported)",
                u16_at(0)
            );
        }
        let header_len = u32_at(4) as usize;
        let (type_off, type_len) = (u32_at(8) as usize, u32_at(12) as usize);
        let (str_off, str_len) = (u32_at(16) as usize, u32_at(20) as usize);
        let types_start = header_len + type_off;
        let strings_start = header_len + str_off;
        let type_bytes = bytes
            .get(types_start..types_start + type_len)
            .context("BTF type section lies outside the data")?;
        let strings = bytes
            .get(strings_start..strings_start + str_len)
            .context("BTF string section lies outside the data")?;

        let mut btf = Btf::default();
        btf.types.push(Type {
            kind: 0,
            name: String::new(),
            size_or_type: 0,
            members: Vec::new(),
        });
        let mut reader = Reader {
            bytes: type_bytes,
            pos: 0,
        };
        while reader.pos < type_bytes.len() {
            let ty = read_type(&mut reader, strings)?;
            let id = btf.types.len() as u32;
            match ty.kind {
                KIND_STRUCT | KIND_UNION if !ty.name.is_empty() => {
                    btf.structs.entry(ty.name.clone()).or_insert(id);
                }
                KIND_FUNC => {
                    btf.functions.entry(ty.name.clone()).or_insert(id);
                }
                _ => {}
            }
            btf.types.push(ty);
        }
        Ok(btf)
    }

    /// Reads and parses the running kernel's BTF.
    pub fn from_sys_fs() -> anyhow::Result<Self> {
        const PATH: &str = "/sys/kernel/btf/vmlinux";
        let bytes = std::fs::read(PATH).with_context(|| {
            format!("failed to read {PATH}: the kernel needs CONFIG_DEBUG_INFO_BTF")
        })?;
        Self::parse(&bytes).with_context(|| format!("failed to parse {PATH}"))
    }

    /// Whether the kernel has a function of this name in BTF, i.e. one that
    /// fentry can attach to (inlined functions have none).
    pub fn has_function(&self, name: &str) -> bool {
        self.functions.contains_key(name)
    }

    pub fn has_struct(&self, name: &str) -> bool {
        self.structs.contains_key(name)
    }

    /// `sizeof(struct name)`, in bytes.
    pub fn struct_size(&self, name: &str) -> Option<u32> {
        let id = *self.structs.get(name)?;
        Some(self.types[id as usize].size_or_type)
    }

    /// Byte offset of a member, following a dotted path through nested
    /// structs and unions (`thread_info.cpu`) and through anonymous members.
    /// `None` when a name is missing or the member is a bitfield.
    pub fn member_offset(&self, struct_name: &str, path: &str) -> Option<u32> {
        let mut type_id = *self.structs.get(struct_name)?;
        let mut bits = 0;
        for name in path.split('.') {
            let (member_bits, member_type) = self.find_member(type_id, name)?;
            bits += member_bits;
            type_id = member_type;
        }
        (bits % 8 == 0).then_some(bits / 8)
    }

    /// Finds `name` in the struct or union `type_id`, looking inside
    /// anonymous members; returns its bit offset and its type.
    fn find_member(&self, type_id: u32, name: &str) -> Option<(u32, u32)> {
        let ty = &self.types[self.resolve(type_id)? as usize];
        if ty.kind != KIND_STRUCT && ty.kind != KIND_UNION {
            return None;
        }
        for member in &ty.members {
            if member.name == name {
                return Some((member.bit_offset, member.type_id));
            }
        }
        for member in ty.members.iter().filter(|m| m.name.is_empty()) {
            if let Some((bits, found)) = self.find_member(member.type_id, name) {
                return Some((member.bit_offset + bits, found));
            }
        }
        None
    }

    /// Follows typedefs and qualifiers to the underlying type.
    fn resolve(&self, mut type_id: u32) -> Option<u32> {
        for _ in 0..32 {
            let ty = self.types.get(type_id as usize)?;
            match ty.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    type_id = ty.size_or_type;
                }
                _ => return Some(type_id),
            }
        }
        None
    }
}

fn read_type(reader: &mut Reader<'_>, strings: &[u8]) -> anyhow::Result<Type> {
    let name_off = reader.u32()?;
    let info = reader.u32()?;
    let size_or_type = reader.u32()?;
    let vlen = (info & 0xffff) as usize;
    let kind = (info >> 24) & 0x1f;
    let kind_flag = info >> 31 == 1;
    let name = string_at(strings, name_off);

    let mut members = Vec::new();
    match kind {
        KIND_INT | KIND_VAR | KIND_DECL_TAG => reader.skip(4)?,
        KIND_ARRAY => reader.skip(12)?,
        KIND_STRUCT | KIND_UNION => {
            for _ in 0..vlen {
                let member_name = string_at(strings, reader.u32()?);
                let type_id = reader.u32()?;
                let offset = reader.u32()?;
                // With kind_flag set, the top 8 bits hold a bitfield size.
                let bit_offset = if kind_flag {
                    offset & 0x00ff_ffff
                } else {
                    offset
                };
                members.push(Member {
                    name: member_name,
                    type_id,
                    bit_offset,
                });
            }
        }
        KIND_ENUM | KIND_FUNC_PROTO => reader.skip(8 * vlen)?,
        KIND_DATASEC | KIND_ENUM64 => reader.skip(12 * vlen)?,
        0 => bail!("BTF type of kind 0 (void) in the type section"),
        kind if kind > KIND_ENUM64 => bail!("BTF type kind {kind} is unknown to this reader"),
        _ => {}
    }
    Ok(Type {
        kind,
        name,
        size_or_type,
        members,
    })
}

fn string_at(strings: &[u8], offset: u32) -> String {
    let Some(rest) = strings.get(offset as usize..) else {
        return String::new();
    };
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end]).into_owned()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds BTF in memory, for tests.
    #[derive(Default)]
    pub struct BtfBuilder {
        types: Vec<u8>,
        strings: Vec<u8>,
        next_id: u32,
    }

    impl BtfBuilder {
        pub fn new() -> Self {
            Self {
                types: Vec::new(),
                strings: vec![0],
                next_id: 1,
            }
        }

        fn string(&mut self, text: &str) -> u32 {
            if text.is_empty() {
                return 0;
            }
            let offset = self.strings.len() as u32;
            self.strings.extend_from_slice(text.as_bytes());
            self.strings.push(0);
            offset
        }

        fn push(&mut self, words: &[u32]) -> u32 {
            for word in words {
                self.types.extend_from_slice(&word.to_le_bytes());
            }
            self.next_id += 1;
            self.next_id - 1
        }

        pub fn int(&mut self, name: &str, bytes: u32) -> u32 {
            let name = self.string(name);
            self.push(&[name, KIND_INT << 24, bytes, bytes * 8])
        }

        /// A struct; members are (name, type, byte offset).
        pub fn structure(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
            let name = self.string(name);
            let mut words = vec![name, (KIND_STRUCT << 24) | members.len() as u32, size];
            for (member, type_id, offset) in members {
                words.extend([self.string(member), *type_id, offset * 8]);
            }
            self.push(&words)
        }

        pub fn typedef(&mut self, name: &str, type_id: u32) -> u32 {
            let name = self.string(name);
            self.push(&[name, KIND_TYPEDEF << 24, type_id])
        }

        pub fn function(&mut self, name: &str) -> u32 {
            let proto = self.push(&[0, KIND_FUNC_PROTO << 24, 0]);
            let name = self.string(name);
            self.push(&[name, KIND_FUNC << 24, proto])
        }

        pub fn build(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&MAGIC.to_le_bytes());
            out.extend_from_slice(&[1, 0]);
            for word in [
                24,
                0,
                self.types.len() as u32,
                self.types.len() as u32,
                self.strings.len() as u32,
            ] {
                out.extend_from_slice(&word.to_le_bytes());
            }
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }
    }

    #[test]
    fn nested_and_anonymous_members() {
        let mut b = BtfBuilder::new();
        let int = b.int("int", 4);
        let thread_info = b.structure("thread_info", 16, &[("flags", int, 0), ("cpu", int, 12)]);
        let anon = b.structure("", 8, &[("pid", int, 0), ("tgid", int, 4)]);
        let aliased = b.typedef("ti_t", thread_info);
        b.structure(
            "task_struct",
            64,
            &[("thread_info", aliased, 0), ("", anon, 32)],
        );
        let btf = Btf::parse(&b.build()).unwrap();

        assert_eq!(
            btf.member_offset("task_struct", "thread_info.cpu"),
            Some(12)
        );
        assert_eq!(btf.member_offset("task_struct", "tgid"), Some(36));
        assert_eq!(btf.member_offset("task_struct", "patch_state"), None);
        assert_eq!(btf.member_offset("no_such_struct", "pid"), None);
        assert_eq!(btf.struct_size("task_struct"), Some(64));
    }

    #[test]
    fn functions_found_by_name() {
        let mut b = BtfBuilder::new();
        b.function("klp_init_transition");
        let btf = Btf::parse(&b.build()).unwrap();
        assert!(btf.has_function("klp_init_transition"));
        assert!(!btf.has_function("klp_send_signals"));
    }

    #[test]
    fn bad_magic_rejected() {
        let error = Btf::parse(&[0u8; 32]).unwrap_err();
        assert!(error.to_string().contains("bad magic"), "{error}");
    }

    #[test]
    fn truncated_types_rejected() {
        let mut b = BtfBuilder::new();
        b.int("int", 4);
        let mut bytes = b.build();
        // Claim a longer type section than there is.
        bytes[12..16].copy_from_slice(&1000u32.to_le_bytes());
        assert!(Btf::parse(&bytes).is_err());
    }

    #[test]
    fn host_vmlinux_task_struct() {
        // Reading BTF needs no privilege; the host kernel may lack it.
        let Ok(btf) = Btf::from_sys_fs() else {
            eprintln!("skipped: /sys/kernel/btf/vmlinux is not readable here");
            return;
        };
        let pid = btf
            .member_offset("task_struct", "pid")
            .expect("task_struct.pid");
        let tgid = btf
            .member_offset("task_struct", "tgid")
            .expect("task_struct.tgid");
        assert_eq!(tgid, pid + 4);
        assert!(btf.member_offset("task_struct", "comm").is_some());
    }
}
