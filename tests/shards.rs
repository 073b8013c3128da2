//! Sharded runs end to end, as processes over one store: shards running at the same time give
//! the single run's table and stored bytes after the merge; a shard killed with SIGKILL resumes;
//! a part written twice has the same bytes; a merge missing a part names the shard to rerun; and
//! results of another device or precision are stored apart.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{fixture_image_folder, narrow_experiment};
use resnet_audit::device::DeviceKind;
use resnet_audit::eval::{record_placement, COMPUTE_DTYPE};
use resnet_audit::store::StoreKey;

/// An experiment over `copies` of each fixture image (class per folder), the narrow fixture
/// ResNet-50, two chunks per image copy set so that every result has many chunks.
struct Setup {
    dir: tempfile::TempDir,
}

const PROTOCOLS: &str = "  - {id: center, kind: center-crop, resize: {shorter-side: 72}, crop: 64}\n  \
    - {id: ten, kind: ten-crop, resize: {shorter-side: 72}, crop: 64}\n  \
    - {id: both, kind: ensemble, members: [{model: narrow, protocol: center}, {model: narrow-v1, protocol: center}]}\n";

/// Slow enough per chunk that a shard can be killed between two chunks.
const SLOW_PROTOCOLS: &str = "  - {id: fcn, kind: fully-convolutional, scales: [224, 288], flips: true}\n";

impl Setup {
    fn new(copies: usize, protocols: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        fixture_image_folder(dir.path(), copies);
        let yaml = narrow_experiment("shard test", protocols, "run: {batch_size: 4, chunk_size: 2}\n");
        std::fs::write(dir.path().join("experiment.yaml"), yaml).unwrap();
        Self { dir }
    }

    fn store(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, subcommand: &str, store: &str, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_resnet-audit"));
        command.arg(subcommand).arg(self.dir.path().join("experiment.yaml"));
        command.arg("--store").arg(self.store(store)).args(args);
        // One thread per process: the shards share the machine, as array tasks share a node.
        command.env("RAYON_NUM_THREADS", "1");
        command
    }

    fn eval(&self, store: &str, args: &[&str]) -> Output {
        self.command("eval", store, args).output().unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn success(output: &Output) -> String {
    assert!(output.status.success(), "the run failed:\n{}", text(&output.stderr));
    text(&output.stdout)
}

/// Every file under `dir` whose path contains `needle`, relative to `dir`, sorted.
fn files(dir: &Path, needle: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, &mut found);
    let mut relative: Vec<PathBuf> = found
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(needle))
        .map(|p| p.strip_prefix(dir).unwrap().to_path_buf())
        .collect();
    relative.sort();
    relative
}

/// The complete results' bytes (`<model>/<protocol>-<hash>.parquet`), by relative path.
fn final_results(store: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    files(store, ".parquet")
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains(".parts-") && !p.starts_with("set-aside"))
        .map(|p| {
            let bytes = std::fs::read(store.join(&p)).unwrap();
            (p, bytes)
        })
        .collect()
}

fn assert_same_results(a: &Path, b: &Path) {
    let (a, b) = (final_results(a), final_results(b));
    assert!(!a.is_empty(), "no stored results");
    assert_eq!(
        a.iter().map(|r| &r.0).collect::<Vec<_>>(),
        b.iter().map(|r| &r.0).collect::<Vec<_>>(),
        "same file names"
    );
    for ((path, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "{} differs between the single run and the merge", path.display());
    }
}

fn run_shards_concurrently(setup: &Setup, store: &str, shards: &[usize], count: usize) {
    let children: Vec<_> = shards
        .iter()
        .map(|k| {
            let shard = format!("{k}/{count}");
            setup
                .command("eval", store, &["--shard", &shard])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        success(&child.wait_with_output().unwrap());
    }
}

#[test]
fn shards_in_parallel_processes_give_the_single_run_result() {
    let setup = Setup::new(3, PROTOCOLS);
    let single = success(&setup.eval("single", &[]));
    run_shards_concurrently(&setup, "sharded", &[0, 1, 2], 3);
    assert!(final_results(&setup.store("sharded")).is_empty(), "a shard writes parts only");
    assert!(!files(&setup.store("sharded"), "chunk-").is_empty(), "the shards stored their parts");

    let merge = setup.eval("sharded", &["--no-compute"]);
    let stderr = text(&merge.stderr);
    assert!(!stderr.contains("images in"), "the merge computed something:\n{stderr}");
    assert_eq!(success(&merge), single, "the merge prints the single run's table");
    assert_same_results(&setup.store("single"), &setup.store("sharded"));
    assert!(files(&setup.store("sharded"), ".parts-").is_empty(), "the merge removes the parts");
}

#[test]
fn a_killed_shard_resumes_and_rewrites_identical_parts() {
    let setup = Setup::new(3, SLOW_PROTOCOLS);
    let single = success(&setup.eval("single", &["--model", "narrow"]));

    let mut child = setup
        .command("eval", "sharded", &["--model", "narrow", "--shard", "0/2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Stored parts only, not the temporary file of a part being written.
    let parts = || {
        files(&setup.store("sharded"), "/chunk-")
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .count()
    };
    let start = Instant::now();
    while parts() < 1 && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let before = parts();
    assert!(before >= 1, "no part was stored before the kill");
    assert!(before < 6, "shard 0/2 finished its 6 chunks before the kill: make it longer");

    let resumed = setup.command("eval", "sharded", &["--model", "narrow", "--shard", "0/2"]).output().unwrap();
    success(&resumed);
    assert!(text(&resumed.stderr).contains("resuming"), "{}", text(&resumed.stderr));
    // A part written again (a preempted shard rerun after it had stored it) has the same bytes.
    let part = files(&setup.store("sharded"), "chunk-000000.parquet").remove(0);
    let first = std::fs::read(setup.store("sharded").join(&part)).unwrap();
    std::fs::remove_file(setup.store("sharded").join(&part)).unwrap();
    success(&setup.command("eval", "sharded", &["--model", "narrow", "--shard", "0/2"]).output().unwrap());
    assert!(std::fs::read(setup.store("sharded").join(&part)).unwrap() == first, "a part written twice differs");

    success(&setup.command("eval", "sharded", &["--model", "narrow", "--shard", "1/2"]).output().unwrap());
    assert_eq!(success(&setup.eval("sharded", &["--model", "narrow", "--no-compute"])), single);
    assert_same_results(&setup.store("single"), &setup.store("sharded"));
}

#[test]
fn a_missing_shard_is_named_at_merge_and_status_counts_chunks() {
    let setup = Setup::new(3, PROTOCOLS);
    let single = success(&setup.eval("single", &[]));
    run_shards_concurrently(&setup, "sharded", &[0, 2], 3);

    let status = success(&setup.command("status", "sharded", &[]).output().unwrap());
    // 21 images in chunks of 2: 11 chunks; shards 0 and 2 own 4 + 3 of them.
    assert!(status.contains("narrow/center: 7/11 chunks stored"), "{status}");

    let merge = setup.eval("sharded", &["--no-compute"]);
    assert!(!merge.status.success(), "a merge with a shard missing must fail");
    let stderr = text(&merge.stderr);
    assert!(stderr.contains("rerun --shard 1/3"), "the missing shard is named:\n{stderr}");
    assert!(final_results(&setup.store("sharded")).is_empty(), "nothing complete was written");

    // Without --no-compute the merge computes the missing chunks itself.
    assert_eq!(success(&setup.eval("sharded", &[])), single);
    assert_same_results(&setup.store("single"), &setup.store("sharded"));
    let status = success(&setup.command("status", "sharded", &[]).output().unwrap());
    assert!(status.contains("narrow/center: 11/11 chunks stored"), "{status}");
}

#[test]
fn an_audit_shard_writes_no_report() {
    let setup = Setup::new(1, PROTOCOLS);
    let out = setup.dir.path().join("report");
    let output = setup.command("audit", "sharded", &["--shard", "0/2", "--out"]).arg(&out).output().unwrap();
    success(&output);
    assert!(!out.join("results.csv").exists() && !out.join("results.parquet").exists(), "a shard writes no report");
    assert!(!files(&setup.store("sharded"), "chunk-").is_empty());
}

#[test]
fn another_device_or_precision_is_stored_apart() {
    let description = serde_json::json!({"weights_sha256": "ab", "protocol": "center"});
    let key = |device, dtype| {
        let mut described = description.clone();
        record_placement(&mut described, device, dtype);
        StoreKey::new("m", "p", &described).hash
    };
    let cpu = key(DeviceKind::Cpu, COMPUTE_DTYPE);
    // CPU f32 keys are those written before device and dtype were recorded: they stay valid.
    assert_eq!(cpu, StoreKey::new("m", "p", &description).hash);
    let cuda = key(DeviceKind::Cuda, COMPUTE_DTYPE);
    let half = key(DeviceKind::Cpu, candle_core::DType::F16);
    assert!(cuda != cpu && half != cpu && cuda != half, "device and precision change the key");
}
