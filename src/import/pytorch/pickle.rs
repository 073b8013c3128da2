//! A pickle *reader*, not a pickle machine: it interprets the opcodes `torch.save` emits for
//! state dicts and rebuilds only plain data (numbers, strings, tuples, lists, dicts) plus the
//! few callables a tensor needs (`collections.OrderedDict`, `torch._utils._rebuild_tensor[_v2]`,
//! `_rebuild_parameter`, the `torch.*Storage` types). Any other global is refused by name the
//! moment the pickle mentions it, as `torch.load(weights_only=True)` refuses it; nothing is ever
//! called or imported.
//!
//! Memory stays proportional to the pickle: every opcode makes at most one value, values live
//! in one arena and are shared by index (a memo reference costs nothing, so "billion laughs"
//! pickles cannot expand), every length is checked against the bytes that remain before
//! anything is allocated, and no code walks the value graph recursively (so deep nesting and
//! self-referencing containers cannot overflow the stack).

use super::layout::StridedView;
use candle_core::DType;
use std::collections::HashMap;

/// An index into [`Pickle::values`].
pub type Id = usize;

/// The deepest MARK nesting accepted. `torch.save` output nests a handful of levels (a dict of
/// tensors each built from a tuple of tuples); hundreds of open marks are a recursion bomb.
pub const MAX_MARK_DEPTH: usize = 256;

/// A storage type of `torch.save`: its Python name, element size, and candle dtype where candle
/// has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageKind {
    pub name: &'static str,
    pub element_size: usize,
    pub dtype: Option<DType>,
}

const STORAGE_KINDS: [StorageKind; 10] = [
    StorageKind { name: "FloatStorage", element_size: 4, dtype: Some(DType::F32) },
    StorageKind { name: "DoubleStorage", element_size: 8, dtype: Some(DType::F64) },
    StorageKind { name: "HalfStorage", element_size: 2, dtype: Some(DType::F16) },
    StorageKind { name: "BFloat16Storage", element_size: 2, dtype: Some(DType::BF16) },
    StorageKind { name: "LongStorage", element_size: 8, dtype: Some(DType::I64) },
    StorageKind { name: "IntStorage", element_size: 4, dtype: Some(DType::I32) },
    StorageKind { name: "ShortStorage", element_size: 2, dtype: Some(DType::I16) },
    StorageKind { name: "ByteStorage", element_size: 1, dtype: Some(DType::U8) },
    StorageKind { name: "CharStorage", element_size: 1, dtype: None },
    StorageKind { name: "BoolStorage", element_size: 1, dtype: None },
];

/// The only globals a checkpoint may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    OrderedDict,
    /// `torch._utils._rebuild_tensor(storage, offset, size, stride)` (torch < 0.4).
    RebuildTensor,
    /// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`.
    RebuildTensorV2,
    /// `torch._utils._rebuild_parameter(data, requires_grad, hooks)`.
    RebuildParameter,
    Storage(StorageKind),
}

impl Global {
    fn resolve(module: &str, name: &str) -> Option<Global> {
        match (module, name) {
            ("collections", "OrderedDict") => Some(Global::OrderedDict),
            ("torch._utils", "_rebuild_tensor") => Some(Global::RebuildTensor),
            ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensorV2),
            ("torch._utils", "_rebuild_parameter") => Some(Global::RebuildParameter),
            ("torch", name) => STORAGE_KINDS.iter().find(|k| k.name == name).map(|&k| Global::Storage(k)),
            _ => None,
        }
    }
}

/// A storage named by a persistent id: its data lives outside the pickle (a zip entry or a
/// record after the pickles of a legacy file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRef {
    pub kind: StorageKind,
    pub key: String,
    /// Elements the pickle says the storage holds.
    pub elements: usize,
}

/// A tensor as the pickle describes it: a view of a storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRef {
    pub storage: StorageRef,
    pub view: StridedView,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Global(Global),
    Storage(StorageRef),
    Tensor(TensorRef),
}

impl Value {
    /// A short name for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "a bool",
            Value::Int(_) => "an int",
            Value::Float(_) => "a float",
            Value::Str(_) => "a string",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "a tuple",
            Value::List(_) => "a list",
            Value::Dict(_) => "a dict",
            Value::Global(_) => "a class or function",
            Value::Storage(_) => "a storage",
            Value::Tensor(_) => "a tensor",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PickleErrorKind {
    #[error("the pickle ends early ({needed} more bytes needed)")]
    Truncated { needed: usize },
    #[error("no STOP opcode before the end of the data")]
    NoStop,
    #[error("opcode 0x{0:02x} is not one a tensor checkpoint needs; refused")]
    Opcode(u8),
    #[error(
        "refused global `{0}`: a checkpoint may only name tensors, storages and OrderedDict \
         (nothing in it is executed)"
    )]
    ForbiddenGlobal(String),
    #[error("`{callable}` cannot be called here: {reason}")]
    Call { callable: String, reason: String },
    #[error("{op}: stack is empty")]
    StackUnderflow { op: &'static str },
    #[error("{op}: no MARK on the stack")]
    NoMark { op: &'static str },
    #[error("MARKs nest deeper than {MAX_MARK_DEPTH} (a recursion bomb?)")]
    TooDeep,
    #[error("memo entry {0} was never stored")]
    MissingMemo(u64),
    #[error("{op} expects {expected}, found {found}")]
    WrongType { op: &'static str, expected: &'static str, found: &'static str },
    #[error("{0}")]
    Invalid(String),
}

/// An error at a byte offset of the data handed to [`Pickle::parse`].
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("pickle opcode at byte {offset}: {kind}")]
pub struct PickleError {
    pub offset: usize,
    pub kind: PickleErrorKind,
}

/// One parsed pickle: its values and the one the STOP opcode returned.
#[derive(Debug, Clone)]
pub struct Pickle {
    pub values: Vec<Value>,
    pub root: Id,
}

impl Pickle {
    pub fn get(&self, id: Id) -> &Value {
        &self.values[id]
    }

    /// The string a value holds, if it is one.
    pub fn str(&self, id: Id) -> Option<&str> {
        match self.get(id) {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Parses the pickle starting at `start` of `data`; returns it and the offset after its STOP.
    pub fn parse(data: &[u8], start: usize) -> Result<(Pickle, usize), PickleError> {
        let mut machine = Machine {
            data,
            pos: start,
            values: Vec::new(),
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
        };
        loop {
            let op_start = machine.pos;
            match machine.step() {
                Ok(Some(root)) => return Ok((Pickle { values: machine.values, root }, machine.pos)),
                Ok(None) => {}
                Err(kind) => return Err(PickleError { offset: op_start, kind }),
            }
        }
    }
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    values: Vec<Value>,
    stack: Vec<Id>,
    /// Stack lengths at each open MARK.
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
}

type Step<T> = Result<T, PickleErrorKind>;

impl Machine<'_> {
    fn take(&mut self, n: usize) -> Step<&[u8]> {
        let remaining = self.data.len() - self.pos;
        if n > remaining {
            return Err(PickleErrorKind::Truncated { needed: n - remaining });
        }
        let bytes = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    fn u8(&mut self) -> Step<u8> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> Step<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// A length prefix, checked against the remaining bytes before anything is allocated.
    fn length(&mut self, width: usize) -> Step<usize> {
        let n = match width {
            1 => u64::from(self.u8()?),
            4 => u64::from(u32::from_le_bytes(self.le()?)),
            _ => u64::from_le_bytes(self.le()?),
        };
        let remaining = (self.data.len() - self.pos) as u64;
        if n > remaining {
            return Err(PickleErrorKind::Truncated { needed: usize::try_from(n - remaining).unwrap_or(usize::MAX) });
        }
        Ok(n as usize)
    }

    fn line(&mut self) -> Step<String> {
        let rest = &self.data[self.pos..];
        let end = rest.iter().position(|&b| b == b'\n').ok_or(PickleErrorKind::Truncated { needed: 1 })?;
        let line = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(line)
    }

    fn push(&mut self, value: Value) {
        self.values.push(value);
        self.stack.push(self.values.len() - 1);
    }

    fn pop(&mut self, op: &'static str) -> Step<Id> {
        // Values above the innermost MARK belong to it; popping past it is malformed.
        if self.marks.last().is_some_and(|&m| self.stack.len() <= m) {
            return Err(PickleErrorKind::StackUnderflow { op });
        }
        self.stack.pop().ok_or(PickleErrorKind::StackUnderflow { op })
    }

    fn pop_mark(&mut self, op: &'static str) -> Step<Vec<Id>> {
        let mark = self.marks.pop().ok_or(PickleErrorKind::NoMark { op })?;
        Ok(self.stack.split_off(mark))
    }

    fn top(&self, op: &'static str) -> Step<Id> {
        self.stack.last().copied().ok_or(PickleErrorKind::StackUnderflow { op })
    }

    fn wrong(&self, op: &'static str, expected: &'static str, id: Id) -> PickleErrorKind {
        PickleErrorKind::WrongType { op, expected, found: self.values[id].kind() }
    }

    fn append(&mut self, op: &'static str, items: Vec<Id>) -> Step<()> {
        let list = self.top(op)?;
        match &mut self.values[list] {
            Value::List(l) => {
                l.extend(items);
                Ok(())
            }
            _ => Err(self.wrong(op, "a list", list)),
        }
    }

    fn set_items(&mut self, op: &'static str, items: Vec<Id>) -> Step<()> {
        if items.len() % 2 != 0 {
            return Err(PickleErrorKind::Invalid(format!("{op}: an odd number ({}) of keys and values", items.len())));
        }
        let dict = self.top(op)?;
        match &mut self.values[dict] {
            Value::Dict(d) => {
                d.extend(items.chunks_exact(2).map(|kv| (kv[0], kv[1])));
                Ok(())
            }
            _ => Err(self.wrong(op, "a dict", dict)),
        }
    }

    fn global(&mut self, module: &str, name: &str) -> Step<()> {
        let global = Global::resolve(module, name)
            .ok_or_else(|| PickleErrorKind::ForbiddenGlobal(format!("{module}.{name}")))?;
        self.push(Value::Global(global));
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Step<()> {
        let id = *self.memo.get(&key).ok_or(PickleErrorKind::MissingMemo(key))?;
        self.stack.push(id);
        Ok(())
    }

    fn memo_put(&mut self, key: u64) -> Step<()> {
        let id = self.top("PUT")?;
        self.memo.insert(key, id);
        Ok(())
    }

    /// One opcode; `Some(root)` at STOP.
    fn step(&mut self) -> Step<Option<Id>> {
        let op = match self.data.get(self.pos) {
            Some(&op) => op,
            None => return Err(PickleErrorKind::NoStop),
        };
        self.pos += 1;
        match op {
            0x80 => {
                // PROTO: protocols 2 to 5 share every opcode read here.
                self.u8()?;
            }
            0x95 => {
                // FRAME: a length hint for buffering; the opcodes follow inline.
                self.le::<8>()?;
            }
            b'.' => return self.pop("STOP").map(Some),
            b'(' => {
                if self.marks.len() >= MAX_MARK_DEPTH {
                    return Err(PickleErrorKind::TooDeep);
                }
                self.marks.push(self.stack.len());
            }
            b'0' => {
                self.pop("POP")?;
            }
            b'1' => {
                self.pop_mark("POP_MARK")?;
            }
            b'2' => {
                let top = self.top("DUP")?;
                self.stack.push(top);
            }
            b'N' => self.push(Value::None),
            0x88 => self.push(Value::Bool(true)),
            0x89 => self.push(Value::Bool(false)),
            b'J' => {
                let v = i32::from_le_bytes(self.le()?);
                self.push(Value::Int(v.into()))
            }
            b'K' => {
                let v = self.u8()?;
                self.push(Value::Int(v.into()))
            }
            b'M' => {
                let v = u16::from_le_bytes(self.le()?);
                self.push(Value::Int(v.into()))
            }
            0x8a | 0x8b => {
                let n = if op == 0x8a { self.length(1)? } else { self.length(4)? };
                // Two's complement, little-endian; 16 bytes hold torch's 10-byte magic number.
                if n > 16 {
                    return Err(PickleErrorKind::Invalid(format!(
                        "a {n}-byte integer is larger than any checkpoint needs"
                    )));
                }
                let bytes = self.take(n)?;
                let mut v: i128 = 0;
                for (i, &b) in bytes.iter().enumerate() {
                    v |= i128::from(b) << (8 * i);
                }
                if n > 0 && n < 16 && bytes[n - 1] & 0x80 != 0 {
                    v -= 1i128 << (8 * n);
                }
                self.push(Value::Int(v))
            }
            b'G' => {
                let v = f64::from_be_bytes(self.le()?);
                self.push(Value::Float(v))
            }
            b'X' | 0x8c | 0x8d => {
                let n = self.length(match op {
                    0x8c => 1,
                    b'X' => 4,
                    _ => 8,
                })?;
                let s = std::str::from_utf8(self.take(n)?)
                    .map_err(|e| PickleErrorKind::Invalid(format!("a string is not UTF-8: {e}")))?
                    .to_owned();
                self.push(Value::Str(s))
            }
            b'T' | b'U' => {
                // Python 2 `str`: bytes that torch wrote as text; Latin-1 maps every byte.
                let n = self.length(if op == b'U' { 1 } else { 4 })?;
                let s = self.take(n)?.iter().map(|&b| char::from(b)).collect();
                self.push(Value::Str(s))
            }
            b'B' | b'C' | 0x8e => {
                let n = self.length(match op {
                    b'C' => 1,
                    b'B' => 4,
                    _ => 8,
                })?;
                let bytes = self.take(n)?.to_vec();
                self.push(Value::Bytes(bytes))
            }
            b')' => self.push(Value::Tuple(Vec::new())),
            b't' => {
                let items = self.pop_mark("TUPLE")?;
                self.push(Value::Tuple(items))
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop("TUPLEn")?);
                }
                items.reverse();
                self.push(Value::Tuple(items))
            }
            b']' => self.push(Value::List(Vec::new())),
            b'l' => {
                let items = self.pop_mark("LIST")?;
                self.push(Value::List(items))
            }
            b'a' => {
                let item = self.pop("APPEND")?;
                self.append("APPEND", vec![item])?
            }
            b'e' => {
                let items = self.pop_mark("APPENDS")?;
                self.append("APPENDS", items)?
            }
            b'}' => self.push(Value::Dict(Vec::new())),
            b'd' => {
                let items = self.pop_mark("DICT")?;
                self.push(Value::Dict(Vec::new()));
                self.set_items("DICT", items)?
            }
            b's' => {
                let value = self.pop("SETITEM")?;
                let key = self.pop("SETITEM")?;
                self.set_items("SETITEM", vec![key, value])?
            }
            b'u' => {
                let items = self.pop_mark("SETITEMS")?;
                self.set_items("SETITEMS", items)?
            }
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.global(&module, &name)?
            }
            0x93 => {
                let name = self.pop("STACK_GLOBAL")?;
                let module = self.pop("STACK_GLOBAL")?;
                match (&self.values[module], &self.values[name]) {
                    (Value::Str(m), Value::Str(n)) => {
                        let (m, n) = (m.clone(), n.clone());
                        self.global(&m, &n)?
                    }
                    _ => return Err(self.wrong("STACK_GLOBAL", "two strings", module)),
                }
            }
            b'R' => {
                let args = self.pop("REDUCE")?;
                let callable = self.pop("REDUCE")?;
                let value = self.call(callable, args)?;
                self.push(value)
            }
            b'b' => {
                let state = self.pop("BUILD")?;
                let target = self.top("BUILD")?;
                // A state dict's OrderedDict carries `_metadata` (module versions) as instance
                // state; it changes no tensor, so it is dropped. Nothing else may be built.
                match (&self.values[target], &self.values[state]) {
                    (Value::Dict(_), Value::Dict(_) | Value::None) => {}
                    _ => return Err(self.wrong("BUILD", "a dict with dict state", target)),
                }
            }
            b'Q' => {
                let pid = self.pop("BINPERSID")?;
                let storage = self.persistent_load(pid)?;
                self.push(Value::Storage(storage))
            }
            b'h' => {
                let key = self.u8()?;
                self.memo_get(key.into())?
            }
            b'j' => {
                let key = u32::from_le_bytes(self.le()?);
                self.memo_get(key.into())?
            }
            b'q' => {
                let key = self.u8()?;
                self.memo_put(key.into())?
            }
            b'r' => {
                let key = u32::from_le_bytes(self.le()?);
                self.memo_put(key.into())?
            }
            0x94 => {
                let key = self.memo.len() as u64;
                self.memo_put(key)?
            }
            other => return Err(PickleErrorKind::Opcode(other)),
        }
        Ok(None)
    }

    fn tuple(&self, op: &'static str, id: Id) -> Step<&[Id]> {
        match &self.values[id] {
            Value::Tuple(items) => Ok(items),
            _ => Err(self.wrong(op, "a tuple", id)),
        }
    }

    fn non_negative(&self, what: &str, id: Id) -> Step<usize> {
        match self.values[id] {
            Value::Int(v) => {
                usize::try_from(v).map_err(|_| PickleErrorKind::Invalid(format!("{what} is {v}, not a size")))
            }
            _ => Err(PickleErrorKind::Invalid(format!("{what} is {}, not an int", self.values[id].kind()))),
        }
    }

    fn sizes(&self, what: &str, id: Id) -> Step<Vec<usize>> {
        let items = self.tuple("a tensor rebuild", id)?;
        items.iter().map(|&i| self.non_negative(what, i)).collect()
    }

    /// `('storage', <torch.*Storage>, key, location, elements[, view_metadata])`.
    fn persistent_load(&self, pid: Id) -> Step<StorageRef> {
        let items = self.tuple("BINPERSID", pid)?;
        let invalid = |why: &str| PickleErrorKind::Invalid(format!("persistent id {why}"));
        if !(5..=6).contains(&items.len()) || self.values[items[0]] != Value::Str("storage".into()) {
            return Err(invalid("is not ('storage', type, key, location, size)"));
        }
        let kind = match self.values[items[1]] {
            Value::Global(Global::Storage(kind)) => kind,
            _ => return Err(invalid("does not name a torch storage type")),
        };
        let key = match &self.values[items[2]] {
            Value::Str(key) => key.clone(),
            _ => return Err(invalid("has no string key")),
        };
        let elements = self.non_negative("a storage's size", items[4])?;
        // Legacy files can save a view of a larger storage; torch >= 1.0 never writes one
        // for a state dict, so it is reported rather than guessed at.
        if items.len() == 6 && self.values[items[5]] != Value::None {
            return Err(PickleErrorKind::Invalid(format!(
                "storage {key} is saved as a view of another storage (not supported)"
            )));
        }
        Ok(StorageRef { kind, key, elements })
    }

    fn call(&self, callable: Id, args: Id) -> Step<Value> {
        let global = match self.values[callable] {
            Value::Global(g) => g,
            _ => return Err(self.wrong("REDUCE", "an allowed class or function", callable)),
        };
        let args = self.tuple("REDUCE", args)?;
        let refuse = |name: &str, reason: &str| PickleErrorKind::Call { callable: name.into(), reason: reason.into() };
        match global {
            Global::OrderedDict if args.is_empty() => Ok(Value::Dict(Vec::new())),
            Global::OrderedDict => Err(refuse("collections.OrderedDict", "expected no arguments")),
            Global::RebuildTensor | Global::RebuildTensorV2 => {
                let name = if global == Global::RebuildTensor {
                    "torch._utils._rebuild_tensor"
                } else {
                    "torch._utils._rebuild_tensor_v2"
                };
                let arity_ok = match global {
                    Global::RebuildTensor => args.len() == 4,
                    _ => (6..=7).contains(&args.len()),
                };
                if !arity_ok {
                    return Err(refuse(name, &format!("{} arguments", args.len())));
                }
                let storage = match &self.values[args[0]] {
                    Value::Storage(s) => s.clone(),
                    other => return Err(refuse(name, &format!("its storage is {}", other.kind()))),
                };
                let offset = self.non_negative("a storage offset", args[1])?;
                let shape = self.sizes("a size", args[2])?;
                let stride = self.sizes("a stride", args[3])?;
                Ok(Value::Tensor(TensorRef { storage, view: StridedView { shape, stride, offset } }))
            }
            Global::RebuildParameter => match args.first().map(|&a| &self.values[a]) {
                Some(Value::Tensor(t)) if args.len() == 3 => Ok(Value::Tensor(t.clone())),
                _ => Err(refuse("torch._utils._rebuild_parameter", "expected (tensor, requires_grad, hooks)")),
            },
            Global::Storage(kind) => {
                Err(refuse(&format!("torch.{}", kind.name), "storages are only loaded by persistent id"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_number_long_round_trips() {
        // LONG1 with torch's 10-byte magic number, as written by `pickle.dump(MAGIC_NUMBER)`.
        let data = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.";
        let (p, end) = Pickle::parse(data, 0).unwrap();
        assert_eq!(end, data.len());
        assert_eq!(p.get(p.root), &Value::Int(0x1950a86a20f9469cfc6c));
    }

    #[test]
    fn negative_long_is_twos_complement() {
        let (p, _) = Pickle::parse(b"\x8a\x01\xff.", 0).unwrap();
        assert_eq!(p.get(p.root), &Value::Int(-1));
    }

    #[test]
    fn memo_references_share_instead_of_copying() {
        // l = []; [l, l, l]: three references to one value.
        let data = b"](q\x00h\x00h\x00l.";
        let (p, _) = Pickle::parse(data, 0).unwrap();
        match p.get(p.root) {
            Value::List(items) => assert!(items.iter().all(|&i| i == items[0]), "{items:?}"),
            other => panic!("{other:?}"),
        }
    }
}
