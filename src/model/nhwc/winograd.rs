//! 3x3 stride-1 convolutions by Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray, 2016):
//! each 2x2 output tile is A^T [(G g G^T) ⊙ (B^T d B)] A for its 4x4 input tile d, so the
//! multiplications become 16 GEMMs of [tiles, in] × [in, out] with 2.25× fewer multiply-adds
//! than the direct convolution. The transforms use only ±1 (and ½ on the weights, done once),
//! so the result stays within a few float roundings of the direct sum (tested against it).
//!
//! Work is cut as in `conv.rs`: blocks of tiles (and, when there are few, of output channels)
//! run on rayon, each with per-thread scratch for its transformed input and products.

use std::cell::RefCell;

use super::conv::{finish_row, gemm_rows, tiling, ConvGeometry, Epilogue, SharedMut};

/// Bytes of transformed input plus products one block aims at: the 16 GEMMs of a block each
/// touch a sixteenth of it, and fewer, larger calls amortise gemm's per-call setup.
const BLOCK_BYTES: usize = 4 * 1024 * 1024;

thread_local! {
    /// (transformed input, products) of the block this thread is working on.
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// A 3x3 stride-1 padding-1 convolution with its weights transformed: 16 matrices
/// U[ξ] = (G g G^T)[ξ], each [in_channels, out_channels] row-major.
#[derive(Debug, Clone)]
pub struct WinogradConv {
    in_channels: usize,
    out_channels: usize,
    weights: Vec<f32>,
    bias: Vec<f32>,
}

impl WinogradConv {
    /// `weights`: [out, in, 3, 3] (PyTorch's layout, BN folded in); `bias`: [out].
    pub fn new(in_channels: usize, out_channels: usize, weights: &[f32], bias: &[f32]) -> Result<Self, String> {
        let (ci, co) = (in_channels, out_channels);
        if weights.len() != co * ci * 9 || bias.len() != co {
            return Err(format!(
                "Winograd convolution {ci}→{co}: got {} weights and {} biases, expected {} and {co}",
                weights.len(),
                bias.len(),
                co * ci * 9
            ));
        }
        let mut transformed = vec![0f32; 16 * ci * co];
        for o in 0..co {
            for i in 0..ci {
                let g = &weights[(o * ci + i) * 9..(o * ci + i + 1) * 9];
                let u = transform_kernel(g);
                for (xi, value) in u.iter().enumerate() {
                    transformed[(xi * ci + i) * co + o] = *value;
                }
            }
        }
        Ok(Self { in_channels: ci, out_channels: co, weights: transformed, bias: bias.to_vec() })
    }

    /// Convolves `input` ([n, h, w, in_channels], contiguous; same-size output) and applies
    /// `epilogue`, or says what is wrong with the shapes.
    pub fn forward(&self, input: &[f32], n: usize, h: usize, w: usize, epilogue: Epilogue) -> Result<Vec<f32>, String> {
        let (ci, co) = (self.in_channels, self.out_channels);
        let geometry = ConvGeometry { in_channels: ci, out_channels: co, kernel: 3, stride: 1, padding: 1 };
        geometry.check(input.len(), (n, h, w), epilogue.residual)?;
        let (tiles_y, tiles_x) = (h.div_ceil(2), w.div_ceil(2));
        let tiles = n * tiles_y * tiles_x;
        let plan = tiling(tiles, 16 * ci, 16 * co, rayon::current_num_threads(), BLOCK_BYTES);
        let mut output: Vec<f32> = Vec::with_capacity(n * h * w * co);
        let out = SharedMut(output.as_mut_ptr());
        let geometry = Geometry { h, w, tiles_y, tiles_x };
        plan.for_each_block(tiles, co, |t, c| self.block(input, geometry, t, c, out, epilogue));
        // SAFETY: the tiles cover every output pixel exactly once, each with every channel.
        unsafe { output.set_len(n * h * w * co) };
        Ok(output)
    }

    fn block(
        &self,
        input: &[f32],
        g: Geometry,
        t: std::ops::Range<usize>,
        c: std::ops::Range<usize>,
        out: SharedMut,
        epilogue: Epilogue,
    ) {
        let (ci, co) = (self.in_channels, self.out_channels);
        let (count, width) = (t.len(), c.len());
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let (v, m) = &mut *scratch;
            if v.len() < 16 * count * ci {
                v.resize(16 * count * ci, 0.0);
            }
            if m.len() < 16 * count * width {
                m.resize(16 * count * width, 0.0);
            }
            let zeros = vec![0f32; ci];
            for (local, tile) in t.clone().enumerate() {
                let d = g.input_tile(input, tile, ci, &zeros);
                transform_input(&d, v, local, count, ci);
            }
            for xi in 0..16 {
                // SAFETY: V[ξ] is [count, ci], U[ξ] [ci, co] (columns c of it), M[ξ] [count, width].
                unsafe {
                    gemm_rows(
                        (count, width, ci),
                        (m.as_mut_ptr().add(xi * count * width), width),
                        (v.as_ptr().add(xi * count * ci), ci),
                        (self.weights.as_ptr().add(xi * ci * co + c.start), co),
                    )
                };
            }
            let bias = &self.bias[c.clone()];
            for (local, tile) in t.enumerate() {
                let pixels = g.output_pixels(tile);
                // Pixels off the image (odd sizes) get an empty row: computed, not stored.
                let mut rows: [&mut [f32]; 4] = [&mut [], &mut [], &mut [], &mut []];
                for (row, pixel) in rows.iter_mut().zip(pixels) {
                    if let Some(p) = pixel {
                        // SAFETY: this task alone writes this pixel's channels c, inside the
                        // [n, h, w, co] output.
                        *row = unsafe { std::slice::from_raw_parts_mut(out.0.add(p * co + c.start), width) };
                    }
                }
                let residuals = epilogue
                    .residual
                    .map(|r| pixels.map(|p| p.map_or(&[][..], |p| &r[p * co + c.start..p * co + c.end])));
                transform_output(m, (local, count, width), &mut rows, bias, residuals, epilogue.relu);
            }
        });
    }
}

#[derive(Debug, Clone, Copy)]
struct Geometry {
    h: usize,
    w: usize,
    tiles_y: usize,
    tiles_x: usize,
}

impl Geometry {
    /// (image, first output row, first output column) of a tile.
    fn place(&self, tile: usize) -> (usize, usize, usize) {
        let per_image = self.tiles_y * self.tiles_x;
        let (image, rest) = (tile / per_image, tile % per_image);
        (image, 2 * (rest / self.tiles_x), 2 * (rest % self.tiles_x))
    }

    /// The 16 input pixels (channel slices) of a tile's 4x4 window, zeros outside the image.
    fn input_tile<'a>(&self, input: &'a [f32], tile: usize, ci: usize, zeros: &'a [f32]) -> [&'a [f32]; 16] {
        let (image, y, x) = self.place(tile);
        let mut d = [zeros; 16];
        for (i, row) in d.chunks_exact_mut(4).enumerate() {
            let iy = y as isize + i as isize - 1;
            if iy < 0 || iy >= self.h as isize {
                continue;
            }
            for (j, slot) in row.iter_mut().enumerate() {
                let ix = x as isize + j as isize - 1;
                if ix >= 0 && ix < self.w as isize {
                    let start = ((image * self.h + iy as usize) * self.w + ix as usize) * ci;
                    *slot = &input[start..start + ci];
                }
            }
        }
        d
    }

    /// The flat pixel indices (image·h·w + y·w + x) of a tile's 2x2 outputs, `None` off the image.
    fn output_pixels(&self, tile: usize) -> [Option<usize>; 4] {
        let (image, y, x) = self.place(tile);
        let mut pixels = [None; 4];
        for (k, pixel) in pixels.iter_mut().enumerate() {
            let (oy, ox) = (y + k / 2, x + k % 2);
            if oy < self.h && ox < self.w {
                *pixel = Some((image * self.h + oy) * self.w + ox);
            }
        }
        pixels
    }
}

/// G g G^T for one 3x3 kernel (row-major), G = [[1,0,0],[½,½,½],[½,−½,½],[0,0,1]]; in f64.
fn transform_kernel(g: &[f32]) -> [f32; 16] {
    let g: Vec<f64> = g.iter().map(|&v| v as f64).collect();
    let gm = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];
    let mut left = [[0f64; 3]; 4]; // G g
    for (r, grow) in gm.iter().enumerate() {
        for c in 0..3 {
            left[r][c] = (0..3).map(|k| grow[k] * g[k * 3 + c]).sum();
        }
    }
    let mut u = [0f32; 16];
    for r in 0..4 {
        for (c, gcol) in gm.iter().enumerate() {
            u[r * 4 + c] = (0..3).map(|k| left[r][k] * gcol[k]).sum::<f64>() as f32;
        }
    }
    u
}

/// V[ξ][tile][channel] = (B^T d B)[ξ], B^T = [[1,0,−1,0],[0,1,1,0],[0,−1,1,0],[0,1,0,−1]].
fn transform_input(d: &[&[f32]; 16], v: &mut [f32], local: usize, count: usize, ci: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F (checked just above).
        return unsafe { transform_input_avx512(d, v, local, count, ci) };
    }
    transform_input_generic(d, v, local, count, ci)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transform_input_avx512(d: &[&[f32]; 16], v: &mut [f32], local: usize, count: usize, ci: usize) {
    use std::arch::x86_64::*;
    assert!(d.iter().all(|s| s.len() >= ci) && v.len() >= 16 * count * ci && local < count);
    let dst = v.as_mut_ptr();
    let mut c = 0;
    while c < ci {
        // 16 channels at a time; the last group masked.
        let lanes = (ci - c).min(16);
        let mask: __mmask16 = if lanes == 16 { 0xffff } else { (1u16 << lanes) - 1 };
        let x: [__m512; 16] = std::array::from_fn(|k| _mm512_maskz_loadu_ps(mask, d[k].as_ptr().add(c)));
        let mut t = [_mm512_setzero_ps(); 16];
        for j in 0..4 {
            t[j] = _mm512_sub_ps(x[j], x[8 + j]);
            t[4 + j] = _mm512_add_ps(x[4 + j], x[8 + j]);
            t[8 + j] = _mm512_sub_ps(x[8 + j], x[4 + j]);
            t[12 + j] = _mm512_sub_ps(x[4 + j], x[12 + j]);
        }
        for i in 0..4 {
            let r = &t[4 * i..4 * i + 4];
            let out = [
                _mm512_sub_ps(r[0], r[2]),
                _mm512_add_ps(r[1], r[2]),
                _mm512_sub_ps(r[2], r[1]),
                _mm512_sub_ps(r[1], r[3]),
            ];
            for (j, value) in out.into_iter().enumerate() {
                let xi = 4 * i + j;
                // SAFETY: (xi·count + local)·ci + c + lanes ≤ 16·count·ci (asserted above).
                _mm512_mask_storeu_ps(dst.add((xi * count + local) * ci + c), mask, value);
            }
        }
        c += 16;
    }
}

#[inline(always)]
fn transform_input_generic(d: &[&[f32]; 16], v: &mut [f32], local: usize, count: usize, ci: usize) {
    let d: [&[f32]; 16] = std::array::from_fn(|k| &d[k][..ci]);
    // The 16 destination rows, one per ξ, split off one by one (they do not overlap).
    let mut dst: [&mut [f32]; 16] = Default::default();
    let mut rest = &mut v[..16 * count * ci];
    let mut offset = 0;
    for (xi, slot) in dst.iter_mut().enumerate() {
        let start = (xi * count + local) * ci;
        let (_, tail) = std::mem::take(&mut rest).split_at_mut(start - offset);
        let (row, tail) = tail.split_at_mut(ci);
        *slot = row;
        rest = tail;
        offset = start + ci;
    }
    for c in 0..ci {
        let x: [f32; 16] = std::array::from_fn(|k| d[k][c]);
        // B^T d: rows of the 4x4 window combined.
        let mut t = [0f32; 16];
        for j in 0..4 {
            t[j] = x[j] - x[8 + j];
            t[4 + j] = x[4 + j] + x[8 + j];
            t[8 + j] = x[8 + j] - x[4 + j];
            t[12 + j] = x[4 + j] - x[12 + j];
        }
        // (B^T d) B: columns combined.
        for i in 0..4 {
            let r = &t[4 * i..4 * i + 4];
            dst[4 * i][c] = r[0] - r[2];
            dst[4 * i + 1][c] = r[1] + r[2];
            dst[4 * i + 2][c] = r[2] - r[1];
            dst[4 * i + 3][c] = r[1] - r[3];
        }
    }
}

/// The 2x2 outputs A^T m A of one tile, A^T = [[1,1,1,0],[0,1,−1,−1]], into `rows` (the
/// pixels (0,0), (0,1), (1,0), (1,1); an empty row is skipped), then the epilogue: bias, the
/// residual (`residuals`, the same pixels' rows), ReLU.
fn transform_output(
    m: &[f32],
    (local, count, width): (usize, usize, usize),
    rows: &mut [&mut [f32]; 4],
    bias: &[f32],
    residuals: Option<[&[f32]; 4]>,
    relu: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F (checked just above).
        return unsafe { transform_output_avx512(m, (local, count, width), rows, bias, residuals, relu) };
    }
    transform_output_generic(m, local, count, width, rows);
    for (k, row) in rows.iter_mut().enumerate() {
        if !row.is_empty() {
            finish_row(row, bias, residuals.map(|r| r[k]), relu);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transform_output_avx512(
    m: &[f32],
    (local, count, width): (usize, usize, usize),
    rows: &mut [&mut [f32]; 4],
    bias: &[f32],
    residuals: Option<[&[f32]; 4]>,
    relu: bool,
) {
    use std::arch::x86_64::*;
    assert!(m.len() >= 16 * count * width && local < count && bias.len() >= width);
    assert!(rows.iter().all(|r| r.is_empty() || r.len() >= width));
    if let Some(res) = residuals {
        assert!(rows.iter().zip(res).all(|(r, s)| r.is_empty() || s.len() >= width));
    }
    let src = m.as_ptr();
    let zero = _mm512_setzero_ps();
    let mut c = 0;
    while c < width {
        let lanes = (width - c).min(16);
        let mask: __mmask16 = if lanes == 16 { 0xffff } else { (1u16 << lanes) - 1 };
        // SAFETY: (xi·count + local)·width + c + lanes ≤ 16·count·width (asserted above).
        let x: [__m512; 16] =
            std::array::from_fn(|xi| _mm512_maskz_loadu_ps(mask, src.add((xi * count + local) * width + c)));
        let mut s = [zero; 8];
        for j in 0..4 {
            s[j] = _mm512_add_ps(_mm512_add_ps(x[j], x[4 + j]), x[8 + j]);
            s[4 + j] = _mm512_sub_ps(_mm512_sub_ps(x[4 + j], x[8 + j]), x[12 + j]);
        }
        let y = [
            _mm512_add_ps(_mm512_add_ps(s[0], s[1]), s[2]),
            _mm512_sub_ps(_mm512_sub_ps(s[1], s[2]), s[3]),
            _mm512_add_ps(_mm512_add_ps(s[4], s[5]), s[6]),
            _mm512_sub_ps(_mm512_sub_ps(s[5], s[6]), s[7]),
        ];
        let b = _mm512_maskz_loadu_ps(mask, bias.as_ptr().add(c));
        for (k, (row, value)) in rows.iter_mut().zip(y).enumerate() {
            if row.is_empty() {
                continue;
            }
            // (conv + bias) + residual, then ReLU: the plain path's order.
            let mut value = _mm512_add_ps(value, b);
            if let Some(res) = residuals {
                value = _mm512_add_ps(value, _mm512_maskz_loadu_ps(mask, res[k].as_ptr().add(c)));
            }
            if relu {
                value = _mm512_max_ps(value, zero);
            }
            _mm512_mask_storeu_ps(row.as_mut_ptr().add(c), mask, value);
        }
        c += 16;
    }
}

#[inline(always)]
fn transform_output_generic(m: &[f32], local: usize, count: usize, width: usize, rows: &mut [&mut [f32]; 4]) {
    let src: [&[f32]; 16] = std::array::from_fn(|xi| {
        let start = (xi * count + local) * width;
        &m[start..start + width]
    });
    let full = rows.iter().all(|r| r.len() == width);
    for c in 0..width {
        let x: [f32; 16] = std::array::from_fn(|k| src[k][c]);
        // A^T m: rows 0+1+2 and 1−2−3.
        let mut s = [0f32; 8];
        for j in 0..4 {
            s[j] = x[j] + x[4 + j] + x[8 + j];
            s[4 + j] = x[4 + j] - x[8 + j] - x[12 + j];
        }
        // (A^T m) A: columns 0+1+2 and 1−2−3.
        let y = [s[0] + s[1] + s[2], s[1] - s[2] - s[3], s[4] + s[5] + s[6], s[5] - s[6] - s[7]];
        if full {
            for (row, value) in rows.iter_mut().zip(y) {
                row[c] = value;
            }
        } else {
            for (row, value) in rows.iter_mut().zip(y) {
                if let Some(slot) = row.get_mut(c) {
                    *slot = value;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::conv::PackedConv;
    use super::*;

    use super::super::test_values as values;

    #[test]
    fn matches_the_direct_convolution_on_even_and_odd_sizes() {
        for (ci, co, n, h, w) in [(8, 16, 2, 6, 6), (16, 48, 1, 7, 5), (64, 64, 1, 3, 3), (5, 7, 3, 1, 2)] {
            let (weights, bias) = (values(co * ci * 9, 1), values(co, 2));
            let input = values(n * h * w * ci, 3);
            let residual = values(n * h * w * co, 4);
            let direct = PackedConv::new(
                ConvGeometry { in_channels: ci, out_channels: co, kernel: 3, stride: 1, padding: 1 },
                &weights,
                &bias,
            )
            .unwrap();
            let winograd = WinogradConv::new(ci, co, &weights, &bias).unwrap();
            for epilogue in
                [Epilogue { residual: None, relu: false }, Epilogue { residual: Some(&residual), relu: true }]
            {
                let (expected, _, _) = direct.forward(&input, n, h, w, epilogue).unwrap();
                let got = winograd.forward(&input, n, h, w, epilogue).unwrap();
                assert_eq!(got.len(), expected.len());
                let scale = expected.iter().fold(0f32, |a, b| a.max(b.abs()));
                for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                    assert!((g - e).abs() <= 1e-5 * scale.max(1.0), "{ci}→{co} {h}x{w} at {i}: {g} vs {e}");
                }
            }
        }
    }
    /// The portable transforms (used on CPUs without AVX-512) compute exactly what the AVX-512
    /// ones compute: the same operations in the same order, so the same bits.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn portable_transforms_equal_the_avx512_ones_bit_for_bit() {
        use super::super::conv::{finish_row_avx512, finish_row_generic};
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        let (count, ci, width) = (3, 37, 21); // masked tails on both sides
        let pixels: Vec<Vec<f32>> = (0..16).map(|k| values(ci, 10 + k)).collect();
        let d: [&[f32]; 16] = std::array::from_fn(|k| pixels[k].as_slice());
        let (mut portable, mut avx) = (vec![0f32; 16 * count * ci], vec![0f32; 16 * count * ci]);
        transform_input_generic(&d, &mut portable, 1, count, ci);
        unsafe { transform_input_avx512(&d, &mut avx, 1, count, ci) };
        assert_eq!(portable, avx);

        let m = values(16 * count * width, 5);
        let (bias, residual) = (values(width, 6), values(4 * width, 7));
        for (residual, relu) in [(None, false), (Some(&residual), true)] {
            let mut outs = [vec![0f32; 4 * width], vec![0f32; 4 * width]];
            let residuals = residual.map(|r| std::array::from_fn(|k| &r[k * width..(k + 1) * width]));
            for (which, out) in outs.iter_mut().enumerate() {
                let mut chunks = out.chunks_exact_mut(width);
                let mut rows: [&mut [f32]; 4] = std::array::from_fn(|_| chunks.next().unwrap());
                rows[3] = &mut []; // a pixel off the image
                if which == 0 {
                    transform_output_generic(&m, 2, count, width, &mut rows);
                    for (k, row) in rows.iter_mut().enumerate() {
                        if !row.is_empty() {
                            finish_row_generic(row, &bias, residuals.map(|r: [&[f32]; 4]| r[k]), relu);
                        }
                    }
                } else {
                    unsafe { transform_output_avx512(&m, (2, count, width), &mut rows, &bias, residuals, relu) };
                }
            }
            assert_eq!(outs[0], outs[1], "residual {} relu {relu}", residual.is_some());
            // The direct convolution's epilogue, alone.
            let (mut portable, mut avx) = (m[..width].to_vec(), m[..width].to_vec());
            let residual = residual.map(|r| &r[..width]);
            finish_row_generic(&mut portable, &bias, residual, relu);
            unsafe { finish_row_avx512(&mut avx, &bias, residual, relu) };
            assert_eq!(portable, avx);
        }
    }
}
