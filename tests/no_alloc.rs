//! `new()`, `run`, `scores` and `segment` (float and 8-bit) of a macro model allocate nothing,
//! on one thread or on a pool: proved with a counting global allocator.
//!
//! A plain `main` (`harness = false`), not a libtest test: the allocator counts
//! every thread, and libtest's own main thread allocates now and then while a
//! test runs (seen under load), which is not the model's doing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

cgnet::cgnet! {
    model Small {
        input: 3 x 40 x 72,
        classes: 7,
        stage2: { blocks: 3 },
        stage3: { blocks: 4 },
        activation: relu,
        global_context: false,
        weights: "tests/golden/relu_noglo_m3n4_c7_40x72.safetensors",
    }
}

cgnet::cgnet! {
    model WithContext {
        input: 3 x 37 x 53,
        classes: 4,
        stage2: { blocks: 1 },
        stage3: { blocks: 1 },
        weights: "tests/golden/tiny_m1n1_c4_37x53.safetensors",
    }
}

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    f();
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

macro_rules! assert_no_allocation {
    ($ty:ty, $file:literal) => {{
        let model = <$ty>::new();
        let pool = cgnet::runtime::ThreadPool::new(2).unwrap();
        let mut arena = <$ty>::new_arena();
        let input = vec![0.5f32; <$ty>::INPUT_SHAPE.iter().product()];
        let picture = vec![128u8; <$ty>::INPUT_SHAPE.iter().product()];
        let mut logits = vec![0.0f32; <$ty>::LOGITS_SHAPE.iter().product()];
        let mut scores = vec![0.0f32; <$ty>::SCORES_SHAPE.iter().product()];
        let mut labels = vec![0u8; <$ty>::LABELS_LEN];
        // Warm up once (thread start-up, lazy CPU-feature detection).
        model.run_parallel(&input, arena.as_f32_mut(), &mut logits, Some(&pool)).unwrap();
        let n = allocations_during(|| {
            model.run(&input, arena.as_f32_mut(), &mut logits).unwrap();
            model.segment(&input, arena.as_f32_mut(), &mut labels).unwrap();
            model.scores(&input, arena.as_f32_mut(), &mut scores).unwrap();
            model.run_parallel(&input, arena.as_f32_mut(), &mut logits, Some(&pool)).unwrap();
            model.segment_parallel(&input, arena.as_f32_mut(), &mut labels, Some(&pool)).unwrap();
            model.run_rgb8(&picture, arena.as_f32_mut(), &mut logits).unwrap();
            model.segment_rgb8(&picture, arena.as_f32_mut(), &mut labels).unwrap();
            model.segment_rgb8_parallel(&picture, arena.as_f32_mut(), &mut labels, Some(&pool)).unwrap();
        });
        assert_eq!(n, 0, "{} allocated {n} times during inference", stringify!($ty));
        // `new()` borrows the packed weights compiled in: no allocation, no packing.
        assert_eq!(allocations_during(|| drop(std::hint::black_box(<$ty>::new()))), 0, "{}::new()", stringify!($ty));
        // The counter works: loading weights at run time packs them into a new buffer.
        let file = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/", $file)).unwrap();
        assert!(allocations_during(|| drop(<$ty>::from_safetensors_bytes(&file).unwrap())) > 0);
    }};
}

fn main() {
    assert_no_allocation!(Small, "tests/golden/relu_noglo_m3n4_c7_40x72.safetensors");
    assert_no_allocation!(WithContext, "tests/golden/tiny_m1n1_c4_37x53.safetensors");
    println!("test inference_allocates_nothing ... ok");
}
