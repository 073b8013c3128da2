//! SGD with momentum (and Nesterov) as PyTorch's `torch.optim.SGD` computes it, with the two
//! weight-decay scopes the recipes differ in.

use candle_core::{backprop::GradStore, Result, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

/// Which parameters weight decay applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DecayScope {
    /// The paper: convolution and fc weights only (every parameter of rank ≥ 2).
    ConvAndFcWeights,
    /// fb.resnet.torch: every weight and bias, batch-norm γ and β included.
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SgdConfig {
    pub momentum: f64,
    #[serde(default)]
    pub nesterov: bool,
    pub weight_decay: f64,
    pub decay_scope: DecayScope,
}

struct Param {
    name: String,
    var: Var,
    decay: bool,
    velocity: Option<Tensor>,
}

/// The optimizer over a model's trainable variables (batch-norm running statistics excluded).
pub struct Sgd {
    params: Vec<Param>,
    config: SgdConfig,
}

/// Running statistics live in the same `VarMap` but are updated by the forward pass, not by
/// gradients.
pub fn is_statistic(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var") || name.ends_with("num_batches_tracked")
}

impl Sgd {
    pub fn new(varmap: &VarMap, config: SgdConfig) -> Self {
        let data = varmap.data().lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut params: Vec<Param> = data
            .iter()
            .filter(|(name, _)| !is_statistic(name))
            .map(|(name, var)| Param {
                name: name.clone(),
                decay: match config.decay_scope {
                    DecayScope::All => true,
                    DecayScope::ConvAndFcWeights => var.rank() >= 2,
                },
                var: var.clone(),
                velocity: None,
            })
            .collect();
        // A fixed order keeps every run (and a resumed one) identical.
        params.sort_by(|a, b| a.name.cmp(&b.name));
        Self { params, config }
    }

    /// One update: `d = g + wd·p`, `v = μ·v + d` (`v = d` at the first step), `d = d + μ·v`
    /// with Nesterov else `d = v`, `p = p − lr·d`.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        let SgdConfig { momentum, nesterov, weight_decay, .. } = self.config;
        for param in &mut self.params {
            let Some(grad) = grads.get(param.var.as_tensor()) else { continue };
            // Detached throughout: a velocity built from tracked tensors would keep every past
            // step's autograd graph alive (6 GB per demo epoch before this).
            let mut d = grad.detach();
            let current = param.var.as_detached_tensor();
            if param.decay && weight_decay != 0.0 {
                d = (d + (&current * weight_decay)?)?;
            }
            if momentum != 0.0 {
                let velocity = match &param.velocity {
                    None => d.clone(),
                    Some(v) => ((v * momentum)? + &d)?,
                };
                d = if nesterov { (d + (&velocity * momentum)?)? } else { velocity.clone() };
                param.velocity = Some(velocity);
            }
            param.var.set(&(current - (d * lr)?)?)?;
        }
        Ok(())
    }

    /// The momentum buffers by parameter name (for checkpoints).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.params.iter().filter_map(|p| p.velocity.clone().map(|v| (p.name.clone(), v))).collect()
    }

    /// Restores momentum buffers written by [`Self::state`].
    pub fn set_state(&mut self, state: &std::collections::HashMap<String, Tensor>) {
        for param in &mut self.params {
            param.velocity = state.get(&param.name).cloned();
        }
    }

    pub fn decayed(&self) -> Vec<&str> {
        self.params.iter().filter(|p| p.decay).map(|p| p.name.as_str()).collect()
    }
}
