//! `cgnetc segment` and `cgnetc eval` on pictures made here (no dataset
//! pictures are in the repository), and on the CamVid sample frames of
//! `../shared` when they are beside the checkout.

use std::collections::BTreeMap;

use super::*;

/// An RGB picture with smooth gradients and blocks, deterministic.
fn picture(width: usize, height: usize, seed: usize) -> Vec<u8> {
    (0..width * height)
        .flat_map(|i| {
            let (x, y) = (i % width, i / width);
            let block = ((x / 7 + y / 5 + seed) % 3) * 60;
            [(x * 255 / width) as u8, (y * 255 / height + block) as u8, ((x + y + seed * 40) % 256) as u8]
        })
        .collect()
}

fn write_png(path: &Path, width: usize, height: usize, colour: png::ColorType, depth: png::BitDepth, data: &[u8]) {
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = png::Encoder::new(file, width as u32, height as u32);
    encoder.set_color(colour);
    encoder.set_depth(depth);
    encoder.write_header().unwrap().write_image_data(data).unwrap();
}

fn write_rgb_png(path: &Path, width: usize, height: usize, rgb: &[u8]) {
    write_png(path, width, height, png::ColorType::Rgb, png::BitDepth::Eight, rgb);
}

/// (width, height, colour type, palette, pixels) of a PNG, indices as stored.
fn read_png(path: &Path) -> (usize, usize, png::ColorType, Option<Vec<u8>>, Vec<u8>) {
    let mut decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder.read_info().unwrap();
    let mut data = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut data).unwrap();
    let info = reader.info();
    let palette = info.palette.as_ref().map(|p| p.to_vec());
    (frame.width as usize, frame.height as usize, frame.color_type, palette, data[..frame.buffer_size()].to_vec())
}

/// The tiny golden model with CamVid-like preprocessing and named classes.
fn described_model(dir: &Path) -> PathBuf {
    let spec = r#"{"classes": 4, "stage2_blocks": 1, "stage3_blocks": 1, "residual": "global", "input_injection": true,
        "activation": "prelu", "global_context": true, "height": 37, "width": 53,
        "mean": [105.65775, 103.329834, 99.625404], "std": [1, 2, 4],
        "labels": [{"name": "road", "colour": [128, 64, 128]}, {"name": "sky", "colour": [70, 130, 180]},
                   {"name": "tree", "colour": [107, 142, 35]}, {"name": "car", "colour": [0, 0, 142]}]}"#;
    let model = dir.join("model.json");
    std::fs::write(&model, spec).unwrap();
    model
}

/// A temporary folder holding [`described_model`], and the golden weights.
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let model = described_model(dir.path());
    (dir, model, golden(".safetensors"))
}

#[test]
fn segment_writes_label_and_overlay_pngs_matching_the_float_path() {
    let (dir, model, weights) = setup();
    let (w, h) = (53, 37);
    let rgb = picture(w, h, 1);
    let frame = dir.path().join("frame.png");
    write_rgb_png(&frame, w, h, &rgb);
    let out = dir.path().join("out");
    let o =
        cgnetc(&["segment", "--model", path(&model), "--weights", path(&weights), path(&frame), "--out", path(&out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("frame.png: 53x37, ") && stdout.contains(" %"), "{stdout}");

    // The labels PNG holds class indices under the description's palette.
    let (lw, lh, colour, palette, labels) = read_png(&out.join("frame_labels.png"));
    assert_eq!((lw, lh, colour), (w, h, png::ColorType::Indexed));
    assert_eq!(palette.unwrap(), [128, 64, 128, 70, 130, 180, 107, 142, 35, 0, 0, 142]);
    assert!(labels.iter().all(|&l| l < 4));
    let (ow, oh, colour, _, overlay) = read_png(&out.join("frame_overlay.png"));
    assert_eq!((ow, oh, colour, overlay.len()), (w, h, png::ColorType::Rgb, w * h * 3));

    // The same labels as `cgnetc run` on the input normalised by hand: (pixel - mean) / std, planar.
    let (mean, std) = ([105.65775f32, 103.329834, 99.625404], [1.0f32, 2.0, 4.0]);
    let input: Vec<u8> = (0..3)
        .flat_map(|c| rgb.chunks_exact(3).map(move |p| (f32::from(p[c]) - mean[c]) / std[c]))
        .flat_map(f32::to_le_bytes)
        .collect();
    let input_file = dir.path().join("in.safetensors");
    let view = TensorView::new(Dtype::F32, vec![1, 3, h, w], &input).unwrap();
    std::fs::write(&input_file, safetensors::serialize([("input", view)], &None).unwrap()).unwrap();
    let ran = dir.path().join("ran.safetensors");
    let o = cgnetc(
        &[&run_args(path(&weights), path(&input_file), path(&ran), path(&model))[..], &["--target", "rust-scalar"]]
            .concat(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(&ran).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let expected: Vec<u8> = st
        .tensor("labels")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as u8)
        .collect();
    assert_eq!(labels, expected, "segment's labels are the float path's");

    // A folder: a PNG of another size (resized in, labels resized back) and a JPEG; other files ignored.
    let folder = dir.path().join("pictures");
    std::fs::create_dir(&folder).unwrap();
    write_rgb_png(&folder.join("wide.png"), 120, 50, &picture(120, 50, 2));
    let jpeg = image::RgbImage::from_raw(64, 48, picture(64, 48, 3)).unwrap();
    jpeg.save(folder.join("photo.JPG")).unwrap();
    std::fs::write(folder.join("notes.txt"), "not a picture").unwrap();
    let o = cgnetc(&[
        "segment",
        "--model",
        path(&model),
        "--weights",
        path(&weights),
        path(&folder),
        "--out",
        path(&out),
        "--threads",
        "2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("2 pictures in"));
    for (stem, size) in [("wide", (120, 50)), ("photo", (64, 48))] {
        let (lw, lh, ..) = read_png(&out.join(format!("{stem}_labels.png")));
        assert_eq!((lw, lh), size, "{stem}: labels at the picture's size");
        assert!(out.join(format!("{stem}_overlay.png")).is_file());
    }
}

#[test]
fn bad_pictures_are_errors_naming_the_file_and_write_nothing() {
    let (dir, model, weights) = setup();
    let out = dir.path().join("out");
    let segment_into = |pictures: &[&Path], out: &Path| {
        let mut args = vec!["segment", "--model", path(&model), "--weights", path(&weights), "--out", path(out)];
        args.extend(pictures.iter().map(|p| path(p)));
        fails(&args)
    };
    let segment = |picture: &Path| segment_into(&[picture], &out);
    let file = |name: &str| dir.path().join(name);

    std::fs::write(file("text.png"), "not a picture at all").unwrap();
    let good = picture(53, 37, 0);
    write_rgb_png(&file("good.png"), 53, 37, &good);
    let whole = std::fs::read(file("good.png")).unwrap();
    std::fs::write(file("truncated.png"), &whole[..whole.len() / 2]).unwrap();
    let wide: Vec<u8> = good.iter().flat_map(|&v| [v, v]).collect();
    write_png(&file("deep.png"), 53, 37, png::ColorType::Rgb, png::BitDepth::Sixteen, &wide);
    write_png(&file("grey.png"), 53, 37, png::ColorType::Grayscale, png::BitDepth::Eight, &good[..53 * 37]);
    // A header claiming 25 Mpx (no pixel data follows): refused before decoding.
    let mut huge = Vec::new();
    let mut encoder = png::Encoder::new(&mut huge, 5000, 5000);
    encoder.set_color(png::ColorType::Rgb);
    let mut writer = encoder.write_header().unwrap();
    writer.write_chunk(png::chunk::IDAT, &[0x78, 0x9c, 0x03, 0x00]).unwrap();
    drop(writer);
    std::fs::write(file("huge.png"), &huge).unwrap();
    for (name, why) in [
        ("huge.png", "5000x5000 pixels; at most 16777216 are decoded"),
        ("text.png", "not a PNG or JPEG picture"),
        ("truncated.png", "cannot decode"),
        ("deep.png", "Rgb16 pixels; the model reads 8-bit RGB"),
        ("grey.png", "a grey picture"),
        ("missing.png", "no such file or folder"),
    ] {
        let err = segment(&file(name));
        assert!(err.contains(name) && err.contains(why), "{name}: {err}");
    }
    let empty = file("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(segment(&empty).contains("no .png, .jpg or .jpeg pictures in this folder"));
    // Nothing was written for any of them.
    assert!(std::fs::read_dir(&out).map_or(true, |mut d| d.next().is_none()));

    // An output folder that cannot be made (a file is in the way).
    let blocked = file("blocked");
    std::fs::write(&blocked, "a file").unwrap();
    let err = segment_into(&[&file("good.png")], &blocked);
    assert!(err.contains("cannot create") && err.contains("blocked"), "{err}");

    // Two pictures that would write the same names.
    let other = file("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::copy(file("good.png"), other.join("good.png")).unwrap();
    let err = segment_into(&[&file("good.png"), &other], &out);
    assert!(err.contains("would write the same good_labels.png"), "{err}");
}

/// Mean IoU over frames the test scores itself: a confusion count per class.
fn independent_miou(pairs: &[(Vec<u8>, Vec<u8>)], classes: usize) -> (f64, BTreeMap<usize, f64>) {
    let (mut tp, mut fp, mut fne) = (vec![0u64; classes], vec![0u64; classes], vec![0u64; classes]);
    for (truth, predicted) in pairs {
        for (&t, &p) in truth.iter().zip(predicted) {
            let (t, p) = (usize::from(t), usize::from(p));
            if t >= classes {
                continue;
            }
            if t == p {
                tp[t] += 1;
            } else {
                fne[t] += 1;
                fp[p] += 1;
            }
        }
    }
    let iou: BTreeMap<usize, f64> = (0..classes)
        .filter(|&c| tp[c] + fp[c] + fne[c] > 0)
        .map(|c| (c, tp[c] as f64 / (tp[c] + fp[c] + fne[c]) as f64))
        .collect();
    (iou.values().sum::<f64>() / iou.len() as f64, iou)
}

/// Runs `cgnetc eval --json` and checks it against the test's own scoring of
/// `cgnetc segment`'s labels for the same frames.
fn eval_matches_segment(model: &Path, weights: Option<&Path>, dataset: &Path, classes: usize) -> serde_json::Value {
    let mut args = vec!["eval", "--model", path(model), "--dataset", path(dataset), "--json"];
    let mut segment = vec!["segment", "--model", path(model)];
    if let Some(w) = weights {
        args.extend(["--weights", path(w)]);
        segment.extend(["--weights", path(w)]);
    }
    let o = cgnetc(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let out = tempfile::tempdir().unwrap();
    let test = dataset.join("test");
    segment.extend([path(&test), "--out", path(out.path())]);
    let o = cgnetc(&segment);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut pairs = Vec::new();
    let mut frames: Vec<PathBuf> = std::fs::read_dir(&test).unwrap().map(|e| e.unwrap().path()).collect();
    frames.sort();
    for frame in &frames {
        let stem = frame.file_stem().unwrap().to_str().unwrap();
        let (.., truth) = read_png(&dataset.join("testannot").join(format!("{stem}.png")));
        let (.., predicted) = read_png(&out.path().join(format!("{stem}_labels.png")));
        pairs.push((truth, predicted));
    }
    let (miou, iou) = independent_miou(&pairs, classes);
    assert_eq!(report["frames"], frames.len());
    assert!((report["mean_iou"].as_f64().unwrap() - miou).abs() < 1e-9, "eval {} vs {miou}", report["mean_iou"]);
    for (c, v) in report["class_iou"].as_array().unwrap().iter().enumerate() {
        match (v.as_f64(), iou.get(&c)) {
            (Some(a), Some(b)) => assert!((a - b).abs() < 1e-12, "class {c}: eval {a}, here {b}"),
            (a, b) => assert_eq!(a, b.copied(), "class {c}"),
        }
    }
    report
}

#[test]
fn eval_scores_a_dataset_as_an_independent_count_does() {
    let (dir, model, weights) = setup();
    let dataset = dir.path().join("data");
    std::fs::create_dir_all(dataset.join("test")).unwrap();
    std::fs::create_dir_all(dataset.join("testannot")).unwrap();
    // Three frames; the labels are blocks of classes 0..3 and void (255).
    for seed in 0..3 {
        let (w, h) = (53 + 10 * seed, 37);
        write_rgb_png(&dataset.join(format!("test/f{seed}.png")), w, h, &picture(w, h, seed));
        let truth: Vec<u8> = (0..w * h).map(|i| [0, 1, 2, 3, 255][(i % w / 9 + seed) % 5]).collect();
        write_png(
            &dataset.join(format!("testannot/f{seed}.png")),
            w,
            h,
            png::ColorType::Grayscale,
            png::BitDepth::Eight,
            &truth,
        );
    }
    let report = eval_matches_segment(&model, Some(&weights), &dataset, 4);
    assert_eq!(report["classes"], serde_json::json!(["road", "sky", "tree", "car"]));
    assert!(report["void_pixels"].as_u64().unwrap() > 0);

    // Text output names the classes.
    let o = cgnetc(&["eval", "--model", path(&model), "--weights", path(&weights), "--dataset", path(&dataset)]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("3 frames") && text.contains("mIoU ") && text.contains("  sky "), "{text}");

    // A label image of the wrong size, a missing one, a missing split.
    write_png(&dataset.join("testannot/f0.png"), 10, 10, png::ColorType::Grayscale, png::BitDepth::Eight, &[0; 100]);
    let eval = |extra: &[&str]| {
        let base = ["eval", "--model", path(&model), "--weights", path(&weights), "--dataset", path(&dataset)];
        fails(&[&base[..], extra].concat())
    };
    let err = eval(&[]);
    assert!(err.contains("f0.png: labels are 10x10; the picture is 53x37"), "{err}");
    std::fs::remove_file(dataset.join("testannot/f0.png")).unwrap();
    let err = eval(&[]);
    assert!(err.contains("f0.png: cannot read"), "{err}");
    let err = eval(&["--split", "val"]);
    assert!(err.contains("val is not a folder"), "{err}");
}

/// The bundled CamVid model on the sample frames of `../shared` (not in the
/// repository: they are CamVid pictures), laid out as a dataset.
#[test]
fn eval_on_the_camvid_sample_frames_when_shared_is_beside_the_checkout() {
    let samples = repo_root().join("../shared/camvid-samples");
    let Ok(entries) = std::fs::read_dir(&samples) else {
        eprintln!("SKIPPED eval on the CamVid sample frames: no {}", samples.display());
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("test")).unwrap();
    std::fs::create_dir_all(dir.path().join("testannot")).unwrap();
    for entry in entries {
        let file = entry.unwrap().path();
        let name = file.file_name().unwrap().to_str().unwrap().to_string();
        match name.strip_suffix("_labels.png") {
            Some(stem) => std::fs::copy(&file, dir.path().join(format!("testannot/{stem}.png"))),
            None => std::fs::copy(&file, dir.path().join("test").join(&name)),
        }
        .unwrap();
    }
    let report = eval_matches_segment(&repo_root().join("models/camvid.cgnet"), None, dir.path(), 11);
    eprintln!(
        "CamVid sample frames: mIoU {:.2} %, pixel accuracy {:.2} %, {:.1} ms per frame",
        100.0 * report["mean_iou"].as_f64().unwrap(),
        100.0 * report["pixel_accuracy"].as_f64().unwrap(),
        report["ms_per_frame"].as_f64().unwrap()
    );
    assert!(report["mean_iou"].as_f64().unwrap() > 0.6, "the trained model segments its own dataset well");
}
