//! Torch7 `.t7` files (fb.resnet.torch's released ResNets), read in pure Rust: `file.rs` parses
//! torch7's serialization into objects, `module_tree` turns the model into a tree of modules
//! (refusing reference loops), and `resnet.rs` maps fb.resnet.torch's ResNet onto the
//! harness's model with torchvision tensor names.

pub mod file;
pub mod resnet;

use crate::import::pytorch::layout::materialize;
use candle_core::Tensor;
use file::{ObjId, Object, T7Error, T7File, T7Value};
use std::path::{Path, PathBuf};

pub use resnet::{Family, Torch7Resnet, Torch7Shortcut};

#[derive(Debug, thiserror::Error)]
pub enum Torch7Error {
    #[error("cannot read {path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path} is not a readable Torch7 file: {error}")]
    Format { path: PathBuf, error: T7Error },
    #[error("{path}: reference loop: the module at {at} contains itself")]
    Loop { path: PathBuf, at: String },
    #[error("{path}: module at {at} ({class}): {reason}")]
    Module { path: PathBuf, at: String, class: String, reason: String },
    #[error("{path}: {reason}")]
    Model { path: PathBuf, reason: String },
}

/// A module of the model: its class, where it sits (`model.modules[2].modules[1]`) and its
/// children (`modules` field, in order).
#[derive(Debug, Clone, PartialEq)]
pub struct Module {
    pub class: String,
    pub at: String,
    pub children: Vec<Module>,
    pub(crate) id: ObjId,
}

impl Module {
    /// The class without its package (`cudnn.SpatialConvolution` → `SpatialConvolution`), so
    /// cudnn and nn modules of the same kind are matched alike.
    pub fn kind(&self) -> &str {
        self.class.rsplit('.').next().unwrap_or(&self.class)
    }
}

/// Reads a `.t7` file into its objects.
pub fn read_file(path: &Path) -> Result<T7File, Torch7Error> {
    let data = std::fs::read(path).map_err(|error| Torch7Error::Io { path: path.to_owned(), error })?;
    T7File::parse(data).map_err(|error| Torch7Error::Format { path: path.to_owned(), error })
}

/// Reads a fb.resnet.torch ResNet from a `.t7` file.
pub fn read_resnet(path: &Path) -> Result<Torch7Resnet, Torch7Error> {
    let file = read_file(path)?;
    let tree = module_tree(path, &file)?;
    resnet::interpret(path, &file, tree)
}

/// The module tree under the file's root object.
pub fn module_tree(path: &Path, file: &T7File) -> Result<Module, Torch7Error> {
    let T7Value::Object(root) = file.root else {
        return Err(Torch7Error::Model {
            path: path.to_owned(),
            reason: format!("the saved value is {:?}, not a module", file.root),
        });
    };
    let mut on_path = Vec::new();
    walk(path, file, root, "model".to_owned(), &mut on_path)
}

fn walk(path: &Path, file: &T7File, id: ObjId, at: String, on_path: &mut Vec<ObjId>) -> Result<Module, Torch7Error> {
    if on_path.contains(&id) {
        return Err(Torch7Error::Loop { path: path.to_owned(), at });
    }
    if on_path.len() > file::MAX_DEPTH {
        return Err(Torch7Error::Model {
            path: path.to_owned(),
            reason: format!("modules nest deeper than {} at {at}", file::MAX_DEPTH),
        });
    }
    let class = match file.object(id) {
        Object::Instance { class, .. } => class.clone(),
        other => {
            let what = match other {
                Object::Table(_) => "a plain table",
                Object::Tensor(_) => "a tensor",
                Object::Storage(_) => "a storage",
                _ => "not a torch object",
            };
            return Err(Torch7Error::Model { path: path.to_owned(), reason: format!("{at} is {what}, not a module") });
        }
    };
    on_path.push(id);
    let mut children = Vec::new();
    if let Some(modules) = file.field(id, "modules") {
        let module_error = |reason: String| Torch7Error::Module {
            path: path.to_owned(),
            at: at.clone(),
            class: class.clone(),
            reason,
        };
        let T7Value::Object(table) = modules else { return Err(module_error("`modules` is not a table".into())) };
        let Object::Table(entries) = file.object(*table) else {
            return Err(module_error("`modules` is not a table".into()));
        };
        // A Lua array: keys 1..n, in any order in the file.
        let mut ordered = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            match (key, value) {
                (T7Value::Number(k), T7Value::Object(child)) if k.fract() == 0.0 && *k >= 1.0 => {
                    ordered.push((*k as usize, *child))
                }
                _ => return Err(module_error(format!("`modules` has an entry {key:?} → {value:?}"))),
            }
        }
        ordered.sort_by_key(|(k, _)| *k);
        if ordered.iter().enumerate().any(|(i, (k, _))| *k != i + 1) {
            return Err(module_error("`modules` is not a list 1..n".into()));
        }
        for (k, child) in ordered {
            children.push(walk(path, file, child, format!("{at}.modules[{k}]"), on_path)?);
        }
    }
    on_path.pop();
    Ok(Module { class, at, children, id })
}

/// A tensor field of a module as a candle tensor in its stored dtype, or `None` when the field
/// is absent or nil.
pub(crate) fn tensor_field(
    path: &Path,
    file: &T7File,
    module: &Module,
    name: &str,
) -> Result<Option<Tensor>, Torch7Error> {
    let error = |reason: String| Torch7Error::Module {
        path: path.to_owned(),
        at: module.at.clone(),
        class: module.class.clone(),
        reason: format!("`{name}`: {reason}"),
    };
    let id = match file.field(module.id, name) {
        None | Some(T7Value::Nil) => return Ok(None),
        Some(T7Value::Object(id)) => *id,
        Some(other) => return Err(error(format!("{other:?} is not a tensor"))),
    };
    let Object::Tensor(tensor) = file.object(id) else { return Err(error("not a tensor".into())) };
    let dtype = tensor.kind.dtype.ok_or_else(|| error(format!("{}Tensor has no candle dtype", tensor.kind.prefix)))?;
    let view = file.view(tensor).map_err(error)?;
    let bytes = match tensor.storage {
        Some(storage) => match file.object(storage) {
            Object::Storage(s) => file.storage_bytes(s),
            _ => return Err(error("its storage is not a storage".into())),
        },
        None => &[],
    };
    materialize(bytes, dtype, &view).map(Some).map_err(|e| error(e.to_string()))
}

/// A number field of a module.
pub(crate) fn number_field(file: &T7File, module: &Module, name: &str) -> Option<f64> {
    match file.field(module.id, name) {
        Some(T7Value::Number(v)) => Some(*v),
        _ => None,
    }
}

/// A boolean field of a module.
pub(crate) fn bool_field(file: &T7File, module: &Module, name: &str) -> Option<bool> {
    match file.field(module.id, name) {
        Some(T7Value::Bool(v)) => Some(*v),
        _ => None,
    }
}
