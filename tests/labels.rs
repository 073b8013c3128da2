//! Label sets: ImageNet-ReaL and class subsets against numpy references
//! (`fixtures/labels/generate.py`), ImageNet-V2 folders, the experiment's `labels:` and its
//! errors, and re-scoring a store under a new label set with no model built.

mod common;

use std::path::{Path, PathBuf};

use common::{fixture, IMAGES};
use resnet_audit::dataset::DatasetSpec;
use resnet_audit::eval::{self, EvalOptions, RunMode};
use resnet_audit::experiment::LoadedExperiment;
use resnet_audit::scoring::{LabelSet, LabelSetSpec};
use resnet_audit::store::{ImageResult, Scored};
use serde_json::Value;

fn reference(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(&format!("labels/{name}.json"))).expect("committed fixture");
    serde_json::from_str(&text).unwrap()
}

/// A stored result as the engine writes it: probabilities per class and the five best (best first).
fn stored(image: &Value) -> ImageResult {
    let probs: Vec<f32> = image["probs"].as_array().unwrap().iter().map(|p| p.as_f64().unwrap() as f32).collect();
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    ImageResult {
        image: image["id"].as_str().unwrap().to_string(),
        label: image["label"].as_u64().unwrap() as u32,
        outcome: Ok(Scored {
            top5: order.iter().take(5).map(|&c| (c as i64, probs[c])).collect(),
            probs,
            unmapped_prob: 0.0,
        }),
    }
}

fn flags(value: &Value) -> Vec<Option<bool>> {
    value.as_array().unwrap().iter().map(Value::as_bool).collect()
}

/// ReaL as the paper defines it (numpy on the same arrays): per image, and the error counts with
/// the left-out images excluded. Exact: correctness is a comparison of class indices.
#[test]
fn real_matches_the_numpy_reference() {
    let reference = reference("real");
    let images = reference["images"].as_array().unwrap();
    let results: Vec<ImageResult> = images.iter().map(stored).collect();
    let lists = images
        .iter()
        .map(|i| {
            let list = i["real"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap() as u32).collect();
            (i["id"].as_str().unwrap().to_string(), list)
        })
        .collect();
    let real = LabelSet::Real { lists };
    let judged: Vec<_> = results.iter().map(|r| real.judge(r)).collect();
    assert_eq!(judged.iter().map(|c| c.map(|c| c.top1)).collect::<Vec<_>>(), flags(&reference["top1_correct"]));
    assert_eq!(judged.iter().map(|c| c.map(|c| c.top5)).collect::<Vec<_>>(), flags(&reference["top5_correct"]));
    let rates = real.error_rates(&results);
    assert_eq!(rates.top1.trials, reference["scored"].as_u64().unwrap());
    assert_eq!(rates.top1.successes, reference["top1_errors"].as_u64().unwrap());
    assert_eq!(rates.top5.successes, reference["top5_errors"].as_u64().unwrap());
    assert_eq!(real.excluded(&results) as u64, reference["excluded"].as_u64().unwrap());
    assert!(reference["excluded"].as_u64().unwrap() > 0, "the fixture leaves images out");
}

/// timm's `output[:, valid_labels]` then argmax / top-5 (numpy on logits) equals the harness
/// re-ranking the stored probabilities over the subset; the unrestricted rule differs.
#[test]
fn a_subset_matches_timms_valid_labels() {
    let reference = reference("subset");
    let results: Vec<ImageResult> = reference["images"].as_array().unwrap().iter().map(stored).collect();
    let classes: Vec<u32> =
        reference["valid_labels"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap() as u32).collect();
    let subset = LabelSet::Subset { classes };
    let judged: Vec<_> = results.iter().map(|r| subset.judge(r)).collect();
    assert_eq!(judged.iter().map(|c| c.map(|c| c.top1)).collect::<Vec<_>>(), flags(&reference["top1_correct"]));
    assert_eq!(judged.iter().map(|c| c.map(|c| c.top5)).collect::<Vec<_>>(), flags(&reference["top5_correct"]));
    let single: Vec<_> = results.iter().map(|r| LabelSet::Single.judge(r).map(|c| c.top1)).collect();
    assert_eq!(single, flags(&reference["unrestricted_top1_correct"]));
    assert_ne!(single, flags(&reference["top1_correct"]), "the fixture must tell the two rules apart");
}

/// `real` on an ImageNet validation folder (three images, `subset: true`): each image gets its
/// line of the shipped real.json by its number; on any other dataset it is an error.
#[test]
fn real_labels_follow_the_validation_image_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("val");
    std::fs::create_dir_all(&root).unwrap();
    for (number, image) in [(1, IMAGES[0]), (2, IMAGES[1]), (8, IMAGES[2])] {
        std::fs::copy(fixture(&format!("images/{image}")), root.join(format!("ILSVRC2012_val_{number:08}.JPEG")))
            .unwrap();
    }
    let spec: DatasetSpec = serde_yaml::from_str("{kind: imagenet-val, root: val, subset: true}").unwrap();
    let dataset = spec.load(dir.path()).unwrap();
    let LabelSet::Real { lists } = LabelSetSpec::Real.load(&spec, &dataset, dir.path()).unwrap() else {
        panic!("real is a ReaL label set")
    };
    let lists: Vec<(&str, &[u32])> = lists.iter().map(|(id, list)| (id.as_str(), list.as_slice())).collect();
    assert_eq!(
        lists,
        [
            ("ILSVRC2012_val_00000001.JPEG", &[][..]),
            ("ILSVRC2012_val_00000002.JPEG", &[970, 795][..]),
            ("ILSVRC2012_val_00000008.JPEG", &[700][..])
        ]
    );
    let folder: DatasetSpec = serde_yaml::from_str("{kind: image-folder, root: val2}").unwrap();
    std::fs::create_dir_all(dir.path().join("val2/a")).unwrap();
    std::fs::copy(fixture(&format!("images/{}", IMAGES[0])), dir.path().join("val2/a/x.JPEG")).unwrap();
    let dataset = folder.load(dir.path()).unwrap();
    let error = LabelSetSpec::Real.load(&folder, &dataset, dir.path()).unwrap_err().to_string();
    assert!(error.contains("ImageNet 2012 validation images only"), "{error}");
}

/// A tiny ImageNet-V2 tree: folders named by class index, classes named by synset.
#[test]
fn imagenet_v2_folders_are_class_indices() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("matched-frequency");
    for (class, image) in [(0, IMAGES[0]), (0, IMAGES[1]), (5, IMAGES[2]), (999, IMAGES[3])] {
        let folder = root.join(class.to_string());
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::copy(fixture(&format!("images/{image}")), folder.join(image)).unwrap();
    }
    let spec: DatasetSpec = serde_yaml::from_str("{kind: imagenet-v2, root: matched-frequency, subset: true}").unwrap();
    let dataset = spec.load(dir.path()).unwrap();
    assert_eq!(dataset.classes.len(), 1000);
    assert_eq!((dataset.classes[0].as_str(), dataset.classes[999].as_str()), ("n01440764", "n15075141"));
    let labels: Vec<(String, usize)> = dataset.samples.iter().map(|s| (s.id.clone(), s.label)).collect();
    assert_eq!(
        labels,
        [
            (format!("0/{}", IMAGES[0]), 0),
            (format!("0/{}", IMAGES[1]), 0),
            (format!("5/{}", IMAGES[2]), 5),
            (format!("999/{}", IMAGES[3]), 999)
        ]
    );
    // Without `subset: true`, 997 absent class folders are an error naming the root.
    let whole: DatasetSpec = serde_yaml::from_str("{kind: imagenet-v2, root: matched-frequency}").unwrap();
    let error = whole.load(dir.path()).unwrap_err().to_string();
    assert!(error.contains("997 of the 1000 class folders are missing (first: 1, 2, 3, 4, 6 and 992 more)"), "{error}");
    // A folder that is not a class index is named.
    std::fs::create_dir_all(root.join("n01440764")).unwrap();
    let error = spec.load(dir.path()).unwrap_err().to_string();
    assert!(error.contains("n01440764") && error.contains("is not in the class list"), "{error}");
}

/// The fixture images in class folders of a 20-class list, and an experiment over them with the
/// narrow fixture ResNet-50 (20 outputs).
fn write_setup(dir: &Path, labels: &str, claims: &str) -> PathBuf {
    let classes: Vec<String> = (0..20).map(|c| format!("class{c:02}")).collect();
    std::fs::write(dir.join("classes.txt"), classes.join("\n")).unwrap();
    std::fs::write(dir.join("ten.txt"), classes[..10].join("\n")).unwrap();
    for (i, name) in IMAGES.iter().enumerate() {
        let folder = dir.join("images").join(&classes[i % 3]);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::copy(fixture(&format!("images/{name}")), folder.join(name)).unwrap();
    }
    let yaml = format!(
        "description: label sets\n\
         dataset: {{kind: image-folder, root: images, classes: classes.txt}}\n\
         models:\n  - {{id: narrow, weights: {w}, input: torchvision}}\n\
         protocols:\n  - {{id: center, kind: center-crop, resize: {{shorter-side: 72}}, crop: 64}}\n\
         {labels}{claims}",
        w = fixture("parity/protocol_r50_w8.safetensors").display()
    );
    let path = dir.join("experiment.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn options(store: &Path, mode: RunMode) -> EvalOptions {
    EvalOptions {
        models: Vec::new(),
        protocols: Vec::new(),
        limit: None,
        runtime: resnet_audit::device::Runtime::default(),
        store_dir: store.to_path_buf(),
        sweeps: false,
        mode,
    }
}

/// A store computed under the original labels is re-scored under a class subset it never saw,
/// with no model built: the hook counts every model `load_model` builds on this thread, so the
/// test fails if the stored-only run built one (and the key, which the re-scoring must find,
/// shows labels are not part of it).
#[test]
fn a_new_label_set_re_scores_the_store_without_building_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let path = write_setup(dir.path(), "", "");
    let before = eval::models_built_on_this_thread();
    let computed = eval::run(&LoadedExperiment::read(&path).unwrap(), &options(&store, RunMode::Complete)).unwrap();
    assert_eq!(eval::models_built_on_this_thread(), before + 1, "computing builds the model (the hook counts)");
    assert_eq!(computed.rows.len(), 1);

    let path = write_setup(dir.path(), "labels: [original, {subset: ten.txt}]\n", "");
    let built = eval::models_built_on_this_thread();
    let rescored = eval::run(&LoadedExperiment::read(&path).unwrap(), &options(&store, RunMode::StoredOnly)).unwrap();
    assert_eq!(eval::models_built_on_this_thread(), built, "re-scoring from the store built a model");
    let labels: Vec<&str> = rescored.rows.iter().map(|r| r.labels.as_str()).collect();
    assert_eq!(labels, ["original", "subset:ten.txt"]);
    // The original rows equal the computed ones; the subset row is the same predictions re-ranked.
    assert_eq!(rescored.rows[0].rates, computed.rows[0].rates);
    assert_eq!(rescored.rows[0].results, computed.rows[0].results);
    let subset = LabelSet::Subset { classes: (0..10).collect() };
    assert_eq!(rescored.rows[1].rates, subset.error_rates(&computed.rows[0].results));
    // Nothing stored under another key: stored-only with a changed protocol finds nothing.
    let changed = std::fs::read_to_string(&path).unwrap().replace("shorter-side: 72", "shorter-side: 80");
    std::fs::write(&path, changed).unwrap();
    let missing = eval::run(&LoadedExperiment::read(&path).unwrap(), &options(&store, RunMode::StoredOnly));
    assert!(missing.is_err(), "a different key must not be served from the store");
    assert_eq!(eval::models_built_on_this_thread(), built);
}

/// The audit writes one row per label set (the `labels` column), judges a claim under the label
/// set it names, and shows the label sets side by side in the report.
#[test]
fn the_audit_tabulates_every_label_set_and_judges_claims_under_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let claims = "claims:\n  - {model: narrow, protocol: center, labels: 'subset:ten.txt', top1: 50, tolerance: 50, \
                  kind: baseline, source: this test}\n";
    let path = write_setup(dir.path(), "labels: [original, {subset: ten.txt}]\n", claims);
    let out = dir.path().join("report");
    let options = common::audit_options(vec![path], &out, &dir.path().join("store"), "labels test");
    let report = resnet_audit::audit::run(&options).unwrap();
    assert_eq!(report.rows.len(), 1, "main rows: the first label set only");
    assert_eq!(report.label_rows.len(), 1);
    let (main, other) = (&report.rows[0], &report.label_rows[0]);
    assert_eq!((main.labels.as_str(), other.labels.as_str()), ("original", "subset:ten.txt"));
    assert!(main.claimed_top1_err.is_none(), "the claim names the subset, not the original labels");
    assert_eq!(other.claimed_top1_err, Some(50.0));
    assert_eq!(other.status.word(), "baseline");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let records = common::csv_records(&csv);
    let column = records[0].iter().position(|h| h == "labels").expect("a labels column");
    let labels: Vec<&str> = records[1..].iter().map(|r| r[column].as_str()).collect();
    assert_eq!(labels, ["original", "subset:ten.txt"]);
    let markdown = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(markdown.contains("## Label sets"), "{markdown}");
    assert!(markdown.contains("| experiment | narrow | (i) center | original |"), "{markdown}");
}

/// Mistakes in `labels:` stop the experiment naming the field and its line.
#[test]
fn label_set_mistakes_are_errors_at_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_setup(dir.path(), "labels: [original, real]\n", "");
    let error = LoadedExperiment::read(&path).unwrap_err().to_string();
    assert!(
        error.contains("line 7 column 1") && error.contains("`real` needs the ImageNet validation images"),
        "{error}"
    );
    let path = write_setup(dir.path(), "labels: [original, original]\n", "");
    let error = LoadedExperiment::read(&path).unwrap_err().to_string();
    assert!(error.contains("line 7 column 1") && error.contains("`original` appears twice"), "{error}");
    let claims = "claims:\n  - {model: narrow, protocol: center, labels: real, top1: 5, tolerance: 1, source: s}\n";
    let path = write_setup(dir.path(), "", claims);
    let error = LoadedExperiment::read(&path).unwrap_err().to_string();
    assert!(error.contains("labels `real` is not one of the experiment's label sets (original)"), "{error}");
    let path = write_setup(dir.path(), "labels: [{subset: missing.txt}]\n", "");
    let loaded = LoadedExperiment::read(&path).unwrap();
    let error = eval::run(&loaded, &options(&dir.path().join("store"), RunMode::Complete)).unwrap_err().to_string();
    assert!(error.contains("missing.txt") && error.contains("labels.subset"), "{error}");
}

/// Between two protocols, the report's flip line counts what another label set calls fixed and
/// how many of those the original labels do not: counted here directly from the stored results.
#[test]
fn the_flips_count_what_another_label_set_alone_fixes() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_setup(dir.path(), "labels: [original, {subset: ten.txt}]\n", "");
    let two_protocols = std::fs::read_to_string(&path).unwrap().replace(
        "crop: 64}\n",
        "crop: 64}\n  - {id: wide, kind: center-crop, resize: {shorter-side: 96}, crop: 64}\n",
    );
    std::fs::write(&path, two_protocols).unwrap();
    let out = dir.path().join("report");
    let store = dir.path().join("store");
    let options = common::audit_options(vec![path.clone()], &out, &store, "labels flips");
    resnet_audit::audit::run(&options).unwrap();

    let report = eval::run(&LoadedExperiment::read(&path).unwrap(), &self::options(&store, RunMode::StoredOnly)).unwrap();
    let results = |protocol: &str| &report.rows.iter().find(|r| r.protocol == protocol).unwrap().results;
    let (a, b) = (results("center"), results("wide"));
    let subset = LabelSet::Subset { classes: (0..10).collect() };
    let fixed_by = |set: &LabelSet| -> Vec<usize> {
        (0..a.len())
            .filter(|&k| match (set.judge(&a[k]), set.judge(&b[k])) {
                (Some(x), Some(y)) => !x.top1 && y.top1,
                _ => false,
            })
            .collect()
    };
    let (by_subset, by_original) = (fixed_by(&subset), fixed_by(&LabelSet::Single));
    let only = by_subset.iter().filter(|k| !by_original.contains(k)).count();
    let line = format!("under subset:ten.txt: {} fixed, {only} of them only by the label set", by_subset.len());
    assert!(!by_subset.is_empty(), "the fixture has a fix to count");
    let markdown = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(markdown.contains(&line), "expected `{line}` in\n{markdown}");
}
