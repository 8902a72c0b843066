//! The cache-blocked, packed, rayon-parallel GEMM driver shared by the portable, AVX2 and
//! AVX-512 VNNI paths; each supplies a micro-kernel through [`MicroKernel`].
//!
//! Packed layouts (`KG` consecutive `k` values per "group", zero-padded in `k`):
//!
//! * `B` panel `jp` (columns `jp·NR ..`): for each group `g`, for each column `c < NR`, the `KG`
//!   values `B[g·KG + t, jp·NR + c]`, `t < KG`. A panel spans all of `k`, so the slice for a
//!   k-block is contiguous. Padding columns (past `n`) are zero.
//! * `A` block (rows of one task, one k-block): for each row panel of `MR` rows, for each group,
//!   for each row `r < MR`, the `KG` values `A[row, g·KG + t]`. Padding rows are zero.
//!
//! Loop nest per task (a block of `MC` rows, or for short wide products a strip of columns):
//! k-block → pack the `A` block → column panels → row panels → micro-kernel. The `B`
//! micro-panel (`KC×NR`) stays in L1 across the row panels; the `A` block stays in L2.

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

/// Packs `B` panel `jp` (all of `k`) into `out` (`groups·NR·KG`).
fn pack_b_panel<K: MicroKernel>(b: &[i8], k: usize, n: usize, jp: usize, out: &mut [K::PB]) {
    let (nr, kg) = (K::NR, K::KG);
    let j0 = jp * nr;
    let cols = nr.min(n - j0);
    for (g, grp) in out.chunks_exact_mut(nr * kg).enumerate() {
        for t in 0..kg {
            let p = g * kg + t;
            if p < k {
                let src = &b[p * n + j0..p * n + j0 + cols];
                for (c, &x) in src.iter().enumerate() {
                    grp[c * kg + t] = K::conv_b(x);
                }
            }
        }
    }
}

/// Packs rows `row0..row0+rows` of `A`, groups `g0..g0+groups`, into `out`.
fn pack_a_block<K: MicroKernel>(
    a: &[i8],
    k: usize,
    row0: usize,
    rows: usize,
    g0: usize,
    groups: usize,
    out: &mut [K::PA],
) {
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
            for g in 0..groups {
                let d = &mut dst[(g * mr + r) * kg..(g * mr + r + 1) * kg];
                let p = (g0 + g) * kg;
                if p + kg <= k {
                    for (x, &s) in d.iter_mut().zip(&src[p..p + kg]) {
                        *x = K::conv_a(s);
                    }
                } else {
                    for (t, x) in d.iter_mut().enumerate() {
                        *x = if p + t < k { K::conv_a(src[p + t]) } else { K::PA::default() };
                    }
                }
            }
        }
    }
}

/// Computes rows `row0..row0+rows`, column panels `panels`, into `c` (whose element 0 is
/// `C[row0, panels.start·NR]`, row stride `ldc`).
#[allow(clippy::too_many_arguments)]
fn compute_block<K: MicroKernel>(
    kern: &K,
    a: &[i8],
    k: usize,
    n: usize,
    row0: usize,
    rows: usize,
    bpacked: &[K::PB],
    panels: std::ops::Range<usize>,
    c: &mut [i32],
    ldc: usize,
) -> Result<(), GemmError> {
    let (mr, nr, kg) = (K::MR, K::NR, K::KG);
    let groups_total = k.div_ceil(kg);
    let bpanel_len = groups_total * nr * kg;
    let rpanels = rows.div_ceil(mr);

    let mut corr = vec![0i32; rpanels * mr];
    if K::BIAS_B {
        for (r, s) in corr.iter_mut().take(rows).enumerate() {
            let row = &a[(row0 + r) * k..(row0 + r + 1) * k];
            let sum = row.iter().fold(0i32, |acc, &x| acc.wrapping_add(i32::from(x)));
            *s = sum.wrapping_mul(128);
        }
    }

    let kc = K::KC_GROUPS.min(groups_total);
    let mut abuf = Aligned::<K::PA>::new(rpanels * kc * mr * kg, "packed A block")?;
    let mut g0 = 0;
    while g0 < groups_total {
        let groups = kc.min(groups_total - g0);
        let apanel_len = groups * mr * kg;
        let apack = &mut abuf.as_mut_slice()[..rpanels * apanel_len];
        pack_a_block::<K>(a, k, row0, rows, g0, groups, apack);
        let apack = &*apack;
        for (jl, jp) in panels.clone().enumerate() {
            let cols = nr.min(n - jp * nr);
            let bslice = &bpacked[jp * bpanel_len + g0 * nr * kg..][..groups * nr * kg];
            for ip in 0..rpanels {
                let r = mr.min(rows - ip * mr);
                let aslice = &apack[ip * apanel_len..][..apanel_len];
                let cslice = &mut c[ip * mr * ldc + jl * nr..];
                kern.run(aslice, bslice, groups, cslice, ldc, r, cols, g0 == 0, &corr[ip * mr..][..mr]);
            }
        }
        g0 += groups;
    }
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
    let (mr, nr, kg) = (K::MR, K::NR, K::KG);
    let groups_total = k.div_ceil(kg);
    let npanels = n.div_ceil(nr);
    let bpanel_len = groups_total * nr * kg;
    let work = m.saturating_mul(n).saturating_mul(k);
    let parallel = work >= PAR_THRESHOLD && rayon::current_num_threads() > 1;
    let threads = if parallel { rayon::current_num_threads() } else { 1 };

    let blen =
        npanels.checked_mul(bpanel_len).ok_or(GemmError::AllocationFailed { what: "packed B", bytes: usize::MAX })?;
    let mut bbuf = Aligned::<K::PB>::new(blen, "packed B")?;
    {
        let bp = bbuf.as_mut_slice();
        if parallel {
            bp.par_chunks_mut(bpanel_len).enumerate().for_each(|(jp, p)| pack_b_panel::<K>(b, k, n, jp, p));
        } else {
            bp.chunks_mut(bpanel_len).enumerate().for_each(|(jp, p)| pack_b_panel::<K>(b, k, n, jp, p));
        }
    }
    let bp = bbuf.as_slice();

    let rpanels_total = m.div_ceil(mr);
    if parallel && rpanels_total < 2 * threads && npanels >= 2 * threads {
        // Short, wide product: split the columns; each task writes a private strip.
        let strips = (2 * threads).min(npanels);
        let per = npanels.div_ceil(strips);
        let results: Vec<Result<(usize, Vec<i32>), GemmError>> = (0..npanels.div_ceil(per))
            .into_par_iter()
            .map(|s| {
                let panels = s * per..((s + 1) * per).min(npanels);
                let width = (panels.end * nr).min(n) - panels.start * nr;
                let mut strip = vec![0i32; m * width];
                compute_block(kern, a, k, n, 0, m, bp, panels.clone(), &mut strip, width)?;
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
        return Ok(());
    }

    // Rows per task: at most MC, and small enough to give every thread a few tasks.
    let mc = if parallel { K::MC.min(m.div_ceil(4 * threads).div_ceil(mr) * mr).max(mr) } else { K::MC };
    let task = |(ib, cblk): (usize, &mut [i32])| {
        let rows = cblk.len() / n;
        compute_block(kern, a, k, n, ib * mc, rows, bp, 0..npanels, cblk, n)
    };
    if parallel {
        out.par_chunks_mut(mc * n).enumerate().try_for_each(task)
    } else {
        out.chunks_mut(mc * n).enumerate().try_for_each(task)
    }
}
