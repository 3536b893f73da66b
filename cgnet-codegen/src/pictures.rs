//! Pictures in and out for `cgnetc segment` and `cgnetc eval` (the
//! `pictures` feature): 8-bit RGB PNG and JPEG decoded (the `image` crate) and
//! resized to the model's input; labels drawn as an indexed-colour PNG (the
//! class index is the pixel value) and as a translucent overlay; label images
//! read back for evaluation. Every bad file is a [`PictureError`] naming it,
//! and no decoder may allocate more than [`DECODE_LIMIT_BYTES`].

use std::borrow::Cow;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageReader};

/// The most a decoder may allocate for one picture (a 4096 x 4096 RGBA
/// picture takes 64 MiB); a header claiming more is an error, not an allocation.
pub const DECODE_LIMIT_BYTES: u64 = 256 << 20;

/// A picture or label image that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct PictureError {
    pub path: PathBuf,
    pub reason: String,
}

/// An interleaved 8-bit RGB picture.
pub struct Picture {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

fn bad(path: &Path, why: impl std::fmt::Display) -> PictureError {
    PictureError { path: path.to_path_buf(), reason: why.to_string() }
}

/// Reads an 8-bit RGB (or RGBA: the alpha is dropped) PNG or JPEG.
pub fn read_rgb(path: &Path) -> Result<Picture, PictureError> {
    let bytes = std::fs::read(path).map_err(|e| bad(path, format!("cannot read: {e}")))?;
    decode_rgb(&bytes, path)
}

/// The largest picture `cgnetc segment` / `eval` decode (16 Mpx, 4096 x 4096).
/// Decoding takes time in proportion to the pixels a header claims, even for
/// a file of a few hundred bytes (a 32 Mpx JPEG of 876 bytes took 1.7 s).
pub const MAX_PICTURE_PIXELS: u64 = 1 << 24;

/// [`read_rgb`] on a file's bytes; `path` names them in errors.
pub fn decode_rgb(bytes: &[u8], path: &Path) -> Result<Picture, PictureError> {
    decode_rgb_within(bytes, path, MAX_PICTURE_PIXELS)
}

/// [`decode_rgb`] refusing pictures of more than `max_pixels`.
pub fn decode_rgb_within(bytes: &[u8], path: &Path, max_pixels: u64) -> Result<Picture, PictureError> {
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| bad(path, e))?;
    if !matches!(reader.format(), Some(image::ImageFormat::Png | image::ImageFormat::Jpeg)) {
        return Err(bad(path, "not a PNG or JPEG picture"));
    }
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(DECODE_LIMIT_BYTES);
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(|e| bad(path, format!("cannot decode: {e}")))?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(bad(
            path,
            format!("{w}x{h} pixels; at most {max_pixels} are decoded (scale the picture down first)"),
        ));
    }
    // zune-jpeg 0.4 (the JPEG decoder of `image` 0.25.6) indexes out of bounds
    // on some corrupt JPEGs (found by fuzzing `picture`): its panic becomes this
    // file's error instead of ending the program. The decoder holds nothing of ours.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| DynamicImage::from_decoder(decoder)))
        .map_err(|_| bad(path, "cannot decode: the decoder failed on this file (a corrupt JPEG)"))?
        .map_err(|e| bad(path, format!("cannot decode: {e}")))?;
    let (width, height) = (decoded.width() as usize, decoded.height() as usize);
    let rgb = match decoded {
        DynamicImage::ImageRgb8(rgb) => rgb.into_raw(),
        DynamicImage::ImageRgba8(rgba) => DynamicImage::ImageRgba8(rgba).into_rgb8().into_raw(),
        DynamicImage::ImageLuma8(_) | DynamicImage::ImageLumaA8(_) => {
            return Err(bad(path, "a grey picture; the model reads 8-bit RGB colour pictures"));
        }
        other => {
            return Err(bad(
                path,
                format!(
                    "{:?} pixels; the model reads 8-bit RGB (16-bit and float pictures are not converted)",
                    other.color()
                ),
            ));
        }
    };
    Ok(Picture { width, height, rgb })
}

impl Picture {
    /// The picture at `width` x `height` (bilinear), or its own pixels when it already is.
    pub fn resized(&self, width: usize, height: usize) -> Cow<'_, [u8]> {
        if (self.width, self.height) == (width, height) {
            return Cow::Borrowed(&self.rgb);
        }
        let image = image::RgbImage::from_raw(self.width as u32, self.height as u32, self.rgb.clone())
            .expect("a decoded picture's bytes fit its size");
        Cow::Owned(
            image::imageops::resize(&image, width as u32, height as u32, image::imageops::FilterType::Triangle)
                .into_raw(),
        )
    }
}

/// Labels of a `from` = (width, height) grid at `to`, nearest neighbour (pixel centres).
pub fn resize_labels(labels: &[u8], from: (usize, usize), to: (usize, usize)) -> Vec<u8> {
    if from == to {
        return labels.to_vec();
    }
    let source = |i: usize, n_to: usize, n_from: usize| ((2 * i + 1) * n_from / (2 * n_to)).min(n_from - 1);
    let mut out = Vec::with_capacity(to.0 * to.1);
    for y in 0..to.1 {
        let row = source(y, to.1, from.1) * from.0;
        out.extend((0..to.0).map(|x| labels[row + source(x, to.0, from.0)]));
    }
    out
}

fn encode_png(width: usize, height: usize, colour: png::ColorType, palette: Option<Vec<u8>>, data: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width as u32, height as u32);
    encoder.set_color(colour);
    encoder.set_depth(png::BitDepth::Eight);
    if let Some(palette) = palette {
        encoder.set_palette(palette);
    }
    let mut writer = encoder.write_header().expect("writing to memory cannot fail");
    writer.write_image_data(data).expect("the data fits the header");
    writer.finish().expect("writing to memory cannot fail");
    bytes
}

/// The labels as an indexed-colour PNG: each pixel's value is its class, shown in the class's colour.
pub fn label_png(labels: &[u8], width: usize, height: usize, colours: &[[u8; 3]]) -> Vec<u8> {
    let palette = colours.iter().flatten().copied().collect();
    encode_png(width, height, png::ColorType::Indexed, Some(palette), labels)
}

/// The picture with each pixel's class colour laid over it at half strength (RGB PNG).
pub fn overlay_png(picture: &Picture, labels: &[u8], colours: &[[u8; 3]]) -> Vec<u8> {
    let blended: Vec<u8> = picture
        .rgb
        .chunks_exact(3)
        .zip(labels)
        .flat_map(|(pixel, &label)| {
            let colour = colours[usize::from(label)];
            [0, 1, 2].map(|c| ((u16::from(pixel[c]) + u16::from(colour[c])) / 2) as u8)
        })
        .collect();
    encode_png(picture.width, picture.height, png::ColorType::Rgb, None, &blended)
}

/// A label image: an 8-bit grey or indexed-colour PNG whose pixel values are
/// class indices (the CamVid / SegNet annotation layout), of the given size.
pub fn read_labels(path: &Path, width: usize, height: usize) -> Result<Vec<u8>, PictureError> {
    let bytes = std::fs::read(path).map_err(|e| bad(path, format!("cannot read: {e}")))?;
    decode_labels(&bytes, path, width, height)
}

/// [`read_labels`] on a file's bytes; `path` names them in errors.
pub fn decode_labels(bytes: &[u8], path: &Path, width: usize, height: usize) -> Result<Vec<u8>, PictureError> {
    let limits = png::Limits { bytes: DECODE_LIMIT_BYTES as usize };
    let mut decoder = png::Decoder::new_with_limits(Cursor::new(bytes), limits);
    // Indices as stored: no palette expansion.
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder.read_info().map_err(|e| bad(path, format!("not a readable PNG label image: {e}")))?;
    let info = reader.info();
    let (w, h) = (info.width as usize, info.height as usize);
    if !matches!(info.color_type, png::ColorType::Grayscale | png::ColorType::Indexed)
        || info.bit_depth != png::BitDepth::Eight
    {
        return Err(bad(
            path,
            format!(
                "{:?} {:?}-bit; a label image is 8-bit grey or indexed, one class index per pixel",
                info.color_type, info.bit_depth as u8
            ),
        ));
    }
    if (w, h) != (width, height) {
        return Err(bad(path, format!("labels are {w}x{h}; the picture is {width}x{height}")));
    }
    let mut labels = vec![0; w * h];
    reader.next_frame(&mut labels).map_err(|e| bad(path, format!("cannot decode: {e}")))?;
    Ok(labels)
}

/// The pictures named: files as given, folders' `.png` / `.jpg` / `.jpeg` files sorted by name.
pub fn collect(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, PictureError> {
    let mut pictures = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let entries = std::fs::read_dir(input).map_err(|e| bad(input, format!("cannot list: {e}")))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_picture_name(p) && p.is_file())
                .collect();
            if found.is_empty() {
                return Err(bad(input, "no .png, .jpg or .jpeg pictures in this folder"));
            }
            found.sort();
            pictures.extend(found);
        } else if input.exists() {
            pictures.push(input.clone());
        } else {
            return Err(bad(input, "no such file or folder"));
        }
    }
    Ok(pictures)
}

pub fn is_picture_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["png", "jpg", "jpeg"].contains(&e.to_ascii_lowercase().as_str()))
}
