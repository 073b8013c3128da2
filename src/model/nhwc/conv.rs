//! Convolution of NHWC f32 images as tiled GEMMs with the bias, residual and ReLU fused.
//!
//! The output is a [rows = N·OH·OW, out_channels] matrix. It is cut into row tiles sized to stay
//! in cache (`TILE_BYTES`); each tile is one single-threaded `gemm` call (rayon runs the tiles),
//! followed at once, while the tile is still in cache, by the epilogue (bias, residual, ReLU).
//! A 1x1 stride-1 convolution reads its input in place (NHWC rows *are* the GEMM's left-hand
//! side); every other convolution (3x3, 7x7, strided 1x1) first gathers its tile's patches
//! (im2col, in (ky, kx, channel) order) into a per-thread scratch buffer that is reused.
//! When a layer has too few rows to keep every thread busy (layer4 at batch 1), the output
//! channels are split as well, so that each thread reads only its share of the weights.

use std::cell::RefCell;
use std::ops::Range;

use gemm::Parallelism;
use rayon::prelude::*;

/// Bytes of left-hand side plus output that one tile aims at: about half of a core's L2.
const TILE_BYTES: usize = 768 * 1024;
/// Output channels per column part are a multiple of this (the GEMM microkernel's width).
const COLUMN_ALIGN: usize = 16;
/// Below this many rows per thread a layer splits its output channels between the threads:
/// each then streams only its share of the weights, which dominate such layers.
const MIN_ROWS_PER_THREAD: usize = 64;

/// Shape of one convolution, NHWC in and out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl ConvGeometry {
    /// Output height and width for an `h`×`w` input, or `None` if the kernel does not fit.
    pub fn output_size(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let side = |n: usize| {
            let padded = n + 2 * self.padding;
            (padded >= self.kernel).then(|| (padded - self.kernel) / self.stride + 1)
        };
        Some((side(h)?, side(w)?))
    }

    /// The output size, after checking that `input_len` values are an [n, h, w, in_channels]
    /// image batch the kernel fits and that a residual has the output's size.
    pub fn check(
        &self,
        input_len: usize,
        (n, h, w): (usize, usize, usize),
        residual: Option<&[f32]>,
    ) -> Result<(usize, usize), String> {
        let ConvGeometry { in_channels: ci, out_channels: co, kernel: k, .. } = *self;
        if input_len != n * h * w * ci {
            return Err(format!("{input_len} input values are not an [{n}, {h}, {w}, {ci}] batch"));
        }
        let (oh, ow) =
            self.output_size(h, w).ok_or_else(|| format!("a {k}x{k} kernel does not fit a {h}x{w} input"))?;
        match residual {
            Some(r) if r.len() != n * oh * ow * co => Err(format!(
                "residual has {} values, the output [{n}, {oh}, {ow}, {co}] needs {}",
                r.len(),
                n * oh * ow * co
            )),
            _ => Ok((oh, ow)),
        }
    }

    /// Length of one patch: the GEMM's inner dimension.
    fn patch_len(&self) -> usize {
        self.kernel * self.kernel * self.in_channels
    }

    /// Whether the input rows can be used as the left-hand side directly.
    fn reads_input_in_place(&self) -> bool {
        self.kernel == 1 && self.stride == 1 && self.padding == 0
    }
}

/// A convolution with its weights packed for the GEMM: [patch_len, out_channels] row-major,
/// rows in (ky, kx, in_channel) order, and one bias per output channel.
#[derive(Debug, Clone)]
pub struct PackedConv {
    geometry: ConvGeometry,
    weights: Vec<f32>,
    bias: Vec<f32>,
}

/// What follows the GEMM in the same pass over each output tile.
#[derive(Debug, Clone, Copy)]
pub struct Epilogue<'a> {
    /// Added after the bias, in the output's layout ([rows, out_channels]).
    pub residual: Option<&'a [f32]>,
    pub relu: bool,
}

/// A raw pointer that rayon tasks may share: every task writes a disjoint region.
#[derive(Clone, Copy)]
pub(super) struct SharedMut(pub(super) *mut f32);
// SAFETY: the tasks of one `forward` write disjoint (row, column) blocks of the output.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

thread_local! {
    /// Each thread's im2col tile, grown to the largest tile it has needed and then reused.
    static PATCHES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// How the output matrix is cut into tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tiling {
    pub rows_per_tile: usize,
    pub row_tiles: usize,
    pub cols_per_part: usize,
    pub col_parts: usize,
}

impl Tiling {
    /// Runs `block(rows, columns)` for every non-empty block of a [rows, cols] output, on rayon
    /// when there is more than one.
    pub fn for_each_block(&self, rows: usize, cols: usize, block: impl Fn(Range<usize>, Range<usize>) + Sync) {
        let run = |task: usize| {
            let (tile, part) = (task / self.col_parts, task % self.col_parts);
            let r0 = tile * self.rows_per_tile;
            let c0 = part * self.cols_per_part;
            let (r1, c1) = ((r0 + self.rows_per_tile).min(rows), (c0 + self.cols_per_part).min(cols));
            if r0 < r1 && c0 < c1 {
                block(r0..r1, c0..c1);
            }
        };
        match self.row_tiles * self.col_parts {
            1 => run(0),
            tasks => (0..tasks).into_par_iter().for_each(run),
        }
    }
}

/// Rows of `patch_len` inputs and `out_channels` outputs cut into tiles of about `tile_bytes`.
pub(super) fn tiling(rows: usize, patch_len: usize, out_channels: usize, threads: usize, tile_bytes: usize) -> Tiling {
    let bytes_per_row = (patch_len + out_channels) * std::mem::size_of::<f32>();
    let cache_rows = (tile_bytes / bytes_per_row).max(8);
    let mut row_tiles = rows.div_ceil(cache_rows).max(1);
    let mut col_parts = 1;
    if rows < threads * MIN_ROWS_PER_THREAD {
        // Too few rows for the threads: split the output channels instead.
        col_parts = threads.min(out_channels / COLUMN_ALIGN).max(1);
    } else if !row_tiles.is_multiple_of(threads) {
        // Balance: a multiple of the thread count, so no thread idles at the end.
        row_tiles = row_tiles.div_ceil(threads) * threads;
    }
    let rows_per_tile = rows.div_ceil(row_tiles).max(1);
    row_tiles = rows.div_ceil(rows_per_tile).max(1);
    let cols_per_part = out_channels.div_ceil(col_parts).div_ceil(COLUMN_ALIGN) * COLUMN_ALIGN;
    let col_parts = out_channels.div_ceil(cols_per_part.max(1)).max(1);
    Tiling { rows_per_tile, row_tiles, cols_per_part: cols_per_part.min(out_channels), col_parts }
}

impl PackedConv {
    /// `weights`: [out_channels, in_channels, kernel, kernel] (PyTorch's layout, BN folded in);
    /// `bias`: [out_channels].
    pub fn new(geometry: ConvGeometry, weights: &[f32], bias: &[f32]) -> Result<Self, String> {
        let ConvGeometry { in_channels: ci, out_channels: co, kernel: k, .. } = geometry;
        if weights.len() != co * ci * k * k || bias.len() != co {
            return Err(format!(
                "packed convolution {ci}→{co} {k}x{k}: got {} weights and {} biases, expected {} and {co}",
                weights.len(),
                bias.len(),
                co * ci * k * k
            ));
        }
        if geometry.stride == 0 || k == 0 {
            return Err(format!("packed convolution: kernel {k} and stride {} must be positive", geometry.stride));
        }
        let mut packed = vec![0f32; weights.len()];
        for o in 0..co {
            for i in 0..ci {
                for ky in 0..k {
                    for kx in 0..k {
                        let row = (ky * k + kx) * ci + i;
                        packed[row * co + o] = weights[((o * ci + i) * k + ky) * k + kx];
                    }
                }
            }
        }
        Ok(Self { geometry, weights: packed, bias: bias.to_vec() })
    }

    pub fn geometry(&self) -> &ConvGeometry {
        &self.geometry
    }

    /// Convolves `input` ([n, h, w, in_channels], contiguous) and applies `epilogue`; returns
    /// [n, oh, ow, out_channels] and (oh, ow), or what is wrong with the shapes.
    pub fn forward(
        &self,
        input: &[f32],
        n: usize,
        h: usize,
        w: usize,
        epilogue: Epilogue,
    ) -> Result<(Vec<f32>, usize, usize), String> {
        let g = self.geometry;
        let (oh, ow) = g.check(input.len(), (n, h, w), epilogue.residual)?;
        let rows = n * oh * ow;
        let cols = g.out_channels;
        let plan = tiling(rows, g.patch_len(), cols, rayon::current_num_threads(), TILE_BYTES);
        let mut output: Vec<f32> = Vec::with_capacity(rows * cols);
        let out = SharedMut(output.as_mut_ptr());
        plan.for_each_block(rows, cols, |r, c| self.tile(input, (h, w, oh, ow), r, c, out, epilogue));
        // SAFETY: the tasks above wrote every (row, column) of the output exactly once.
        unsafe { output.set_len(rows * cols) };
        Ok((output, oh, ow))
    }

    /// One output block: rows `r` × columns `c`.
    fn tile(
        &self,
        input: &[f32],
        (h, w, oh, ow): (usize, usize, usize, usize),
        r: std::ops::Range<usize>,
        c: std::ops::Range<usize>,
        out: SharedMut,
        epilogue: Epilogue,
    ) {
        let g = &self.geometry;
        let cols = g.out_channels;
        let k = g.patch_len();
        // SAFETY: (r, c) lies inside the [rows, cols] output, and no other task writes it.
        let dst = unsafe { out.0.add(r.start * cols + c.start) };
        let stride = padded_stride(k);
        if g.reads_input_in_place() && stride == k {
            let lhs = &input[r.start * k..r.end * k];
            // SAFETY: lhs is [r.len(), k] row-major, the weights [k, cols], dst [r.len(), cols]-strided.
            unsafe { self.gemm(lhs.as_ptr(), k, r.len(), c.clone(), dst) };
        } else {
            PATCHES.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                let needed = r.len() * stride;
                if scratch.len() < needed {
                    scratch.resize(needed, 0.0);
                }
                let patches = &mut scratch[..needed];
                self.gather_patches(input, (h, w, oh, ow), r.clone(), patches, stride);
                // SAFETY: as above, with the patches as the [r.len(), k] left-hand side (row stride `stride`).
                unsafe { self.gemm(patches.as_ptr(), stride, r.len(), c.clone(), dst) };
            });
        }
        let bias = &self.bias[c.clone()];
        for row in r {
            // SAFETY: the gemm above has just written this row's columns c of the task's block.
            let o = unsafe { std::slice::from_raw_parts_mut(out.0.add(row * cols + c.start), c.len()) };
            let residual = epilogue.residual.map(|res| &res[row * cols + c.start..row * cols + c.end]);
            finish_row(o, bias, residual, epilogue.relu);
        }
    }

    /// dst[m, c] = lhs[m, :] · weights[:, c], single-threaded (the caller parallelises).
    ///
    /// # Safety
    /// `lhs` points at `m` rows of `patch_len` floats, `lhs_stride` apart; `dst` at `m` rows of
    /// stride `out_channels` with at least `c.len()` writable floats each.
    unsafe fn gemm(&self, lhs: *const f32, lhs_stride: usize, m: usize, c: std::ops::Range<usize>, dst: *mut f32) {
        let (k, n) = (self.geometry.patch_len(), self.geometry.out_channels);
        gemm_rows((m, c.len(), k), (dst, n), (lhs, lhs_stride), (self.weights.as_ptr().add(c.start), n));
    }

    /// im2col for output rows `r`: each row's patch in (ky, kx, channel) order, zeros outside
    /// the image.
    fn gather_patches(
        &self,
        input: &[f32],
        (h, w, oh, ow): (usize, usize, usize, usize),
        r: std::ops::Range<usize>,
        patches: &mut [f32],
        stride: usize,
    ) {
        let g = &self.geometry;
        let (ci, k, s, p) = (g.in_channels, g.kernel, g.stride, g.padding);
        let patch_len = g.patch_len();
        for (row, patch) in r.zip(patches.chunks_exact_mut(stride)) {
            let patch = &mut patch[..patch_len];
            let image = row / (oh * ow);
            let (oy, ox) = ((row / ow) % oh, row % ow);
            let image_base = image * h * w * ci;
            let x0 = (ox * s) as isize - p as isize;
            for ky in 0..k {
                let iy = (oy * s + ky) as isize - p as isize;
                let line = &mut patch[ky * k * ci..(ky + 1) * k * ci];
                if iy < 0 || iy >= h as isize {
                    line.fill(0.0);
                    continue;
                }
                let row_base = image_base + iy as usize * w * ci;
                if x0 >= 0 && x0 as usize + k <= w {
                    // The whole kernel row lies inside: k·ci consecutive floats.
                    let start = row_base + x0 as usize * ci;
                    line.copy_from_slice(&input[start..start + k * ci]);
                    continue;
                }
                for (kx, pixel) in line.chunks_exact_mut(ci).enumerate() {
                    let ix = x0 + kx as isize;
                    if ix < 0 || ix >= w as isize {
                        pixel.fill(0.0);
                    } else {
                        let start = row_base + ix as usize * ci;
                        pixel.copy_from_slice(&input[start..start + ci]);
                    }
                }
            }
        }
    }
}

/// dst = lhs · rhs for row-major matrices given as (pointer, row stride): lhs [m, k], rhs [k, n],
/// dst [m, n], overwritten; single-threaded (the callers parallelise over blocks).
///
/// # Safety
/// Each pointer must address its matrix's rows at its stride, dst writable and not aliased.
pub(super) unsafe fn gemm_rows(
    (m, n, k): (usize, usize, usize),
    (dst, dst_stride): (*mut f32, usize),
    (lhs, lhs_stride): (*const f32, usize),
    (rhs, rhs_stride): (*const f32, usize),
) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_stride as isize,
        false,
        lhs,
        1,
        lhs_stride as isize,
        rhs,
        1,
        rhs_stride as isize,
        0.0,
        1.0,
        false,
        false,
        false,
        Parallelism::None,
    );
}

/// Row stride of a tile's left-hand side: rows whose length is a multiple of 4 KiB would all
/// fall into the same L1 cache sets as gemm reads them side by side (measured: the in-place
/// 1x1 convolutions with 1024 and 2048 input channels ran at half speed), so such rows are
/// copied into scratch 64 bytes apart.
fn padded_stride(patch_len: usize) -> usize {
    if patch_len.is_multiple_of(1024) {
        patch_len + 16
    } else {
        patch_len
    }
}

/// One output row's epilogue: (conv + bias) + residual, in the plain path's order of
/// additions, then ReLU; one pass, with AVX-512 where the CPU has it.
pub(super) fn finish_row(o: &mut [f32], bias: &[f32], residual: Option<&[f32]>, relu: bool) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F (checked just above).
        return unsafe { finish_row_avx512(o, bias, residual, relu) };
    }
    finish_row_generic(o, bias, residual, relu)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn finish_row_avx512(o: &mut [f32], bias: &[f32], residual: Option<&[f32]>, relu: bool) {
    // The same code, compiled for 16 lanes.
    finish_row_generic(o, bias, residual, relu)
}

#[inline(always)]
pub(super) fn finish_row_generic(o: &mut [f32], bias: &[f32], residual: Option<&[f32]>, relu: bool) {
    // Branches outside the loops, so each loop vectorises; NaN stays NaN without a ReLU.
    match (residual, relu) {
        (Some(residual), true) => {
            for ((o, b), r) in o.iter_mut().zip(bias).zip(residual) {
                *o = ((*o + b) + r).max(0.0);
            }
        }
        (Some(residual), false) => {
            for ((o, b), r) in o.iter_mut().zip(bias).zip(residual) {
                *o = (*o + b) + r;
            }
        }
        (None, true) => {
            for (o, b) in o.iter_mut().zip(bias) {
                *o = (*o + b).max(0.0);
            }
        }
        (None, false) => {
            for (o, b) in o.iter_mut().zip(bias) {
                *o += b;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct convolution, straight from the definition, in f64.
    fn reference(
        g: ConvGeometry,
        input: &[f32],
        n: usize,
        h: usize,
        w: usize,
        weights: &[f32],
        bias: &[f32],
    ) -> Vec<f64> {
        let (oh, ow) = g.output_size(h, w).unwrap();
        let (ci, co, k) = (g.in_channels, g.out_channels, g.kernel);
        let mut out = vec![0f64; n * oh * ow * co];
        for img in 0..n {
            for oy in 0..oh {
                for ox in 0..ow {
                    for o in 0..co {
                        let mut sum = bias[o] as f64;
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * g.stride + ky) as isize - g.padding as isize;
                                let ix = (ox * g.stride + kx) as isize - g.padding as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                for i in 0..ci {
                                    let x = input[((img * h + iy as usize) * w + ix as usize) * ci + i] as f64;
                                    sum += x * weights[((o * ci + i) * k + ky) * k + kx] as f64;
                                }
                            }
                        }
                        out[((img * oh + oy) * ow + ox) * co + o] = sum;
                    }
                }
            }
        }
        out
    }

    use super::super::test_values as values;

    #[test]
    fn every_geometry_matches_the_direct_convolution() {
        let cases = [
            (3, 16, 7, 2, 3, 2, 19, 23), // stem-like, both borders
            (8, 40, 3, 1, 1, 3, 9, 7),   // 3x3, odd channel count
            (8, 32, 3, 2, 1, 1, 10, 11), // strided 3x3
            (24, 48, 1, 1, 0, 2, 6, 5),  // 1x1 in place
            (24, 48, 1, 2, 0, 2, 7, 6),  // strided 1x1 (gathered)
            (64, 96, 3, 1, 1, 1, 3, 3),  // few rows: columns split
        ];
        for (ci, co, k, s, p, n, h, w) in cases {
            let g = ConvGeometry { in_channels: ci, out_channels: co, kernel: k, stride: s, padding: p };
            let (weights, bias) = (values(co * ci * k * k, 1), values(co, 2));
            let input = values(n * h * w * ci, 3);
            let conv = PackedConv::new(g, &weights, &bias).unwrap();
            let (oh, ow) = g.output_size(h, w).unwrap();
            let residual = values(n * oh * ow * co, 4);
            let expected = reference(g, &input, n, h, w, &weights, &bias);
            for (res, relu) in [(None, false), (None, true), (Some(residual.as_slice()), true)] {
                let (got, gh, gw) = conv.forward(&input, n, h, w, Epilogue { residual: res, relu }).unwrap();
                assert_eq!((gh, gw), (oh, ow));
                for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                    let mut e = *e + res.map_or(0.0, |r| r[i] as f64);
                    if relu {
                        e = e.max(0.0);
                    }
                    assert!((*g as f64 - e).abs() < 1e-5, "{ci}→{co} {k}x{k}/{s} at {i}: {g} vs {e}");
                }
            }
        }
    }

    #[test]
    fn wrong_shapes_are_errors_that_say_what_was_expected() {
        let g = ConvGeometry { in_channels: 4, out_channels: 8, kernel: 3, stride: 1, padding: 0 };
        let conv = PackedConv::new(g, &values(8 * 4 * 9, 1), &values(8, 2)).unwrap();
        let plain = Epilogue { residual: None, relu: false };
        let err = conv.forward(&values(10, 3), 1, 5, 5, plain).unwrap_err();
        assert_eq!(err, "10 input values are not an [1, 5, 5, 4] batch");
        let err = conv.forward(&values(2 * 2 * 4, 3), 1, 2, 2, plain).unwrap_err();
        assert_eq!(err, "a 3x3 kernel does not fit a 2x2 input");
        let residual = values(7, 4);
        let err = conv
            .forward(&values(5 * 5 * 4, 3), 1, 5, 5, Epilogue { residual: Some(&residual), relu: true })
            .unwrap_err();
        assert_eq!(err, "residual has 7 values, the output [1, 3, 3, 8] needs 72");
        assert!(PackedConv::new(g, &values(5, 1), &values(8, 2)).unwrap_err().contains("got 5 weights"));
    }

    #[test]
    fn tiles_cover_the_output_and_keep_the_threads_busy() {
        for (rows, patch, cols, threads) in
            [(49, 4608, 512, 2), (200_704, 147, 64, 2), (196, 2304, 256, 2), (1, 9, 10, 4)]
        {
            let t = tiling(rows, patch, cols, threads, TILE_BYTES);
            assert!(t.rows_per_tile * t.row_tiles >= rows && t.rows_per_tile * (t.row_tiles - 1) < rows, "{t:?}");
            assert!(t.cols_per_part * t.col_parts >= cols && t.cols_per_part * (t.col_parts - 1) < cols, "{t:?}");
        }
        // layer4 at batch 1: one row tile, so the 512 channels are split between the threads.
        assert_eq!(tiling(49, 4608, 512, 2, TILE_BYTES).col_parts, 2);
        // Enough rows: a multiple of the thread count of row tiles, channels whole.
        let t = tiling(196, 2304, 256, 2, TILE_BYTES);
        assert_eq!((t.row_tiles % 2, t.col_parts), (0, 1));
    }
}
