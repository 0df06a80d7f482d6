//! Screening by bf16 products on x86-64 CPUs with AVX512-BF16 (`vdpbf16ps`), which do
//! twice as many multiply-adds per cycle as f32 FMA.
//!
//! Points and centroids are rounded to bf16 (8 significant bits). With `x̃ = x + δx` and
//! `c̃ = c + δc`, the Cauchy–Schwarz inequality gives `|x̃·c̃ − x·c| ≤ ‖x̃‖·‖δc‖ + ‖δx‖·‖c‖`.
//! Both rounding norms are measured, so the score error has a rigorous bound of about
//! `2⁻⁹ · ‖x‖ · ‖c‖`. On L2-normalised 256-dimensional data it leaves 1.0 to 1.5 candidates
//! per point. Subnormal inputs are flushed to zero before rounding, because the instruction
//! treats them as zero, and the flush is part of `δx`.
//!
//! The product kernel keeps `MR` points in registers and streams tiles of `NP × 16`
//! centroids packed as bf16 pairs. Each tile's scores go straight into the screen, so no
//! score is stored.

use std::arch::x86_64::*;

use rayon::prelude::*;

use super::assign::{PreparedCentroids, Screen, rounding_slack};

/// Points per register block of the product kernel.
const MR: usize = 12;

/// Panels of 16 centroids per tile of the product kernel: `MR × NP` accumulators.
const NP: usize = 2;

/// Centroids per tile.
const TILE: usize = 16 * NP;

/// Tiles per cache block: 32 tiles of 32 centroids of dimension 256 take 512 KiB of bf16,
/// half of a 1 MiB L2 cache.
const TILES_PER_BLOCK: usize = 32;

/// Largest point or centroid norm the kernel accepts: products of two such vectors stay
/// far from the f32 overflow threshold (2¹²⁸).
const MAX_NORM: f32 = 1.099_511_6e12; // 2⁴⁰

/// Returns whether this CPU has the instructions the kernel uses.
pub(crate) fn is_available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512dq")
        && is_x86_feature_detected!("avx512bf16")
}

/// Centroids rounded to bf16 and packed tile by tile: for tile `t` and pair step `p`, `NP`
/// vectors of 16 lanes, lane `l` of panel `q` holding coordinates `2p` and `2p + 1` of
/// centroid `t·TILE + 16q + l` (zero beyond the last centroid).
pub(crate) struct PackedCentroids {
    tiles: Vec<u32>,
    n_tiles: usize,
    /// Coordinate pairs per centroid, `⌈dim / 2⌉`.
    pairs: usize,
    /// `−½‖c‖²` per centroid, zero-padded to whole tiles.
    biases: Vec<f32>,
    /// Largest `‖c − c̃‖`, rounded up.
    max_rounding_norm: f32,
}

impl PackedCentroids {
    /// Packs `data` (`[n_clusters, dim]`), or returns `None` when a centroid norm exceeds
    /// [`MAX_NORM`].
    pub(crate) fn new(data: &[f32], dim: usize, max_norm: f32) -> Option<Self> {
        if max_norm.is_nan() || max_norm > MAX_NORM {
            return None;
        }
        let n_clusters = data.len() / dim;
        let pairs = dim.div_ceil(2);
        let n_tiles = n_clusters.div_ceil(TILE);
        let mut tiles = vec![0u32; n_tiles * pairs * TILE];
        let mut biases = vec![0.0f32; n_tiles * TILE];
        let max_rounding = tiles
            .par_chunks_mut(pairs * TILE)
            .zip(biases.par_chunks_mut(TILE))
            .zip(data.par_chunks(TILE * dim))
            .map(|((tile, tile_biases), tile_data)| {
                pack_tile(tile_data, dim, pairs, tile, tile_biases)
            })
            .reduce(|| 0.0f64, f64::max);
        Some(Self {
            tiles,
            n_tiles,
            pairs,
            biases,
            max_rounding_norm: (max_rounding.sqrt() * (1.0 + 1e-6)) as f32,
        })
    }
}

/// Packs up to `TILE` centroids (`data`, `[n, dim]`) into one tile, writes `−½‖c‖²` for each
/// and returns the largest squared rounding norm `‖c − c̃‖²`.
fn pack_tile(data: &[f32], dim: usize, pairs: usize, tile: &mut [u32], biases: &mut [f32]) -> f64 {
    let mut max_rounding = 0.0f64;
    for (lane, centroid) in data.chunks_exact(dim).enumerate() {
        let mut rounding = 0.0f64;
        let mut norm = 0.0f64;
        for p in 0..pairs {
            let low = centroid[2 * p];
            let high = centroid.get(2 * p + 1).copied().unwrap_or(0.0);
            let (low_bf16, high_bf16) = (to_bf16(low), to_bf16(high));
            tile[p * TILE + lane] = u32::from(low_bf16) | (u32::from(high_bf16) << 16);
            for (value, rounded) in [(low, low_bf16), (high, high_bf16)] {
                let error = f64::from(value) - f64::from(from_bf16(rounded));
                rounding += error * error;
                norm += f64::from(value) * f64::from(value);
            }
        }
        biases[lane] = (-0.5 * norm) as f32;
        max_rounding = max_rounding.max(rounding);
    }
    max_rounding
}

/// Per-thread buffers: the block's points as bf16 pairs.
#[derive(Default)]
pub(crate) struct BlockScratch {
    rows: Vec<u32>,
}

/// Screens the points of one block against all centroids.
pub(crate) fn screen_block(
    block_points: &[f32],
    dim: usize,
    centroids: &PreparedCentroids<'_>,
    packed: &PackedCentroids,
    scratch: &mut BlockScratch,
    screen: &mut Screen,
) {
    let rows = block_points.len() / dim;
    screen.reset(rows);
    scratch.rows.clear();
    scratch.rows.resize(rows * packed.pairs, 0);
    // SAFETY: `is_available` was true when `packed` was built, as `PreparedCentroids`
    // only builds it then.
    unsafe {
        convert_rows(
            block_points,
            dim,
            packed,
            centroids.max_norm,
            scratch,
            screen,
        );
        screen_rows(&scratch.rows, packed, centroids.n_clusters, screen);
    }
}

/// Rounds each point to bf16 pairs and sets its slack: twice the bf16 error bound plus the
/// f32 [`rounding_slack`]. A point with a norm above [`MAX_NORM`] gets an infinite slack,
/// which makes resolution compare it with every centroid.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512bf16")]
fn convert_rows(
    block_points: &[f32],
    dim: usize,
    packed: &PackedCentroids,
    max_centroid_norm: f32,
    scratch: &mut BlockScratch,
    screen: &mut Screen,
) {
    let pairs = packed.pairs;
    for (row, (point, out)) in block_points
        .chunks_exact(dim)
        .zip(scratch.rows.chunks_exact_mut(pairs))
        .enumerate()
    {
        let (norm, rounded_norm, rounding_norm) = convert_row(point, out);
        screen.slack[row] = if norm <= MAX_NORM {
            let bf16_error =
                rounded_norm * packed.max_rounding_norm + rounding_norm * max_centroid_norm;
            2.0 * bf16_error * (1.0 + 1e-3) + rounding_slack(dim, norm, max_centroid_norm)
        } else {
            f32::INFINITY
        };
    }
}

/// Writes `point` as bf16 pairs into `out` and returns upper bounds of `‖x‖`, `‖x̃‖` and
/// `‖x − x̃‖`.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512bf16")]
fn convert_row(point: &[f32], out: &mut [u32]) -> (f32, f32, f32) {
    let min_normal = _mm512_set1_ps(f32::MIN_POSITIVE);
    let mut sums = [_mm512_setzero_ps(); 3];
    for (chunk, pair_chunk) in point.chunks(32).zip(out.chunks_mut(16)) {
        let len = chunk.len();
        let low_mask: __mmask16 = if len >= 16 { 0xFFFF } else { (1u16 << len) - 1 };
        let high_mask: __mmask16 = if len >= 32 {
            0xFFFF
        } else if len > 16 {
            (1u16 << (len - 16)) - 1
        } else {
            0
        };
        // SAFETY: the masks select only lanes inside `chunk`.
        let (low, high) = unsafe {
            (
                _mm512_maskz_loadu_ps(low_mask, chunk.as_ptr()),
                _mm512_maskz_loadu_ps(high_mask, chunk.as_ptr().add(16.min(len))),
            )
        };
        let flush = |v: __m512| {
            let normal = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(_mm512_abs_ps(v), min_normal);
            _mm512_maskz_mov_ps(normal, v)
        };
        let (low_flushed, high_flushed) = (flush(low), flush(high));
        // `cvtne2ps_pbh(a, b)` puts `b` in the lower 16 bf16 lanes.
        let rounded = _mm512_cvtne2ps_pbh(high_flushed, low_flushed);
        let rounded_bits: __m512i = unsafe { std::mem::transmute(rounded) };
        let widen = |half: __m256i| {
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(half)))
        };
        let low_rounded = widen(_mm512_castsi512_si256(rounded_bits));
        let high_rounded = widen(_mm512_extracti64x4_epi64::<1>(rounded_bits));
        for (value, value_rounded) in [(low, low_rounded), (high, high_rounded)] {
            // Exact: a float minus its rounding to fewer bits is representable.
            let error = _mm512_sub_ps(value, value_rounded);
            for (sum, v) in sums.iter_mut().zip([value, value_rounded, error]) {
                *sum = _mm512_fmadd_ps(v, v, *sum);
            }
        }
        let pair_mask: __mmask16 = if pair_chunk.len() >= 16 {
            0xFFFF
        } else {
            (1u16 << pair_chunk.len()) - 1
        };
        // SAFETY: the mask selects only lanes inside `pair_chunk`.
        unsafe {
            _mm512_mask_storeu_epi32(pair_chunk.as_mut_ptr().cast(), pair_mask, rounded_bits)
        };
    }
    // Each sum of squares is off by at most (dim/16 + 4) roundings relative to itself, so
    // the inflated norms are upper bounds.
    let inflation = 1.0 + (point.len() as f32 + 64.0) * (-23.0f32).exp2();
    let [norm, rounded_norm, rounding_norm] =
        sums.map(|s| _mm512_reduce_add_ps(s).sqrt() * inflation);
    (norm, rounded_norm, rounding_norm)
}

/// Runs the product kernel over all points of the block and all centroid tiles, block of
/// tiles by block of tiles so that the tiles stay in L2. A last tile with at most 16
/// centroids runs with one panel.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512bf16")]
fn screen_rows(rows: &[u32], packed: &PackedCentroids, n_clusters: usize, screen: &mut Screen) {
    let pairs = packed.pairs;
    let n_rows = rows.len() / pairs;
    let half_tile = !n_clusters.is_multiple_of(TILE) && n_clusters % TILE <= 16;
    let full_tiles = packed.n_tiles - usize::from(half_tile);
    for first_tile in (0..full_tiles).step_by(TILES_PER_BLOCK) {
        let tiles = first_tile..(first_tile + TILES_PER_BLOCK).min(full_tiles);
        screen_tiles::<NP>(rows, n_rows, tiles, packed, n_clusters, screen);
    }
    if half_tile {
        screen_tiles::<1>(
            rows,
            n_rows,
            full_tiles..packed.n_tiles,
            packed,
            n_clusters,
            screen,
        );
    }
}

/// Runs the product kernel for all points of the block over `tiles`, using the first `Q`
/// panels of each tile.
#[inline(always)]
fn screen_tiles<const Q: usize>(
    rows: &[u32],
    n_rows: usize,
    tiles: std::ops::Range<usize>,
    packed: &PackedCentroids,
    n_clusters: usize,
    screen: &mut Screen,
) {
    let pairs = packed.pairs;
    let mut row = 0;
    while row < n_rows {
        let group = &rows[row * pairs..];
        // SAFETY (all three calls): the caller, `screen_rows`, has the kernel's target
        // features.
        row += match n_rows - row {
            remaining if remaining >= MR => unsafe {
                kernel::<MR, Q>(group, row, tiles.clone(), packed, n_clusters, screen);
                MR
            },
            remaining if remaining >= 4 => unsafe {
                kernel::<4, Q>(group, row, tiles.clone(), packed, n_clusters, screen);
                4
            },
            _ => unsafe {
                kernel::<1, Q>(group, row, tiles.clone(), packed, n_clusters, screen);
                1
            },
        };
    }
}

/// Scores `R` points (`rows`, bf16 pairs, starting at block row `first_row`) against the
/// first `Q` panels of the centroid tiles `tiles` and offers every score at or above a
/// point's threshold to the screen.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512bf16")]
#[allow(clippy::needless_range_loop)] // `r` and `q` index several arrays in step.
fn kernel<const R: usize, const Q: usize>(
    rows: &[u32],
    first_row: usize,
    tiles: std::ops::Range<usize>,
    packed: &PackedCentroids,
    n_clusters: usize,
    screen: &mut Screen,
) {
    let pairs = packed.pairs;
    assert!(Q <= NP, "a tile has {NP} panels");
    assert!(rows.len() >= R * pairs, "fewer than {R} points");
    assert!(
        tiles.end <= packed.n_tiles,
        "tile range beyond the packed tiles"
    );
    let mut thresholds = [0.0f32; R];
    for (r, threshold) in thresholds.iter_mut().enumerate() {
        *threshold = screen.threshold(first_row + r);
    }
    for tile in tiles {
        let panel = packed.tiles[tile * pairs * TILE..].as_ptr();
        let mut sums = [[_mm512_setzero_ps(); Q]; R];
        for p in 0..pairs {
            // SAFETY: tile `tile` contains `pairs * TILE` values, so step `p < pairs` and
            // panel `q < NP` read inside it. Point `r < R` reads `rows[r * pairs + p]`, which
            // is inside `rows` by the asserts.
            unsafe {
                let columns: [__m512bh; Q] = std::array::from_fn(|q| {
                    std::mem::transmute(_mm512_loadu_si512(panel.add((p * NP + q) * 16).cast()))
                });
                for r in 0..R {
                    let point: __m512bh = std::mem::transmute(_mm512_set1_epi32(
                        *rows.get_unchecked(r * pairs + p) as i32,
                    ));
                    for q in 0..Q {
                        sums[r][q] = _mm512_dpbf16_ps(sums[r][q], point, columns[q]);
                    }
                }
            }
        }

        let first_centroid = tile * TILE;
        let biases: [__m512; Q] = std::array::from_fn(|q| {
            // SAFETY: `biases` contains `n_tiles * TILE` values.
            unsafe { _mm512_loadu_ps(packed.biases.as_ptr().add(first_centroid + 16 * q)) }
        });
        let valid: [__mmask16; Q] = std::array::from_fn(|q| {
            let start = first_centroid + 16 * q;
            match n_clusters.saturating_sub(start) {
                0 => 0,
                n if n >= 16 => 0xFFFF,
                n => (1u16 << n) - 1,
            }
        });
        for r in 0..R {
            let threshold = _mm512_set1_ps(thresholds[r]);
            let scores: [__m512; Q] = std::array::from_fn(|q| _mm512_add_ps(sums[r][q], biases[q]));
            let masks: [__mmask16; Q] = std::array::from_fn(|q| {
                _mm512_mask_cmp_ps_mask::<_CMP_GE_OQ>(valid[q], scores[q], threshold)
            });
            if masks.iter().any(|&m| m != 0) {
                thresholds[r] = offer_tile(screen, first_row + r, first_centroid, &scores, &masks);
            }
        }
    }
}

/// Raises the row's best score to the tile's best, offers the tile's scores that reach
/// the new threshold, and returns that threshold. Runs for a few tiles per point: those
/// that hold a new best score or a near tie.
#[cold]
#[target_feature(enable = "avx512f")]
fn offer_tile<const Q: usize>(
    screen: &mut Screen,
    row: usize,
    first_centroid: usize,
    scores: &[__m512; Q],
    masks: &[__mmask16; Q],
) -> f32 {
    let mut tile_best = _mm512_set1_ps(f32::NEG_INFINITY);
    for q in 0..Q {
        tile_best = _mm512_mask_max_ps(tile_best, masks[q], tile_best, scores[q]);
    }
    screen.best[row] = screen.best[row].max(_mm512_reduce_max_ps(tile_best));
    let threshold = screen.threshold(row);
    let threshold_vector = _mm512_set1_ps(threshold);
    for q in 0..Q {
        let mut bits = _mm512_mask_cmp_ps_mask::<_CMP_GE_OQ>(masks[q], scores[q], threshold_vector);
        if bits == 0 {
            continue;
        }
        let mut values = [0.0f32; 16];
        // SAFETY: `values` has room for 16 floats.
        unsafe { _mm512_storeu_ps(values.as_mut_ptr(), scores[q]) };
        while bits != 0 {
            let lane = bits.trailing_zeros() as usize;
            screen.push(row, first_centroid + 16 * q + lane, values[lane]);
            bits &= bits - 1;
        }
    }
    threshold
}

/// Rounds `value` to the nearest bf16, ties to even, after flushing subnormals to zero.
/// Finite values above the bf16 range round to infinity.
fn to_bf16(value: f32) -> u16 {
    if value.abs() < f32::MIN_POSITIVE {
        return 0;
    }
    let bits = value.to_bits();
    ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) as u16
}

fn from_bf16(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn to_bf16_rounds_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3F80);
        assert_eq!(to_bf16(-2.0), 0xC000);
        // Halfway between 0x3F80 and 0x3F81 goes to the even 0x3F80; halfway between 0x3F81
        // and 0x3F82 goes to 0x3F82.
        assert_eq!(to_bf16(f32::from_bits(0x3F80_8000)), 0x3F80);
        assert_eq!(to_bf16(f32::from_bits(0x3F81_8000)), 0x3F82);
        assert_eq!(to_bf16(f32::from_bits(0x3F80_8001)), 0x3F81);
        assert_eq!(to_bf16(f32::MIN_POSITIVE / 2.0), 0);
        assert_eq!(to_bf16(-f32::MIN_POSITIVE / 4.0), 0);
        assert_eq!(from_bf16(to_bf16(f32::MIN_POSITIVE)), f32::MIN_POSITIVE);
    }

    /// The bound that the slack is built from: `|x̃·c̃ − x·c| ≤ ‖x̃‖·‖δc‖ + ‖δx‖·‖c‖`.
    #[test]
    fn rounding_error_bound_holds() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        for trial in 0..200 {
            let dim = 1 + trial % 300;
            let scale = 10f32.powi(trial % 7 - 3);
            let mut vector = || -> Vec<f32> {
                (0..dim)
                    .map(|_| (rng.random::<f32>() - 0.3) * scale)
                    .collect()
            };
            let (x, c) = (vector(), vector());
            let wide = |v: &[f32]| v.iter().map(|&a| f64::from(a)).collect::<Vec<f64>>();
            let rounded = |v: &[f32]| {
                v.iter()
                    .map(|&a| f64::from(from_bf16(to_bf16(a))))
                    .collect::<Vec<f64>>()
            };
            let (x64, c64, x_bf16, c_bf16) = (wide(&x), wide(&c), rounded(&x), rounded(&c));
            let error = (dot(&x_bf16, &c_bf16) - dot(&x64, &c64)).abs();
            let x_rounding: Vec<f64> = x64.iter().zip(&x_bf16).map(|(a, b)| a - b).collect();
            let c_rounding: Vec<f64> = c64.iter().zip(&c_bf16).map(|(a, b)| a - b).collect();
            let bound = norm(&x_bf16) * norm(&c_rounding) + norm(&x_rounding) * norm(&c64);
            assert!(
                error <= bound * (1.0 + 1e-9),
                "trial {trial}: {error} > {bound}"
            );
            // The bound is about 2⁻⁸ relative, far below the scores' spread.
            assert!(
                bound <= 2f64.powi(-7) * norm(&x64) * norm(&c64),
                "trial {trial}"
            );
        }
    }
}
