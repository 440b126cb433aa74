//! PNG encoding and the image grid helper.

/// Gray level (0–255) of the 1-pixel gaps between the tiles of [`image_grid`]: mid-gray, so
/// the gaps show against both black backgrounds (MNIST) and white strokes.
pub const GRID_GAP_VALUE: u8 = 128;

/// Tiles equally sized grayscale images (row-major `f32`, values in `[0, 1]`) into one grid
/// of `cols` columns and as many rows as needed, with a 1-pixel gap of [`GRID_GAP_VALUE`]
/// between tiles (none around the border). Returns `(width, height, pixels)` with one `u8`
/// per pixel, ready for [`EventWriter::image`](crate::EventWriter::image) with
/// `channels = 1`.
///
/// Values are clamped to `[0, 1]` and scaled to `0..=255` (NaN becomes 0). `cols` is
/// clamped to `1..=images.len()`. Images shorter than `img_w * img_h` are padded with 0;
/// extra values are ignored. No images, or `img_w` or `img_h` of 0, give `(0, 0, [])`.
#[must_use]
pub fn image_grid(
    images: &[&[f32]],
    img_w: usize,
    img_h: usize,
    cols: usize,
) -> (u32, u32, Vec<u8>) {
    if images.is_empty() || img_w == 0 || img_h == 0 {
        return (0, 0, Vec::new());
    }
    let cols = cols.clamp(1, images.len());
    let rows = images.len().div_ceil(cols);
    let width = cols * img_w + (cols - 1);
    let height = rows * img_h + (rows - 1);
    let mut pixels = vec![GRID_GAP_VALUE; width * height];
    for (n, image) in images.iter().enumerate() {
        let (x0, y0) = ((n % cols) * (img_w + 1), (n / cols) * (img_h + 1));
        for y in 0..img_h {
            let row = &mut pixels[(y0 + y) * width + x0..][..img_w];
            for (x, out) in row.iter_mut().enumerate() {
                *out = to_u8(image.get(y * img_w + x).copied().unwrap_or(0.0));
            }
        }
    }
    // Tiles were used whole, so the sizes fit in memory; u32 covers any image TensorBoard
    // can show (the proto stores i32).
    (
        u32::try_from(width).unwrap_or(u32::MAX),
        u32::try_from(height).unwrap_or(u32::MAX),
        pixels,
    )
}

/// `[0, 1]` → `0..=255`, rounding; NaN → 0.
fn to_u8(v: f32) -> u8 {
    if v.is_nan() {
        0
    } else {
        // In range after the clamp, so the cast is exact.
        (v.clamp(0.0, 1.0) * 255.0).round() as u8
    }
}

/// Checks the arguments of an image and encodes it as PNG (8 bits per channel).
pub fn encode_png(
    width: u32,
    height: u32,
    channels: u8,
    pixels: &[u8],
) -> Result<Vec<u8>, PngError> {
    let color = match channels {
        1 => png::ColorType::Grayscale,
        3 => png::ColorType::Rgb,
        4 => png::ColorType::Rgba,
        other => {
            return Err(PngError::Invalid(format!(
                "channels must be 1 (gray), 3 (RGB) or 4 (RGBA), got {other}"
            )));
        }
    };
    if width == 0 || height == 0 {
        return Err(PngError::Invalid(format!(
            "image is empty ({width}x{height})"
        )));
    }
    if i32::try_from(width).is_err() || i32::try_from(height).is_err() {
        return Err(PngError::Invalid(format!(
            "image is too large ({width}x{height})"
        )));
    }
    let expected = (width as usize)
        .checked_mul(height as usize)
        .and_then(|n| n.checked_mul(usize::from(channels)));
    if expected != Some(pixels.len()) {
        return Err(PngError::Invalid(format!(
            "{} pixel bytes given, {width}x{height}x{channels} needs {}",
            pixels.len(),
            expected.map_or_else(|| "more than usize::MAX".to_owned(), |n| n.to_string())
        )));
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(color);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(PngError::Encoding)?;
    writer
        .write_image_data(pixels)
        .map_err(PngError::Encoding)?;
    writer.finish().map_err(PngError::Encoding)?;
    Ok(out)
}

impl std::fmt::Display for PngError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PngError::Invalid(reason) => write!(f, "invalid image: {reason}"),
            PngError::Encoding(e) => write!(f, "PNG encoding failed: {e}"),
        }
    }
}

impl std::error::Error for PngError {}

/// Why [`encode_png`] failed; the writer turns it into a [`TbError`](crate::TbError).
#[derive(Debug)]
pub enum PngError {
    /// Bad arguments.
    Invalid(String),
    /// The encoder failed.
    Encoding(png::EncodingError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_layout_with_gaps() {
        // Three 2x1 images in 2 columns: a 5x3 grid (2 + gap + 2, 1 + gap + 1).
        let a = [0.0, 1.0];
        let b = [0.5, 0.25];
        let c = [1.0, 0.0];
        let (w, h, px) = image_grid(&[&a, &b, &c], 2, 1, 2);
        assert_eq!((w, h), (5, 3));
        let g = GRID_GAP_VALUE;
        #[rustfmt::skip]
        let expected = vec![
            0, 255, g, 128, 64,
            g, g,   g, g,   g,
            255, 0, g, g,   g,
        ];
        assert_eq!(px, expected);
    }

    #[test]
    fn grid_clamps_values_and_columns() {
        let a = [-1.0, f32::NAN, 2.0];
        let (w, h, px) = image_grid(&[&a], 3, 1, 10);
        assert_eq!((w, h, px), (3, 1, vec![0, 0, 255]));
        // A short image is padded with 0.
        let (_, _, px) = image_grid(&[&[1.0][..]], 2, 1, 1);
        assert_eq!(px, vec![255, 0]);
        assert_eq!(image_grid(&[], 28, 28, 4), (0, 0, Vec::new()));
        assert_eq!(image_grid(&[&a], 0, 1, 1), (0, 0, Vec::new()));
    }
}
