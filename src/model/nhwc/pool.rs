//! The stem's 3x3 stride-2 max pool on NHWC images.

use rayon::prelude::*;

use crate::model::StemPool;

/// Output side for an input side `n`: torchvision pads 1 and rounds down; Caffe pads 0 and
/// rounds up (a last window may hang over the edge). `None` when no window fits.
pub fn pooled_side(n: usize, pool: StemPool) -> Option<usize> {
    match pool {
        StemPool::Torch => (n >= 1).then(|| (n + 2 - 3) / 2 + 1),
        StemPool::Caffe => (n >= 3).then(|| (n - 3).div_ceil(2) + 1),
    }
}

/// Max over each window's positions inside the image (outside positions never win, as with
/// PyTorch's −∞ padding). `input`: [n, h, w, c] contiguous; returns [n, oh, ow, c].
pub fn max_pool_3x3_s2(
    input: &[f32],
    (n, h, w, c): (usize, usize, usize, usize),
    pool: StemPool,
) -> Option<(Vec<f32>, usize, usize)> {
    let (oh, ow) = (pooled_side(h, pool)?, pooled_side(w, pool)?);
    let pad = match pool {
        StemPool::Torch => 1,
        StemPool::Caffe => 0,
    };
    let mut output = vec![0f32; n * oh * ow * c];
    output.par_chunks_mut(ow * c).enumerate().for_each(|(out_row, line)| {
        let (image, oy) = (out_row / oh, out_row % oh);
        let y0 = (oy * 2).saturating_sub(pad);
        let y1 = (oy * 2 + 3 - pad).min(h);
        for (ox, pixel) in line.chunks_exact_mut(c).enumerate() {
            let x0 = (ox * 2).saturating_sub(pad);
            let x1 = (ox * 2 + 3 - pad).min(w);
            pixel.fill(f32::NEG_INFINITY);
            for y in y0..y1 {
                for x in x0..x1 {
                    let start = ((image * h + y) * w + x) * c;
                    for (m, v) in pixel.iter_mut().zip(&input[start..start + c]) {
                        *m = m.max(*v);
                    }
                }
            }
        }
    });
    Some((output, oh, ow))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_each_convention() {
        // One channel, 5x5 ramp: torch pads 1 (3x3 out), Caffe rounds up (2x2 out).
        let input: Vec<f32> = (0..25).map(|v| v as f32).collect();
        let (torch, oh, ow) = max_pool_3x3_s2(&input, (1, 5, 5, 1), StemPool::Torch).unwrap();
        assert_eq!((oh, ow), (3, 3));
        assert_eq!(torch, vec![6., 8., 9., 16., 18., 19., 21., 23., 24.]);
        let (caffe, oh, ow) = max_pool_3x3_s2(&input, (1, 5, 5, 1), StemPool::Caffe).unwrap();
        assert_eq!((oh, ow), (2, 2));
        assert_eq!(caffe, vec![12., 14., 22., 24.]);
        // 6 wide: Caffe's last window hangs over the edge (ceil((6-3)/2)+1 = 3).
        assert_eq!(pooled_side(6, StemPool::Caffe), Some(3));
        assert_eq!(pooled_side(2, StemPool::Caffe), None);
    }
}
