//! The cache-blocked, packed, rayon-parallel GEMM driver shared by the portable, AVX2,
//! AVX-512 VNNI and AMX paths; each supplies a micro-kernel through [`MicroKernel`].
//!
//! Packed layouts (`KG` consecutive `k` values per "group", zero-padded in `k`):
//!
//! * `B` panel `jp` (columns `jp·NR ..`): for each group `g`, for each column `c < NR`, the `KG`
//!   values `B[g·KG + t, jp·NR + c]`, `t < KG` (a kernel may lay out a group its own way, see
//!   [`MicroKernel::pack_b`]). A panel spans all of `k`, so the slice for a k-block is
//!   contiguous. Padding (past `k`, past `n`) is zero.
//! * `A` block (the rows of one task, all of `k`, packed once): for each row panel of `MR`
//!   rows, for each group, for each row `r < MR`, the `KG` values `A[row, g·KG + t]`. Padding
//!   rows are zero.
//!
//! Loop nest per task (a block of rows, or for short wide products a strip of columns): pack
//! the `A` block → column block (≤ 512 KiB of `C`) → k-block → column panel → row panel →
//! micro-kernel. The `B` micro-panel is reused across the row panels, the packed `A` and the
//! `C` block stay in L2.

use rayon::prelude::*;

use super::GemmError;

/// A register-blocked micro-kernel over packed panels.
pub(crate) trait MicroKernel: Sync {
    /// Rows of the register block.
    const MR: usize;
    /// Columns of the register block.
    const NR: usize;
    /// `k` values per packed group.
    const KG: usize;
    /// Groups per k-block (`KC = KC_GROUPS·KG`).
    const KC_GROUPS: usize;
    /// Rows per task (a multiple of `MR`) when there are enough rows.
    const MC: usize;
    /// Whether `B` is packed biased by `+128` (as `u8`): the driver then passes the row sums
    /// of `A` times 128, which the kernel subtracts on the first k-block.
    const BIAS_B: bool;
    /// Packed `A` element.
    type PA: Copy + Default + Send + Sync;
    /// Packed `B` element.
    type PB: Copy + Default + Send + Sync;
    /// Converts an `A` entry for packing.
    fn conv_a(x: i8) -> Self::PA;
    /// Converts a `B` entry for packing.
    fn conv_b(x: i8) -> Self::PB;
    /// Packs groups `g0..` of `B` panel `jp` into `out` (`groups·NR·KG`, every element written,
    /// zero padding); see the module docs for the layout.
    fn pack_b(&self, b: &[i8], k: usize, n: usize, jp: usize, g0: usize, out: &mut [Self::PB])
    where
        Self: Sized,
    {
        pack_b_scalar::<Self>(b, k, n, jp, g0, out);
    }
    /// Runs `f`, a sequence of [`MicroKernel::run`] calls on this thread with nothing else in
    /// between, inside whatever per-thread setup the kernel needs (AMX loads its tile
    /// configuration once here instead of once per call).
    fn with_session<R>(&self, f: impl FnOnce() -> R) -> R
    where
        Self: Sized,
    {
        f()
    }
    /// Computes the `MR×NR` product of one packed `A` micro-panel (`ap`, `groups·MR·KG`) and
    /// one packed `B` micro-panel (`bp`, `groups·NR·KG`) and writes its top-left `rows×cols`
    /// corner to `c` (row stride `ldc`): `c = acc − corr[r]` if `first` (with `corr` all zero
    /// when not biased), else `c += acc`, all wrapping.
    ///
    /// Implementations check the slice lengths (panicking on a driver bug, never reading or
    /// writing out of bounds).
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        ap: &[Self::PA],
        bp: &[Self::PB],
        groups: usize,
        c: &mut [i32],
        ldc: usize,
        rows: usize,
        cols: usize,
        first: bool,
        corr: &[i32],
    );
}

/// Below this many multiply-adds the work runs on the calling thread.
const PAR_THRESHOLD: usize = 1 << 21;

/// A zeroed buffer whose usable part starts 64-byte aligned.
struct Aligned<T> {
    buf: Vec<T>,
    off: usize,
    len: usize,
}

impl<T: Copy + Default> Aligned<T> {
    fn new(len: usize, what: &'static str) -> Result<Self, GemmError> {
        let size = size_of::<T>().max(1);
        let extra = 64 / size + 1;
        let total = len.checked_add(extra);
        let bytes = total.map_or(usize::MAX, |t| t.saturating_mul(size));
        let err = GemmError::AllocationFailed { what, bytes };
        let total = total.ok_or(err.clone())?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(total).map_err(|_| err)?;
        buf.resize(total, T::default());
        let off = buf.as_ptr().align_offset(64).min(extra);
        Ok(Self { buf, off, len })
    }

    fn as_slice(&self) -> &[T] {
        &self.buf[self.off..self.off + self.len]
    }

    fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

/// Packs groups `g0..g0+groups` of `B` panel `jp` into `out` (`groups·NR·KG`), every element
/// written: padding (past `k`, past `n`) is zero, so `out` may be a reused buffer.
pub(crate) fn pack_b_scalar<K: MicroKernel>(b: &[i8], k: usize, n: usize, jp: usize, g0: usize, out: &mut [K::PB]) {
    let (nr, kg) = (K::NR, K::KG);
    let j0 = jp * nr;
    let cols = nr.min(n - j0);
    for (g, grp) in out.chunks_exact_mut(nr * kg).enumerate() {
        for t in 0..kg {
            let p = (g0 + g) * kg + t;
            let src = if p < k { &b[p * n + j0..p * n + j0 + cols] } else { &[] };
            for c in 0..nr {
                grp[c * kg + t] = src.get(c).map_or(K::PB::default(), |&x| K::conv_b(x));
            }
        }
    }
}

/// Packs rows `row0..row0+rows` of `A`, all of `k` (`groups` groups), into `out`: one
/// contiguous panel of `groups·MR·KG` per `MR` rows, so that the slice for a k-block is
/// contiguous too.
fn pack_a_block<K: MicroKernel>(a: &[i8], k: usize, row0: usize, rows: usize, groups: usize, out: &mut [K::PA]) {
    let (mr, kg) = (K::MR, K::KG);
    let panel = groups * mr * kg;
    for (ip, dst) in out.chunks_exact_mut(panel).enumerate() {
        for r in 0..mr {
            let row = ip * mr + r;
            if row >= rows {
                for g in 0..groups {
                    dst[(g * mr + r) * kg..(g * mr + r + 1) * kg].fill(K::PA::default());
                }
                continue;
            }
            let src = &a[(row0 + row) * k..(row0 + row + 1) * k];
            // Whole groups first (the common case, a plain strided copy), then the zero-padded tail.
            let full = k / kg;
            for (g, chunk) in src.chunks_exact(kg).enumerate() {
                let d = &mut dst[(g * mr + r) * kg..(g * mr + r + 1) * kg];
                for (x, &s) in d.iter_mut().zip(chunk) {
                    *x = K::conv_a(s);
                }
            }
            if full < groups {
                let d = &mut dst[(full * mr + r) * kg..(full * mr + r + 1) * kg];
                for (t, x) in d.iter_mut().enumerate() {
                    *x = src.get(full * kg + t).map_or(K::PA::default(), |&s| K::conv_a(s));
                }
            }
        }
    }
}

/// `128·Σ_p A[row, p]` (wrapping) per row, zero past `rows` (padding rows of the last panel).
fn row_corrections<K: MicroKernel>(a: &[i8], k: usize, row0: usize, rows: usize, len: usize) -> Vec<i32> {
    let mut corr = vec![0i32; len];
    if K::BIAS_B {
        for (r, s) in corr.iter_mut().take(rows).enumerate() {
            let row = &a[(row0 + r) * k..(row0 + r + 1) * k];
            let sum = row.iter().fold(0i32, |acc, &x| acc.wrapping_add(i32::from(x)));
            *s = sum.wrapping_mul(128);
        }
    }
    corr
}

/// Bytes of `C` one column block may span: it is read and written once per k-block, so it
/// should stay in L2 (2 MiB on the machines measured) beside the packed `A` and the `B` slice.
const C_BLOCK_BYTES: usize = 512 << 10;

/// Where a task's `B` micro-panels come from.
#[derive(Clone, Copy)]
enum BPanels<'a, T> {
    /// All of `B`, packed once before the tasks start (row blocks share every panel).
    Packed(&'a [T]),
    /// Raw `B`, packed by the task micro-panel by micro-panel just before use (a column strip
    /// owns its panels: packing them into an L1-sized buffer spares writing and re-reading a
    /// packed copy of all of `B`, which dominates short products).
    Raw(&'a [i8]),
}

/// Computes rows `row0..row0+rows`, column panels `panels`, into `c` (whose element 0 is
/// `C[row0, panels.start·NR]`, row stride `ldc`).
///
/// Loop nest: column block (≤ [`C_BLOCK_BYTES`] of `C`) → k-block (`KC`) → column panel →
/// row panel → micro-kernel. The `B` micro-panel (`KC×NR`) stays in L1 across the row
/// panels, the packed `A` (all of `k`, packed once) and the `C` block stay in L2.
#[allow(clippy::too_many_arguments)]
fn compute_block<K: MicroKernel>(
    kern: &K,
    a: &[i8],
    k: usize,
    n: usize,
    row0: usize,
    rows: usize,
    b: BPanels<'_, K::PB>,
    panels: std::ops::Range<usize>,
    c: &mut [i32],
    ldc: usize,
) -> Result<(), GemmError> {
    let (mr, nr, kg) = (K::MR, K::NR, K::KG);
    let groups_total = k.div_ceil(kg);
    let bpanel_len = groups_total * nr * kg;
    let rpanels = rows.div_ceil(mr);
    let apanel_len = groups_total * mr * kg;
    let kc = K::KC_GROUPS.min(groups_total);

    let corr = row_corrections::<K>(a, k, row0, rows, rpanels * mr);
    let mut abuf = Aligned::<K::PA>::new(rpanels * apanel_len, "packed A block")?;
    pack_a_block::<K>(a, k, row0, rows, groups_total, abuf.as_mut_slice());
    let apack = abuf.as_slice();
    let mut local = Aligned::<K::PB>::new(if matches!(b, BPanels::Raw(_)) { kc * nr * kg } else { 0 }, "B panel")?;

    let block_panels = (C_BLOCK_BYTES / (rpanels * mr * nr * 4)).max(1);
    kern.with_session(|| {
        let mut jb = panels.start;
        while jb < panels.end {
            let block = jb..(jb + block_panels).min(panels.end);
            let mut g0 = 0;
            while g0 < groups_total {
                let groups = kc.min(groups_total - g0);
                for jp in block.clone() {
                    let bslice = match b {
                        BPanels::Packed(bp) => &bp[jp * bpanel_len + g0 * nr * kg..][..groups * nr * kg],
                        BPanels::Raw(raw) => {
                            let buf = &mut local.as_mut_slice()[..groups * nr * kg];
                            kern.pack_b(raw, k, n, jp, g0, buf);
                            &*buf
                        }
                    };
                    let (jl, cols) = (jp - panels.start, nr.min(n - jp * nr));
                    for ip in 0..rpanels {
                        let r = mr.min(rows - ip * mr);
                        let aslice = &apack[ip * apanel_len + g0 * mr * kg..][..groups * mr * kg];
                        let cslice = &mut c[ip * mr * ldc + jl * nr..];
                        kern.run(aslice, bslice, groups, cslice, ldc, r, cols, g0 == 0, &corr[ip * mr..][..mr]);
                    }
                }
                g0 += groups;
            }
            jb = block.end;
        }
    });
    Ok(())
}

/// `out = A·B` with `kern`. Inputs are validated and `m, n, k ≥ 1`.
pub(crate) fn gemm<K: MicroKernel>(
    kern: &K,
    a: &[i8],
    b: &[i8],
    m: usize,
    k: usize,
    n: usize,
    out: &mut [i32],
) -> Result<(), GemmError> {
    let npanels = n.div_ceil(K::NR);
    let work = m.saturating_mul(n).saturating_mul(k);
    let threads = rayon::current_num_threads();
    let parallel = work >= PAR_THRESHOLD && threads > 1;
    if parallel && m.div_ceil(K::MC) < 2 * threads && npanels >= 2 * threads {
        gemm_column_strips(kern, a, b, m, k, n, out, 2 * threads)
    } else {
        gemm_row_blocks(kern, a, b, m, k, n, out, if parallel { threads } else { 1 })
    }
}

/// Short, wide products (inference with a few rows): the columns are split into `strips`
/// tasks, each of which packs its own `B` panels and reuses each for all `m` rows, so `B` is
/// read once in all; each task writes a private strip, copied into `out` at the end.
#[allow(clippy::too_many_arguments)]
fn gemm_column_strips<K: MicroKernel>(
    kern: &K,
    a: &[i8],
    b: &[i8],
    m: usize,
    k: usize,
    n: usize,
    out: &mut [i32],
    strips: usize,
) -> Result<(), GemmError> {
    let nr = K::NR;
    let npanels = n.div_ceil(nr);
    let per = npanels.div_ceil(strips.min(npanels));
    let results: Vec<Result<(usize, Vec<i32>), GemmError>> = (0..npanels.div_ceil(per))
        .into_par_iter()
        .map(|s| {
            let panels = s * per..((s + 1) * per).min(npanels);
            let width = (panels.end * nr).min(n) - panels.start * nr;
            let mut strip = vec![0i32; m * width];
            compute_block(kern, a, k, n, 0, m, BPanels::Raw(b), panels.clone(), &mut strip, width)?;
            Ok((panels.start * nr, strip))
        })
        .collect();
    for res in results {
        let (j0, strip) = res?;
        let width = strip.len() / m;
        for (i, src) in strip.chunks_exact(width).enumerate() {
            out[i * n + j0..i * n + j0 + width].copy_from_slice(src);
        }
    }
    Ok(())
}

/// Row ranges of the tasks: whole `mr`-row panels, at most about `mc` rows each, and a number
/// of tasks that is a multiple of `threads` with panels shared out evenly, so that no thread
/// is left with one more task than the other at the end (with 2 threads and 11 equal tasks
/// one thread idles for a twelfth of the time).
fn row_tasks(m: usize, mr: usize, mc: usize, threads: usize) -> Vec<std::ops::Range<usize>> {
    let panels = m.div_ceil(mr);
    let per_task = (mc / mr).max(1);
    let tasks = panels.div_ceil(per_task).div_ceil(threads).saturating_mul(threads).min(panels).max(1);
    let (base, extra) = (panels / tasks, panels % tasks);
    let mut start = 0;
    (0..tasks)
        .map(|t| {
            let end = (start + (base + usize::from(t < extra)) * mr).min(m);
            let range = start..end;
            start = end;
            range
        })
        .collect()
}

/// Blocks of rows, `threads` at a time (1: on the calling thread), over `B` packed once.
#[allow(clippy::too_many_arguments)]
fn gemm_row_blocks<K: MicroKernel>(
    kern: &K,
    a: &[i8],
    b: &[i8],
    m: usize,
    k: usize,
    n: usize,
    out: &mut [i32],
    threads: usize,
) -> Result<(), GemmError> {
    let (nr, kg) = (K::NR, K::KG);
    let npanels = n.div_ceil(nr);
    let bpanel_len = k.div_ceil(kg) * nr * kg;
    let blen =
        npanels.checked_mul(bpanel_len).ok_or(GemmError::AllocationFailed { what: "packed B", bytes: usize::MAX })?;
    let mut bbuf = Aligned::<K::PB>::new(blen, "packed B")?;
    let pack = |(jp, p): (usize, &mut [K::PB])| kern.pack_b(b, k, n, jp, 0, p);
    if threads > 1 {
        bbuf.as_mut_slice().par_chunks_mut(bpanel_len).enumerate().for_each(pack);
    } else {
        bbuf.as_mut_slice().chunks_mut(bpanel_len).enumerate().for_each(pack);
    }
    let bp = BPanels::Packed(bbuf.as_slice());

    let tasks = row_tasks(m, K::MR, K::MC, threads);
    let mut rest = out;
    let mut blocks = Vec::with_capacity(tasks.len());
    for rows in &tasks {
        let (blk, tail) = rest.split_at_mut(rows.len() * n);
        blocks.push((rows.start, blk));
        rest = tail;
    }
    let task = |(row0, cblk): (usize, &mut [i32])| {
        let rows = cblk.len() / n;
        compute_block(kern, a, k, n, row0, rows, bp, 0..npanels, cblk, n)
    };
    if threads > 1 { blocks.into_par_iter().try_for_each(task) } else { blocks.into_iter().try_for_each(task) }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::cpu::avx512::VnniKernel;
    use std::time::Instant;

    fn best_of(runs: usize, mut f: impl FnMut()) -> f64 {
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    }

    /// `cargo test --release -p matproof-prover -- --ignored --nocapture packing_speed`: one
    /// thread, the packing steps of a 2048³ product next to its micro-kernel calls.
    #[test]
    #[ignore]
    fn packing_speed() {
        let Some(kern) = VnniKernel::new() else { return };
        let (s, rows) = (2048, VnniKernel::MC);
        let a: Vec<i8> = (0..s * s).map(|i| (i * 7 % 251) as i8).collect();
        let b = a.clone();
        let groups = s / 4;
        let nr = VnniKernel::NR;
        let bpanel_len = groups * nr * 4;
        let mut bp = vec![0u8; s.div_ceil(nr) * bpanel_len];
        let t_b = best_of(5, || {
            for (jp, p) in bp.chunks_mut(bpanel_len).enumerate() {
                kern.pack_b(&b, s, s, jp, 0, p);
            }
        });
        let mut ap = vec![0i8; rows * s];
        let t_a = best_of(5, || pack_a_block::<VnniKernel>(&a, s, 0, rows, groups, &mut ap));
        let t_corr = best_of(5, || drop(std::hint::black_box(row_corrections::<VnniKernel>(&a, s, 0, rows, rows))));
        let blocks = (s / rows) as f64;
        println!(
            "per 2048³ product, one thread: pack B {:.2} ms, pack A {:.2} ms, row sums {:.2} ms",
            t_b * 1e3,
            t_a * blocks * 1e3,
            t_corr * blocks * 1e3
        );
    }
}
