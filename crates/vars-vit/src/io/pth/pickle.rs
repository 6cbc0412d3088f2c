//! A restricted pickle virtual machine that builds an inert value tree.
//!
//! It interprets the opcodes of pickle protocols 1–5 that `torch.save` (protocol 2 by default)
//! and Python's pickler emit for dicts, lists, tuples, sets, strings, bytes, numbers and the
//! objects a checkpoint contains, and **never calls anything**: a `GLOBAL`/`STACK_GLOBAL` is
//! resolved against a fixed allowlist ([`lookup_global`]) to a tag, and `REDUCE`/`NEWOBJ`/`BUILD`
//! on a tag are interpreted by this module (a tensor rebuild becomes a [`TensorSpec`] naming its
//! storage, an `OrderedDict` becomes a dict, an `argparse.Namespace` a record). Any other global
//! is an error naming it, or, when the caller opts in, an opaque record that nothing ever calls.
//!
//! Objects live in an arena and the stack and memo hold cheap handles, so a pickle that
//! references one object many times costs one handle per reference, and recursive structures
//! (a list containing itself) are representable without leaking; consumers walk the tree with
//! depth and size budgets. Every read is bounds-checked and every length is checked against the
//! remaining input before anything is allocated, so memory stays proportional to the input.

use super::Fail;
use std::collections::HashMap;
use std::rc::Rc;

/// A handle into [`Machine::objs`].
pub(crate) type ObjId = usize;

/// A pickled value: immediates inline, containers and objects by handle.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer that does not fit in `i64`: little-endian two's-complement bytes.
    BigInt(Rc<[u8]>),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Obj(ObjId),
}

/// The element type of a PyTorch storage class (`torch.FloatStorage`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageDType {
    Float,
    Double,
    Half,
    BFloat16,
    Long,
    Int,
    Short,
    Char,
    Byte,
    Bool,
    ComplexFloat,
    ComplexDouble,
}

impl StorageDType {
    fn from_class(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" => Self::Float,
            "DoubleStorage" => Self::Double,
            "HalfStorage" => Self::Half,
            "BFloat16Storage" => Self::BFloat16,
            "LongStorage" => Self::Long,
            "IntStorage" => Self::Int,
            "ShortStorage" => Self::Short,
            "CharStorage" => Self::Char,
            "ByteStorage" => Self::Byte,
            "BoolStorage" => Self::Bool,
            "ComplexFloatStorage" => Self::ComplexFloat,
            "ComplexDoubleStorage" => Self::ComplexDouble,
            _ => return None,
        })
    }

    /// Bytes per element in the file.
    pub fn size(self) -> u64 {
        match self {
            Self::Double | Self::Long | Self::ComplexFloat => 8,
            Self::Float | Self::Int => 4,
            Self::Half | Self::BFloat16 | Self::Short => 2,
            Self::Char | Self::Byte | Self::Bool => 1,
            Self::ComplexDouble => 16,
        }
    }

    /// The PyTorch dtype name, for messages.
    pub fn torch_name(self) -> &'static str {
        match self {
            Self::Float => "float32",
            Self::Double => "float64",
            Self::Half => "float16",
            Self::BFloat16 => "bfloat16",
            Self::Long => "int64",
            Self::Int => "int32",
            Self::Short => "int16",
            Self::Char => "int8",
            Self::Byte => "uint8",
            Self::Bool => "bool",
            Self::ComplexFloat => "complex64",
            Self::ComplexDouble => "complex128",
        }
    }
}

/// What an allowlisted global stands for. None of these is ever "called": the machine
/// interprets `REDUCE`/`NEWOBJ` on them itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GlobalKind {
    RebuildTensorV2,
    RebuildTensor,
    RebuildParameter,
    RebuildParameterWithState,
    RebuildFromTypeV2,
    /// `torch.Tensor` / `torch.nn.parameter.Parameter`, only as the `new_type` argument of
    /// `_rebuild_from_type_v2`.
    TensorClass,
    OrderedDict,
    Namespace,
    Device,
    Size,
    Set,
    FrozenSet,
    Bytes,
    ByteArray,
    CodecsEncode,
    Storage(StorageDType),
    /// An inert constant such as `torch.float32`: data, not callable.
    Constant,
    /// A global outside the allowlist, kept as an inert name (only with
    /// [`super::UnknownGlobals::Inert`]).
    Opaque,
}

/// The allowlist: `module.name` → what it stands for. Protocol-2 pickles written by Python 3 use
/// the Python 2 module names (`__builtin__`), so both spellings are accepted.
pub(crate) fn lookup_global(module: &str, name: &str) -> Option<GlobalKind> {
    use GlobalKind as G;
    Some(match (module, name) {
        ("torch._utils", "_rebuild_tensor_v2") => G::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor") => G::RebuildTensor,
        ("torch._utils", "_rebuild_parameter") => G::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => G::RebuildParameterWithState,
        ("torch._tensor", "_rebuild_from_type_v2") => G::RebuildFromTypeV2,
        ("torch", "Tensor") | ("torch._tensor", "Tensor") | ("torch.nn.parameter", "Parameter") => {
            G::TensorClass
        }
        ("collections", "OrderedDict") => G::OrderedDict,
        ("argparse", "Namespace") => G::Namespace,
        ("torch", "device") => G::Device,
        ("torch", "Size") => G::Size,
        ("builtins" | "__builtin__", "set") => G::Set,
        ("builtins" | "__builtin__", "frozenset") => G::FrozenSet,
        ("builtins" | "__builtin__", "bytes") => G::Bytes,
        ("builtins" | "__builtin__", "bytearray") => G::ByteArray,
        ("_codecs", "encode") => G::CodecsEncode,
        ("torch", n) if StorageDType::from_class(n).is_some() => {
            G::Storage(StorageDType::from_class(n)?)
        }
        (
            "torch",
            "float32" | "float" | "float64" | "double" | "float16" | "half" | "bfloat16" | "int64"
            | "long" | "int32" | "int" | "int16" | "short" | "int8" | "uint8" | "bool"
            | "complex64" | "complex128" | "strided" | "contiguous_format" | "channels_last"
            | "preserve_format",
        ) => G::Constant,
        _ => return None,
    })
}

/// A storage named by a persistent id `('storage', torch.XStorage, key, location, numel)`,
/// already checked against its archive record.
#[derive(Clone, Debug)]
pub(crate) struct StorageRef {
    pub dtype: StorageDType,
    pub key: Rc<str>,
    pub location: Rc<str>,
    pub numel: u64,
}

/// A tensor rebuilt by `_rebuild_tensor_v2`: a strided view into a storage. Bounds were checked
/// when it was built; no data has been read.
#[derive(Clone, Debug)]
pub(crate) struct TensorSpec {
    pub storage: StorageRef,
    pub offset: u64,
    pub size: Vec<u64>,
    pub stride: Vec<u64>,
    /// The number of elements (the product of `size`, checked).
    pub numel: u64,
}

/// Hashable immediates, for Python's "a later key replaces an earlier equal one" rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    None,
    Int(i64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
}

fn key_of(v: &Value) -> Option<Key> {
    Some(match v {
        Value::None => Key::None,
        Value::Bool(b) => Key::Int(i64::from(*b)),
        Value::Int(i) => Key::Int(*i),
        Value::Str(s) => Key::Str(s.clone()),
        Value::Bytes(b) => Key::Bytes(b.clone()),
        _ => return None,
    })
}

/// An insertion-ordered dict with Python's replace-on-equal-key semantics for immediate keys.
#[derive(Debug, Default)]
pub(crate) struct Dict {
    pub items: Vec<(Value, Value)>,
    index: HashMap<Key, usize>,
}

impl Dict {
    fn set(&mut self, k: Value, v: Value) {
        match key_of(&k) {
            Some(key) => match self.index.get(&key) {
                Some(&i) => {
                    if let Some(slot) = self.items.get_mut(i) {
                        slot.1 = v;
                    }
                }
                None => {
                    self.index.insert(key, self.items.len());
                    self.items.push((k, v));
                }
            },
            None => self.items.push((k, v)),
        }
    }

    pub fn get_str(&self, key: &str) -> Option<&Value> {
        let i = *self.index.get(&Key::Str(Rc::from(key)))?;
        self.items.get(i).map(|(_, v)| v)
    }
}

/// Arena objects.
#[derive(Debug)]
pub(crate) enum Obj {
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict {
        ordered: bool,
        dict: Dict,
        /// `BUILD` states applied to it (an `OrderedDict` state dict's `_metadata` lands here).
        state: Vec<Value>,
    },
    Set {
        frozen: bool,
        items: Vec<Value>,
    },
    Global {
        kind: GlobalKind,
        /// `module.name`, for messages and rendering.
        name: Rc<str>,
    },
    Storage(StorageRef),
    Tensor(TensorSpec),
    Device(Rc<str>),
    /// An `argparse.Namespace` or, with inert unknown globals, an instance of an unknown class:
    /// the constructor arguments and any `BUILD` states, `APPEND`ed and `SETITEM`ed values.
    Object {
        class: Rc<str>,
        args: Vec<Value>,
        state: Vec<Value>,
        items: Vec<Value>,
    },
}

/// Limits of one run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VmLimits {
    pub max_memo: usize,
    pub max_rank: usize,
    pub inert_unknown: bool,
}

/// The outcome of a run: the arena, the top-level value, and globals decoded as inert.
pub(crate) struct Machine {
    pub objs: Vec<Obj>,
    pub unknown_globals: Vec<String>,
}

/// What the persistent-id resolver reports about a storage record: its size in bytes, or
/// `None` when the archive has no such record.
pub(crate) type Resolver<'r> = &'r mut dyn FnMut(&str) -> Option<u64>;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Fail> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(Fail::Corrupt(format!(
                "the pickle ends inside an opcode: {n} more bytes needed at byte {} of {}",
                self.pos,
                self.buf.len()
            ))),
        }
    }
    fn u8(&mut self) -> Result<u8, Fail> {
        Ok(self.take(1)?[0])
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], Fail> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn len_u32(&mut self) -> Result<usize, Fail> {
        Ok(u32::from_le_bytes(self.arr()?) as usize)
    }
    fn len_u64(&mut self) -> Result<usize, Fail> {
        let n = u64::from_le_bytes(self.arr()?);
        usize::try_from(n).map_err(|_| Fail::Corrupt(format!("pickle length {n} is too large")))
    }
    /// A `\n`-terminated line (GLOBAL arguments), at most `max` bytes.
    fn line(&mut self, max: usize) -> Result<&'a [u8], Fail> {
        let rest = self.buf.get(self.pos..).unwrap_or(&[]);
        let window = &rest[..rest.len().min(max + 1)];
        match window.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let line = &rest[..i];
                self.pos += i + 1;
                Ok(line)
            }
            None if rest.len() <= max => Err(Fail::Corrupt(
                "the pickle ends inside a GLOBAL opcode's text".to_string(),
            )),
            None => Err(Fail::Corrupt(format!(
                "a GLOBAL opcode's module or name is longer than {max} bytes"
            ))),
        }
    }
}

/// A name from the file, escaped and shortened for an error message.
pub(crate) fn display_name(s: &str) -> String {
    const MAX: usize = 200;
    let esc: String = s.escape_debug().collect();
    if esc.chars().count() > MAX {
        let mut t: String = esc.chars().take(MAX).collect();
        t.push('…');
        t
    } else {
        esc
    }
}

fn op_name(op: u8) -> &'static str {
    match op {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "unknown",
    }
}

/// A little-endian two's-complement integer (LONG1/LONG4).
fn decode_long(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Int(0);
    }
    if bytes.len() <= 8 {
        let neg = bytes.last().is_some_and(|&b| b & 0x80 != 0);
        let mut a = [if neg { 0xFF } else { 0 }; 8];
        a[..bytes.len()].copy_from_slice(bytes);
        return Value::Int(i64::from_le_bytes(a));
    }
    Value::BigInt(Rc::from(bytes))
}

/// Runs the pickle in `data` and returns the machine (arena) and the top-level value.
///
/// `resolve` maps a storage key to the byte size of its archive record; every persistent id is
/// checked against it (missing record, or more elements declared than the record holds) before
/// anything else happens.
pub(crate) fn run(
    data: &[u8],
    limits: VmLimits,
    resolve: Resolver<'_>,
) -> Result<(Machine, Value), Fail> {
    let mut vm = Vm {
        m: Machine {
            objs: Vec::new(),
            unknown_globals: Vec::new(),
        },
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        limits,
        work: 0,
        max_work: (data.len() as u64)
            .saturating_mul(8)
            .saturating_add(1 << 20),
    };
    let mut r = Reader { buf: data, pos: 0 };
    loop {
        let at = r.pos;
        let op = r.u8().map_err(|_| {
            Fail::Corrupt(format!(
                "the pickle ends at byte {} without a STOP opcode",
                data.len()
            ))
        })?;
        match vm.step(op, &mut r, resolve) {
            Ok(Some(top)) => return Ok((vm.m, top)),
            Ok(None) => {}
            Err(Fail::Corrupt(p)) => {
                return Err(Fail::Corrupt(format!(
                    "pickle opcode {} (0x{op:02x}) at byte {at}: {p}",
                    op_name(op)
                )))
            }
            Err(e) => return Err(e),
        }
    }
}

struct Vm {
    m: Machine,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    limits: VmLimits,
    /// Values copied out of shared containers so far (REDUCE arguments, `OrderedDict(pairs)`,
    /// ...), against `max_work` (8 × the pickle's length + 2²⁰): a pickle that memoizes one
    /// big tuple and passes it to many calls would otherwise cost quadratic time and memory.
    work: u64,
    max_work: u64,
}

fn corrupt<T>(msg: impl Into<String>) -> Result<T, Fail> {
    Err(Fail::Corrupt(msg.into()))
}

impl Vm {
    fn charge(&mut self, n: usize) -> Result<(), Fail> {
        self.work = self.work.saturating_add(n as u64);
        if self.work > self.max_work {
            return Err(Fail::Limit(format!(
                "the pickle copies more than {} values out of shared containers (a \
                 decompression bomb)",
                self.max_work
            )));
        }
        Ok(())
    }

    /// A copy of the items of a tuple or list (or a set, with `sets`), charged to the work
    /// budget before anything is copied; `None` for anything else.
    fn copy_items(&mut self, v: &Value, sets: bool) -> Result<Option<Vec<Value>>, Fail> {
        let n = match self.obj(v) {
            Some(Obj::Tuple(t)) | Some(Obj::List(t)) => t.len(),
            Some(Obj::Set { items, .. }) if sets => items.len(),
            _ => return Ok(None),
        };
        self.charge(n)?;
        Ok(match self.obj(v) {
            Some(Obj::Tuple(t)) | Some(Obj::List(t)) => Some(t.clone()),
            Some(Obj::Set { items, .. }) => Some(items.clone()),
            _ => None,
        })
    }

    fn alloc(&mut self, o: Obj) -> Value {
        self.m.objs.push(o);
        Value::Obj(self.m.objs.len() - 1)
    }

    fn push(&mut self, v: Value) {
        self.stack.push(v);
    }

    fn pop(&mut self) -> Result<Value, Fail> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return corrupt("pops across a MARK");
        }
        self.stack
            .pop()
            .ok_or_else(|| Fail::Corrupt("the stack is empty".to_string()))
    }

    fn top(&self) -> Result<&Value, Fail> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return corrupt("reads across a MARK");
        }
        self.stack
            .last()
            .ok_or_else(|| Fail::Corrupt("the stack is empty".to_string()))
    }

    /// The items pushed since the last MARK, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Value>, Fail> {
        let m = self
            .marks
            .pop()
            .ok_or_else(|| Fail::Corrupt("no MARK to pop to".to_string()))?;
        if m > self.stack.len() {
            return corrupt("a MARK lies above the stack top");
        }
        Ok(self.stack.split_off(m))
    }

    fn obj(&self, v: &Value) -> Option<&Obj> {
        match v {
            Value::Obj(id) => self.m.objs.get(*id),
            _ => None,
        }
    }

    fn obj_mut(&mut self, v: &Value) -> Option<&mut Obj> {
        match v {
            Value::Obj(id) => self.m.objs.get_mut(*id),
            _ => None,
        }
    }

    fn memo_put(&mut self, idx: u32) -> Result<(), Fail> {
        let v = self.top()?.clone();
        if self.memo.len() >= self.limits.max_memo && !self.memo.contains_key(&idx) {
            return Err(Fail::Limit(format!(
                "the pickle memoizes more than {} objects",
                self.limits.max_memo
            )));
        }
        self.memo.insert(idx, v);
        Ok(())
    }

    fn memo_get(&mut self, idx: u32) -> Result<(), Fail> {
        let v = self
            .memo
            .get(&idx)
            .cloned()
            .ok_or_else(|| Fail::Corrupt(format!("memo entry {idx} was never stored")))?;
        self.push(v);
        Ok(())
    }

    fn str_from(&self, b: &[u8]) -> Result<Value, Fail> {
        match std::str::from_utf8(b) {
            Ok(s) => Ok(Value::Str(Rc::from(s))),
            Err(e) => corrupt(format!("a string is not valid UTF-8 ({e})")),
        }
    }

    /// One opcode. `Ok(Some(v))` at STOP.
    fn step(
        &mut self,
        op: u8,
        r: &mut Reader<'_>,
        resolve: Resolver<'_>,
    ) -> Result<Option<Value>, Fail> {
        match op {
            0x80 => {
                let p = r.u8()?;
                if p > 5 {
                    return corrupt(format!("pickle protocol {p} is newer than 5"));
                }
            }
            0x95 => {
                // FRAME: a length prefix for the opcodes that follow; nothing to do.
                r.take(8)?;
            }
            b'.' => {
                let top = self.pop()?;
                return Ok(Some(top));
            }
            b'(' => self.marks.push(self.stack.len()),
            b'0' => {
                // POP: removes the top item, or the topmost MARK if it is on top.
                if self.marks.last().is_some_and(|&m| m == self.stack.len()) {
                    self.marks.pop();
                } else {
                    self.pop()?;
                }
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let v = self.top()?.clone();
                self.push(v);
            }
            b'N' => self.push(Value::None),
            0x88 => self.push(Value::Bool(true)),
            0x89 => self.push(Value::Bool(false)),
            b'J' => self.push(Value::Int(i64::from(i32::from_le_bytes(r.arr()?)))),
            b'K' => self.push(Value::Int(i64::from(r.u8()?))),
            b'M' => self.push(Value::Int(i64::from(u16::from_le_bytes(r.arr()?)))),
            0x8a => {
                let n = usize::from(r.u8()?);
                let v = decode_long(r.take(n)?);
                self.push(v);
            }
            0x8b => {
                let n = i32::from_le_bytes(r.arr()?);
                let n = usize::try_from(n)
                    .map_err(|_| Fail::Corrupt(format!("negative LONG4 length {n}")))?;
                let v = decode_long(r.take(n)?);
                self.push(v);
            }
            b'G' => self.push(Value::Float(f64::from_be_bytes(r.arr()?))),
            b'X' => {
                let n = r.len_u32()?;
                let v = self.str_from(r.take(n)?)?;
                self.push(v);
            }
            0x8c => {
                let n = usize::from(r.u8()?);
                let v = self.str_from(r.take(n)?)?;
                self.push(v);
            }
            0x8d => {
                let n = r.len_u64()?;
                let v = self.str_from(r.take(n)?)?;
                self.push(v);
            }
            // Python 2 `str` (written only by Python 2 pickles); torch.load decodes it as UTF-8.
            b'U' => {
                let n = usize::from(r.u8()?);
                let v = self.str_from(r.take(n)?)?;
                self.push(v);
            }
            b'T' => {
                let n = i32::from_le_bytes(r.arr()?);
                let n = usize::try_from(n)
                    .map_err(|_| Fail::Corrupt(format!("negative BINSTRING length {n}")))?;
                let v = self.str_from(r.take(n)?)?;
                self.push(v);
            }
            b'C' => {
                let n = usize::from(r.u8()?);
                self.push(Value::Bytes(Rc::from(r.take(n)?)));
            }
            b'B' => {
                let n = r.len_u32()?;
                self.push(Value::Bytes(Rc::from(r.take(n)?)));
            }
            0x8e | 0x96 => {
                let n = r.len_u64()?;
                self.push(Value::Bytes(Rc::from(r.take(n)?)));
            }
            b'}' => {
                let v = self.alloc(Obj::Dict {
                    ordered: false,
                    dict: Dict::default(),
                    state: Vec::new(),
                });
                self.push(v);
            }
            b']' => {
                let v = self.alloc(Obj::List(Vec::new()));
                self.push(v);
            }
            b')' => {
                let v = self.alloc(Obj::Tuple(Vec::new()));
                self.push(v);
            }
            0x8f => {
                let v = self.alloc(Obj::Set {
                    frozen: false,
                    items: Vec::new(),
                });
                self.push(v);
            }
            b't' => {
                let items = self.pop_mark()?;
                let v = self.alloc(Obj::Tuple(items));
                self.push(v);
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                let len = self.stack.len();
                let floor = self.marks.last().copied().unwrap_or(0);
                if len < floor + n {
                    return corrupt(format!("needs {n} items on the stack"));
                }
                let items = self.stack.split_off(len - n);
                let v = self.alloc(Obj::Tuple(items));
                self.push(v);
            }
            0x91 => {
                let items = self.pop_mark()?;
                let v = self.alloc(Obj::Set {
                    frozen: true,
                    items,
                });
                self.push(v);
            }
            b'a' => {
                let v = self.pop()?;
                let target = self.top()?.clone();
                self.append(&target, vec![v])?;
            }
            b'e' => {
                let items = self.pop_mark()?;
                let target = self.top()?.clone();
                self.append(&target, items)?;
            }
            0x90 => {
                let items = self.pop_mark()?;
                let target = self.top()?.clone();
                match self.obj_mut(&target) {
                    Some(Obj::Set {
                        frozen: false,
                        items: set,
                    }) => set.extend(items),
                    _ => return corrupt("ADDITEMS needs a set"),
                }
            }
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                let target = self.top()?.clone();
                self.set_items(&target, vec![k, v])?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                if items.len() % 2 != 0 {
                    return corrupt("SETITEMS needs key/value pairs (an odd number of items)");
                }
                let target = self.top()?.clone();
                self.set_items(&target, items)?;
            }
            b'q' => {
                let i = r.u8()?;
                self.memo_put(u32::from(i))?;
            }
            b'r' => {
                let i = u32::from_le_bytes(r.arr()?);
                self.memo_put(i)?;
            }
            0x94 => {
                let i = u32::try_from(self.memo.len())
                    .map_err(|_| Fail::Corrupt("the memo is full".to_string()))?;
                self.memo_put(i)?;
            }
            b'h' => {
                let i = r.u8()?;
                self.memo_get(u32::from(i))?;
            }
            b'j' => {
                let i = u32::from_le_bytes(r.arr()?);
                self.memo_get(i)?;
            }
            b'c' => {
                let module = r.line(512)?;
                let name = r.line(512)?;
                let module = String::from_utf8_lossy(module).into_owned();
                let name = String::from_utf8_lossy(name).into_owned();
                let v = self.global(&module, &name)?;
                self.push(v);
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Value::Str(module), Value::Str(name)) = (module, name) else {
                    return corrupt("STACK_GLOBAL needs two strings");
                };
                let v = self.global(&module, &name)?;
                self.push(v);
            }
            b'Q' => {
                let pid = self.pop()?;
                let v = self.persistent_load(&pid, resolve)?;
                self.push(v);
            }
            b'R' => {
                let args = self.pop()?;
                let func = self.pop()?;
                let args = self.tuple_items(&args, "REDUCE arguments")?;
                let v = self.call(&func, args)?;
                self.push(v);
            }
            0x81 => {
                let args = self.pop()?;
                let cls = self.pop()?;
                let args = self.tuple_items(&args, "NEWOBJ arguments")?;
                let v = self.new_obj(&cls, args)?;
                self.push(v);
            }
            0x92 => {
                let kwargs = self.pop()?;
                let args = self.pop()?;
                let cls = self.pop()?;
                let mut args = self.tuple_items(&args, "NEWOBJ_EX arguments")?;
                args.push(kwargs);
                let v = self.new_obj(&cls, args)?;
                self.push(v);
            }
            b'b' => {
                let state = self.pop()?;
                let target = self.top()?.clone();
                self.build(&target, state)?;
            }
            0x98 => {} // READONLY_BUFFER: a no-op on an in-band buffer.
            0x97 => {
                return Err(Fail::Unsupported(
                    "the pickle uses an out-of-band buffer (NEXT_BUFFER), which a file cannot \
                     carry"
                        .to_string(),
                    super::HINT_RESAVE,
                ))
            }
            b'I'
            | b'L'
            | b'F'
            | b'S'
            | b'V'
            | b'p'
            | b'g'
            | b'd'
            | b'l'
            | b'i'
            | b'o'
            | b'P'
            | 0x82..=0x84 => {
                return Err(Fail::Unsupported(
                    format!(
                        "pickle opcode {} (0x{op:02x}) belongs to protocol 0 or the extension \
                         registry, which torch.save does not write",
                        op_name(op)
                    ),
                    super::HINT_RESAVE,
                ))
            }
            _ => return corrupt("not a pickle opcode"),
        }
        Ok(None)
    }

    fn tuple_items(&mut self, v: &Value, what: &str) -> Result<Vec<Value>, Fail> {
        match self.obj(v) {
            Some(Obj::Tuple(_)) => Ok(self.copy_items(v, false)?.unwrap_or_default()),
            _ => corrupt(format!("{what} must be a tuple")),
        }
    }

    fn append(&mut self, target: &Value, items: Vec<Value>) -> Result<(), Fail> {
        match self.obj_mut(target) {
            Some(Obj::List(list)) => list.extend(items),
            Some(Obj::Object {
                items: extra,
                class,
                ..
            }) if &**class != "argparse.Namespace" => extra.extend(items),
            _ => return corrupt("APPEND(S) needs a list"),
        }
        Ok(())
    }

    fn set_items(&mut self, target: &Value, items: Vec<Value>) -> Result<(), Fail> {
        match self.obj_mut(target) {
            Some(Obj::Dict { dict, .. }) => {
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    dict.set(k, v);
                }
            }
            Some(Obj::Object {
                items: extra,
                class,
                ..
            }) if &**class != "argparse.Namespace" => extra.extend(items),
            _ => return corrupt("SETITEM(S) needs a dict"),
        }
        Ok(())
    }

    fn build(&mut self, target: &Value, state: Value) -> Result<(), Fail> {
        match self.obj_mut(target) {
            Some(Obj::Dict { state: s, .. }) | Some(Obj::Object { state: s, .. }) => {
                s.push(state);
                Ok(())
            }
            Some(Obj::Tensor(_)) => {
                // `_rebuild_parameter_with_state` and tensor subclasses set Python attributes
                // this way; they carry no tensor data and are dropped.
                Ok(())
            }
            _ => corrupt("BUILD needs an object, an OrderedDict or a tensor"),
        }
    }

    fn global(&mut self, module: &str, name: &str) -> Result<Value, Fail> {
        let full = format!("{module}.{name}");
        let kind = match lookup_global(module, name) {
            Some(k) => k,
            None if self.limits.inert_unknown => {
                if !self.m.unknown_globals.contains(&full) && self.m.unknown_globals.len() < 64 {
                    self.m.unknown_globals.push(full.clone());
                }
                GlobalKind::Opaque
            }
            None => return Err(Fail::Global(full)),
        };
        Ok(self.alloc(Obj::Global {
            kind,
            name: Rc::from(full),
        }))
    }

    fn global_of(&self, v: &Value) -> Option<(GlobalKind, Rc<str>)> {
        match self.obj(v) {
            Some(Obj::Global { kind, name }) => Some((*kind, name.clone())),
            _ => None,
        }
    }

    fn int(&self, v: &Value, what: &str) -> Result<i64, Fail> {
        match v {
            Value::Int(i) => Ok(*i),
            Value::Bool(b) => Ok(i64::from(*b)),
            _ => corrupt(format!("{what} must be an integer")),
        }
    }

    fn uint_tuple(&self, v: &Value, what: &str) -> Result<Vec<u64>, Fail> {
        let items: &[Value] = match self.obj(v) {
            Some(Obj::Tuple(items)) | Some(Obj::List(items)) => items,
            _ => return corrupt(format!("the tensor {what} must be a tuple")),
        };
        if items.len() > self.limits.max_rank {
            return Err(Fail::Limit(format!(
                "a tensor has {} dimensions, more than the limit of {}",
                items.len(),
                self.limits.max_rank
            )));
        }
        items
            .iter()
            .map(|x| {
                let i = self.int(x, &format!("each tensor {what} entry"))?;
                u64::try_from(i)
                    .map_err(|_| Fail::Corrupt(format!("negative tensor {what} entry {i}")))
            })
            .collect()
    }

    /// `('storage', torch.XStorage, key, location, numel)`, checked against the archive.
    fn persistent_load(&mut self, pid: &Value, resolve: Resolver<'_>) -> Result<Value, Fail> {
        let Some(Obj::Tuple(t)) = self.obj(pid) else {
            return corrupt("a persistent id must be a tuple");
        };
        let [tag, cls, key, location, numel] = t.as_slice() else {
            return corrupt(format!(
                "a persistent id must have 5 entries ('storage', type, key, location, numel), \
                 found {}",
                t.len()
            ));
        };
        if !matches!(tag, Value::Str(s) if &**s == "storage") {
            return corrupt("a persistent id must start with 'storage'");
        }
        let dtype = match self.global_of(cls) {
            Some((GlobalKind::Storage(d), _)) => d,
            Some((_, name)) => {
                return corrupt(format!(
                    "a persistent id names `{}`, which is not a storage type",
                    display_name(&name)
                ))
            }
            None => return corrupt("a persistent id's storage type must be a global"),
        };
        let (Value::Str(key), Value::Str(location)) = (key, location) else {
            return corrupt("a persistent id's key and location must be strings");
        };
        let numel = self.int(numel, "a storage's element count")?;
        let numel = u64::try_from(numel)
            .map_err(|_| Fail::Corrupt(format!("storage `{key}` has a negative size {numel}")))?;
        let Some(record) = resolve(key) else {
            return Err(Fail::Corrupt(format!(
                "storage `{}` has no `data/{}` record in the archive",
                display_name(key),
                display_name(key)
            )));
        };
        let need = numel.checked_mul(dtype.size());
        if need.is_none_or(|n| n > record) {
            return Err(Fail::Corrupt(format!(
                "storage `{}` declares {numel} {} elements ({} bytes), but its record holds only \
                 {record} bytes",
                display_name(key),
                dtype.torch_name(),
                need.map_or_else(|| "overflowing".to_string(), |n| n.to_string())
            )));
        }
        let s = StorageRef {
            dtype,
            key: key.clone(),
            location: location.clone(),
            numel,
        };
        Ok(self.alloc(Obj::Storage(s)))
    }

    /// `REDUCE`: interpret an allowlisted callable on `args`.
    fn call(&mut self, func: &Value, args: Vec<Value>) -> Result<Value, Fail> {
        use GlobalKind as G;
        let Some((kind, name)) = self.global_of(func) else {
            return corrupt("REDUCE needs a global as its callable");
        };
        let arity = |lo: usize, hi: usize| -> Result<(), Fail> {
            if args.len() < lo || args.len() > hi {
                corrupt(format!(
                    "`{}` called with {} arguments (expected {lo}..={hi})",
                    display_name(&name),
                    args.len()
                ))
            } else {
                Ok(())
            }
        };
        match kind {
            G::RebuildTensorV2 | G::RebuildTensor => {
                if kind == G::RebuildTensorV2 {
                    arity(6, 7)?;
                } else {
                    arity(4, 4)?;
                }
                self.rebuild_tensor(&args)
            }
            G::RebuildParameter | G::RebuildParameterWithState => {
                arity(3, 4)?;
                match self.obj(&args[0]) {
                    Some(Obj::Tensor(_)) => Ok(args[0].clone()),
                    _ => corrupt(format!("`{}` needs a tensor", display_name(&name))),
                }
            }
            G::RebuildFromTypeV2 => {
                arity(4, 4)?;
                let inner = self.global_of(&args[0]).map(|g| g.0);
                let typ = self.global_of(&args[1]).map(|g| g.0);
                if !matches!(
                    inner,
                    Some(
                        G::RebuildTensorV2
                            | G::RebuildTensor
                            | G::RebuildParameter
                            | G::RebuildParameterWithState
                    )
                ) || typ != Some(G::TensorClass)
                {
                    return corrupt(
                        "`_rebuild_from_type_v2` is accepted only for plain tensors and parameters",
                    );
                }
                let inner_args = self.tuple_items(&args[2], "_rebuild_from_type_v2 arguments")?;
                self.call(&args[0].clone(), inner_args)
            }
            G::OrderedDict => {
                arity(0, 1)?;
                let mut dict = Dict::default();
                if let Some(pairs) = args.first() {
                    let Some(pairs) = self.copy_items(pairs, false)? else {
                        return corrupt("OrderedDict(...) needs a list of pairs");
                    };
                    for p in pairs {
                        match self.obj(&p) {
                            Some(Obj::Tuple(kv)) | Some(Obj::List(kv)) if kv.len() == 2 => {
                                dict.set(kv[0].clone(), kv[1].clone())
                            }
                            _ => return corrupt("OrderedDict(...) needs a list of pairs"),
                        }
                    }
                }
                Ok(self.alloc(Obj::Dict {
                    ordered: true,
                    dict,
                    state: Vec::new(),
                }))
            }
            G::Namespace => {
                arity(0, 0)?;
                Ok(self.alloc(Obj::Object {
                    class: name,
                    args: Vec::new(),
                    state: Vec::new(),
                    items: Vec::new(),
                }))
            }
            G::Device => {
                arity(1, 2)?;
                let Value::Str(t) = &args[0] else {
                    return corrupt("torch.device(...) needs a string");
                };
                let d = match args.get(1) {
                    None | Some(Value::None) => t.to_string(),
                    Some(i) => format!("{t}:{}", self.int(i, "a device index")?),
                };
                Ok(self.alloc(Obj::Device(Rc::from(d))))
            }
            G::Size => {
                arity(0, 1)?;
                let items = match args.first() {
                    None => Vec::new(),
                    Some(v) => match self.copy_items(v, false)? {
                        Some(items) => items,
                        None => return corrupt("torch.Size(...) needs a tuple"),
                    },
                };
                Ok(self.alloc(Obj::Tuple(items)))
            }
            G::Set | G::FrozenSet => {
                arity(0, 1)?;
                let items = match args.first() {
                    None => Vec::new(),
                    Some(v) => match self.copy_items(v, true)? {
                        Some(items) => items,
                        None => return corrupt("set(...) needs a list"),
                    },
                };
                Ok(self.alloc(Obj::Set {
                    frozen: kind == G::FrozenSet,
                    items,
                }))
            }
            G::Bytes | G::ByteArray | G::CodecsEncode => {
                let bytes = match args.as_slice() {
                    [] if kind != G::CodecsEncode => Vec::new(),
                    // Shared, not copied.
                    [Value::Bytes(b)] if kind != G::CodecsEncode => {
                        return Ok(Value::Bytes(b.clone()))
                    }
                    [Value::Str(s), Value::Str(enc)]
                        if matches!(&**enc, "latin1" | "latin-1" | "iso-8859-1") =>
                    {
                        self.charge(s.len())?;
                        latin1(s)?
                    }
                    [v] if kind != G::CodecsEncode => match self.copy_items(v, false)? {
                        Some(items) => items
                            .iter()
                            .map(|x| match x {
                                Value::Int(i) => u8::try_from(*i).ok(),
                                _ => None,
                            })
                            .collect::<Option<Vec<u8>>>()
                            .ok_or_else(|| {
                                Fail::Corrupt("bytes(...) needs integers 0..=255".to_string())
                            })?,
                        None => return corrupt("bytes(...) has unsupported arguments"),
                    },
                    _ => {
                        return corrupt(format!(
                            "`{}` has unsupported arguments",
                            display_name(&name)
                        ))
                    }
                };
                Ok(Value::Bytes(Rc::from(bytes)))
            }
            G::Opaque => Ok(self.alloc(Obj::Object {
                class: name,
                args,
                state: Vec::new(),
                items: Vec::new(),
            })),
            G::TensorClass | G::Storage(_) | G::Constant => corrupt(format!(
                "`{}` cannot be called in a checkpoint",
                display_name(&name)
            )),
        }
    }

    /// `NEWOBJ`: `cls.__new__(cls, *args)`, for the classes a checkpoint instantiates this way.
    fn new_obj(&mut self, cls: &Value, args: Vec<Value>) -> Result<Value, Fail> {
        match self.global_of(cls) {
            Some((GlobalKind::Namespace, name)) => Ok(self.alloc(Obj::Object {
                class: name,
                args: Vec::new(),
                state: Vec::new(),
                items: Vec::new(),
            })),
            Some((GlobalKind::OrderedDict, _)) => Ok(self.alloc(Obj::Dict {
                ordered: true,
                dict: Dict::default(),
                state: Vec::new(),
            })),
            Some((GlobalKind::Set | GlobalKind::FrozenSet, _)) => self.call(cls, args),
            Some((GlobalKind::Opaque, name)) => Ok(self.alloc(Obj::Object {
                class: name,
                args,
                state: Vec::new(),
                items: Vec::new(),
            })),
            Some((_, name)) => corrupt(format!(
                "`{}` cannot be instantiated with NEWOBJ",
                display_name(&name)
            )),
            None => corrupt("NEWOBJ needs a class"),
        }
    }

    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, ...)`: validates the view
    /// against the storage and records it; no data is read here.
    fn rebuild_tensor(&mut self, args: &[Value]) -> Result<Value, Fail> {
        let [storage, offset, size, stride, ..] = args else {
            return corrupt("a tensor rebuild needs storage, offset, size and stride");
        };
        let Some(Obj::Storage(storage)) = self.obj(storage) else {
            return corrupt("a tensor rebuild's first argument must be a storage");
        };
        let storage = storage.clone();
        let offset = self.int(offset, "a storage offset")?;
        let offset = u64::try_from(offset)
            .map_err(|_| Fail::Corrupt(format!("negative storage offset {offset}")))?;
        let size = self.uint_tuple(size, "size")?;
        let stride = self.uint_tuple(stride, "stride")?;
        if size.len() != stride.len() {
            return corrupt(format!(
                "a tensor has size {size:?} but stride {stride:?} (different ranks)"
            ));
        }
        let numel = size
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .ok_or_else(|| Fail::Corrupt(format!("tensor size {size:?} overflows")))?;
        // The last element the view reaches must lie inside the storage.
        if numel > 0 {
            let last = size
                .iter()
                .zip(&stride)
                .try_fold(offset, |acc, (&n, &s)| {
                    acc.checked_add((n - 1).checked_mul(s)?)
                })
                .filter(|&l| l < storage.numel);
            if last.is_none() {
                return corrupt(format!(
                    "a tensor view (offset {offset}, size {size:?}, stride {stride:?}) reaches \
                     beyond storage `{}`, which holds {} elements",
                    display_name(&storage.key),
                    storage.numel
                ));
            }
        } else if offset > storage.numel {
            return corrupt(format!(
                "an empty tensor's offset {offset} lies beyond storage `{}` ({} elements)",
                display_name(&storage.key),
                storage.numel
            ));
        }
        Ok(self.alloc(Obj::Tensor(TensorSpec {
            storage,
            offset,
            size,
            stride,
            numel,
        })))
    }
}

fn latin1(s: &str) -> Result<Vec<u8>, Fail> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| Fail::Corrupt("a latin-1 byte string holds a character above U+00FF".into()))
}
