//! A seeded mutation fuzzer for every reader of untrusted bytes, on the stable toolchain (cargo
//! afl and cargo fuzz need nightly's sanitizer flags or extra crates): the committed fixtures are
//! the seed corpus; each execution stacks one to four mutations (bit flips, interesting values,
//! truncation, insertion of random bytes or of format tokens, deletion, duplication, splicing
//! with another seed) and feeds the result to the reader, which must return (Ok or an error),
//! never panic, abort or allocate without bound.
//!
//! `make test` runs a short deterministic pass (FUZZ_ITERATIONS per target, default below);
//! `make fuzz` a long one. Environment: FUZZ_ITERATIONS, FUZZ_SEED (default 14), FUZZ_SECONDS
//! (a time cap per target), FUZZ_TARGET (only targets whose name contains it).
//!
//! A panic is caught and its input saved under target/fuzz/crashes/; an abort (C code, stack
//! overflow, an allocation over [`LARGEST_ALLOCATION`]) kills the process, and the input is the
//! file the target was reading, target/fuzz/<target>/ (printed before each run). Every crash
//! found becomes a regression input under fixtures/fuzz/<target>/, read by
//! `committed_crash_inputs_are_read_without_a_crash` and added to the seeds.
//!
//! A new reader (Torch7, pickle) is one more entry in [`targets`]: a name, its seed files, format
//! tokens, and a function from a file path to `Ok`/`Err`.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::fixture;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use resnet_audit::import::caffe::{read_mean, CaffeModel};
use resnet_audit::decode::decode_rgb_within;
use resnet_audit::experiment::LoadedExperiment;
use resnet_audit::protocol::views::prepare_within;
use resnet_audit::protocol::ProtocolEntry;
use resnet_audit::transform::{InputSpec, Normalizer};
use resnet_audit::weights::WeightsFile;

/// A single allocation above this aborts (the allocator returns null): no reader may ask for
/// memory in proportion to a number it read rather than to the bytes it was given.
const LARGEST_ALLOCATION: usize = 1 << 30;
/// Most bytes live at once during one execution (Rust allocations; libjpeg's C buffers are not
/// counted). Inputs are at most a few MB; a reader holding more than this amplifies its input.
const MEMORY_BUDGET: usize = 512 << 20;
/// The image reader's pixel limit under fuzzing: a mutated header may claim up to this many
/// pixels (4 M, 12 MB of RGB), which keeps each execution short.
const FUZZ_MAX_PIXELS: u64 = 1 << 22;
const DEFAULT_ITERATIONS: usize = 400;
const DEFAULT_SEED: u64 = 14;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting live bytes and their peak, refusing oversized requests.
struct Counting;

impl Counting {
    fn grew(size: usize) {
        let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }
}

// SAFETY: every call forwards to `System` with the caller's layout; the counters are only statistics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > LARGEST_ALLOCATION {
            return std::ptr::null_mut();
        }
        let ptr = System.alloc(layout);
        if !ptr.is_null() {
            Self::grew(layout.size());
        }
        ptr
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > LARGEST_ALLOCATION {
            return std::ptr::null_mut();
        }
        let ptr = System.alloc_zeroed(layout);
        if !ptr.is_null() {
            Self::grew(layout.size());
        }
        ptr
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > LARGEST_ALLOCATION {
            return std::ptr::null_mut();
        }
        let moved = System.realloc(ptr, layout, new_size);
        if !moved.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            Self::grew(new_size);
        }
        moved
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One execution at a time: the memory counters are process-wide, and so is the panic hook.
static EXCLUSIVE: Mutex<()> = Mutex::new(());

/// The last panic's message and location, recorded by a hook that prints nothing (libjpeg's
/// errors unwind as panics that the decoder catches; thousands of them would flood the output).
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = format!("{message}{location}");
    }));
}

/// A reader under test: its input is a file (the readers take paths, as the CLI does).
struct Target {
    name: &'static str,
    seeds: Vec<PathBuf>,
    /// Fragments of the format that random bytes rarely produce.
    tokens: &'static [&'static [u8]],
    /// Where the input goes, relative to the target's scratch folder (YAML needs its imports beside it).
    file_name: &'static str,
    read: fn(&Path) -> Result<(), String>,
}

fn read_image(path: &Path) -> Result<(), String> {
    let image = decode_rgb_within(path, FUZZ_MAX_PIXELS).map_err(|e| e.to_string())?;
    // The decoded image through resizing, cropping and normalising, at every output shape rule.
    let normalizer = Normalizer::new(&InputSpec::torchvision(), Path::new(".")).map_err(|e| e.to_string())?;
    for yaml in [
        "{id: c, kind: center-crop, resize: {shorter-side: 36}, crop: 32}",
        "{id: t, kind: ten-crop, resize: {shorter-side: 40}, crop: 32, region: central-square, antialias: false}",
        "{id: f, kind: fully-convolutional, scales: [24, 40], flips: true, interpolation: bicubic}",
    ] {
        let entry: ProtocolEntry = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
        // An image too small for a crop is an error like any other.
        let _ = prepare_within(&entry.spec, &image, &normalizer, FUZZ_MAX_PIXELS);
    }
    Ok(())
}

fn read_safetensors(path: &Path) -> Result<(), String> {
    WeightsFile::read(path).map(drop).map_err(|e| e.to_string())
}

fn read_caffemodel(path: &Path) -> Result<(), String> {
    CaffeModel::read(path).map(drop).map_err(|e| e.to_string())
}

fn read_caffe_mean(path: &Path) -> Result<(), String> {
    read_mean(path).map(drop).map_err(|e| e.to_string())
}

fn read_experiment(path: &Path) -> Result<(), String> {
    LoadedExperiment::read(path).map(drop).map_err(|e| e.to_string())
}

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn targets() -> Vec<Target> {
    let images = ["landscape_320x240", "cmyk_160x120", "gray_180x120", "progressive_257x193", "tiny_48x36"];
    vec![
        Target {
            name: "image",
            seeds: images
                .iter()
                .map(|n| fixture(&format!("images/{n}.JPEG")))
                .chain([fixture("images/png_named_150x150.JPEG")])
                .collect(),
            tokens: &[
                b"\xFF\xD8",
                b"\xFF\xD9",
                b"\xFF\xDA",
                b"\xFF\xC0",
                b"\xFF\xC2",
                b"\xFF\xC4",
                b"\xFF\xDB",
                b"\xFF\xDD",
                b"IHDR",
                b"IDAT",
                b"IEND",
                b"\xFF\xFF",
            ],
            file_name: "input.img",
            read: read_image,
        },
        Target {
            name: "safetensors",
            seeds: [
                "resnet18_w8_bf16.expected",
                "cifar_resnet20_a.expected",
                "resnet18_w8.expected",
                "resnet50_w8.expected",
                "mean_image_64",
            ]
            .iter()
            .map(|n| fixture(&format!("parity/{n}.safetensors")))
            .collect(),
            tokens: &[
                b"\"dtype\":",
                b"\"shape\":[",
                b"\"data_offsets\":[",
                b"\"__metadata__\":{",
                b"\"F32\"",
                b"\"BF16\"",
                b"\"I64\"",
                b"18446744073709551615",
                b"4294967296",
                b"-1",
                b"[]",
                b"{}",
            ],
            file_name: "input.safetensors",
            read: read_safetensors,
        },
        Target {
            name: "caffemodel",
            seeds: vec![fixture("parity/caffe_r101_w4.caffemodel")],
            tokens: &[
                b"\x0a\x00",
                b"\xff\xff\xff\xff\x0f",
                b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",
                b"res2a_branch2a",
                b"BatchNorm",
                b"Scale",
                b"fc1000",
                b"\x3a\x04\x08\x01\x08\x01",
            ],
            file_name: "input.caffemodel",
            read: read_caffemodel,
        },
        Target {
            name: "caffe-mean",
            seeds: vec![fixture("parity/caffe_mean_64.binaryproto")],
            tokens: &[
                b"\x08\x01",
                b"\x10\x03",
                b"\xff\xff\xff\xff\x0f",
                b"\x2a\x00",
                b"\x3a\x08\x0a\x06\x01\x03\x40\x40",
            ],
            file_name: "input.binaryproto",
            read: read_caffe_mean,
        },
        Target {
            name: "experiment-yaml",
            seeds: [
                "demo.yaml",
                "torchvision.yaml",
                "resnet-caffe-released.yaml",
                "cifar10-table6.yaml",
                "examples/fixtures.yaml",
            ]
            .iter()
            .map(|n| repo(&format!("experiments/{n}")))
            .collect(),
            tokens: &[
                b"&a ",
                b"*a",
                b"<<: *a",
                b"imports: [",
                b"${IMAGENET_VAL}",
                b"- ",
                b": ",
                b"{",
                b"[",
                b"!!binary ",
                b"~",
                b"\n  ",
                b"kind: ensemble",
                b"members:",
                b"scales: [",
                b"shared/imagenet.yaml",
                b"/dev/zero",
                b"/dev/",
                b"..",
            ],
            file_name: "experiments/input.yaml",
            read: read_experiment,
        },
    ]
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Applies one to four random mutations to `input`.
fn mutate(rng: &mut ChaCha8Rng, input: &mut Vec<u8>, seeds: &[Vec<u8>], tokens: &[&[u8]]) {
    const INTERESTING: [u8; 8] = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0xFE, 0x40, 0x20];
    for _ in 0..rng.random_range(1..=4) {
        // Half the positions in the first 512 bytes, where headers and lengths are.
        let len = input.len();
        let at = |rng: &mut ChaCha8Rng, end: usize| -> usize {
            if end == 0 {
                0
            } else if rng.random_bool(0.5) {
                rng.random_range(0..end.min(512))
            } else {
                rng.random_range(0..end)
            }
        };
        match rng.random_range(0..9) {
            0 if len > 0 => {
                let i = at(rng, len);
                input[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = at(rng, len);
                input[i] = INTERESTING[rng.random_range(0..INTERESTING.len())];
            }
            2 if len > 0 => input.truncate(at(rng, len)),
            3 => {
                let i = at(rng, len + 1);
                let count = rng.random_range(1..=16);
                let bytes: Vec<u8> = (0..count).map(|_| rng.random()).collect();
                input.splice(i..i, bytes);
            }
            4 => {
                let i = at(rng, len + 1);
                let token = tokens[rng.random_range(0..tokens.len())];
                input.splice(i..i, token.iter().copied());
            }
            5 if len > 0 => {
                let i = at(rng, len);
                let end = (i + rng.random_range(1..=64)).min(len);
                input.drain(i..end);
            }
            6 if len > 0 => {
                let i = at(rng, len);
                let end = (i + rng.random_range(1..=64)).min(len);
                let chunk = input[i..end].to_vec();
                let to = at(rng, len + 1);
                input.splice(to..to, chunk);
            }
            7 if len > 0 => {
                // Another seed's tail after this input's head.
                let other = &seeds[rng.random_range(0..seeds.len())];
                let head = at(rng, len);
                let tail = if other.is_empty() { 0 } else { rng.random_range(0..other.len()) };
                input.truncate(head);
                input.extend_from_slice(&other[tail..]);
            }
            8 if len >= 4 => {
                // A length or dimension field set to an extreme (either byte order).
                let i = at(rng, len - 3);
                let value: [u8; 4] = match rng.random_range(0..4) {
                    0 => [0xFF; 4],
                    1 => [0x7F, 0xFF, 0xFF, 0xFF],
                    2 => [0, 0, 0, 0],
                    _ => [0xFF, 0xFF, 0, 0],
                };
                let width = rng.random_range(2..=4);
                input[i..i + width].copy_from_slice(&value[..width]);
            }
            _ => {}
        }
    }
}

/// The target's scratch folder (YAML's imports copied beside the input) and its input file.
fn scratch(target: &Target) -> PathBuf {
    let dir = repo("target/fuzz").join(target.name);
    let input = dir.join(target.file_name);
    std::fs::create_dir_all(input.parent().expect("input has a folder")).unwrap();
    if target.name == "experiment-yaml" {
        let shared = input.parent().expect("input has a folder").join("shared");
        std::fs::create_dir_all(&shared).unwrap();
        for entry in std::fs::read_dir(repo("experiments/shared")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), shared.join(entry.file_name())).unwrap();
        }
    }
    input
}

enum Finding {
    Panic(String),
    Memory(usize),
}

/// Reads `bytes` through the target: whether it read without error, or what went wrong.
fn execute(target: &Target, input: &Path, bytes: &[u8]) -> Result<bool, Finding> {
    std::fs::write(input, bytes).unwrap();
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let outcome = catch_unwind(AssertUnwindSafe(|| (target.read)(input)));
    let used = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    match outcome {
        Err(_) => Err(Finding::Panic(LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()).clone())),
        Ok(_) if used > MEMORY_BUDGET => Err(Finding::Memory(used)),
        Ok(read) => Ok(read.is_ok()),
    }
}

fn save_crash(target: &Target, bytes: &[u8]) -> PathBuf {
    use sha2::Digest;
    let dir = repo("target/fuzz/crashes").join(target.name);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{:.16x}.bin", sha2::Sha256::digest(bytes)));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Regression inputs committed for a target (crashes found earlier, now fixed).
fn committed_inputs(target: &Target) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixture(&format!("fuzz/{}", target.name)))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn fuzz(name: &str) {
    let only = std::env::var("FUZZ_TARGET").unwrap_or_default();
    if !name.contains(&only) {
        println!("{name}: skipped (FUZZ_TARGET={only})");
        return;
    }
    let _exclusive = EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner());
    quiet_panics();
    let target = targets().into_iter().find(|t| t.name == name).expect("a listed target");
    let iterations: usize = env_or("FUZZ_ITERATIONS", DEFAULT_ITERATIONS);
    let seed: u64 = env_or("FUZZ_SEED", DEFAULT_SEED);
    let time_cap = std::env::var("FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).map(Duration::from_secs_f64);
    let seeds: Vec<Vec<u8>> = target
        .seeds
        .iter()
        .chain(&committed_inputs(&target))
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("seed {}: {e}", p.display())))
        .collect();
    let input = scratch(&target);
    println!("{name}: seed {seed}, {iterations} executions; on an abort the input is {}", input.display());

    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ name.bytes().fold(0u64, |h, b| h.wrapping_mul(31) ^ b as u64));
    let started = Instant::now();
    let (mut executions, mut accepted) = (0usize, 0usize);
    let mut findings = Vec::new();
    // The unmutated seeds first: they must read without a finding too.
    let mut queue: Vec<Vec<u8>> = seeds.clone();
    while executions < iterations + seeds.len() && time_cap.is_none_or(|cap| started.elapsed() < cap) {
        let bytes = queue.pop().unwrap_or_else(|| {
            let mut bytes = seeds[rng.random_range(0..seeds.len())].clone();
            mutate(&mut rng, &mut bytes, &seeds, target.tokens);
            bytes
        });
        executions += 1;
        match execute(&target, &input, &bytes) {
            Ok(read) => accepted += usize::from(read),
            Err(finding) => {
                let saved = save_crash(&target, &bytes);
                let what = match finding {
                    Finding::Panic(message) => format!("panic: {message}"),
                    Finding::Memory(used) => format!("{} MB live at once", used >> 20),
                };
                findings.push(format!("{what} (input saved as {})", saved.display()));
            }
        }
    }
    println!(
        "{name}: {executions} executions in {:.1} s, {accepted} read without error, {} crash(es)",
        started.elapsed().as_secs_f64(),
        findings.len()
    );
    assert!(findings.is_empty(), "{name}: {} finding(s):\n{}", findings.len(), findings.join("\n"));
}

#[test]
fn fuzz_image_decode_and_views() {
    fuzz("image");
}

#[test]
fn fuzz_safetensors_header() {
    fuzz("safetensors");
}

#[test]
fn fuzz_caffemodel() {
    fuzz("caffemodel");
}

#[test]
fn fuzz_caffe_mean() {
    fuzz("caffe-mean");
}

#[test]
fn fuzz_experiment_yaml() {
    fuzz("experiment-yaml");
}

#[test]
fn committed_crash_inputs_are_read_without_a_crash() {
    let _exclusive = EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner());
    quiet_panics();
    let mut checked = 0;
    for target in targets() {
        let input = scratch(&target);
        for file in committed_inputs(&target) {
            let bytes = std::fs::read(&file).unwrap();
            if let Err(finding) = execute(&target, &input, &bytes) {
                let what = match finding {
                    Finding::Panic(message) => format!("panics: {message}"),
                    Finding::Memory(used) => format!("holds {} MB", used >> 20),
                };
                panic!("{} {what}", file.display());
            }
            checked += 1;
        }
    }
    println!("{checked} committed crash inputs read without a crash");
}
