//! `cgnetc segment` (pictures in, label and overlay PNGs out) and `cgnetc
//! eval` (mIoU over a labelled dataset): the compiled program on the Rust
//! kernels, frames spread over worker threads that each own an arena.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use cgnet_codegen::back::native::Runner;
use cgnet_codegen::back::CompiledModel;
use cgnet_codegen::metrics::{ConfusionMatrix, Scores};
use cgnet_codegen::spec::{Label, ModelSpec};
use cgnet_runtime::kernels::{Input, Isa};
use cgnet_runtime::tensors::write_atomically;
use indicatif::{ProgressBar, ProgressStyle};

use cgnet_codegen::pictures::{self, Picture};

use crate::failure::Failure;

/// A compiled model ready for pictures.
pub struct Segmenter {
    pub spec: ModelSpec,
    pub model: CompiledModel,
    pub isa: Isa,
    pub labels: Vec<Label>,
}

impl Segmenter {
    pub fn new(spec: ModelSpec, model: CompiledModel, isa: Isa) -> Result<Self, Failure> {
        if !isa.is_supported() {
            return Err(Failure::new(format!("this CPU does not support the {isa:?} kernels")));
        }
        let labels = spec.class_labels();
        Ok(Self { spec, model, isa, labels })
    }

    /// Labels at the picture's size: resized to the model's input (bilinear),
    /// run through the 8-bit entry (normalised as the description says, as
    /// the first kernels read it), resized back (nearest).
    fn segment(&self, runner: &mut Runner, picture: &Picture) -> Result<Vec<u8>, Failure> {
        let (w, h) = (self.spec.width, self.spec.height);
        let pixels = picture.resized(w, h);
        let input = Input::Rgb8 { pixels: &pixels, normalisation: self.model.normalisation() };
        let mut labels = vec![0u8; w * h];
        runner
            .segment(&self.model, self.isa, None, input, &mut labels)
            .map_err(|e| Failure::new(format!("internal error in the compiled program: {e}")))?;
        Ok(pictures::resize_labels(&labels, (w, h), (picture.width, picture.height)))
    }

    fn colours(&self) -> Vec<[u8; 3]> {
        self.labels.iter().map(|l| l.colour).collect()
    }

    /// `work` on every item over `threads` workers, each with its own arena, in
    /// item order; the first failure (in item order) stops the rest.
    fn for_each<T: Send>(
        &self,
        items: &[PathBuf],
        threads: usize,
        work: impl Fn(&mut Runner, &Path) -> Result<T, Failure> + Sync,
    ) -> Result<Vec<T>, Failure> {
        let progress = ProgressBar::new(items.len() as u64).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} pictures, {per_sec}, ETA {eta}")
                .expect("a valid template"),
        );
        let results: Mutex<Vec<Option<Result<T, Failure>>>> = Mutex::new((0..items.len()).map(|_| None).collect());
        let (next, failed) = (AtomicUsize::new(0), AtomicBool::new(false));
        std::thread::scope(|scope| {
            for _ in 0..threads.clamp(1, items.len().max(1)) {
                scope.spawn(|| {
                    let mut runner = Runner::new(&self.model);
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        let result = work(&mut runner, item);
                        failed.fetch_or(result.is_err(), Ordering::Relaxed);
                        results.lock().expect("no worker panics holding it")[i] = Some(result);
                        progress.inc(1);
                    }
                });
            }
        });
        progress.finish_and_clear();
        // Items after a failure may not have run: the failure comes first.
        let results = results.into_inner().expect("workers are done");
        results.into_iter().map_while(|r| r).collect()
    }
}

/// `cgnetc segment`: writes `STEM_labels.png` and `STEM_overlay.png` per picture into `out`.
pub fn segment(segmenter: &Segmenter, inputs: &[PathBuf], out: &Path, threads: usize) -> Result<(), Failure> {
    let pictures = pictures::collect(inputs)?;
    let mut stems: HashMap<String, &Path> = HashMap::new();
    for path in &pictures {
        if let Some(other) = stems.insert(stem(path), path) {
            return Err(Failure::new(format!(
                "{} and {} would write the same {}_labels.png; segment them into different --out folders",
                other.display(),
                path.display(),
                stem(path)
            )));
        }
    }
    std::fs::create_dir_all(out).map_err(|e| Failure::new(format!("cannot create {}: {e}", out.display())))?;
    let colours = segmenter.colours();
    let started = Instant::now();
    let lines = segmenter.for_each(&pictures, threads, |runner, path| {
        let picture = pictures::read_rgb(path)?;
        let labels = segmenter.segment(runner, &picture)?;
        let stem = stem(path);
        for (suffix, bytes) in [
            ("labels", pictures::label_png(&labels, picture.width, picture.height, &colours)),
            ("overlay", pictures::overlay_png(&picture, &labels, &colours)),
        ] {
            let file = out.join(format!("{stem}_{suffix}.png"));
            write_atomically(&file, &bytes)
                .map_err(|e| Failure::new(format!("cannot write {}: {e}", file.display())))?;
        }
        Ok(format!("{}: {}x{}, {}", path.display(), picture.width, picture.height, shares(&labels, &segmenter.labels)))
    })?;
    for line in &lines {
        println!("{line}");
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{} picture{} in {seconds:.2} s ({:.1} ms each, {threads} thread{}); labels and overlays in {}",
        lines.len(),
        if lines.len() == 1 { "" } else { "s" },
        1e3 * seconds / lines.len().max(1) as f64,
        if threads == 1 { "" } else { "s" },
        out.display()
    );
    Ok(())
}

/// The file name without its extension: the outputs' name.
fn stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Each class's share of the pixels, largest first, those under 0.05 % left out.
fn shares(labels: &[u8], classes: &[Label]) -> String {
    let mut counts = vec![0usize; classes.len()];
    for &l in labels {
        counts[usize::from(l)] += 1;
    }
    let mut order: Vec<usize> = (0..classes.len()).collect();
    order.sort_by_key(|&c| std::cmp::Reverse(counts[c]));
    order
        .iter()
        .map(|&c| (c, 100.0 * counts[c] as f64 / labels.len().max(1) as f64))
        .filter(|(_, share)| *share >= 0.05)
        .map(|(c, share)| format!("{} {share:.1} %", classes[c].name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What `cgnetc eval` found.
#[derive(serde::Serialize)]
pub struct Evaluation {
    pub dataset: PathBuf,
    pub split: String,
    pub frames: usize,
    pub threads: usize,
    pub seconds: f64,
    pub ms_per_frame: f64,
    pub classes: Vec<String>,
    #[serde(flatten)]
    pub scores: Scores,
}

/// `cgnetc eval`: the pictures of `DATASET/SPLIT/` against the label images
/// of the same names in `DATASET/SPLITannot/`.
pub fn eval(segmenter: &Segmenter, dataset: &Path, split: &str, threads: usize) -> Result<Evaluation, Failure> {
    let (images, annotations) = (dataset.join(split), dataset.join(format!("{split}annot")));
    for folder in [&images, &annotations] {
        if !folder.is_dir() {
            return Err(Failure::new(format!(
                "{} is not a folder; a dataset holds SPLIT/ pictures and SPLITannot/ label images (the CamVid layout)",
                folder.display()
            )));
        }
    }
    let frames = pictures::collect(std::slice::from_ref(&images))?;
    let classes = segmenter.labels.len();
    let started = Instant::now();
    let matrices = segmenter.for_each(&frames, threads, |runner, path| {
        let picture = pictures::read_rgb(path)?;
        let annotation = annotations.join(path.file_name().expect("a listed file has a name")).with_extension("png");
        let truth = pictures::read_labels(&annotation, picture.width, picture.height)?;
        let predicted = segmenter.segment(runner, &picture)?;
        let mut matrix = ConfusionMatrix::new(classes);
        matrix.add(&truth, &predicted);
        Ok(matrix)
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let mut total = ConfusionMatrix::new(classes);
    for m in &matrices {
        total.merge(m);
    }
    Ok(Evaluation {
        dataset: dataset.to_path_buf(),
        split: split.to_string(),
        frames: frames.len(),
        threads,
        seconds,
        ms_per_frame: 1e3 * seconds / frames.len() as f64,
        classes: segmenter.labels.iter().map(|l| l.name.clone()).collect(),
        scores: total.scores(),
    })
}

impl Evaluation {
    pub fn to_text(&self) -> String {
        let s = &self.scores;
        let mut text = format!(
            "{} ({}): {} frames, {:.1} ms per frame on {} thread{} ({:.1} s)\nmIoU {:.2} %, pixel accuracy {:.2} % ({} labelled pixels, {} void)\n",
            self.dataset.display(),
            self.split,
            self.frames,
            self.ms_per_frame,
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            self.seconds,
            100.0 * s.mean_iou,
            100.0 * s.pixel_accuracy,
            s.labelled_pixels,
            s.void_pixels
        );
        for (name, iou) in self.classes.iter().zip(&s.class_iou) {
            let iou = iou.map_or("-".to_string(), |v| format!("{:.2} %", 100.0 * v));
            text.push_str(&format!("  {name:<16} {iou:>8}\n"));
        }
        text
    }
}
