//! Segments a CamVid street frame with the bundled model, compiled by `cgnet!`.
//!
//! ```sh
//! cargo run --release --example macro -- FRAME.png OUT.png [LABELS.png]
//! # e.g. with the research samples beside the checkout (not shipped with the project):
//! cargo run --release --example macro -- ../shared/camvid-samples/0016E5_07977.png /tmp/seg.png \
//!     ../shared/camvid-samples/0016E5_07977_labels.png
//! ```
//!
//! Writes a colour-coded label image, prints how many pixels each class got,
//! and with a ground-truth label image (class index per pixel, 11 = void) the
//! pixel accuracy.

use std::error::Error;
use std::fs::File;
use std::io::BufWriter;
use std::time::Instant;

cgnet::cgnet! {
    /// CGNet-M3N21 trained on CamVid: the authors' released weights.
    pub model CamVid {
        input: 3 x 360 x 480,
        classes: 11,
        mean: [105.65775, 103.329834, 99.625404], // the authors' CamVid mean (R, G, B), not divided
        stage2: { channels: 64, blocks: 3, dilation: 2, reduction: 8 },
        stage3: { channels: 128, blocks: 21, dilation: 4, reduction: 16 },
        weights: "weights/cgnet_camvid.safetensors",
        target: native,
    }
}

const CLASSES: [&str; 11] =
    ["sky", "building", "pole", "road", "sidewalk", "tree", "sign", "fence", "car", "pedestrian", "bicyclist"];
const PALETTE: [[u8; 3]; 11] = [
    [128, 128, 128],
    [128, 0, 0],
    [192, 192, 128],
    [128, 64, 128],
    [0, 0, 192],
    [128, 128, 0],
    [192, 128, 128],
    [64, 64, 128],
    [64, 0, 128],
    [64, 64, 0],
    [0, 128, 192],
];

fn read_png(path: &str) -> Result<(png::OutputInfo, Vec<u8>), Box<dyn Error>> {
    let mut reader = png::Decoder::new(std::io::BufReader::new(File::open(path)?)).read_info()?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf)?;
    buf.truncate(info.buffer_size());
    Ok((info, buf))
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err(format!("usage: {} FRAME.png OUT.png [LABELS.png]", args[0]).into());
    }
    let [_, h, w] = [3, CamVid::INPUT_SHAPE[2], CamVid::INPUT_SHAPE[3]];
    let (info, pixels) = read_png(&args[1])?;
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => return Err(format!("{}: expected an RGB image, got {other:?}", args[1]).into()),
    };
    if (info.width as usize, info.height as usize) != (w, h) || info.bit_depth != png::BitDepth::Eight {
        return Err(format!("{}: expected 8-bit {w}x{h}, got {}x{}", args[1], info.width, info.height).into());
    }
    // Interleaved 8-bit RGB, as decoded: `segment_rgb8` normalises it (with the
    // `mean` above) as its first kernels read it.
    let picture: Vec<u8> = pixels.chunks_exact(channels).flat_map(|p| [p[0], p[1], p[2]]).collect();

    let model = CamVid::new();
    let mut arena = CamVid::new_arena();
    let mut labels = vec![0u8; CamVid::LABELS_LEN];
    let start = Instant::now();
    model.segment_rgb8(&picture, arena.as_f32_mut(), &mut labels)?;
    println!(
        "segmented {w}x{h} in {:.1} ms (arena {} bytes)",
        start.elapsed().as_secs_f64() * 1e3,
        CamVid::ARENA_BYTES
    );

    let mut counts = [0usize; 11];
    for l in &labels {
        counts[usize::from(*l)] += 1;
    }
    for (name, n) in CLASSES.iter().zip(counts) {
        println!("{name:>10}: {:5.1} %", 100.0 * n as f64 / labels.len() as f64);
    }

    let rgb: Vec<u8> = labels.iter().flat_map(|l| PALETTE[usize::from(*l)]).collect();
    let mut encoder = png::Encoder::new(BufWriter::new(File::create(&args[2])?), w as u32, h as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(&rgb)?;
    println!("wrote {}", args[2]);

    if let Some(truth) = args.get(3) {
        let (_, truth) = read_png(truth)?;
        let scored: Vec<(u8, u8)> =
            labels.iter().zip(&truth).filter(|(_, t)| **t < 11).map(|(l, t)| (*l, *t)).collect();
        let correct = scored.iter().filter(|(l, t)| l == t).count();
        println!("pixel accuracy (void excluded): {:.1} %", 100.0 * correct as f64 / scored.len().max(1) as f64);
    }
    Ok(())
}
