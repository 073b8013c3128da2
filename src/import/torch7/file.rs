//! The binary serialization of torch7's `File.lua` (`torch.save(path, obj)`), read without Lua.
//!
//! Every value starts with an int32 type tag: nil 0, number 1 (a double), string 2 (int32
//! length + bytes), table 3, torch object 4, boolean 5 (int32), function 6 (legacy, no index),
//! and the indexed functions 7 and 8. Tables, torch objects and indexed functions carry an
//! int32 object index: the first time an index appears the object follows, later it is a
//! reference to the same object (which is how Torch7 shares storages and writes loops). A torch
//! object is a version string `V <n>` (absent before version 1), its class name, then either
//! the class's own `write` (storages: int64 size + raw elements; tensors: int32 rank, int64
//! sizes, int64 strides, int64 one-based offset, storage object) or its fields as a table
//! (`nn.*` and `cudnn.*` modules). "long" is 8 bytes, as on every 64-bit Linux build.
//!
//! The whole file is in memory; every length is checked against the bytes that remain before
//! anything is allocated, and objects refer to each other by index, so reference loops are
//! representable (the module walker detects them) and the reader's own recursion is bounded by
//! [`MAX_DEPTH`].

use crate::import::pytorch::layout::StridedView;
use candle_core::DType;
use std::collections::HashMap;

/// The deepest nesting of values accepted. A ResNet nests about 25 levels (model, stages,
/// blocks, branches, modules, their field tables, tensors, storages).
pub const MAX_DEPTH: usize = 200;
/// The highest tensor rank accepted (torch7's own limit is far lower in practice).
const MAX_RANK: usize = 16;

/// An index into [`T7File::objects`].
pub type ObjId = usize;

#[derive(Debug, Clone, PartialEq)]
pub enum T7Value {
    Nil,
    Number(f64),
    Str(String),
    Bool(bool),
    /// A table, torch object or indexed function.
    Object(ObjId),
    /// A legacy (unindexed) function: its bytecode is skipped, never loaded.
    Function,
}

/// A storage class: its element size and candle dtype where candle has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageKind {
    /// The type prefix shared by the storage and tensor class names: `Float`, `Cuda`, ...
    pub prefix: &'static str,
    pub element_size: usize,
    pub dtype: Option<DType>,
}

const STORAGE_KINDS: [StorageKind; 16] = [
    StorageKind { prefix: "Float", element_size: 4, dtype: Some(DType::F32) },
    StorageKind { prefix: "Double", element_size: 8, dtype: Some(DType::F64) },
    StorageKind { prefix: "Half", element_size: 2, dtype: Some(DType::F16) },
    StorageKind { prefix: "Byte", element_size: 1, dtype: Some(DType::U8) },
    StorageKind { prefix: "Char", element_size: 1, dtype: None },
    StorageKind { prefix: "Short", element_size: 2, dtype: Some(DType::I16) },
    StorageKind { prefix: "Int", element_size: 4, dtype: Some(DType::I32) },
    StorageKind { prefix: "Long", element_size: 8, dtype: Some(DType::I64) },
    // cutorch's names: `torch.CudaTensor` is float.
    StorageKind { prefix: "Cuda", element_size: 4, dtype: Some(DType::F32) },
    StorageKind { prefix: "CudaDouble", element_size: 8, dtype: Some(DType::F64) },
    StorageKind { prefix: "CudaHalf", element_size: 2, dtype: Some(DType::F16) },
    StorageKind { prefix: "CudaByte", element_size: 1, dtype: Some(DType::U8) },
    StorageKind { prefix: "CudaChar", element_size: 1, dtype: None },
    StorageKind { prefix: "CudaShort", element_size: 2, dtype: Some(DType::I16) },
    StorageKind { prefix: "CudaInt", element_size: 4, dtype: Some(DType::I32) },
    StorageKind { prefix: "CudaLong", element_size: 8, dtype: Some(DType::I64) },
];

fn kind_of(class: &str, suffix: &str) -> Option<StorageKind> {
    let prefix = class.strip_prefix("torch.")?.strip_suffix(suffix)?;
    STORAGE_KINDS.iter().find(|k| k.prefix == prefix).copied()
}

#[derive(Debug, Clone, PartialEq)]
pub struct Storage {
    pub kind: StorageKind,
    /// Byte offset of the first element in the file.
    pub start: usize,
    pub elements: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TensorObject {
    pub kind: StorageKind,
    pub size: Vec<i64>,
    pub stride: Vec<i64>,
    /// One-based, as Torch7 writes it.
    pub offset: i64,
    pub storage: Option<ObjId>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// Being read: a reference to it from inside itself is a loop.
    Pending,
    Table(Vec<(T7Value, T7Value)>),
    Storage(Storage),
    Tensor(TensorObject),
    /// A torch class written as its fields (`nn.*`, `cudnn.*`).
    Instance {
        class: String,
        fields: T7Value,
    },
    Function,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum T7ErrorKind {
    #[error("the file ends early ({needed} more bytes needed)")]
    Truncated { needed: usize },
    #[error("unknown type tag {0}")]
    Tag(i32),
    #[error("values nest deeper than {MAX_DEPTH} (a recursion bomb?)")]
    TooDeep,
    #[error("reference to object {0}, which was not written before")]
    Reference(i32),
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("at byte {offset}: {kind}")]
pub struct T7Error {
    pub offset: usize,
    pub kind: T7ErrorKind,
}

/// A parsed `.t7` file: its bytes (storages point into them), its objects and its root value.
#[derive(Debug)]
pub struct T7File {
    pub data: Vec<u8>,
    pub objects: Vec<Object>,
    pub root: T7Value,
}

impl T7File {
    pub fn parse(data: Vec<u8>) -> Result<T7File, T7Error> {
        let mut reader = Reader { data: &data, pos: 0, objects: Vec::new(), index: HashMap::new() };
        let root = reader.value(0)?;
        let objects = reader.objects;
        Ok(T7File { data, objects, root })
    }

    pub fn object(&self, id: ObjId) -> &Object {
        &self.objects[id]
    }

    /// The class of a torch object, if the value is one.
    pub fn class(&self, value: &T7Value) -> Option<&str> {
        match value {
            T7Value::Object(id) => match self.object(*id) {
                Object::Instance { class, .. } => Some(class),
                _ => None,
            },
            _ => None,
        }
    }

    /// A field of an instance (a string key of its fields table).
    pub fn field(&self, id: ObjId, name: &str) -> Option<&T7Value> {
        let Object::Instance { fields: T7Value::Object(table), .. } = self.object(id) else { return None };
        let Object::Table(entries) = self.object(*table) else { return None };
        entries.iter().find(|(k, _)| matches!(k, T7Value::Str(s) if s == name)).map(|(_, v)| v)
    }

    /// The bytes of a storage.
    pub fn storage_bytes(&self, storage: &Storage) -> &[u8] {
        &self.data[storage.start..storage.start + storage.elements * storage.kind.element_size]
    }

    /// A tensor's view in elements of its storage (zero-based), or why it has none.
    pub fn view(&self, tensor: &TensorObject) -> Result<StridedView, String> {
        let non_negative = |what: &str, v: i64| usize::try_from(v).map_err(|_| format!("{what} {v} is negative"));
        let shape = tensor.size.iter().map(|&s| non_negative("size", s)).collect::<Result<Vec<_>, _>>()?;
        let stride = tensor.stride.iter().map(|&s| non_negative("stride", s)).collect::<Result<Vec<_>, _>>()?;
        let offset = tensor.offset.checked_sub(1).ok_or("offset overflows")?;
        let offset = non_negative("offset (one-based) minus one", offset)?;
        Ok(StridedView { shape, stride, offset })
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    objects: Vec<Object>,
    /// Torch7's object index → our object.
    index: HashMap<i32, ObjId>,
}

type Step<T> = Result<T, T7Error>;

impl Reader<'_> {
    fn fail<T>(&self, offset: usize, kind: T7ErrorKind) -> Step<T> {
        Err(T7Error { offset, kind })
    }

    fn take(&mut self, n: usize) -> Step<&[u8]> {
        let remaining = self.data.len() - self.pos;
        if n > remaining {
            return self.fail(self.pos, T7ErrorKind::Truncated { needed: n - remaining });
        }
        let bytes = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    fn int(&mut self) -> Step<i32> {
        Ok(i32::from_le_bytes(self.take(4)?.try_into().unwrap_or_default()))
    }

    fn long(&mut self) -> Step<i64> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().unwrap_or_default()))
    }

    /// A length, checked against the remaining bytes (times `unit` bytes per item).
    fn length(&mut self, n: i64, unit: usize) -> Step<usize> {
        let at = self.pos;
        let n = usize::try_from(n).or_else(|_| self.fail(at, T7ErrorKind::Invalid(format!("negative length {n}"))))?;
        let remaining = self.data.len() - self.pos;
        match n.checked_mul(unit) {
            Some(bytes) if bytes <= remaining => Ok(n),
            _ => self.fail(at, T7ErrorKind::Truncated { needed: n.saturating_mul(unit).saturating_sub(remaining) }),
        }
    }

    fn string(&mut self) -> Step<String> {
        let n = self.int()?;
        let n = self.length(n.into(), 1)?;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }

    fn value(&mut self, depth: usize) -> Step<T7Value> {
        let at = self.pos;
        if depth > MAX_DEPTH {
            return self.fail(at, T7ErrorKind::TooDeep);
        }
        let tag = self.int()?;
        match tag {
            0 => Ok(T7Value::Nil),
            1 => Ok(T7Value::Number(f64::from_le_bytes(self.take(8)?.try_into().unwrap_or_default()))),
            2 => Ok(T7Value::Str(self.string()?)),
            5 => Ok(T7Value::Bool(self.int()? == 1)),
            6 => {
                self.function(depth)?;
                Ok(T7Value::Function)
            }
            3 | 4 | 7 | 8 => {
                let index = self.int()?;
                if let Some(&id) = self.index.get(&index) {
                    return Ok(T7Value::Object(id));
                }
                // Torch7 numbers objects 1, 2, 3, ... in the order it first writes them.
                if usize::try_from(index).ok() != Some(self.index.len() + 1) {
                    return self.fail(at, T7ErrorKind::Reference(index));
                }
                let id = self.objects.len();
                self.objects.push(Object::Pending);
                self.index.insert(index, id);
                let object = match tag {
                    3 => self.table(depth)?,
                    4 => self.torch(depth)?,
                    _ => {
                        self.function(depth)?;
                        Object::Function
                    }
                };
                self.objects[id] = object;
                Ok(T7Value::Object(id))
            }
            other => self.fail(at, T7ErrorKind::Tag(other)),
        }
    }

    /// Dumped bytecode (skipped, never loaded) and its upvalues.
    fn function(&mut self, depth: usize) -> Step<()> {
        let n = self.int()?;
        let n = self.length(n.into(), 1)?;
        self.take(n)?;
        self.value(depth + 1)?;
        Ok(())
    }

    fn table(&mut self, depth: usize) -> Step<Object> {
        let n = self.int()?;
        // Each pair takes at least two 4-byte tags; the count cannot promise more than that.
        let n = self.length(n.into(), 8)?;
        let mut entries = Vec::new();
        for _ in 0..n {
            let key = self.value(depth + 1)?;
            let value = self.value(depth + 1)?;
            entries.push((key, value));
        }
        Ok(Object::Table(entries))
    }

    fn torch(&mut self, depth: usize) -> Step<Object> {
        let version = self.string()?;
        // Objects written before versioning start directly with the class name.
        let class = match version.strip_prefix("V ") {
            Some(_) => self.string()?,
            None => version,
        };
        if let Some(kind) = kind_of(&class, "Storage") {
            let at = self.pos;
            let elements = self.long()?;
            let elements = self.length(elements, kind.element_size).map_err(|e| T7Error { offset: at, ..e })?;
            let start = self.pos;
            self.take(elements * kind.element_size)?;
            return Ok(Object::Storage(Storage { kind, start, elements }));
        }
        if let Some(kind) = kind_of(&class, "Tensor") {
            let at = self.pos;
            let rank = self.int()?;
            let rank = match usize::try_from(rank) {
                Ok(r) if r <= MAX_RANK => r,
                _ => return self.fail(at, T7ErrorKind::Invalid(format!("{class} of rank {rank}"))),
            };
            let size = (0..rank).map(|_| self.long()).collect::<Step<Vec<_>>>()?;
            let stride = (0..rank).map(|_| self.long()).collect::<Step<Vec<_>>>()?;
            let offset = self.long()?;
            let storage_at = self.pos;
            let storage = match self.value(depth + 1)? {
                T7Value::Nil => None,
                T7Value::Object(id) if matches!(self.objects[id], Object::Storage(ref s) if s.kind == kind) => Some(id),
                _ => {
                    return self.fail(
                        storage_at,
                        T7ErrorKind::Invalid(format!("the storage of a {class} is not a {class}'s storage")),
                    )
                }
            };
            return Ok(Object::Tensor(TensorObject { kind, size, stride, offset, storage }));
        }
        let fields = self.value(depth + 1)?;
        Ok(Object::Instance { class, fields })
    }
}
