//! PNG, the one image format clips travel in, to and from the RGBA pixels `arboard` speaks.

use std::io::Cursor;

use crate::ClipboardError;

/// Pixels, 8-bit RGBA, row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgba {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width × height × 4` bytes.
    pub pixels: Vec<u8>,
}

/// The most memory a decoded image may take (a 8K × 8K RGBA image).
const MAX_DECODED: usize = 256 * 1024 * 1024;

/// Decodes a PNG of any colour type and depth into 8-bit RGBA.
pub fn decode_png(png: &[u8]) -> Result<Rgba, ClipboardError> {
    let bad = |e: png::DecodingError| ClipboardError::BadImage(e.to_string());
    let mut decoder =
        png::Decoder::new_with_limits(Cursor::new(png), png::Limits { bytes: MAX_DECODED });
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(bad)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| ClipboardError::BadImage("the image is too large".into()))?;
    let mut buffer = vec![0; size];
    let info = reader.next_frame(&mut buffer).map_err(bad)?;
    buffer.truncate(info.buffer_size());
    let pixels: Vec<u8> = match info.color_type {
        png::ColorType::Rgba => buffer,
        png::ColorType::Rgb => buffer
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        png::ColorType::GrayscaleAlpha => buffer
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0], p[1]])
            .collect(),
        png::ColorType::Grayscale => buffer.iter().flat_map(|&g| [g, g, g, 255]).collect(),
        png::ColorType::Indexed => {
            return Err(ClipboardError::BadImage(
                "a palette image was not expanded".into(),
            ));
        }
    };
    Ok(Rgba {
        width: info.width,
        height: info.height,
        pixels,
    })
}

/// Encodes RGBA pixels as a PNG.
pub fn encode_png(image: &Rgba) -> Result<Vec<u8>, ClipboardError> {
    let bad = |e: png::EncodingError| ClipboardError::BadImage(e.to_string());
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, image.width, image.height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(bad)?;
    writer.write_image_data(&image.pixels).map_err(bad)?;
    writer.finish().map_err(bad)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let image = Rgba {
            width: 3,
            height: 2,
            pixels: (0..24).collect(),
        };
        let png = encode_png(&image).unwrap();
        assert_eq!(decode_png(&png).unwrap(), image);
        assert!(matches!(
            decode_png(&png[..png.len() / 2]),
            Err(ClipboardError::BadImage(_))
        ));
        assert!(decode_png(b"not a png").is_err());
    }
}
