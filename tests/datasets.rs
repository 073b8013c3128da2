//! Datasets: the experiment-file forms parse, good layouts load with the right labels, and every bad input
//! fails before any compute with an error naming the file (and line).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use resnet_audit::dataset::{ClassList, Dataset, DatasetError, DatasetSpec, OutputOrder, ValLabels};
use tempfile::TempDir;

/// A scratch directory that experiment paths are resolved against.
struct Scratch {
    dir: TempDir,
}

impl Scratch {
    fn new() -> Self {
        Scratch { dir: tempfile::tempdir().unwrap() }
    }

    fn base(&self) -> &Path {
        self.dir.path()
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// An empty file: nothing here decodes images.
    fn touch(&self, relative: &str) -> PathBuf {
        self.write(relative, "")
    }

    fn mkdir(&self, relative: &str) -> PathBuf {
        let path = self.path(relative);
        std::fs::create_dir_all(&path).unwrap();
        path
    }

    fn load(&self, yaml: &str) -> Result<Dataset, DatasetError> {
        let spec: DatasetSpec = serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
        spec.load(self.base())
    }

    /// The error message of loading `yaml`, checked to name each of `names`.
    fn error(&self, yaml: &str, names: &[&str]) -> String {
        let message = self.load(yaml).expect_err("loading should fail").to_string();
        println!("{message}");
        for name in names {
            assert!(message.contains(name), "message must name `{name}`: {message}");
        }
        message
    }

    fn shown(&self, relative: &str) -> String {
        self.path(relative).display().to_string()
    }
}

fn shipped(name: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/imagenet").join(name);
    std::fs::read_to_string(path).unwrap().lines().map(|l| l.trim().to_string()).collect()
}

/// Sorted class index of each shipped synset, read independently of the library.
fn synset_index() -> HashMap<String, usize> {
    shipped("synsets.txt").into_iter().enumerate().map(|(i, s)| (s, i)).collect()
}

fn labels(dataset: &Dataset) -> Vec<(&str, usize)> {
    dataset.samples.iter().map(|s| (s.id.as_str(), s.label)).collect()
}

fn val_name(n: usize) -> String {
    format!("ILSVRC2012_val_{n:08}.JPEG")
}

// ---------------------------------------------------------------- experiment-file forms

#[test]
fn yaml_forms_parse() {
    #[derive(serde::Deserialize)]
    struct Experiment {
        dataset: DatasetSpec,
        #[serde(default)]
        outputs: OutputOrder,
    }
    let parse = |yaml: &str| serde_yaml::from_str::<Experiment>(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));

    let e = parse("dataset: {kind: image-folder, root: fixtures/images-by-class}");
    assert_eq!(e.dataset, DatasetSpec::ImageFolder { root: "fixtures/images-by-class".into(), classes: None });
    assert_eq!(e.outputs, OutputOrder::Dataset);

    // In a flow mapping `{` and `}` end a plain scalar, so `${VAR}` must be quoted there; in block style it
    // needs no quotes.
    let quoted = parse("dataset: {kind: imagenet-val, root: \"${IMAGENET}/val\"}");
    let block = parse("dataset:\n  kind: imagenet-val\n  root: ${IMAGENET}/val\n");
    let expected =
        DatasetSpec::ImagenetVal { root: "${IMAGENET}/val".into(), labels: ValLabels::Shipped, subset: false };
    assert_eq!(quoted.dataset, expected);
    assert_eq!(block.dataset, expected);

    let e = parse(
        "dataset: {kind: imagenet-val, root: /data/val, labels: {ground_truth: \
         devkit/data/ILSVRC2012_validation_ground_truth.txt, id_to_synset: map_clsloc.txt}, subset: true}",
    );
    let labels = ValLabels::Devkit {
        ground_truth: "devkit/data/ILSVRC2012_validation_ground_truth.txt".into(),
        id_to_synset: "map_clsloc.txt".into(),
    };
    assert_eq!(e.dataset, DatasetSpec::ImagenetVal { root: "/data/val".into(), labels, subset: true });

    let e = parse("dataset: {kind: imagenet-val, root: v, labels: {synsets: val.txt}}");
    let labels = ValLabels::Synsets { synsets: "val.txt".into() };
    assert_eq!(e.dataset, DatasetSpec::ImagenetVal { root: "v".into(), labels, subset: false });

    let e = parse("dataset: {kind: list, root: /data, file: val.txt, classes: imagenet}\noutputs: imagenet-background");
    let list = DatasetSpec::List { root: "/data".into(), file: "val.txt".into(), classes: ClassList::Imagenet };
    assert_eq!(e.dataset, list);
    assert_eq!(e.outputs, OutputOrder::ImagenetBackground);

    let e = parse("dataset: {kind: list, root: r, file: f, classes: {count: 10}}\noutputs: {devkit: map_clsloc.txt}");
    assert_eq!(e.dataset, DatasetSpec::List { root: "r".into(), file: "f".into(), classes: ClassList::Count(10) });
    assert_eq!(e.outputs, OutputOrder::Devkit { devkit: "map_clsloc.txt".into() });

    let e = parse("dataset: {kind: image-folder, root: r, classes: names.txt}\noutputs: {file: names.txt}");
    let folder = DatasetSpec::ImageFolder { root: "r".into(), classes: Some(ClassList::File("names.txt".into())) };
    assert_eq!(e.dataset, folder);
    assert_eq!(e.outputs, OutputOrder::File { file: "names.txt".into() });
    assert_eq!(parse("dataset: {kind: image-folder, root: r}\noutputs: imagenet").outputs, OutputOrder::Imagenet);
}

#[test]
fn yaml_mistakes_are_refused() {
    let fails = |yaml: &str, needle: &str| {
        let message = serde_yaml::from_str::<DatasetSpec>(yaml).expect_err(yaml).to_string();
        println!("{message}");
        assert!(message.contains(needle), "{yaml}: {message}");
    };
    fails("{kind: image-folder, root: r, subset: true}", "unknown field `subset`");
    fails("{kind: imagenet-valid, root: r}", "imagenet-valid");
    fails("{kind: list, root: r, file: f}", "classes");
    fails("{kind: list, root: r, file: f, classes: {cont: 3}}", "cont");
    fails("{kind: imagenet-val, root: r, labels: {ground_truth: g}}", "id_to_synset");
    fails("{kind: imagenet-val, root: r, labels: {synsets: s, ground_truth: g, id_to_synset: t}}", "synsets");
    let order = serde_yaml::from_str::<OutputOrder>("imagenet-backgrond").expect_err("typo").to_string();
    assert!(order.contains("imagenet-backgrond"), "{order}");
}

#[test]
fn specs_serialize_to_forms_that_parse_back() {
    let specs = [
        DatasetSpec::ImageFolder { root: "a".into(), classes: Some(ClassList::File("names.txt".into())) },
        DatasetSpec::ImagenetVal {
            root: "b".into(),
            labels: ValLabels::Devkit { ground_truth: "g".into(), id_to_synset: "t".into() },
            subset: true,
        },
        DatasetSpec::ImagenetVal {
            root: "b".into(),
            labels: ValLabels::Synsets { synsets: "s".into() },
            subset: false,
        },
        DatasetSpec::List { root: "c".into(), file: "f".into(), classes: ClassList::Count(3) },
        DatasetSpec::List { root: "c".into(), file: "f".into(), classes: ClassList::Imagenet },
    ];
    for spec in specs {
        let yaml = serde_yaml::to_string(&spec).unwrap();
        assert_eq!(serde_yaml::from_str::<DatasetSpec>(&yaml).unwrap(), spec, "{yaml}");
    }
    // A class file named `imagenet` must not come back as the keyword.
    let file = DatasetSpec::ImageFolder { root: "a".into(), classes: Some(ClassList::File("imagenet".into())) };
    let back: DatasetSpec = serde_yaml::from_str(&serde_yaml::to_string(&file).unwrap()).unwrap();
    assert_eq!(
        back,
        DatasetSpec::ImageFolder { root: "a".into(), classes: Some(ClassList::File("./imagenet".into())) }
    );
    for order in [OutputOrder::Dataset, OutputOrder::ImagenetBackground, OutputOrder::File { file: "x".into() }] {
        let yaml = serde_yaml::to_string(&order).unwrap();
        assert_eq!(serde_yaml::from_str::<OutputOrder>(&yaml).unwrap(), order, "{yaml}");
    }
}

// ---------------------------------------------------------------- paths

#[test]
fn environment_variables_expand_in_paths() {
    let s = Scratch::new();
    s.touch("data/val/ILSVRC2012_val_00000002.JPEG");
    std::env::set_var("RESNET_AUDIT_DATASETS_TEST_ROOT", s.path("data"));
    let dataset =
        s.load("{kind: imagenet-val, root: \"${RESNET_AUDIT_DATASETS_TEST_ROOT}/val\", subset: true}").unwrap();
    assert_eq!(dataset.root, s.path("data/val"));
    assert_eq!(dataset.samples[0].path, s.path("data/val/ILSVRC2012_val_00000002.JPEG"));

    s.error(
        "{kind: imagenet-val, root: \"${RESNET_AUDIT_DATASETS_TEST_UNSET}/val\"}",
        &["RESNET_AUDIT_DATASETS_TEST_UNSET", "dataset.root"],
    );
}

// ---------------------------------------------------------------- image folder

#[test]
fn image_folder_classes_are_sorted_folder_names() {
    let s = Scratch::new();
    s.touch("imgs/dog/b.JPG");
    s.touch("imgs/dog/a.jpeg");
    s.touch("imgs/cat/x.png");
    s.touch("imgs/cat/nested/y.PNG");
    s.touch("imgs/cat/notes.txt");
    s.touch("imgs/cat/.hidden.jpg");
    s.touch("imgs/.git/config.jpg");
    s.touch("imgs/README.md");
    let dataset = s.load("{kind: image-folder, root: imgs}").unwrap();
    assert_eq!(dataset.classes, ["cat", "dog"]);
    assert_eq!(labels(&dataset), [("cat/nested/y.PNG", 0), ("cat/x.png", 0), ("dog/a.jpeg", 1), ("dog/b.JPG", 1)]);
    assert_eq!(dataset.samples[0].path, s.path("imgs/cat/nested/y.PNG"));
    assert_eq!(dataset.root, s.path("imgs"));
    assert!(dataset.description.contains("1 non-image files ignored"), "{}", dataset.description);
    assert_eq!(dataset.human_names(), ["cat", "dog"]);
}

#[test]
fn image_folder_with_a_class_list_labels_by_the_list() {
    let s = Scratch::new();
    s.write("classes.txt", "zebra\ndog\ncat\n");
    s.touch("imgs/cat/1.jpg");
    s.touch("imgs/dog/2.jpg");
    // `zebra` has no folder: classes absent on disk are fine.
    let dataset = s.load("{kind: image-folder, root: imgs, classes: classes.txt}").unwrap();
    assert_eq!(dataset.classes, ["zebra", "dog", "cat"]);
    assert_eq!(labels(&dataset), [("cat/1.jpg", 2), ("dog/2.jpg", 1)]);

    // With the shipped synsets, labels are sorted-synset indexes and names come from synset_names.txt.
    s.touch("net/n01751748/a.jpg");
    s.touch("net/n09193705/b.jpg");
    let dataset = s.load("{kind: image-folder, root: net, classes: imagenet}").unwrap();
    let index = synset_index();
    assert_eq!(dataset.classes.len(), 1000);
    assert_eq!(labels(&dataset), [("n01751748/a.jpg", index["n01751748"]), ("n09193705/b.jpg", index["n09193705"])]);
    assert_eq!(dataset.human_names()[index["n01751748"]], "sea snake");
}

#[test]
fn image_folder_root_missing_is_named() {
    let s = Scratch::new();
    s.error("{kind: image-folder, root: nowhere}", &[&s.shown("nowhere"), "dataset.root"]);
}

#[test]
fn image_folder_root_that_is_a_file_is_named() {
    let s = Scratch::new();
    s.touch("file.jpg");
    s.error("{kind: image-folder, root: file.jpg}", &[&s.shown("file.jpg"), "not a directory"]);
}

#[test]
fn image_folder_empty_class_folder_is_named() {
    let s = Scratch::new();
    s.touch("imgs/cat/1.jpg");
    s.touch("imgs/dog/notes.txt");
    s.error("{kind: image-folder, root: imgs}", &[&s.shown("imgs/dog"), "no images"]);
}

#[test]
fn image_folder_without_class_folders_is_named() {
    let s = Scratch::new();
    s.touch("imgs/1.jpg");
    s.error("{kind: image-folder, root: imgs}", &[&s.shown("imgs"), "no class folders"]);
}

#[test]
fn image_folder_folder_not_in_the_class_list_is_named() {
    let s = Scratch::new();
    s.write("classes.txt", "cat\n");
    s.touch("imgs/cat/1.jpg");
    s.touch("imgs/dgo/2.jpg");
    s.error("{kind: image-folder, root: imgs, classes: classes.txt}", &[&s.shown("imgs/dgo"), "`dgo`", "classes.txt"]);
}

#[test]
fn image_folder_unsupported_image_format_is_named() {
    let s = Scratch::new();
    s.touch("imgs/cat/1.jpg");
    s.touch("imgs/cat/2.bmp");
    s.error("{kind: image-folder, root: imgs}", &[&s.shown("imgs/cat/2.bmp"), "not supported"]);
}

#[test]
fn image_folder_class_list_with_duplicates_is_named() {
    let s = Scratch::new();
    s.write("classes.txt", "cat\ndog\ncat\n");
    s.touch("imgs/cat/1.jpg");
    s.error(
        "{kind: image-folder, root: imgs, classes: classes.txt}",
        &[&format!("{}:3", s.shown("classes.txt")), "repeats line 1"],
    );
}

#[test]
fn image_folder_refuses_a_class_count() {
    let s = Scratch::new();
    s.touch("imgs/cat/1.jpg");
    s.error("{kind: image-folder, root: imgs, classes: {count: 2}}", &["dataset.classes", "kind: list"]);
}

// ---------------------------------------------------------------- imagenet val

#[test]
fn imagenet_val_subset_gets_shipped_labels_in_sorted_synset_order() {
    let s = Scratch::new();
    s.touch("val/ILSVRC2012_val_00000003.JPEG");
    s.touch("val/ILSVRC2012_val_00000001.JPEG");
    s.touch("val/.DS_Store");
    let dataset = s.load("{kind: imagenet-val, root: val, subset: true}").unwrap();
    let index = synset_index();
    let val = shipped("val_synsets.txt");
    assert_eq!(val[0], "n01751748");
    assert_eq!(dataset.classes, shipped("synsets.txt"));
    assert_eq!(labels(&dataset), [(val_name(1).as_str(), index[&val[0]]), (val_name(3).as_str(), index[&val[2]])]);
    assert_eq!(dataset.samples[1].path, s.path("val").join(val_name(3)));
}

#[test]
fn imagenet_val_file_with_another_name_is_named() {
    let s = Scratch::new();
    s.touch("val/ILSVRC2012_val_00000001.JPEG");
    s.touch("val/ILSVRC2012_val_00000002.jpg");
    s.error("{kind: imagenet-val, root: val, subset: true}", &[&s.shown("val/ILSVRC2012_val_00000002.jpg")]);
}

#[test]
fn imagenet_val_class_folders_point_to_image_folder() {
    let s = Scratch::new();
    s.touch("val/n01440764/ILSVRC2012_val_00000293.JPEG");
    s.error("{kind: imagenet-val, root: val}", &[&s.shown("val/n01440764"), "kind: image-folder"]);
}

#[test]
fn imagenet_val_number_out_of_range_is_named() {
    let s = Scratch::new();
    s.touch("val/ILSVRC2012_val_00050001.JPEG");
    s.error("{kind: imagenet-val, root: val, subset: true}", &[&s.shown("val/ILSVRC2012_val_00050001.JPEG"), "50001"]);
    let s = Scratch::new();
    s.touch("val/ILSVRC2012_val_00000000.JPEG");
    s.error("{kind: imagenet-val, root: val, subset: true}", &[&s.shown("val/ILSVRC2012_val_00000000.JPEG")]);
}

#[test]
fn imagenet_val_missing_images_are_counted_and_named() {
    let s = Scratch::new();
    s.touch("val/ILSVRC2012_val_00000001.JPEG");
    s.touch("val/ILSVRC2012_val_00000003.JPEG");
    s.error(
        "{kind: imagenet-val, root: val}",
        &[&s.shown("val"), "49998 of the 50000", "ILSVRC2012_val_00000002.JPEG", "subset: true"],
    );
}

#[test]
fn imagenet_val_empty_folder_is_named() {
    let s = Scratch::new();
    s.mkdir("val");
    s.error("{kind: imagenet-val, root: val, subset: true}", &[&s.shown("val"), "no images"]);
}

#[test]
fn imagenet_val_labels_from_a_synsets_file() {
    let s = Scratch::new();
    s.touch("val/ILSVRC2012_val_00000002.JPEG");
    // Every image labelled with the last synset: the labels must come from this file, not the shipped one.
    let synsets = shipped("synsets.txt");
    s.write("labels.txt", &format!("{}\n", synsets[999]).repeat(50_000));
    let dataset = s.load("{kind: imagenet-val, root: val, subset: true, labels: {synsets: labels.txt}}").unwrap();
    assert_eq!(labels(&dataset), [(val_name(2).as_str(), 999)]);
}

#[test]
fn imagenet_val_synsets_file_with_wrong_line_count_is_named() {
    let s = Scratch::new();
    s.touch("val/ILSVRC2012_val_00000001.JPEG");
    s.write("labels.txt", &"n01440764\n".repeat(49_999));
    s.error(
        "{kind: imagenet-val, root: val, subset: true, labels: {synsets: labels.txt}}",
        &[&s.shown("labels.txt"), "49999 lines", "50000"],
    );
}

#[test]
fn imagenet_val_synsets_file_with_unknown_synset_is_named() {
    let s = Scratch::new();
    s.touch("val/ILSVRC2012_val_00000001.JPEG");
    let mut lines = vec!["n01440764"; 50_000];
    lines[41] = "n99999999";
    s.write("labels.txt", &lines.join("\n"));
    s.error(
        "{kind: imagenet-val, root: val, subset: true, labels: {synsets: labels.txt}}",
        &[&format!("{}:42:", s.shown("labels.txt")), "n99999999"],
    );
}

/// A devkit-style id table: ILSVRC2012_ID k is synset `synsets[PERM(k − 1)]`, a fixed permutation of the
/// sorted order, written half as `<synset> <id> name` (map_clsloc.txt) and half as `<id> <synset>`.
fn permuted_devkit(s: &Scratch) -> (Vec<String>, Vec<usize>) {
    let perm = |i: usize| (i * 7 + 3) % 1000; // 7 is coprime with 1000: a bijection
    let synsets = shipped("synsets.txt");
    let table: Vec<String> = (0..1000).map(|i| synsets[perm(i)].clone()).collect();
    let mut text = String::new();
    // Rows out of id order: a table is keyed by id, not by line.
    for id in (1..=1000).rev() {
        let synset = &table[id - 1];
        if id % 2 == 0 {
            text += &format!("{synset} {id} some_name\n");
        } else {
            text += &format!("{id} {synset}\n");
        }
    }
    s.write("map_clsloc.txt", &text);
    let id_of: HashMap<&str, usize> = table.iter().enumerate().map(|(i, synset)| (synset.as_str(), i + 1)).collect();
    let ground_truth: Vec<usize> = shipped("val_synsets.txt").iter().map(|synset| id_of[synset.as_str()]).collect();
    let text: String = ground_truth.iter().map(|id| format!("{id}\n")).collect();
    s.write("gt.txt", &text);
    (table, ground_truth)
}

const DEVKIT: &str = "labels: {ground_truth: gt.txt, id_to_synset: map_clsloc.txt}";

#[test]
fn imagenet_val_devkit_labels_equal_the_shipped_labels() {
    let s = Scratch::new();
    let (_, ground_truth) = permuted_devkit(&s);
    // The id − 1 misreading must actually give different labels, or this test could not catch it.
    let index = synset_index();
    let val = shipped("val_synsets.txt");
    assert!(ground_truth.iter().zip(&val).any(|(id, synset)| id - 1 != index[synset]));
    let root = s.mkdir("val");
    for n in 1..=50_000 {
        std::fs::write(root.join(val_name(n)), "").unwrap();
    }
    let from_devkit = s.load(&format!("{{kind: imagenet-val, root: val, {DEVKIT}}}")).unwrap();
    let from_shipped = s.load("{kind: imagenet-val, root: val}").unwrap();
    assert_eq!(from_devkit.samples.len(), 50_000);
    assert_eq!(from_devkit.samples, from_shipped.samples);
    assert_eq!(from_devkit.fingerprint(), from_shipped.fingerprint());
    let expected: Vec<usize> = val.iter().map(|synset| index[synset]).collect();
    let got: Vec<usize> = from_devkit.samples.iter().map(|s| s.label).collect();
    assert_eq!(got, expected);
}

#[test]
fn imagenet_val_devkit_ground_truth_id_out_of_range_is_named() {
    let s = Scratch::new();
    permuted_devkit(&s);
    s.touch("val/ILSVRC2012_val_00000001.JPEG");
    let mut lines = vec!["1"; 50_000];
    lines[6] = "1001";
    lines[8] = "0";
    s.write("gt.txt", &lines.join("\n"));
    let yaml = format!("{{kind: imagenet-val, root: val, subset: true, {DEVKIT}}}");
    s.error(&yaml, &[&format!("{}:7:", s.shown("gt.txt")), "1001", "1..=1000"]);
    lines[6] = "1";
    s.write("gt.txt", &lines.join("\n"));
    s.error(&yaml, &[&format!("{}:9:", s.shown("gt.txt")), "ILSVRC2012_ID 0"]);
    lines[8] = "one";
    s.write("gt.txt", &lines.join("\n"));
    s.error(&yaml, &[&format!("{}:9:", s.shown("gt.txt")), "`one` is not an integer"]);
}

#[test]
fn imagenet_val_devkit_ground_truth_with_wrong_line_count_is_named() {
    let s = Scratch::new();
    permuted_devkit(&s);
    s.touch("val/ILSVRC2012_val_00000001.JPEG");
    s.write("gt.txt", &"1\n".repeat(50_001));
    let yaml = format!("{{kind: imagenet-val, root: val, subset: true, {DEVKIT}}}");
    s.error(&yaml, &[&s.shown("gt.txt"), "50001 lines"]);
}

/// Rewrites the devkit table's lines through `edit` and returns the load error.
fn devkit_table_error(edit: impl FnOnce(&mut Vec<String>), names: &[&str]) -> String {
    let s = Scratch::new();
    let (table, _) = permuted_devkit(&s);
    s.touch("val/ILSVRC2012_val_00000001.JPEG");
    let mut lines: Vec<String> = table.iter().enumerate().map(|(i, synset)| format!("{} {synset}", i + 1)).collect();
    edit(&mut lines);
    s.write("map_clsloc.txt", &lines.join("\n"));
    let mut names = names.to_vec();
    let shown = s.shown("map_clsloc.txt");
    names.push(&shown);
    s.error(&format!("{{kind: imagenet-val, root: val, subset: true, {DEVKIT}}}"), &names)
}

#[test]
fn imagenet_val_devkit_table_duplicate_id_is_named() {
    let message = devkit_table_error(|lines| lines[9] = format!("3 {}", lines[9].split(' ').nth(1).unwrap()), &[]);
    assert!(message.contains("map_clsloc.txt:10: id `3` repeats line 3"), "{message}");
}

#[test]
fn imagenet_val_devkit_table_duplicate_synset_is_named() {
    let message = devkit_table_error(
        |lines| {
            let first = lines[0].split(' ').nth(1).unwrap().to_string();
            lines[4] = format!("5 {first}");
        },
        &[],
    );
    assert!(message.contains("map_clsloc.txt:5: synset"), "{message}");
    assert!(message.contains("repeats line 1"), "{message}");
}

#[test]
fn imagenet_val_devkit_table_missing_ids_are_named() {
    devkit_table_error(
        |lines| {
            lines.remove(499);
            lines.remove(10);
        },
        &["2 ids missing", "11, 500"],
    );
}

#[test]
fn imagenet_val_devkit_table_id_out_of_range_is_named() {
    devkit_table_error(|lines| lines.push("1001 n00000001".to_string()), &["map_clsloc.txt:1001:", "1001"]);
}

#[test]
fn imagenet_val_devkit_table_unknown_synset_is_named() {
    devkit_table_error(|lines| lines[20] = "21 n99999999".to_string(), &["map_clsloc.txt:21:", "n99999999"]);
}

#[test]
fn imagenet_val_devkit_table_malformed_line_is_named() {
    // LOC_synset_mapping.txt has no ids: not an id table.
    devkit_table_error(|lines| lines[0] = "n01440764 tench, Tinca tinca".to_string(), &["map_clsloc.txt:1:", "<id>"]);
}

#[test]
fn imagenet_val_missing_labels_file_is_named() {
    let s = Scratch::new();
    s.touch("val/ILSVRC2012_val_00000001.JPEG");
    s.error(
        "{kind: imagenet-val, root: val, subset: true, labels: {synsets: nope.txt}}",
        &[&s.shown("nope.txt"), "dataset.labels.synsets"],
    );
}

// ---------------------------------------------------------------- list

#[test]
fn list_reads_paths_and_labels() {
    let s = Scratch::new();
    s.touch("data/a/1.jpg");
    s.touch("data/b c/2.png");
    s.touch("data/3.JPEG");
    s.write("val.txt", "./a/1.jpg 2\n\nb c/2.png\t0\n3.JPEG 1\r\n");
    let dataset = s.load("{kind: list, root: data, file: val.txt, classes: {count: 3}}").unwrap();
    assert_eq!(dataset.classes, ["0", "1", "2"]);
    assert_eq!(labels(&dataset), [("3.JPEG", 1), ("a/1.jpg", 2), ("b c/2.png", 0)]);
    assert_eq!(dataset.samples[2].path, s.path("data/b c/2.png"));

    s.write("names.txt", "cat\ndog\nfox\n");
    let named = s.load("{kind: list, root: data, file: val.txt, classes: names.txt}").unwrap();
    assert_eq!(named.classes, ["cat", "dog", "fox"]);
    assert_eq!(labels(&named), labels(&dataset));
}

#[test]
fn list_malformed_line_is_named() {
    let s = Scratch::new();
    s.touch("data/a.jpg");
    s.write("val.txt", "a.jpg 0\njust-a-path.jpg\n");
    s.error("{kind: list, root: data, file: val.txt, classes: {count: 2}}", &[&format!("{}:2:", s.shown("val.txt"))]);
}

#[test]
fn list_label_not_an_integer_is_named() {
    let s = Scratch::new();
    s.touch("data/a.jpg");
    s.write("val.txt", "a.jpg 0\na.jpg cat\n");
    s.error(
        "{kind: list, root: data, file: val.txt, classes: {count: 2}}",
        &[&format!("{}:2:", s.shown("val.txt")), "label `cat` is not an integer"],
    );
}

#[test]
fn list_label_out_of_range_is_named() {
    let s = Scratch::new();
    s.touch("data/a.jpg");
    s.touch("data/b.jpg");
    s.write("val.txt", "a.jpg 0\nb.jpg 9\nc.jpg 17\n");
    s.error(
        "{kind: list, root: data, file: val.txt, classes: {count: 10}}",
        &[&format!("{}:3: label 17 is outside 0..10", s.shown("val.txt"))],
    );
    s.write("val.txt", "a.jpg -1\n");
    s.error(
        "{kind: list, root: data, file: val.txt, classes: {count: 10}}",
        &[&format!("{}:1: label -1 is outside 0..10", s.shown("val.txt"))],
    );
}

#[test]
fn list_duplicate_path_names_both_lines() {
    let s = Scratch::new();
    s.touch("data/a/1.jpg");
    s.write("val.txt", "a/1.jpg 0\nb.jpg 1\n./a//1.jpg 1\n");
    s.error(
        "{kind: list, root: data, file: val.txt, classes: {count: 2}}",
        &[&format!("{}:3:", s.shown("val.txt")), "`a/1.jpg` repeats line 1"],
    );
}

#[test]
fn list_missing_files_are_counted_and_named() {
    let s = Scratch::new();
    s.touch("data/present.jpg");
    s.mkdir("data/folder.jpg");
    let mut text = String::from("present.jpg 0\nfolder.jpg 0\n");
    for i in 0..20 {
        text += &format!("gone/{i:02}.jpg 1\n");
    }
    s.write("val.txt", &text);
    s.error(
        "{kind: list, root: data, file: val.txt, classes: {count: 2}}",
        &[&s.shown("val.txt"), &s.shown("data"), "21 listed files are missing", "folder.jpg (line 2)", "gone/00.jpg"],
    );
}

#[test]
fn list_empty_is_named() {
    let s = Scratch::new();
    s.mkdir("data");
    s.write("val.txt", "\n  \n");
    s.error("{kind: list, root: data, file: val.txt, classes: imagenet}", &[&s.shown("val.txt"), "is empty"]);
}

#[test]
fn list_missing_list_file_is_named() {
    let s = Scratch::new();
    s.mkdir("data");
    s.error("{kind: list, root: data, file: val.txt, classes: imagenet}", &[&s.shown("val.txt"), "dataset.file"]);
}

#[test]
fn list_missing_class_file_is_named() {
    let s = Scratch::new();
    s.mkdir("data");
    s.write("val.txt", "a.jpg 0\n");
    s.error("{kind: list, root: data, file: val.txt, classes: names.txt}", &[&s.shown("names.txt"), "dataset.classes"]);
}

#[test]
fn list_path_escaping_root_is_named() {
    let s = Scratch::new();
    s.mkdir("data");
    s.write("val.txt", "../secret.jpg 0\n");
    s.error("{kind: list, root: data, file: val.txt, classes: {count: 1}}", &[&format!("{}:1:", s.shown("val.txt"))]);
}

// ---------------------------------------------------------------- fingerprint

#[test]
fn fingerprint_changes_when_a_label_changes() {
    let s = Scratch::new();
    s.touch("data/a.jpg");
    s.touch("data/b.jpg");
    let yaml = "{kind: list, root: data, file: val.txt, classes: {count: 3}}";
    s.write("val.txt", "a.jpg 0\nb.jpg 1\n");
    let first = s.load(yaml).unwrap().fingerprint();
    s.write("val.txt", "b.jpg 1\na.jpg 0\n");
    assert_eq!(s.load(yaml).unwrap().fingerprint(), first, "line order is not part of the image list");
    s.write("val.txt", "a.jpg 0\nb.jpg 2\n");
    assert_ne!(s.load(yaml).unwrap().fingerprint(), first);
}

// ---------------------------------------------------------------- output order

fn val_subset(s: &Scratch) -> Dataset {
    s.touch("val/ILSVRC2012_val_00000001.JPEG");
    s.load("{kind: imagenet-val, root: val, subset: true}").unwrap()
}

#[test]
fn imagenet_background_maps_output_zero_to_none() {
    let s = Scratch::new();
    let dataset = val_subset(&s);
    let map = OutputOrder::ImagenetBackground.map_outputs(1001, &dataset, s.base()).unwrap();
    assert_eq!(map.len(), 1001);
    assert_eq!(map[0], None);
    for (k, class) in map.iter().enumerate().skip(1) {
        assert_eq!(*class, Some(k - 1));
    }
    let message = OutputOrder::ImagenetBackground.map_outputs(1000, &dataset, s.base()).unwrap_err().to_string();
    assert!(
        message.contains("imagenet-background") && message.contains("1000") && message.contains("1001"),
        "{message}"
    );
}

#[test]
fn imagenet_order_maps_onto_a_folder_of_some_synsets() {
    let s = Scratch::new();
    s.touch("imgs/n09193705/a.jpg");
    s.touch("imgs/n01751748/b.jpg");
    let dataset = s.load("{kind: image-folder, root: imgs}").unwrap();
    let map = OutputOrder::Imagenet.map_outputs(1000, &dataset, s.base()).unwrap();
    let index = synset_index();
    assert_eq!(map[index["n01751748"]], Some(0));
    assert_eq!(map[index["n09193705"]], Some(1));
    assert_eq!(map.iter().filter(|c| c.is_some()).count(), 2);
    // The dataset's own order has two outputs.
    assert_eq!(OutputOrder::Dataset.map_outputs(2, &dataset, s.base()).unwrap(), [Some(0), Some(1)]);
    assert!(OutputOrder::Dataset.map_outputs(1000, &dataset, s.base()).is_err());
}

#[test]
fn output_order_from_a_file_is_mapped_by_name() {
    let s = Scratch::new();
    s.touch("imgs/cat/1.jpg");
    s.touch("imgs/dog/1.jpg");
    let dataset = s.load("{kind: image-folder, root: imgs}").unwrap();
    s.write("outputs.txt", "dog\nbird\ncat\n");
    let order = OutputOrder::File { file: "outputs.txt".into() };
    assert_eq!(order.map_outputs(3, &dataset, s.base()).unwrap(), [Some(1), None, Some(0)]);

    s.write("outputs.txt", "dog\nbird\n");
    let message = order.map_outputs(2, &dataset, s.base()).unwrap_err().to_string();
    assert!(
        message.contains("1 dataset classes are scored by no model output") && message.contains("cat"),
        "{message}"
    );

    s.write("outputs.txt", "dog\ncat\ndog\n");
    let message = order.map_outputs(3, &dataset, s.base()).unwrap_err().to_string();
    assert!(message.contains(&format!("{}:3", s.shown("outputs.txt"))), "{message}");
}

#[test]
fn devkit_output_order_follows_ilsvrc_ids() {
    let s = Scratch::new();
    let (table, _) = permuted_devkit(&s);
    let dataset = val_subset(&s);
    let index = synset_index();
    let map = OutputOrder::Devkit { devkit: "map_clsloc.txt".into() }.map_outputs(1000, &dataset, s.base()).unwrap();
    for (output, synset) in table.iter().enumerate() {
        assert_eq!(map[output], Some(index[synset]), "output {output} is ILSVRC2012_ID {}", output + 1);
    }
}

#[test]
fn classes_no_output_scores_are_an_error() {
    let s = Scratch::new();
    s.write("list.txt", "a.jpg 0\n");
    s.touch("data/a.jpg");
    let dataset = s.load("{kind: list, root: data, file: list.txt, classes: {count: 10}}").unwrap();
    let message = OutputOrder::Imagenet.map_outputs(1000, &dataset, s.base()).unwrap_err().to_string();
    assert!(message.contains("10 dataset classes are scored by no model output"), "{message}");
}
