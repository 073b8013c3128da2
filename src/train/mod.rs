//! Training: the optimizer and one training step (the rest of the training issue — recipes,
//! augmentations, schedules, checkpoints, the demo — builds on these).

pub mod augment;
pub mod checkpoint;
pub mod cifar;
pub mod optim;
pub mod recipe;
pub mod resume;
pub mod run;
pub mod schedule;

use candle_core::{Result, Tensor};

use crate::model::ResNet;
pub use optim::{DecayScope, Sgd, SgdConfig};

/// One SGD step on a batch: forward in training mode, mean cross-entropy, backward, update.
/// Returns the loss before the update.
pub fn train_step(model: &ResNet, optimizer: &mut Sgd, images: &Tensor, labels: &Tensor, lr: f64) -> Result<f32> {
    let logits = model.forward_t(images, true)?;
    let loss = candle_nn::loss::cross_entropy(&logits, labels)?;
    let grads = loss.backward()?;
    optimizer.step(&grads, lr)?;
    loss.to_dtype(candle_core::DType::F32)?.to_scalar::<f32>()
}
