//! Pictures in and out for `cgnetc segment` and `cgnetc eval`: 8-bit RGB PNG
//! and JPEG decoded (the `image` crate) and resized to the model's input;
//! labels drawn as an indexed-colour PNG (the class index is the pixel value)
//! and as a translucent overlay; label images read back for evaluation. Every
//! bad file is a `Failure` naming it.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageReader};

use crate::failure::Failure;

/// An interleaved 8-bit RGB picture.
pub struct Picture {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

fn bad(path: &Path, why: impl std::fmt::Display) -> Failure {
    Failure::new(format!("{}: {why}", path.display()))
}

/// Reads an 8-bit RGB (or RGBA: the alpha is dropped) PNG or JPEG.
pub fn read_rgb(path: &Path) -> Result<Picture, Failure> {
    let bytes = std::fs::read(path).map_err(|e| bad(path, format!("cannot read: {e}")))?;
    let reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| bad(path, e))?;
    if reader.format().is_none() {
        return Err(bad(path, "not a PNG or JPEG picture"));
    }
    let decoded = reader.decode().map_err(|e| bad(path, format!("cannot decode: {e}")))?;
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
    /// The picture at `width` x `height` (bilinear), or itself when it already is.
    pub fn resized(&self, width: usize, height: usize) -> Vec<u8> {
        if (self.width, self.height) == (width, height) {
            return self.rgb.clone();
        }
        let image = image::RgbImage::from_raw(self.width as u32, self.height as u32, self.rgb.clone())
            .expect("a decoded picture's bytes fit its size");
        image::imageops::resize(&image, width as u32, height as u32, image::imageops::FilterType::Triangle).into_raw()
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
pub fn read_labels(path: &Path, width: usize, height: usize) -> Result<Vec<u8>, Failure> {
    let file = std::fs::File::open(path).map_err(|e| bad(path, format!("cannot read: {e}")))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
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
pub fn collect(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
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
