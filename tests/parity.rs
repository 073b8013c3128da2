//! Our ResNets against PyTorch/torchvision: the committed outputs in fixtures/parity were
//! computed by fixtures/generate.py with the same weights and inputs. Tolerance: max |Δ| at
//! most 1e-4 of the largest reference value, for every model and head, on each way of computing
//! them: the fast NHWC path (BN folded, the default), candle's plain path with BN folded, and
//! candle's with BN separate (as PyTorch computes it).

mod common;

use candle_core::Tensor;
use common::{assert_close, expected, input, load, load_with, relative_max_error, tensor};
use resnet_audit::model::{
    Backend, BuildOptions, CifarShortcut, DenseWindow, ResNet, ResNetConfig, StemPool, StridePlacement,
};

const TOLERANCE: f32 = 1e-4;

/// Every way a model is computed, with a label: the fast path, and candle's with BN folded or not.
const BUILDS: [(BuildOptions, &str); 3] = [
    (BuildOptions { fold_bn: true, backend: Backend::Fast }, "fast"),
    (BuildOptions { fold_bn: true, backend: Backend::Candle }, "candle folded"),
    (BuildOptions { fold_bn: false, backend: Backend::Candle }, "candle unfolded"),
];

/// Loads a fixture model for `build`, checking that it takes the path the label says.
fn build(weights: &str, config: &ResNetConfig, build: BuildOptions) -> ResNet {
    let model = load_with(weights, config, build);
    assert_eq!(model.uses_fast_path(), build.backend == Backend::Fast, "{weights} {build:?}");
    model
}

fn resnet18() -> ResNetConfig {
    ResNetConfig::imagenet(18, 17).with_base_width(8)
}

fn resnet50(stride: StridePlacement) -> ResNetConfig {
    ResNetConfig::imagenet(50, 100).with_base_width(8).with_stride(stride)
}

/// Logits at 224 and the dense head (pool 7 at 224 and on the 256x320 input, global on it).
fn check_imagenet_heads(model: &ResNet, expected_file: &str, prefix: &str, label: &str) {
    let expected = expected(expected_file);
    let (x224, x_rect) = (input("x224"), input("x_rect"));
    let cases: [(&str, Tensor); 4] = [
        ("logits_x224", model.forward(&x224).unwrap()),
        ("dense_pool7_x224", model.forward_dense(&x224, DenseWindow::Pool(7)).unwrap()),
        ("dense_pool7_x_rect", model.forward_dense(&x_rect, DenseWindow::Pool(7)).unwrap()),
        ("dense_global_x_rect", model.forward_dense(&x_rect, DenseWindow::Global).unwrap()),
    ];
    for (name, actual) in cases {
        assert_close(&actual, &tensor(&expected, &format!("{prefix}{name}")), TOLERANCE, &format!("{label} {name}"));
    }
}

#[test]
fn resnet18_matches_torchvision() {
    for (options, label) in BUILDS {
        check_imagenet_heads(
            &build("resnet18_w8", &resnet18(), options),
            "resnet18_w8",
            "",
            &format!("resnet18 {label}"),
        );
    }
}

#[test]
fn resnet50_v1_5_matches_torchvision() {
    let config = resnet50(StridePlacement::V1_5);
    for (options, label) in BUILDS {
        check_imagenet_heads(
            &build("resnet50_w8", &config, options),
            "resnet50_w8",
            "v1.5/",
            &format!("resnet50 v1.5 {label}"),
        );
    }
}

#[test]
fn resnet50_v1_matches_pytorch_with_stride_on_the_first_1x1() {
    let config = resnet50(StridePlacement::V1);
    for (options, label) in BUILDS {
        check_imagenet_heads(
            &build("resnet50_w8", &config, options),
            "resnet50_w8",
            "v1/",
            &format!("resnet50 v1 {label}"),
        );
    }
}

#[test]
fn resnet50_v1_with_caffe_stem_pool_matches_pytorch_ceil_mode() {
    let config = resnet50(StridePlacement::V1).with_stem_pool(StemPool::Caffe);
    let expected = expected("resnet50_w8");
    for (options, label) in BUILDS {
        let model = build("resnet50_w8", &config, options);
        assert_close(
            &model.forward(&input("x224")).unwrap(),
            &tensor(&expected, "v1_caffe_pool/logits_x224"),
            TOLERANCE,
            &format!("caffe pool logits {label}"),
        );
        assert_close(
            &model.forward_dense(&input("x_rect"), DenseWindow::Pool(7)).unwrap(),
            &tensor(&expected, "v1_caffe_pool/dense_pool7_x_rect"),
            TOLERANCE,
            &format!("caffe pool dense {label}"),
        );
    }
}

#[test]
fn cifar_resnet20_option_a_matches_pytorch() {
    let config = ResNetConfig::cifar(20, CifarShortcut::A, 10);
    let expected = tensor(&expected("cifar_resnet20_a"), "logits_x32");
    for (options, label) in BUILDS {
        let logits = build("cifar_resnet20_a", &config, options).forward(&input("x32")).unwrap();
        assert_close(&logits, &expected, TOLERANCE, &format!("cifar resnet20 {label}"));
    }
}

#[test]
fn half_precision_weights_load_and_compute_in_f32() {
    for tag in ["f16", "bf16"] {
        let name = format!("resnet18_w8_{tag}");
        for (options, label) in BUILDS {
            let logits = build(&name, &resnet18(), options).forward(&input("x224")).unwrap();
            assert_eq!(logits.dtype(), candle_core::DType::F32);
            assert_close(&logits, &tensor(&expected(&name), "logits_x224"), TOLERANCE, &format!("{name} {label}"));
        }
    }
}

#[test]
fn folding_batch_norm_moves_outputs_by_at_most_1e_5() {
    let x = input("x224");
    let cases = [
        ("resnet18_w8", resnet18()),
        ("resnet50_w8", resnet50(StridePlacement::V1_5)),
        ("resnet50_w8", resnet50(StridePlacement::V1)),
    ];
    for (weights, config) in cases {
        let (folded_model, plain_model) = (build(weights, &config, BUILDS[1].0), build(weights, &config, BUILDS[2].0));
        let folded = folded_model.forward_dense(&input("x_rect"), DenseWindow::Pool(7)).unwrap();
        let plain = plain_model.forward_dense(&input("x_rect"), DenseWindow::Pool(7)).unwrap();
        assert_close(&folded, &plain, 1e-5, &format!("{} fold vs no fold (dense)", config.name()));
        let folded = folded_model.forward(&x).unwrap();
        let plain = plain_model.forward(&x).unwrap();
        assert_close(&folded, &plain, 1e-5, &format!("{} fold vs no fold", config.name()));
    }
}

/// The fast path computes what candle's plain path (BN folded) computes, to 1e-5 relative, for
/// every architecture and head of the fixtures.
#[test]
fn fast_path_agrees_with_the_plain_candle_path_to_1e_5() {
    let (x224, x_rect, x32) = (input("x224"), input("x_rect"), input("x32"));
    let imagenet = [
        ("resnet18_w8", resnet18()),
        ("resnet18_w8_f16", resnet18()),
        ("resnet50_w8", resnet50(StridePlacement::V1_5)),
        ("resnet50_w8", resnet50(StridePlacement::V1)),
        ("resnet50_w8", resnet50(StridePlacement::V1).with_stem_pool(StemPool::Caffe)),
    ];
    for (weights, config) in imagenet {
        let (fast, plain) = (build(weights, &config, BUILDS[0].0), build(weights, &config, BUILDS[1].0));
        let what = format!("{weights} {}", config.name());
        assert_close(&fast.forward(&x224).unwrap(), &plain.forward(&x224).unwrap(), 1e-5, &format!("{what} logits"));
        assert_close(
            &fast.features(&x_rect).unwrap(),
            &plain.features(&x_rect).unwrap(),
            1e-5,
            &format!("{what} features"),
        );
        for window in [DenseWindow::Pool(7), DenseWindow::Global] {
            let (f, p) = (fast.forward_dense(&x_rect, window).unwrap(), plain.forward_dense(&x_rect, window).unwrap());
            assert_close(&f, &p, 1e-5, &format!("{what} dense {window:?}"));
        }
    }
    let config = ResNetConfig::cifar(20, CifarShortcut::A, 10);
    let (fast, plain) =
        (build("cifar_resnet20_a", &config, BUILDS[0].0), build("cifar_resnet20_a", &config, BUILDS[1].0));
    assert_close(&fast.forward(&x32).unwrap(), &plain.forward(&x32).unwrap(), 1e-5, "cifar resnet20 A logits");
}

#[test]
fn dense_head_with_7x7_pool_equals_standard_head_at_224() {
    for fold in [true, false] {
        let model = load("resnet50_w8", &resnet50(StridePlacement::V1_5), fold);
        let x = input("x224");
        let logits = model.forward(&x).unwrap();
        let dense = model.forward_dense(&x, DenseWindow::Pool(7)).unwrap();
        assert_eq!(dense.dims(), &[2, 100, 1, 1]);
        let dense = dense.reshape((2, 100)).unwrap();
        let same = logits.eq(&dense).unwrap().flatten_all().unwrap().min(0).unwrap().to_scalar::<u8>().unwrap();
        assert_eq!(same, 1, "the two heads must agree exactly at 224 with a 7x7 pool");
    }
}

/// The tolerance must be able to fail: the nearest wrong model (the stride moved to the other
/// conv) is far outside it.
#[test]
fn parity_tolerance_separates_v1_from_v1_5() {
    let v1 = load("resnet50_w8", &resnet50(StridePlacement::V1), true).forward(&input("x224")).unwrap();
    let expected_v15 = tensor(&expected("resnet50_w8"), "v1.5/logits_x224");
    let err = relative_max_error(&v1, &expected_v15);
    println!("v1 model vs v1.5 reference: {err:.3e}");
    assert!(err > 100.0 * TOLERANCE, "v1 and v1.5 outputs should differ clearly, got {err:.3e}");
}

#[test]
fn dense_head_rejects_a_window_larger_than_the_feature_map() {
    let model = load("resnet18_w8", &resnet18(), true);
    let x = Tensor::zeros((1, 3, 160, 160), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
    let err = model.forward_dense(&x, DenseWindow::Pool(7)).unwrap_err().to_string();
    assert!(err.contains("7x7 pool does not fit the 5x5 feature map of a 160x160 input"), "{err}");
}
