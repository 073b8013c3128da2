//! Parameter and multiply-add counts, from the same block plan the model is built from.

use super::config::{ResNetConfig, StemPool, Topology};
use super::layers::ConvSpec;
use super::resnet::{block_plans, stem_spec, ShortcutPlan};

/// Trainable parameters (conv and fc weights, fc bias, BN γ and β; not BN running
/// statistics), as `sum(p.numel() for p in model.parameters())` counts them in PyTorch.
pub fn parameter_count(config: &ResNetConfig) -> u64 {
    let conv = |s: &ConvSpec| (s.out_channels * s.in_channels * s.kernel * s.kernel + 2 * s.out_channels) as u64;
    let mut total = conv(&stem_spec(config));
    for plan in block_plans(config).iter().flatten() {
        total += plan.convs.iter().map(conv).sum::<u64>();
        if let ShortcutPlan::Projection(spec) = plan.shortcut {
            total += conv(&spec);
        }
    }
    total + ((config.feature_channels() + 1) * config.num_classes) as u64
}

fn conv_output(n: usize, spec: &ConvSpec) -> usize {
    (n + 2 * spec.padding).saturating_sub(spec.kernel) / spec.stride + 1
}

/// Multiply-adds of one forward pass through the standard head at `height`×`width`:
/// convolutions and the fc (batch norm, pooling, ReLU and additions are not counted, the
/// usual convention; ResNet-50 v1.5 at 224 is 4.09 G).
pub fn multiply_adds(config: &ResNetConfig, height: usize, width: usize) -> u64 {
    let mut size = (height, width);
    let mut total = 0u64;
    let mut conv = |spec: &ConvSpec, (h, w): (usize, usize)| {
        let out = (conv_output(h, spec), conv_output(w, spec));
        total += (out.0 * out.1 * spec.out_channels * spec.in_channels * spec.kernel * spec.kernel) as u64;
        out
    };
    size = conv(&stem_spec(config), size);
    if let Topology::Imagenet { stem_pool, .. } = config.topology {
        let pool = |n: usize| match stem_pool {
            StemPool::Torch => (n + 2 - 3) / 2 + 1,
            StemPool::Caffe => n.saturating_sub(3).div_ceil(2) + 1,
        };
        size = (pool(size.0), pool(size.1));
    }
    for plan in block_plans(config).iter().flatten() {
        let input = size;
        for spec in &plan.convs {
            size = conv(spec, size);
        }
        if let ShortcutPlan::Projection(spec) = plan.shortcut {
            conv(&spec, input);
        }
    }
    total + (config.feature_channels() * config.num_classes) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CifarShortcut, StridePlacement};

    #[test]
    fn resnet50_matches_published_counts() {
        let v15 = ResNetConfig::imagenet(50, 1000);
        // torchvision's documented count for resnet50: 25,557,032 parameters.
        assert_eq!(parameter_count(&v15), 25_557_032);
        // torchvision documents 4.09 GFLOPS (multiply-adds) for ResNet-50 at 224.
        let macs = multiply_adds(&v15, 224, 224) as f64 / 1e9;
        assert!((4.08..4.10).contains(&macs), "v1.5: {macs} G");
        // With the stride on the first 1x1 the 3x3 convs of downsampling blocks run at the
        // lower resolution: fewer multiply-adds (the paper quotes 3.8 G for its count).
        let v1 = multiply_adds(&v15.with_stride(StridePlacement::V1), 224, 224) as f64 / 1e9;
        assert!((3.8..3.9).contains(&v1), "v1: {v1} G");
    }

    #[test]
    fn deeper_resnets_match_published_counts() {
        // torchvision: resnet18 11,689,512; resnet34 21,797,672; resnet101 44,549,160;
        // resnet152 60,192,808 parameters; 1.81, 3.66, 7.80, 11.51 GFLOPS.
        for (depth, params, gmacs) in
            [(18, 11_689_512, 1.81), (34, 21_797_672, 3.66), (101, 44_549_160, 7.80), (152, 60_192_808, 11.51)]
        {
            let config = ResNetConfig::imagenet(depth, 1000);
            assert_eq!(parameter_count(&config), params, "ResNet-{depth}");
            let macs = multiply_adds(&config, 224, 224) as f64 / 1e9;
            assert!((macs - gmacs).abs() < 0.01, "ResNet-{depth}: {macs} G vs {gmacs} G");
        }
    }

    #[test]
    fn cifar_resnets_match_the_paper_parameter_counts() {
        // Paper Table 6: ResNet-20 0.27M, 56 0.85M, 110 1.7M, 1202 19.4M (option A).
        for (depth, millions) in [(20, 0.27), (56, 0.85), (110, 1.7), (1202, 19.4)] {
            let p = parameter_count(&ResNetConfig::cifar(depth, CifarShortcut::A, 10)) as f64 / 1e6;
            assert!((p - millions).abs() / millions < 0.03, "ResNet-{depth}: {p}M vs {millions}M");
        }
    }
}
