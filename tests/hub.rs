//! `hf://` weights resolved through a Hugging Face cache laid out as huggingface_hub lays it
//! out, without network (HF_HUB_OFFLINE semantics).

mod common;

use std::path::{Path, PathBuf};

use common::{assert_close, expected, fixture, input, tensor};
use resnet_audit::model::ResNetConfig;
use resnet_audit::weights::{load_resnet, HubSettings, LoadOptions, WeightsError, WeightsFile, WeightsSource};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// models--org--tiny-resnet/{refs/main, refs/v1.0, snapshots/<commit>/weights/model.safetensors}
fn make_cache() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("models--org--tiny-resnet");
    let snapshot = repo.join("snapshots").join(COMMIT).join("weights");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), COMMIT).unwrap();
    std::fs::write(repo.join("refs/v1.0"), COMMIT).unwrap();
    let file = snapshot.join("model.safetensors");
    std::fs::copy(fixture("parity/resnet18_w8.safetensors"), &file).unwrap();
    (dir, file)
}

fn offline(cache: &Path) -> HubSettings {
    HubSettings { cache_dir: cache.to_path_buf(), offline: true }
}

#[test]
fn hub_weights_resolve_from_the_cache_and_match_pytorch() {
    let (cache, file) = make_cache();
    let source = WeightsSource::parse("hf://org/tiny-resnet/weights/model.safetensors").unwrap();
    let path = source.resolve(&offline(cache.path())).unwrap();
    assert_eq!(path, file);
    let config = ResNetConfig::imagenet(18, 17).with_base_width(8);
    let model = load_resnet(&WeightsFile::read(&path).unwrap(), &config, &LoadOptions::default()).unwrap();
    let logits = model.forward(&input("x224")).unwrap();
    assert_close(&logits, &tensor(&expected("resnet18_w8"), "logits_x224"), 1e-4, "hub-loaded resnet18");
}

#[test]
fn revisions_resolve_through_refs_or_commit_hashes() {
    let (cache, file) = make_cache();
    for spec in [
        "hf://org/tiny-resnet@v1.0/weights/model.safetensors".to_string(),
        format!("hf://org/tiny-resnet@{COMMIT}/weights/model.safetensors"),
    ] {
        let path = WeightsSource::parse(&spec).unwrap().resolve(&offline(cache.path())).unwrap();
        assert_eq!(path, file, "{spec}");
    }
}

#[test]
fn offline_and_not_cached_is_a_clear_error() {
    let (cache, _) = make_cache();
    for spec in [
        "hf://org/tiny-resnet@v2.0/weights/model.safetensors",
        "hf://org/tiny-resnet/weights/other.safetensors",
        "hf://org/absent/model.safetensors",
    ] {
        let err = WeightsSource::parse(spec).unwrap().resolve(&offline(cache.path())).unwrap_err();
        assert!(matches!(err, WeightsError::NotCached { .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains(spec) && message.contains(&cache.path().display().to_string()), "{message}");
        assert!(message.contains("HF_HUB_OFFLINE"), "{message}");
    }
}
