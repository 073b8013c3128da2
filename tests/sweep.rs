//! Protocol sensitivity sweeps: `sweep:` on a protocol entry, parsed from YAML and expanded
//! into the settings other than the protocol as written.

use std::path::Path;

use resnet_audit::eval::{self, EvalOptions};
use resnet_audit::experiment::LoadedExperiment;
use resnet_audit::protocol::{
    expand, CenterCrop, Combine, CropRegion, GlobalWord, PoolWindow, ProtocolEntry, ProtocolSpec, Sweep, SweepError,
    SweepKnob, MAX_COMBINATIONS,
};
use resnet_audit::transform::{Interpolation, ResizePolicy};
use serde_json::json;

fn parse(yaml: &str) -> Result<ProtocolEntry, String> {
    let entries: Vec<ProtocolEntry> =
        resnet_audit::yaml::parse(yaml, Path::new("sweep.yaml")).map_err(|e| e.to_string())?;
    assert_eq!(entries.len(), 1);
    Ok(entries.into_iter().next().expect("one entry"))
}

fn entry(yaml: &str) -> ProtocolEntry {
    parse(yaml).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_error(yaml: &str) -> String {
    match parse(yaml) {
        Ok(entry) => panic!("parsed: {entry:?}"),
        Err(e) => e,
    }
}

fn labels(entry: &ProtocolEntry) -> Vec<String> {
    expand(entry).expect("expands").into_iter().map(|s| s.label()).collect()
}

fn center_crop(spec: &ProtocolSpec) -> &CenterCrop {
    match spec {
        ProtocolSpec::CenterCrop(c) => c,
        other => panic!("not a center crop: {other:?}"),
    }
}

const README_EXAMPLE: &str = "
  - id: center-crop
    kind: center-crop
    resize: {shorter-side: 256}
    crop: 224
    interpolation: bilinear
    antialias: true
    sweep:
      interpolation: [bilinear, bicubic]
      antialias: [true, false]
";

#[test]
fn the_other_settings_come_in_knob_order_without_the_written_one() {
    let e = entry(README_EXAMPLE);
    let settings = expand(&e).expect("expands");
    let got: Vec<(String, Interpolation, bool)> = settings
        .iter()
        .map(|s| {
            let c = center_crop(&s.spec);
            (s.label(), c.interpolation, c.antialias)
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("interpolation=bilinear, antialias=false".to_string(), Interpolation::Bilinear, false),
            ("interpolation=bicubic, antialias=true".to_string(), Interpolation::Bicubic, true),
            ("interpolation=bicubic, antialias=false".to_string(), Interpolation::Bicubic, false),
        ]
    );
    // The knobs not swept keep their written values.
    for s in &settings {
        let c = center_crop(&s.spec);
        assert_eq!((c.resize, c.crop), (ResizePolicy::ShorterSide(256), 224));
    }
    // Deterministic.
    assert_eq!(expand(&e).expect("expands"), settings);
}

#[test]
fn the_written_value_need_not_be_among_the_swept_ones() {
    let e = entry("[{id: cc, kind: center-crop, interpolation: bilinear, sweep: {interpolation: [bicubic, nearest]}}]");
    assert_eq!(labels(&e), ["interpolation=bicubic", "interpolation=nearest"]);
    // A defaulted field is a knob too, and its default counts as the written value.
    let e = entry("[{id: cc, kind: center-crop, sweep: {antialias: [true, false], crop: [224, 192]}}]");
    assert_eq!(labels(&e), ["antialias=true, crop=192", "antialias=false, crop=224", "antialias=false, crop=192"]);
}

#[test]
fn ten_crop_and_fully_convolutional_knobs_sweep() {
    let e = entry(
        "[{id: ten, kind: ten-crop, sweep: {region: [whole, central-square], combine: [softmax-mean, logit-sum], \
         resize: [{shorter-side: 256}, {crop-pct: {crop: 224, crop_pct: 0.875}}]}}]",
    );
    let settings = expand(&e).expect("expands");
    assert_eq!(settings.len(), 7);
    assert_eq!(
        settings[0].label(),
        "region=whole, combine=softmax-mean, resize={crop-pct: {crop: 224, crop_pct: 0.875}}"
    );
    let ProtocolSpec::TenCrop(last) = &settings[6].spec else { panic!("not ten-crop") };
    assert_eq!((last.region, last.combine), (CropRegion::CentralSquare, Combine::LogitSum));
    assert_eq!(last.resize, ResizePolicy::CropPct { crop: 224, crop_pct: 0.875 });

    let e = entry(
        "[{id: fcn, kind: fully-convolutional, scales: [224, 256], pool: 7, \
         sweep: {scales: [[224, 256], [224, 256, 384]], pool: [7, global], flips: [false, true]}}]",
    );
    let settings = expand(&e).expect("expands");
    assert_eq!(settings.len(), 7);
    assert_eq!(settings[0].label(), "scales=[224, 256], pool=7, flips=true");
    assert_eq!(settings[6].label(), "scales=[224, 256, 384], pool=global, flips=true");
    let ProtocolSpec::FullyConvolutional(f) = &settings[6].spec else { panic!("not fully-convolutional") };
    assert_eq!(f.scales, [224, 256, 384]);
    assert_eq!(f.pool, PoolWindow::Global(GlobalWord::Global));
    assert!(f.flips);
}

#[test]
fn a_misspelt_knob_is_an_error_naming_it_and_the_valid_knobs() {
    let err = parse_error("[{id: cc, kind: center-crop, sweep: {interpolaton: [bilinear, bicubic]}}]");
    assert!(err.contains("`interpolaton`"), "{err}");
    assert!(err.contains("`cc`") && err.contains("center-crop"), "{err}");
    assert!(err.contains("antialias, crop, interpolation, resize"), "{err}");

    let err = parse_error("[{id: ten, kind: ten-crop, sweep: {regoin: [whole]}}]");
    assert!(err.contains("`regoin`"), "{err}");
    assert!(err.contains("antialias, combine, crop, interpolation, region, resize"), "{err}");

    let err = parse_error("[{id: fcn, kind: fully-convolutional, sweep: {scale: [[224]]}}]");
    assert!(err.contains("`scale`"), "{err}");
    assert!(err.contains("antialias, flips, interpolation, max_side, pool, scales"), "{err}");

    // The kind and the id are not knobs.
    let err = parse_error("[{id: cc, kind: center-crop, sweep: {kind: [ten-crop]}}]");
    assert!(err.contains("`kind`") && err.contains("antialias, crop"), "{err}");
    let err = parse_error("[{id: cc, kind: center-crop, sweep: {id: [other]}}]");
    assert!(err.contains("`id`") && err.contains("antialias, crop"), "{err}");
}

#[test]
fn a_misspelt_protocol_field_is_still_an_error() {
    let err = parse_error("[{id: cc, kind: center-crop, interpolaton: bicubic}]");
    assert!(err.contains("interpolaton"), "{err}");
    let err = parse_error("[{id: cc, kind: center-crop, interpolaton: bicubic, sweep: {antialias: [false]}}]");
    assert!(err.contains("interpolaton"), "{err}");
    // `sweep` belongs to the entry, not to the spec: a misspelt `sweep` is an unknown field.
    let err = parse_error("[{id: cc, kind: center-crop, sweeps: {antialias: [false]}}]");
    assert!(err.contains("sweeps"), "{err}");
}

#[test]
fn a_bad_value_names_the_protocol_knob_and_value_with_the_reason() {
    let err = parse_error("[{id: cc, kind: center-crop, sweep: {interpolation: [bilinear, cubic]}}]");
    assert!(err.contains("`cc`") && err.contains("`interpolation`") && err.contains("cubic"), "{err}");
    assert!(err.contains("unknown variant"), "{err}");

    let err = parse_error("[{id: cc, kind: center-crop, sweep: {crop: [224, -1]}}]");
    assert!(err.contains("`crop`") && err.contains("-1") && err.contains("invalid value"), "{err}");

    let err = parse_error("[{id: cc, kind: center-crop, sweep: {resize: [{shorter: 256}]}}]");
    assert!(err.contains("`resize`") && err.contains("{shorter: 256}") && err.contains("shorter"), "{err}");

    // Values must be a list.
    let err = parse_error("[{id: cc, kind: center-crop, sweep: {interpolation: bicubic}}]");
    assert!(err.contains("`interpolation`") && err.contains("list"), "{err}");
}

#[test]
fn empty_lists_duplicates_and_explosions_are_errors() {
    let err = parse_error("[{id: cc, kind: center-crop, sweep: {antialias: [true, false], interpolation: []}}]");
    assert!(err.contains("`cc`") && err.contains("`interpolation`") && err.contains("no values"), "{err}");

    let err = parse_error("[{id: cc, kind: center-crop, sweep: {antialias: [true, false, true]}}]");
    assert!(err.contains("`antialias`") && err.contains("twice"), "{err}");
    // Duplicates are found as parsed values, not as text.
    let err = parse_error(
        "[{id: cc, kind: center-crop, sweep: {resize: [{shorter-side: 256}, {shorter-side: 288}, {shorter-side: 256}]}}]",
    );
    assert!(err.contains("`resize`") && err.contains("{shorter-side: 256} twice"), "{err}");

    let err = parse_error("[{id: cc, kind: center-crop, sweep: {}}]");
    assert!(err.contains("`cc`") && err.contains("no knobs"), "{err}");

    // 32 × 2 = 64 settings is the most allowed (63 besides the written one) ...
    let crops = |n: u32| (0..n).map(|i| (200 + i).to_string()).collect::<Vec<_>>().join(", ");
    let e =
        entry(&format!("[{{id: cc, kind: center-crop, sweep: {{crop: [{}], antialias: [true, false]}}}}]", crops(32)));
    assert_eq!(expand(&e).expect("expands").len(), MAX_COMBINATIONS - 1);
    // ... and 33 × 2 too many.
    let err = parse_error(&format!(
        "[{{id: cc, kind: center-crop, sweep: {{crop: [{}], antialias: [true, false]}}}}]",
        crops(33)
    ));
    assert!(err.contains("`cc`") && err.contains("66 combinations") && err.contains("64"), "{err}");
    assert!(err.contains("crop: 33 × antialias: 2") && err.contains("accidental explosions"), "{err}");
}

#[test]
fn an_ensemble_cannot_be_swept() {
    let err = parse_error(
        "[{id: both, kind: ensemble, members: [{model: a, protocol: p}], sweep: {members: [[{model: a, protocol: q}]]}}]",
    );
    assert!(err.contains("`both`") && err.contains("ensemble"), "{err}");
}

#[test]
fn without_a_sweep_serialization_is_unchanged() {
    let plain = entry("[{id: cc, kind: center-crop}]");
    assert_eq!(plain.sweep, None);
    // What the store hashes (the spec) and the entry, byte for byte as before sweeps existed.
    assert_eq!(
        serde_json::to_string(&plain.spec).expect("serializes"),
        r#"{"kind":"center-crop","resize":{"shorter-side":256},"crop":224,"interpolation":"bilinear","antialias":true}"#
    );
    assert_eq!(
        serde_json::to_string(&plain).expect("serializes"),
        r#"{"id":"cc","kind":"center-crop","resize":{"shorter-side":256},"crop":224,"interpolation":"bilinear","antialias":true}"#
    );

    // A sweep changes neither the spec nor its serialization.
    let swept = entry(README_EXAMPLE);
    assert_eq!(swept.spec, plain.spec);
    assert_eq!(
        serde_json::to_value(&swept.spec).expect("serializes"),
        serde_json::to_value(&plain.spec).expect("serializes")
    );
    // The entry keeps its sweep, in knob order, through a round trip.
    let value = serde_json::to_value(&swept).expect("serializes");
    assert_eq!(value["sweep"], json!({"interpolation": ["bilinear", "bicubic"], "antialias": [true, false]}));
    let text = serde_json::to_string(&swept).expect("serializes");
    assert!(text.ends_with(r#""sweep":{"interpolation":["bilinear","bicubic"],"antialias":[true,false]}}"#), "{text}");
    let back: Vec<ProtocolEntry> =
        resnet_audit::yaml::parse(&format!("[{text}]"), Path::new("round-trip.yaml")).expect("parses back");
    assert_eq!(back, [swept]);
}

#[test]
fn expand_checks_entries_built_in_code() {
    let mut e = entry("[{id: cc, kind: center-crop}]");
    assert_eq!(expand(&e).expect("expands"), []);

    let knob = |name: &str, values: Vec<serde_json::Value>| SweepKnob { name: name.to_string(), values };
    e.sweep = Some(Sweep { knobs: vec![knob("interpolaton", vec![json!("bicubic")])] });
    let err = expand(&e).expect_err("misspelt knob");
    assert!(matches!(&err, SweepError::UnknownKnob { knob, .. } if knob == "interpolaton"), "{err}");

    e.sweep = Some(Sweep { knobs: vec![knob("crop", vec![json!(192)]), knob("crop", vec![json!(160)])] });
    let err = expand(&e).expect_err("knob twice");
    assert!(matches!(&err, SweepError::DuplicateKnob { knob, .. } if knob == "crop"), "{err}");

    e.sweep = Some(Sweep { knobs: vec![knob("crop", vec![json!(224)])] });
    assert_eq!(expand(&e).expect("expands"), [], "only the written setting");

    e.sweep = Some(Sweep { knobs: vec![knob("crop", vec![json!(192)])] });
    let settings = expand(&e).expect("expands");
    assert_eq!(settings.len(), 1);
    assert_eq!(settings[0].label(), "crop=192");
    assert_eq!(center_crop(&settings[0].spec).crop, 192);
}

#[test]
fn a_variant_names_its_protocol_setting_index_and_knob_values() {
    let variants = expand(&entry(README_EXAMPLE)).expect("expands");
    let ids: Vec<String> = variants.iter().map(|v| v.id()).collect();
    // The ids results are stored under: `<protocol>.sweep<k>`, k counting the other settings from 1.
    assert_eq!(ids, ["center-crop.sweep1", "center-crop.sweep2", "center-crop.sweep3"]);
    let last = &variants[2];
    assert_eq!((last.protocol.as_str(), last.index), ("center-crop", 3));
    assert_eq!(last.knobs, [("interpolation".to_string(), json!("bicubic")), ("antialias".to_string(), json!(false))]);
}

/// `eval` with `sweeps` runs each setting as its own stored protocol; the protocol as written
/// keeps the store file it has without sweeps (its key hashes only its own spec).
#[test]
fn eval_runs_the_sweep_settings_beside_the_protocol_as_written() {
    let work = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let yaml = format!(
        "dataset: {{kind: list, root: {images}, file: {images}/labels.txt, classes: {{count: 20}}}}\n\
         models: [{{id: narrow, weights: {weights}, input: torchvision}}]\n\
         protocols:\n  - {{id: center, kind: center-crop, resize: {{shorter-side: 40}}, crop: 32, \
         sweep: {{interpolation: [bilinear, bicubic]}}}}\n",
        images = fixtures.join("images").display(),
        weights = fixtures.join("parity/protocol_r50_w8.safetensors").display()
    );
    let path = work.path().join("swept.yaml");
    std::fs::write(&path, yaml).unwrap();
    let loaded = LoadedExperiment::read(&path).unwrap();
    let run = |store: &str, sweeps: bool| {
        let options = EvalOptions {
            models: Vec::new(),
            protocols: Vec::new(),
            limit: None,
            runtime: resnet_audit::device::Runtime::default(),
            store_dir: work.path().join(store),
            sweeps,
            mode: Default::default(),
        };
        eval::run(&loaded, &options).unwrap_or_else(|e| panic!("{e}"))
    };
    let stored = |store: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(work.path().join(store).join("narrow"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".parquet"))
            .collect();
        names.sort();
        names
    };

    let plain = run("plain", false);
    assert_eq!(plain.rows.len(), 1);
    assert!(plain.rows[0].sweep.is_none());

    let swept = run("swept", true);
    let protocols: Vec<&str> = swept.rows.iter().map(|r| r.protocol.as_str()).collect();
    assert_eq!(protocols, ["center", "center.sweep1"]);
    let variant = swept.rows[1].sweep.as_ref().expect("the second row is a sweep setting");
    assert_eq!(
        (variant.protocol.as_str(), variant.index, variant.label()),
        ("center", 1, "interpolation=bicubic".into())
    );
    assert_eq!(swept.rows[0].results, plain.rows[0].results, "the written protocol is unchanged by the sweep");
    assert!(swept.paired.is_empty(), "sweep settings are not paired with the written protocol");
    assert!(swept.to_string().contains("center.sweep1: interpolation=bicubic"), "{swept}");

    let (plain_files, swept_files) = (stored("plain"), stored("swept"));
    assert_eq!(plain_files.len(), 1, "{plain_files:?}");
    assert!(swept_files.contains(&plain_files[0]), "the written protocol's store file changed: {swept_files:?}");
    assert!(swept_files.iter().any(|f| f.starts_with("center.sweep1-") && f.ends_with(".parquet")), "{swept_files:?}");
}
