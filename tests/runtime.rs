//! The runtime (device, dtype, backend) end to end on the CPU: bf16 evaluates through candle's
//! ops and is stored apart from f32 (its top-1 agreement with f32 counted, not asserted equal);
//! `--device cuda:N` without the feature and bad values are clear errors; the prefetch queue's
//! depth changes no stored byte.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{fixture, IMAGES};
use resnet_audit::device::{DeviceSpec, Precision, Runtime};
use resnet_audit::eval::{self, EvalOptions, EvalReport, RunMode};
use resnet_audit::experiment::LoadedExperiment;
use resnet_audit::model::Backend;

/// The fixture images (in three of 20 classes) under the narrow fixture ResNet-50, center crop and 10 crops.
fn experiment(dir: &Path) -> PathBuf {
    // The fixture model has 20 outputs: 20 classes, the images in the first three.
    let classes: Vec<String> = (0..20).map(|c| format!("class{c:02}")).collect();
    std::fs::write(dir.join("classes.txt"), classes.join("\n")).unwrap();
    for (i, name) in IMAGES.iter().enumerate() {
        let folder = dir.join("images").join(&classes[i % 3]);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::copy(fixture(&format!("images/{name}")), folder.join(name)).unwrap();
    }
    let yaml = format!(
        "description: runtime test\n\
         dataset: {{kind: image-folder, root: images, classes: classes.txt}}\n\
         models:\n  - {{id: narrow, weights: {}, input: torchvision}}\n\
         protocols:\n  \
           - {{id: center, kind: center-crop, resize: {{shorter-side: 72}}, crop: 64}}\n  \
           - {{id: ten, kind: ten-crop, resize: {{shorter-side: 72}}, crop: 64}}\n\
         run: {{batch_size: 4, chunk_size: 2}}\n",
        fixture("parity/protocol_r50_w8.safetensors").display()
    );
    let path = dir.join("experiment.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn eval_with(experiment: &Path, store: &Path, runtime: Runtime) -> EvalReport {
    let loaded = LoadedExperiment::read(experiment).unwrap();
    let options = EvalOptions {
        models: Vec::new(),
        protocols: Vec::new(),
        limit: None,
        runtime,
        store_dir: store.to_path_buf(),
        sweeps: false,
        mode: RunMode::Complete,
    };
    eval::run(&loaded, &options).unwrap()
}

/// Every file under `dir` (relative path → bytes).
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.insert(path.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&path).unwrap());
            }
        }
    }
    found
}

/// The stored key descriptions (`<model>/<protocol>-<hash>.json`).
fn descriptions(store: &Path) -> Vec<serde_json::Value> {
    files(store)
        .into_iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "json"))
        .map(|(_, bytes)| serde_json::from_slice(&bytes).unwrap())
        .collect()
}

#[test]
fn bf16_runs_on_candle_is_stored_apart_and_mostly_agrees_with_f32() {
    let dir = tempfile::tempdir().unwrap();
    let experiment = experiment(dir.path());
    let store = dir.path().join("store");
    let f32_report = eval_with(&experiment, &store, Runtime::default());
    assert_eq!(descriptions(&store).len(), 2);
    let bf16 = Runtime { dtype: Precision::Bf16, ..Runtime::default() };
    let bf16_report = eval_with(&experiment, &store, bf16);
    // One store, four results: bf16 never reads an f32 result (or the reverse).
    let described = descriptions(&store);
    assert_eq!(described.len(), 4, "f32 and bf16 share a key");
    let bf16_keys: Vec<_> = described.iter().filter(|d| d["dtype"] == "bf16").collect();
    assert_eq!(bf16_keys.len(), 2);
    for d in &bf16_keys {
        // The fast path is f32-only: the fallback to candle's ops is in the key.
        assert_eq!(d["backend"], "candle", "{d}");
    }
    for d in described.iter().filter(|d| d.get("dtype").is_none()) {
        assert_eq!(d["backend"], "fast", "{d}");
    }
    assert!(bf16_report.notes.iter().any(|n| n.contains("fast CPU path computes f32")), "{:?}", bf16_report.notes);
    let (mut same, mut total, mut max_diff) = (0, 0, 0f32);
    for (a, b) in f32_report.rows.iter().zip(&bf16_report.rows) {
        assert_eq!((&a.model, &a.protocol), (&b.model, &b.protocol));
        for (x, y) in a.results.iter().zip(b.results.iter()) {
            let (x, y) = (x.outcome.as_ref().unwrap(), y.outcome.as_ref().unwrap());
            assert!(y.probs.iter().all(|p| p.is_finite()), "bf16 probabilities must be finite");
            total += 1;
            same += usize::from(x.top5[0].0 == y.top5[0].0);
            max_diff = x.probs.iter().zip(&y.probs).map(|(p, q)| (p - q).abs()).fold(max_diff, f32::max);
        }
    }
    println!("bf16 vs f32: top-1 agrees on {same} of {total} (image, protocol) results; max |Δp| = {max_diff:.4}");
    assert_eq!(total, 2 * IMAGES.len());
    // bf16 keeps 8 bits of mantissa: probabilities move, they are not another model's.
    assert!(max_diff < 0.1, "bf16 probabilities differ from f32 by {max_diff}");
}

#[test]
fn prefetch_depth_changes_no_stored_byte() {
    let dir = tempfile::tempdir().unwrap();
    let experiment = experiment(dir.path());
    let stores: Vec<PathBuf> = [1, 4]
        .into_iter()
        .map(|depth| {
            let store = dir.path().join(format!("store-{depth}"));
            eval_with(&experiment, &store, Runtime { prefetch: Some(depth), ..Runtime::default() });
            store
        })
        .collect();
    // The depth reaches the engine: 0 is refused there (the CLI refuses it earlier).
    let loaded = LoadedExperiment::read(&experiment).unwrap();
    let zero = EvalOptions {
        models: Vec::new(),
        protocols: Vec::new(),
        limit: None,
        runtime: Runtime { prefetch: Some(0), ..Runtime::default() },
        store_dir: dir.path().join("store-0"),
        sweeps: false,
        mode: RunMode::Complete,
    };
    let error = eval::run(&loaded, &zero).unwrap_err().to_string();
    assert!(error.contains("prefetch must be at least 1"), "{error}");
    let (one, four) = (files(&stores[0]), files(&stores[1]));
    assert_eq!(one.keys().collect::<Vec<_>>(), four.keys().collect::<Vec<_>>());
    assert!(one.keys().any(|p| p.extension().is_some_and(|e| e == "parquet")));
    for (path, bytes) in &one {
        assert!(bytes == &four[path], "{} differs between prefetch depth 1 and 4", path.display());
    }
}

#[test]
fn the_default_prefetch_depth_follows_the_views() {
    use resnet_audit::engine::Settings;
    let spec = |yaml: &str| -> resnet_audit::protocol::ProtocolSpec { serde_yaml::from_str(yaml).unwrap() };
    let center = spec("{kind: center-crop, resize: {shorter-side: 256}, crop: 224}");
    let ten = spec("{kind: ten-crop, resize: {shorter-side: 256}, crop: 224}");
    let settings = Settings::default();
    // 64 images x 1 view of 224x224 f32 = 38.5 MB a chunk: the cap; x 10 views: 2 chunks in 1 GiB.
    assert_eq!(settings.prefetch_depth(&center), resnet_audit::engine::MAX_DEFAULT_PREFETCH);
    assert_eq!(settings.prefetch_depth(&ten), 2);
    assert_eq!(Settings { prefetch: Some(3), ..settings }.prefetch_depth(&ten), 3);
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_resnet-audit")).args(args).output().unwrap()
}

#[test]
fn bf16_through_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let experiment = experiment(dir.path());
    let store = dir.path().join("store");
    let args = ["eval", experiment.to_str().unwrap(), "--store", store.to_str().unwrap(), "--dtype", "bf16", "-q"];
    let output = cli(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("narrow/ten"));
    assert!(descriptions(&store).iter().all(|d| d["dtype"] == "bf16"));
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let experiment = experiment(dir.path());
    let store = dir.path().join("store");
    let output = cli(&["eval", experiment.to_str().unwrap(), "--store", store.to_str().unwrap(), "--device", "cuda:0"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--device cuda:0 needs a build with `--features cuda`"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(DeviceSpec::cuda(0).open().is_err());
}

#[test]
fn bad_runtime_values_are_usage_errors() {
    for (flag, value, says) in [
        ("--dtype", "f64", "unknown dtype `f64`"),
        ("--device", "gpu", "unknown device `gpu`"),
        ("--device", "cuda:x", "unknown device `cuda:x`"),
        ("--backend", "turbo", "invalid value 'turbo'"),
        ("--prefetch", "0", "must be at least 1"),
    ] {
        let output = cli(&["eval", "x.yaml", flag, value]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(says), "{flag} {value}: {stderr}");
    }
    // TF32 is a GPU f32 setting: asking for it elsewhere is refused, not ignored.
    let output = cli(&["plan", "experiments/demo.yaml", "--tf32"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--tf32 applies to f32 on a CUDA device only"));
    assert_eq!(Runtime::cpu(Backend::Candle).backend, Backend::Candle);
}

#[test]
fn the_report_and_the_slurm_scripts_carry_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let experiment = experiment(dir.path());
    let runtime = Runtime { dtype: Precision::F16, prefetch: Some(2), ..Runtime::default() };
    let mut options =
        common::audit_options(vec![experiment.clone()], &dir.path().join("report"), &dir.path().join("store"), "t");
    options.runtime = runtime;
    let report = resnet_audit::audit::run(&options).unwrap();
    assert_eq!(report.runtime, "cpu, f16, backend fast");
    let markdown = std::fs::read_to_string(dir.path().join("report/report.md")).unwrap();
    assert!(markdown.contains("Runtime: cpu, f16, backend fast."), "{markdown}");
    let slurm = resnet_audit::slurm::SlurmOptions {
        experiment,
        shards: 2,
        out: dir.path().join("report"),
        store: dir.path().join("store"),
        scripts: dir.path().join("slurm"),
        limit: None,
        runtime: Runtime { device: DeviceSpec::cuda(0), ..runtime },
        partition: None,
        time: None,
        cpus_per_task: None,
        gpus_per_task: Some(1),
        account: None,
        extra: Vec::new(),
        program: "/bin/resnet-audit".into(),
    };
    let scripts = slurm.write().unwrap();
    let text = std::fs::read_to_string(&scripts.shards).unwrap();
    assert!(text.contains("--device cuda:0 --backend fast --dtype f16 --prefetch 2"), "{text}");
}
