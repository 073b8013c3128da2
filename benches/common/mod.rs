//! Shared by the benches: a ResNet with random (He-scaled) weights, for timing only.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use resnet_audit::model::{BuildOptions, ResNet, ResNetConfig};
use resnet_audit::weights::tensor_specs;

pub fn random_resnet(config: &ResNetConfig, fold_bn: bool) -> candle_core::Result<ResNet> {
    let device = Device::Cpu;
    let mut tensors = HashMap::new();
    for spec in tensor_specs(config)? {
        let fan_in: usize = spec.shape.iter().skip(1).product::<usize>().max(1);
        let tensor = if spec.name.ends_with("running_var") {
            Tensor::rand(0.5f32, 1.5, spec.shape.as_slice(), &device)?
        } else {
            (Tensor::randn(0f32, 1.0, spec.shape.as_slice(), &device)? * (2.0 / fan_in as f64).sqrt())?
        };
        tensors.insert(spec.name, tensor);
    }
    ResNet::new(config, VarBuilder::from_tensors(tensors, DType::F32, &device), BuildOptions { fold_bn })
}
