//! Replays the fuzzers' corpus (`fuzz/corpus/TARGET/`, minimised by
//! `cargo fuzz cmin`) and the inputs of fixed crashes
//! (`fuzz/regressions/TARGET/`) through the same bodies the fuzz targets run
//! (`cgnet_codegen::fuzz`), on the stable toolchain: a front end that starts
//! panicking, hanging or allocating from an untrusted size on any of them
//! fails `cargo test`, without nightly or libFuzzer.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cgnet_codegen::fuzz::{self, ALLOCATION_CAP_BYTES, TARGETS};

/// The system allocator, noting the largest single request of each thread.
struct LargestRequest;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: the thread's slot is gone while the thread shuts down.
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
}

// SAFETY: every call is forwarded to `System` unchanged.
unsafe impl GlobalAlloc for LargestRequest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: LargestRequest = LargestRequest;

/// A hang the fuzzers would report after 1 s; generous here, where tests share the CPU.
const HANG: Duration = Duration::from_secs(20);

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.map(|e| e.expect("a readable folder entry").path()).collect();
    files.sort();
    files
}

fn replay(target: &str) {
    let Some(&(_, body)) = TARGETS.iter().find(|(name, _)| *name == target) else {
        // `cargo test -p cgnet` alone builds cgnet-codegen without its CLI features.
        println!("SKIPPED {target}: cgnet-codegen was built without the `pictures` feature");
        return;
    };
    let corpus = files(&fuzz_dir().join("corpus").join(target));
    assert!(
        corpus.len() >= 10,
        "fuzz/corpus/{target} holds {} inputs; it is committed with the fuzzers' corpus",
        corpus.len()
    );
    let regressions = files(&fuzz_dir().join("regressions").join(target));
    let (mut slowest, mut largest) = (Duration::ZERO, 0);
    for path in corpus.iter().chain(&regressions) {
        let data = std::fs::read(path).expect("a readable corpus file");
        LARGEST.with(|l| l.set(0));
        let started = Instant::now();
        if let Err(panic) = std::panic::catch_unwind(|| body(&data)) {
            let message =
                panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
            panic!("{target} panics on {}: {}", path.display(), message.unwrap_or_default());
        }
        let took = started.elapsed();
        let request = LARGEST.with(Cell::get);
        assert!(took < HANG, "{target} took {took:?} on {}", path.display());
        assert!(
            request <= ALLOCATION_CAP_BYTES,
            "{target} allocated {request} bytes at once on {} (cap {ALLOCATION_CAP_BYTES})",
            path.display()
        );
        slowest = slowest.max(took);
        largest = largest.max(request);
    }
    println!(
        "{target}: {} corpus + {} regression inputs; slowest {slowest:?}; largest allocation {largest} bytes",
        corpus.len(),
        regressions.len()
    );
}

#[test]
fn grammar_corpus() {
    replay("grammar");
}

#[test]
fn spec_json_corpus() {
    replay("spec_json");
}

#[test]
fn weights_corpus() {
    replay("weights");
}

#[test]
fn weights_structured_corpus() {
    replay("weights_structured");
}

#[test]
fn input_tensor_corpus() {
    replay("input_tensor");
}

#[test]
fn picture_corpus() {
    replay("picture");
}

#[test]
fn label_image_corpus() {
    replay("label_image");
}

#[test]
fn every_target_has_a_fuzzer_and_a_replay() {
    let this = std::fs::read_to_string(file!()).expect("this file");
    for (target, _) in TARGETS {
        let source = fuzz_dir().join("fuzz_targets").join(format!("{target}.rs"));
        let text = std::fs::read_to_string(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        assert!(text.contains(&format!("cgnet_codegen::fuzz::{target}(")), "{} calls its body", source.display());
        assert!(this.contains(&format!("replay(\"{target}\")")), "{target} is replayed here");
    }
}

/// Writes the starting corpus: the bundled model and golden specs, valid
/// weight and input files for the fuzz model, small PNGs (the JPEGs of the
/// `picture` corpus came from the fuzzer). Run once before fuzzing a new
/// target: `cargo test --test fuzz_replay -- --ignored`.
#[test]
#[ignore = "writes fuzz/corpus seeds"]
fn write_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).expect("corpus folder");
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("seed file");
    };
    write("grammar", "camvid", &std::fs::read(root.join("models/camvid.cgnet")).expect("bundled model"));
    // The bodies of the `cgnet!` calls of the macro tests, good and bad.
    for path in files(&root.join("tests/ui")).into_iter().chain(files(&root.join("tests/pass"))) {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(body) = macro_body(&text) {
            let name = path.file_stem().expect("a name").to_string_lossy().into_owned();
            write("grammar", &name, body.as_bytes());
        }
    }
    for path in files(&root.join("tests/golden")) {
        if path.extension().is_some_and(|e| e == "json") {
            let name = path.file_stem().expect("a name").to_string_lossy().into_owned();
            write("spec_json", &name, &std::fs::read(&path).expect("golden spec"));
        }
    }
    write("weights", "fuzz-model", &fuzz::fuzz_weights_file());
    write("weights_structured", "none", b"");
    write("input_tensor", "fuzz-model", &fuzz::fuzz_input_file());
    let png = |width: u32, height: u32, colour: png::ColorType, depth: png::BitDepth, data: &[u8]| {
        let mut bytes = Vec::new();
        let mut encoder = png::Encoder::new(&mut bytes, width, height);
        encoder.set_color(colour);
        encoder.set_depth(depth);
        if colour == png::ColorType::Indexed {
            encoder.set_palette(vec![0u8; 3 * 5]);
        }
        encoder.write_header().expect("header").write_image_data(data).expect("data");
        bytes
    };
    let rgb: Vec<u8> = (0..12 * 10 * 3).map(|i| (i * 37 % 256) as u8).collect();
    write("picture", "rgb.png", &png(12, 10, png::ColorType::Rgb, png::BitDepth::Eight, &rgb));
    write("picture", "rgba.png", &png(6, 10, png::ColorType::Rgba, png::BitDepth::Eight, &rgb[..240]));
    write("picture", "grey.png", &png(12, 10, png::ColorType::Grayscale, png::BitDepth::Eight, &rgb[..120]));
    write("picture", "deep.png", &png(6, 10, png::ColorType::Rgb, png::BitDepth::Sixteen, &rgb[..360]));
    let labels: Vec<u8> = (0..256).map(|i| (i % 5) as u8).collect();
    write("label_image", "grey.png", &png(16, 16, png::ColorType::Grayscale, png::BitDepth::Eight, &labels));
    write("label_image", "indexed.png", &png(16, 16, png::ColorType::Indexed, png::BitDepth::Eight, &labels));
    write("label_image", "wrong-size.png", &png(8, 8, png::ColorType::Grayscale, png::BitDepth::Eight, &labels[..64]));
}

/// The text between the braces of the first `cgnet! { ... }` in `text`.
fn macro_body(text: &str) -> Option<&str> {
    let start = text.find("cgnet!")?;
    let open = start + text[start..].find('{')?;
    let mut depth = 0;
    for (i, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&text[open + 1..open + i]);
                }
            }
            _ => {}
        }
    }
    None
}
