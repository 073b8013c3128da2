//! The store's own guarantees, through its public API: every file is checked against the key and
//! part its name promises (a damaged or misplaced file is set aside, never read as a result), and
//! one process at a time holds a key's lock, a dead holder's lock being taken over.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use polars::prelude::*;
use resnet_audit::dataset::Sample;
use resnet_audit::store::{ImageResult, Lookup, ResultStore, Scored, StoreError, StoreKey, Unusable};

fn result(image: &str, label: u32, best: i64) -> ImageResult {
    let scored = Scored { top5: vec![(best, 0.75), (0, 0.25)], probs: vec![0.25, 0.75, 0.0], unmapped_prob: 0.0 };
    ImageResult { image: image.into(), label, outcome: Ok(scored) }
}

/// Two chunks of one image each.
fn chunks() -> Vec<Vec<ImageResult>> {
    vec![vec![result("a.png", 1, 1)], vec![result("b.png", 2, 1)]]
}

fn samples(results: &[ImageResult]) -> Vec<Sample> {
    results.iter().map(|r| Sample::file(r.image.clone(), PathBuf::from(&r.image), r.label as usize)).collect()
}

fn key(model: &str) -> StoreKey {
    StoreKey::new(model, "center", &serde_json::json!({ "weights": model }))
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// Writes both parts, damages part 1 with `damage`, and returns what `load_parts` reads back.
fn parts_after(damage: impl FnOnce(&Path, &Path)) -> (Vec<(usize, Vec<ImageResult>)>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = ResultStore::new(dir.path());
    let key = key("m");
    for (index, chunk) in chunks().iter().enumerate() {
        store.write_part(&key, 1, index, chunk).unwrap();
    }
    let parts = store.parts_dir(&key, 1);
    damage(&parts.join("chunk-000000.parquet"), &parts.join("chunk-000001.parquet"));
    let expected: Vec<Vec<Sample>> = chunks().iter().map(|c| samples(c)).collect();
    let expected: Vec<&[Sample]> = expected.iter().map(Vec::as_slice).collect();
    let read = store.load_parts(&key, 1, &expected).unwrap();
    (read, dir)
}

#[test]
fn intact_parts_are_read_back() {
    let (read, _dir) = parts_after(|_, _| {});
    assert_eq!(read, chunks().into_iter().enumerate().collect::<Vec<_>>());
}

#[test]
fn a_truncated_part_is_set_aside_and_computed_again() {
    let (read, dir) = parts_after(|_, second| {
        let bytes = std::fs::read(second).unwrap();
        std::fs::write(second, &bytes[..bytes.len() - 10]).unwrap();
    });
    assert_eq!(read, vec![(0, chunks()[0].clone())], "only the intact part is read");
    let aside = files_under(&dir.path().join("set-aside"));
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(aside[0].to_string_lossy().contains("chunk-000001.parquet.set-aside-"), "{aside:?}");
}

#[test]
fn a_part_copied_to_another_index_is_set_aside() {
    // Its metadata names part 0 (and its rows are part 0's images).
    let (read, dir) = parts_after(|first, second| {
        std::fs::copy(first, second).unwrap();
    });
    assert_eq!(read.len(), 1, "part 0's file under part 1's name is not read as part 1");
    assert_eq!(files_under(&dir.path().join("set-aside")).len(), 1);
}

#[test]
fn a_result_copied_over_another_keys_file_is_unusable() {
    let dir = tempfile::tempdir().unwrap();
    let store = ResultStore::new(dir.path());
    let all: Vec<ImageResult> = chunks().concat();
    store.finish(&key("a"), &all, &serde_json::json!({})).unwrap();
    std::fs::create_dir_all(store.final_path(&key("b")).parent().unwrap()).unwrap();
    std::fs::copy(store.final_path(&key("a")), store.final_path(&key("b"))).unwrap();
    match store.load(&key("b"), Some(&samples(&all))).unwrap() {
        Lookup::Unusable { reason: Unusable::WrongIdentity { field, .. }, .. } => assert_eq!(field, "resnet-audit.key"),
        other => panic!("read as b's result: {other:?}"),
    }
    let error = store.require(&key("b")).unwrap_err();
    assert!(matches!(error, StoreError::Unusable { .. }), "{error}");
    assert!(matches!(store.load(&key("a"), Some(&samples(&all))).unwrap(), Lookup::Found(_)));
}

#[test]
fn a_result_for_other_images_is_unusable() {
    let dir = tempfile::tempdir().unwrap();
    let store = ResultStore::new(dir.path());
    let all: Vec<ImageResult> = chunks().concat();
    store.finish(&key("a"), &all, &serde_json::json!({})).unwrap();
    let fewer = samples(&all[..1]);
    assert!(matches!(
        store.load(&key("a"), Some(&fewer)).unwrap(),
        Lookup::Unusable { reason: Unusable::OtherImages, .. }
    ));
}

/// A file written before store files carried metadata: the same columns, no key.
#[test]
fn a_file_without_metadata_is_read_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let store = ResultStore::new(dir.path());
    let all: Vec<ImageResult> = chunks().concat();
    let path = store.finish(&key("a"), &all, &serde_json::json!({})).unwrap();
    let mut frame = ParquetReader::new(std::fs::File::open(&path).unwrap()).finish().unwrap();
    ParquetWriter::new(std::fs::File::create(&path).unwrap()).finish(&mut frame).unwrap();
    match store.load(&key("a"), Some(&samples(&all))).unwrap() {
        Lookup::Found(results) => assert_eq!(results, all),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_second_holder_waits_until_the_lock_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let store = ResultStore::new(dir.path());
    let held = store.lock(&key("m")).unwrap();
    let lock_file = store.lock_path(&key("m"));
    let text = std::fs::read_to_string(&lock_file).unwrap();
    assert_eq!(text.trim(), format!("host {} pid {}", resnet_audit::fsio::host_name(), std::process::id()));

    let acquired = Arc::new(AtomicBool::new(false));
    let waiter = {
        let (store, acquired) = (store.clone(), acquired.clone());
        std::thread::spawn(move || {
            let lock = store.lock(&key("m")).unwrap();
            acquired.store(true, Ordering::SeqCst);
            drop(lock);
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(!acquired.load(Ordering::SeqCst), "the lock was taken twice");
    drop(held);
    waiter.join().unwrap();
    assert!(acquired.load(Ordering::SeqCst));
    assert!(!lock_file.exists(), "a released lock leaves no file");
}

#[test]
fn a_lock_file_of_a_dead_process_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let store = ResultStore::new(dir.path());
    let lock_file = store.lock_path(&key("m"));
    std::fs::create_dir_all(lock_file.parent().unwrap()).unwrap();
    let mut ended = std::process::Command::new("true").spawn().unwrap();
    ended.wait().unwrap();
    std::fs::write(&lock_file, format!("host {} pid {}\n", resnet_audit::fsio::host_name(), ended.id())).unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    let taker = {
        let store = store.clone();
        std::thread::spawn(move || {
            let lock = store.lock(&key("m")).unwrap();
            done.send(()).unwrap();
            drop(lock);
        })
    };
    finished.recv_timeout(Duration::from_secs(10)).expect("the dead holder's lock is taken over, not waited for");
    taker.join().unwrap();
}
