//! Building a ResNet from a weights file while checking every tensor it asks for.
//!
//! The model's own construction is the list of tensors it needs: a VarBuilder backend
//! records each request, answers it from the file, and notes what is missing, misshapen or
//! of an unusable dtype. Only when nothing is wrong is the model returned; otherwise every
//! problem is reported at once, with the file and tensor names.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use candle_core::{DType, Device, Result as CandleResult, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

use super::file::{dtype_name, WeightsFile};
use super::{Problem, WeightsError};
use crate::model::{BuildOptions, ResNet, ResNetConfig};

/// How weights become a model: dtype computed in (f32 unless asked otherwise), device, build.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub dtype: DType,
    pub device: Device,
    pub build: BuildOptions,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { dtype: DType::F32, device: Device::Cpu, build: BuildOptions::default() }
    }
}

/// A tensor a model needs: name and shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
}

/// Tensors that a state dict may carry and a model in eval mode never reads.
fn is_ignorable(name: &str) -> bool {
    name.ends_with("num_batches_tracked")
}

#[derive(Default)]
struct Record {
    requested: Vec<TensorSpec>,
    problems: Vec<Problem>,
    /// Non-finite values and negative variances, apart: a file can fit a model and still hold them.
    values: Vec<Problem>,
}

/// NaN or infinite values anywhere, and negative values in a BatchNorm running variance.
fn value_problems(name: &str, tensor: &Tensor) -> CandleResult<Vec<Problem>> {
    let values = tensor.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    let mut problems = Vec::new();
    let mut count_where = |bad: fn(f32) -> bool, problem: fn(String, usize, usize) -> Problem| {
        if let Some(first_index) = values.iter().position(|&x| bad(x)) {
            let count = values[first_index..].iter().filter(|&&x| bad(x)).count();
            problems.push(problem(name.to_string(), count, first_index));
        }
    };
    count_where(|x| !x.is_finite(), |name, count, first_index| Problem::NonFinite { name, count, first_index });
    if name.ends_with("running_var") {
        count_where(|x| x < 0.0, |name, count, first_index| Problem::NegativeVariance { name, count, first_index });
    }
    Ok(problems)
}

/// Answers tensor requests from a file (or with zeros, when there is none), recording each.
struct Recording<'a> {
    file: Option<&'a WeightsFile>,
    record: Arc<Mutex<Record>>,
}

fn zeros(shape: &Shape, dtype: DType, device: &Device) -> CandleResult<Tensor> {
    // A broadcast scalar: no memory for the full shape.
    Tensor::zeros((), dtype, device)?.broadcast_as(shape)
}

impl SimpleBackend for Recording<'_> {
    fn get(&self, shape: Shape, name: &str, _: candle_nn::Init, dtype: DType, dev: &Device) -> CandleResult<Tensor> {
        let mut record = self.record.lock().unwrap_or_else(PoisonError::into_inner);
        let expected = shape.dims().to_vec();
        record.requested.push(TensorSpec { name: name.to_string(), shape: expected.clone() });
        let Some(file) = self.file else { return zeros(&shape, dtype, dev) };
        let problem = match file.tensors.get(name) {
            None => Problem::Missing { name: name.to_string(), expected },
            Some(stored) if stored.shape != expected => {
                Problem::Shape { name: name.to_string(), expected, found: stored.shape.clone() }
            }
            Some(stored) => match &stored.tensor {
                Some(tensor) => {
                    let found = value_problems(name, tensor)?;
                    record.values.extend(found);
                    return tensor.to_dtype(dtype)?.to_device(dev);
                }
                None => Problem::Dtype { name: name.to_string(), found: dtype_name(stored.dtype) },
            },
        };
        record.problems.push(problem);
        zeros(&shape, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> CandleResult<Tensor> {
        candle_core::bail!("ResNet construction asked for `{name}` without a shape")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.file.is_some_and(|f| f.tensors.contains_key(name))
    }
}

fn build(file: Option<&WeightsFile>, config: &ResNetConfig, options: &LoadOptions) -> (CandleResult<ResNet>, Record) {
    let record = Arc::new(Mutex::new(Record::default()));
    let backend = Recording { file, record: record.clone() };
    let vb = VarBuilder::from_backend(Box::new(backend), options.dtype, options.device.clone());
    let model = ResNet::new(config, vb, options.build);
    let record = std::mem::take(&mut *record.lock().unwrap_or_else(PoisonError::into_inner));
    (model, record)
}

/// Every tensor (name, shape) a model of this config reads, in construction order.
pub fn tensor_specs(config: &ResNetConfig) -> CandleResult<Vec<TensorSpec>> {
    let options =
        LoadOptions { build: BuildOptions { fold_bn: false, ..BuildOptions::default() }, ..LoadOptions::default() };
    let (model, record) = build(None, config, &options);
    model.map(|_| record.requested)
}

/// Builds `config`'s model from `file`, or lists everything in the file that does not fit:
/// missing tensors, wrong shapes (a class-count mismatch among them), unusable dtypes, and
/// tensors the model does not use; then every NaN, infinity and negative running variance in the
/// tensors the model reads.
pub fn load_resnet(file: &WeightsFile, config: &ResNetConfig, options: &LoadOptions) -> Result<ResNet, WeightsError> {
    let (model, record) = build(Some(file), config, options);
    let mut problems = record.problems;
    let requested: BTreeSet<&str> = record.requested.iter().map(|s| s.name.as_str()).collect();
    let unexpected: Vec<String> =
        file.tensors.keys().filter(|n| !requested.contains(n.as_str()) && !is_ignorable(n)).cloned().collect();
    if !unexpected.is_empty() {
        problems.push(Problem::Unexpected { names: unexpected });
    }
    if !problems.is_empty() {
        problems.extend(record.values);
        return Err(WeightsError::Mismatch { path: file.path.clone(), model: config.name(), problems });
    }
    if !record.values.is_empty() {
        return Err(WeightsError::Unusable { path: file.path.clone(), problems: record.values });
    }
    model.map_err(|error| WeightsError::Build { path: file.path.clone(), model: config.name(), error: Box::new(error) })
}
