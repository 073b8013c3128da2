//! ImageNet (ILSVRC2012): the shipped synset tables, devkit id tables, and the flat validation folder.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{check_dir, first_few, read_text, visible_entries, Dataset, DatasetError, Sample};

/// Classes in ILSVRC2012.
pub(crate) const NUM_CLASSES: usize = 1000;
/// Images in the ILSVRC2012 validation set.
pub(super) const NUM_VAL: usize = 50_000;

const SYNSETS: &str = include_str!("../../data/imagenet/synsets.txt");
const SYNSET_NAMES: &str = include_str!("../../data/imagenet/synset_names.txt");
const VAL_SYNSETS: &str = include_str!("../../data/imagenet/val_synsets.txt");
/// ImageNet-ReaL (Beyer et al. 2020; Apache-2.0, data/imagenet/LICENSE-real-json.txt): entry i
/// lists the sorted-synset class indices correct for validation image i + 1.
const REAL_JSON: &str = include_str!("../../data/imagenet/real.json");

struct Shipped {
    /// The 1000 synsets in sorted order: class index = position.
    synsets: Vec<&'static str>,
    index: HashMap<&'static str, usize>,
    names: HashMap<&'static str, &'static str>,
    /// Class index of validation image i + 1.
    val_labels: Vec<usize>,
}

fn shipped() -> &'static Shipped {
    static SHIPPED: OnceLock<Shipped> = OnceLock::new();
    // The tables are compiled in and checked by the unit tests below, so a failure here is a build defect.
    SHIPPED.get_or_init(|| {
        let synsets: Vec<&'static str> = SYNSETS.lines().map(str::trim).collect();
        assert_eq!(synsets.len(), NUM_CLASSES, "shipped synsets.txt must hold 1000 lines");
        let index: HashMap<&'static str, usize> = synsets.iter().enumerate().map(|(i, s)| (*s, i)).collect();
        assert_eq!(index.len(), NUM_CLASSES, "shipped synsets.txt has duplicates");
        let names = SYNSET_NAMES
            .lines()
            .filter_map(|line| line.trim().split_once(' '))
            .map(|(synset, name)| (synset, name.trim()))
            .collect();
        let val_labels: Vec<usize> = VAL_SYNSETS
            .lines()
            .map(|s| *index.get(s.trim()).unwrap_or_else(|| panic!("shipped val_synsets.txt: unknown synset {s}")))
            .collect();
        assert_eq!(val_labels.len(), NUM_VAL, "shipped val_synsets.txt must hold 50000 lines");
        Shipped { synsets, index, names, val_labels }
    })
}

/// The shipped ReaL lists, entry i for validation image i + 1.
fn real() -> &'static [Vec<u32>] {
    static REAL: OnceLock<Vec<Vec<u32>>> = OnceLock::new();
    // Compiled in and checked by the unit tests below, so a failure here is a build defect.
    REAL.get_or_init(|| {
        let lists: Vec<Vec<u32>> = serde_json::from_str(REAL_JSON).expect("shipped real.json is a list of lists");
        assert_eq!(lists.len(), NUM_VAL, "shipped real.json must hold 50000 lists");
        lists
    })
}

/// The ReaL lists of these ImageNet validation samples, by sample id (an empty list: the image
/// is not in ReaL). A sample that is not a validation image is an error naming it.
pub fn real_lists(samples: &[Sample]) -> Result<BTreeMap<String, Vec<u32>>, DatasetError> {
    let mut lists = BTreeMap::new();
    for sample in samples {
        let number = val_number(&sample.id)
            .filter(|n| (1..=NUM_VAL as u64).contains(n))
            .ok_or_else(|| DatasetError::NotValImage { path: sample.path.clone(), hint: REAL_HINT })?;
        lists.insert(sample.id.clone(), real()[number as usize - 1].clone());
    }
    Ok(lists)
}

const REAL_HINT: &str = ": ImageNet-ReaL (`labels: [real]`) labels the validation images by their file name";

/// The 1000 shipped synsets in sorted order.
pub(super) fn synsets() -> &'static [&'static str] {
    &shipped().synsets
}

/// The shipped human-readable name of an ImageNet synset.
pub(super) fn human_name(synset: &str) -> Option<&'static str> {
    shipped().names.get(synset).copied()
}

/// Where the validation labels come from, paths already resolved.
pub(super) enum LabelSource {
    Shipped,
    Synsets(PathBuf),
    Devkit { ground_truth: PathBuf, id_to_synset: PathBuf },
}

/// Reads a flat ILSVRC2012 validation folder and its labels; `subset` allows images to be absent.
pub(super) fn load_val(root: PathBuf, labels: LabelSource, subset: bool) -> Result<Dataset, DatasetError> {
    check_dir(&root, "dataset.root")?;
    // Labels first: they are small, and a bad labels file should not wait on a slow directory listing.
    let (val_labels, source): (std::borrow::Cow<'static, [usize]>, String) = match &labels {
        LabelSource::Shipped => (shipped().val_labels.as_slice().into(), "shipped val_synsets.txt".to_string()),
        LabelSource::Synsets(path) => (read_val_synsets(path)?.into(), path.display().to_string()),
        LabelSource::Devkit { ground_truth, id_to_synset } => (
            read_devkit_labels(ground_truth, id_to_synset)?.into(),
            format!("{} with {}", ground_truth.display(), id_to_synset.display()),
        ),
    };
    let mut present = vec![false; NUM_VAL];
    for entry in visible_entries(&root, "dataset.root")? {
        let name = entry.file_name();
        let path = entry.path();
        let meta =
            std::fs::metadata(&path).map_err(|error| DatasetError::Io { path: path.clone(), field: "image", error })?;
        if meta.is_dir() {
            let hint = ": a folder; if the images are sorted into class folders, use `kind: image-folder` with \
                        `classes: imagenet`";
            return Err(DatasetError::NotValImage { path, hint });
        }
        let number =
            name.to_str().and_then(val_number).ok_or(DatasetError::NotValImage { path: path.clone(), hint: "" })?;
        if !(1..=NUM_VAL as u64).contains(&number) {
            return Err(DatasetError::ValNumber { path, number });
        }
        present[number as usize - 1] = true;
    }
    let missing: Vec<String> = (1..=NUM_VAL).filter(|&n| !present[n - 1]).map(val_name).collect();
    if missing.len() == NUM_VAL {
        return Err(DatasetError::NoImages { path: root });
    }
    if !subset && !missing.is_empty() {
        return Err(DatasetError::MissingValImages { path: root, count: missing.len(), first: first_few(&missing) });
    }
    let samples: Vec<Sample> = (1..=NUM_VAL)
        .filter(|&n| present[n - 1])
        .map(|n| {
            let id = val_name(n);
            Sample::file(id.clone(), root.join(&id), val_labels[n - 1])
        })
        .collect();
    let description =
        format!("ImageNet val {} ({} of {NUM_VAL} images, labels from {source})", root.display(), samples.len());
    let classes = synsets().iter().map(|s| s.to_string()).collect();
    Ok(Dataset { description, root, classes, samples })
}

/// `ILSVRC2012_val_00000001.JPEG` → 1; None for any other name.
fn val_number(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("ILSVRC2012_val_")?.strip_suffix(".JPEG")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn val_name(number: usize) -> String {
    format!("ILSVRC2012_val_{number:08}.JPEG")
}

/// A 50,000-line file, line i the synset of validation image i, as class indexes.
fn read_val_synsets(path: &Path) -> Result<Vec<usize>, DatasetError> {
    let field = "dataset.labels.synsets";
    let text = read_text(path, field)?;
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() != NUM_VAL {
        return Err(DatasetError::LineCount { path: path.to_path_buf(), field, found: lines.len(), expected: NUM_VAL });
    }
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let synset = line.trim();
            shipped().index.get(synset).copied().ok_or_else(|| DatasetError::UnknownSynset {
                path: path.to_path_buf(),
                line: i + 1,
                synset: synset.to_string(),
            })
        })
        .collect()
}

/// The devkit's ground truth (one ILSVRC2012_ID per image) mapped through an id → synset table to sorted
/// class indexes. The ids are not sorted-synset positions, so id − 1 is never a class index.
fn read_devkit_labels(ground_truth: &Path, id_to_synset: &Path) -> Result<Vec<usize>, DatasetError> {
    let table = read_id_table(id_to_synset, "dataset.labels.id_to_synset", Some(NUM_CLASSES))?;
    let mut class_of_id = Vec::with_capacity(table.len());
    for entry in &table {
        let class = shipped().index.get(entry.synset.as_str()).ok_or_else(|| DatasetError::UnknownSynset {
            path: id_to_synset.to_path_buf(),
            line: entry.line,
            synset: entry.synset.clone(),
        })?;
        class_of_id.push(*class);
    }
    let field = "dataset.labels.ground_truth";
    let text = read_text(ground_truth, field)?;
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() != NUM_VAL {
        return Err(DatasetError::LineCount {
            path: ground_truth.to_path_buf(),
            field,
            found: lines.len(),
            expected: NUM_VAL,
        });
    }
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let value = line.trim();
            let id: usize = value.parse().map_err(|_| DatasetError::NotAnInteger {
                path: ground_truth.to_path_buf(),
                line: i + 1,
                field: "ILSVRC2012_ID",
                value: value.to_string(),
            })?;
            if !(1..=NUM_CLASSES).contains(&id) {
                let path = ground_truth.to_path_buf();
                return Err(DatasetError::IdOutOfRange {
                    path,
                    line: i + 1,
                    field: "ILSVRC2012_ID",
                    value: id,
                    max: 1000,
                });
            }
            Ok(class_of_id[id - 1])
        })
        .collect()
}

/// One row of an id → synset table.
pub(super) struct IdEntry {
    pub synset: String,
    /// 1-based line in the table file.
    pub line: usize,
}

/// Reads an ILSVRC2012_ID → synset table (lines `<id> <synset> [name...]` or `<synset> <id> [name...]`, as in
/// map_clsloc.txt); entry i is id i + 1. Ids must be exactly 1..=max (or 1..=the largest id when `max` is None),
/// each once, and no synset may appear twice.
pub(super) fn read_id_table(
    path: &Path,
    field: &'static str,
    max: Option<usize>,
) -> Result<Vec<IdEntry>, DatasetError> {
    let text = read_text(path, field)?;
    let mut by_id: HashMap<usize, IdEntry> = HashMap::new();
    let mut synset_lines: HashMap<String, usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let tokens: Vec<&str> = raw.split_whitespace().collect();
        if tokens.is_empty() {
            // Rows are keyed by id, not position, so blank lines cannot shift anything.
            continue;
        }
        let parsed = match tokens.as_slice() {
            [first, second, ..] => match (first.parse::<usize>(), second.parse::<usize>()) {
                (Ok(id), _) => Some((id, *second)),
                (Err(_), Ok(id)) => Some((id, *first)),
                _ => None,
            },
            _ => None,
        };
        let Some((id, synset)) = parsed else {
            let reason =
                format!("expected `<id> <synset> [name...]` or `<synset> <id> [name...]`, found `{}`", raw.trim());
            return Err(DatasetError::Malformed { path: path.to_path_buf(), line, reason });
        };
        match max {
            Some(max) if id == 0 || id > max => {
                return Err(DatasetError::IdOutOfRange { path: path.to_path_buf(), line, field: "id", value: id, max })
            }
            None if id == 0 => {
                let reason = "id 0: ILSVRC2012_IDs start at 1".to_string();
                return Err(DatasetError::Malformed { path: path.to_path_buf(), line, reason });
            }
            _ => {}
        }
        if let Some(first) = by_id.get(&id) {
            let (path, first_line, value) = (path.to_path_buf(), first.line, id.to_string());
            return Err(DatasetError::Duplicate { path, line, first_line, field: "id", value });
        }
        if let Some(&first_line) = synset_lines.get(synset) {
            let (path, value) = (path.to_path_buf(), synset.to_string());
            return Err(DatasetError::Duplicate { path, line, first_line, field: "synset", value });
        }
        synset_lines.insert(synset.to_string(), line);
        by_id.insert(id, IdEntry { synset: synset.to_string(), line });
    }
    if by_id.is_empty() {
        return Err(DatasetError::Empty { path: path.to_path_buf(), field });
    }
    let max = max.unwrap_or_else(|| by_id.keys().copied().max().unwrap_or(0));
    let missing: Vec<usize> = (1..=max).filter(|id| !by_id.contains_key(id)).collect();
    if !missing.is_empty() {
        return Err(DatasetError::MissingIds {
            path: path.to_path_buf(),
            count: missing.len(),
            first: first_few(&missing),
            max,
        });
    }
    let mut entries: Vec<(usize, IdEntry)> = by_id.into_iter().collect();
    entries.sort_by_key(|(id, _)| *id);
    Ok(entries.into_iter().map(|(_, entry)| entry).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_tables_are_consistent() {
        let shipped = shipped();
        assert_eq!(shipped.synsets.len(), NUM_CLASSES);
        assert!(shipped.synsets.windows(2).all(|w| w[0] < w[1]), "synsets.txt must be sorted");
        assert_eq!(shipped.names.len(), NUM_CLASSES);
        assert!(shipped.synsets.iter().all(|s| shipped.names.contains_key(s)));
        assert_eq!(shipped.val_labels.len(), NUM_VAL);
        // Every class has 50 validation images.
        let mut counts = vec![0; NUM_CLASSES];
        shipped.val_labels.iter().for_each(|&l| counts[l] += 1);
        assert!(counts.iter().all(|&c| c == 50));
        assert_eq!(human_name("n01440764"), Some("tench, Tinca tinca"));
    }

    /// real.json's index order is the sorted-synset order: every list holds class indices, and
    /// on images whose list is not empty the original label is usually one of them (the paper:
    /// ReaL keeps the original label for most images); with any other order it almost never is.
    #[test]
    fn real_lists_use_the_sorted_synset_order() {
        let real = real();
        assert_eq!(real.len(), NUM_VAL);
        assert!(real.iter().flatten().all(|&c| (c as usize) < NUM_CLASSES));
        let empty = real.iter().filter(|l| l.is_empty()).count();
        assert_eq!(empty, 3163, "ReaL leaves out 3,163 of the 50,000 images");
        let labelled: Vec<usize> = (0..NUM_VAL).filter(|&i| !real[i].is_empty()).collect();
        let agree = labelled.iter().filter(|&&i| real[i].contains(&(shipped().val_labels[i] as u32))).count();
        // Known images (entry i is ILSVRC2012_val_{i+1:08}), by synset in the shipped tables:
        // image 2 is n09193705 (alp) and ReaL adds 795 (ski); image 3 is n02105855 (Shetland
        // sheepdog) and ReaL adds 231 (collie); image 8 is n02776631 (bakery) and ReaL relabels
        // it 700 (paper towel) alone; image 1 is left out.
        for (number, synset, list) in [
            (2, "n09193705", vec![970, 795]),
            (3, "n02105855", vec![230, 231]),
            (5, "n03125729", vec![516, 850]),
            (8, "n02776631", vec![700]),
        ] {
            let class = shipped().index[synset];
            assert_eq!(shipped().val_labels[number - 1], class, "val_synsets.txt line {number}");
            assert_eq!(real[number - 1], list, "real.json entry {}", number - 1);
        }
        assert_eq!(shipped().index["n02776631"], 415);
        assert_eq!(real[0], Vec::<u32>::new(), "image 1 is not in ReaL");
        // 42,164 of the 46,837 lists hold the original label (90%); a shuffled class order
        // gives almost none.
        assert_eq!(agree, 42_164);
    }

    #[test]
    fn val_names_parse_strictly() {
        assert_eq!(val_number("ILSVRC2012_val_00000001.JPEG"), Some(1));
        assert_eq!(val_number("ILSVRC2012_val_00050000.JPEG"), Some(50_000));
        assert_eq!(val_number("ILSVRC2012_val_00000001.jpeg"), None);
        assert_eq!(val_number("ILSVRC2012_val_0000001.JPEG"), None);
        assert_eq!(val_number("ILSVRC2012_val_+0000001.JPEG"), None);
        assert_eq!(val_name(42), "ILSVRC2012_val_00000042.JPEG");
    }
}
