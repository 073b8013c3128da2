//! Our ResNets against PyTorch/torchvision: the committed outputs in fixtures/parity were
//! computed by fixtures/generate.py with the same weights and inputs. Tolerance: max |Δ| at
//! most 1e-4 of the largest reference value, for every model, head, and with BN folded or not.

mod common;

use candle_core::Tensor;
use common::{assert_close, expected, input, load, relative_max_error, tensor};
use resnet_audit::model::{CifarShortcut, DenseWindow, ResNet, ResNetConfig, StemPool, StridePlacement};

const TOLERANCE: f32 = 1e-4;

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
    for fold in [true, false] {
        check_imagenet_heads(
            &load("resnet18_w8", &resnet18(), fold),
            "resnet18_w8",
            "",
            &format!("resnet18 fold={fold}"),
        );
    }
}

#[test]
fn resnet50_v1_5_matches_torchvision() {
    let config = resnet50(StridePlacement::V1_5);
    for fold in [true, false] {
        check_imagenet_heads(
            &load("resnet50_w8", &config, fold),
            "resnet50_w8",
            "v1.5/",
            &format!("resnet50 v1.5 fold={fold}"),
        );
    }
}

#[test]
fn resnet50_v1_matches_pytorch_with_stride_on_the_first_1x1() {
    let config = resnet50(StridePlacement::V1);
    for fold in [true, false] {
        check_imagenet_heads(
            &load("resnet50_w8", &config, fold),
            "resnet50_w8",
            "v1/",
            &format!("resnet50 v1 fold={fold}"),
        );
    }
}

#[test]
fn resnet50_v1_with_caffe_stem_pool_matches_pytorch_ceil_mode() {
    let model = load("resnet50_w8", &resnet50(StridePlacement::V1).with_stem_pool(StemPool::Caffe), true);
    let expected = expected("resnet50_w8");
    assert_close(
        &model.forward(&input("x224")).unwrap(),
        &tensor(&expected, "v1_caffe_pool/logits_x224"),
        TOLERANCE,
        "caffe pool logits",
    );
    assert_close(
        &model.forward_dense(&input("x_rect"), DenseWindow::Pool(7)).unwrap(),
        &tensor(&expected, "v1_caffe_pool/dense_pool7_x_rect"),
        TOLERANCE,
        "caffe pool dense",
    );
}

#[test]
fn cifar_resnet20_option_a_matches_pytorch() {
    let config = ResNetConfig::cifar(20, CifarShortcut::A, 10);
    let expected = tensor(&expected("cifar_resnet20_a"), "logits_x32");
    for fold in [true, false] {
        let logits = load("cifar_resnet20_a", &config, fold).forward(&input("x32")).unwrap();
        assert_close(&logits, &expected, TOLERANCE, &format!("cifar resnet20 fold={fold}"));
    }
}

#[test]
fn half_precision_weights_load_and_compute_in_f32() {
    for tag in ["f16", "bf16"] {
        let name = format!("resnet18_w8_{tag}");
        let logits = load(&name, &resnet18(), true).forward(&input("x224")).unwrap();
        assert_eq!(logits.dtype(), candle_core::DType::F32);
        assert_close(&logits, &tensor(&expected(&name), "logits_x224"), TOLERANCE, &name);
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
        let folded = load(weights, &config, true).forward_dense(&input("x_rect"), DenseWindow::Pool(7)).unwrap();
        let plain = load(weights, &config, false).forward_dense(&input("x_rect"), DenseWindow::Pool(7)).unwrap();
        assert_close(&folded, &plain, 1e-5, &format!("{} fold vs no fold (dense)", config.name()));
        let folded = load(weights, &config, true).forward(&x).unwrap();
        let plain = load(weights, &config, false).forward(&x).unwrap();
        assert_close(&folded, &plain, 1e-5, &format!("{} fold vs no fold", config.name()));
    }
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
