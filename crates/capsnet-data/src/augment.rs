//! Data augmentation: random integer translation with zero padding (the CapsNet paper
//! shifts 28×28 MNIST digits by up to 2 pixels in each direction).

use crate::{Dims, Rng};

/// An integer translation: content moves `dx` pixels right and `dy` pixels down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Shift {
    /// Horizontal offset (positive: right).
    pub dx: i32,
    /// Vertical offset (positive: down).
    pub dy: i32,
}

impl Shift {
    /// No translation.
    pub const NONE: Self = Self { dx: 0, dy: 0 };

    /// A shift with `dx` and `dy` drawn independently and uniformly from `-max_px..=max_px`
    /// (x first, then y).
    pub fn random(max_px: u32, rng: &mut Rng) -> Self {
        let dx = rng.symmetric(max_px);
        let dy = rng.symmetric(max_px);
        Self { dx, dy }
    }
}

/// Translates a `dims`-shaped channel-first image from `src` into `dst`, converting each
/// pixel with `convert`; pixels shifted in from outside the image are `fill`.
///
/// `dst[c][y][x] = convert(src[c][y - dy][x - dx])` where that source pixel exists. Works
/// row by row with no allocation.
///
/// # Panics
/// If `src` or `dst` does not hold exactly `dims.size()` values.
pub fn shift_map<S: Copy, D: Copy>(
    src: &[S],
    dst: &mut [D],
    dims: Dims,
    shift: Shift,
    fill: D,
    convert: impl Fn(S) -> D,
) {
    assert_eq!(src.len(), dims.size(), "shift_map: source size");
    assert_eq!(dst.len(), dims.size(), "shift_map: destination size");
    let (h, w) = (dims.height, dims.width);
    if dims.size() == 0 {
        return;
    }
    let (dx, dy) = (shift.dx as isize, shift.dy as isize);
    // Destination columns [x0, x1) have a source pixel, at column x - dx.
    let x0 = dx.clamp(0, w as isize) as usize;
    let x1 = (w as isize + dx).clamp(0, w as isize) as usize;
    for (src_plane, dst_plane) in src.chunks_exact(h * w).zip(dst.chunks_exact_mut(h * w)) {
        for (y, dst_row) in dst_plane.chunks_exact_mut(w).enumerate() {
            let sy = y as isize - dy;
            if x0 >= x1 || sy < 0 || sy >= h as isize {
                dst_row.fill(fill);
                continue;
            }
            let sx0 = (x0 as isize - dx) as usize;
            let src_row = &src_plane[sy as usize * w..][sx0..sx0 + (x1 - x0)];
            dst_row[..x0].fill(fill);
            dst_row[x1..].fill(fill);
            for (d, &s) in dst_row[x0..x1].iter_mut().zip(src_row) {
                *d = convert(s);
            }
        }
    }
}

/// Returns `image` (shaped `dims`) translated by `shift`, zero-padded, same size.
///
/// # Panics
/// If `image` does not hold exactly `dims.size()` pixels.
pub fn shift_image(image: &[u8], dims: Dims, shift: Shift) -> Vec<u8> {
    let mut out = vec![0; dims.size()];
    shift_map(image, &mut out, dims, shift, 0, |p| p);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Dims = Dims {
        channels: 1,
        height: 3,
        width: 4,
    };
    // 1..=12 so that every pixel is non-zero and distinguishable from padding.
    const IMG: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

    fn shifted(dx: i32, dy: i32) -> Vec<u8> {
        shift_image(&IMG, D, Shift { dx, dy })
    }

    #[test]
    fn zero_shift_is_identity() {
        assert_eq!(shifted(0, 0), IMG);
    }

    #[test]
    fn shift_right_moves_pixels_and_zero_pads_the_left_border() {
        assert_eq!(shifted(1, 0), [0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11]);
        assert_eq!(shifted(-2, 0), [3, 4, 0, 0, 7, 8, 0, 0, 11, 12, 0, 0]);
    }

    #[test]
    fn shift_down_and_up() {
        assert_eq!(shifted(0, 1), [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(shifted(0, -1), [5, 6, 7, 8, 9, 10, 11, 12, 0, 0, 0, 0]);
        assert_eq!(shifted(1, -1), [0, 5, 6, 7, 0, 9, 10, 11, 0, 0, 0, 0]);
    }

    #[test]
    fn shifts_beyond_the_image_give_zeros() {
        for (dx, dy) in [(4, 0), (-4, 0), (0, 3), (0, -3), (i32::MAX, i32::MIN)] {
            assert_eq!(shifted(dx, dy), [0; 12], "({dx}, {dy})");
        }
    }

    #[test]
    fn values_are_preserved_inside_and_every_channel_moves_alike() {
        let dims = Dims {
            channels: 2,
            height: 5,
            width: 5,
        };
        let img: Vec<u8> = (1..=50).collect();
        let out = shift_image(&img, dims, Shift { dx: 2, dy: -1 });
        for c in 0..2 {
            for y in 0..5 {
                for x in 0..5 {
                    let (sy, sx) = (y as i32 + 1, x as i32 - 2);
                    let expect = if (0..5).contains(&sy) && (0..5).contains(&sx) {
                        img[c * 25 + sy as usize * 5 + sx as usize]
                    } else {
                        0
                    };
                    assert_eq!(out[c * 25 + y * 5 + x], expect, "c{c} y{y} x{x}");
                }
            }
        }
    }

    #[test]
    fn shift_map_converts_and_fills() {
        let mut out = [f32::NAN; 12];
        shift_map(&IMG, &mut out, D, Shift { dx: 0, dy: 1 }, -1.0, |p| {
            f32::from(p) * 2.0
        });
        assert_eq!(&out[..4], &[-1.0; 4]);
        assert_eq!(&out[4..8], &[2.0, 4.0, 6.0, 8.0]);
    }

    #[test]
    fn random_shift_stays_within_max_and_covers_it() {
        let mut rng = Rng::new(1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let s = Shift::random(2, &mut rng);
            assert!(s.dx.abs() <= 2 && s.dy.abs() <= 2, "{s:?}");
            seen.insert((s.dx, s.dy));
        }
        assert_eq!(seen.len(), 25);
        assert_eq!(Shift::random(0, &mut rng), Shift::NONE);
    }
}
