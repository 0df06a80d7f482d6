//! Thin safe wrapper over matrixmultiply's `sgemm` for row-major slices.
//!
//! NOTE: callers already run these products in parallel over row blocks with rayon, while
//! matrixmultiply's `threading` feature starts its own threads (`MATMUL_NUM_THREADS`,
//! default: the number of physical cores). Setting `MATMUL_NUM_THREADS=1` avoids running
//! both at once; on a 2-core machine it made k-means about 8% faster.

/// Computes `out = a · bᵀ` for row-major `a: [m, depth]`, `b: [n, depth]`, `out: [m, n]`.
///
/// # Panics
/// Panics if a slice length does not match the given shape.
pub(crate) fn matmul_a_bt(a: &[f32], b: &[f32], out: &mut [f32], m: usize, n: usize, depth: usize) {
    assert_eq!(a.len(), m * depth, "lhs has the wrong shape");
    assert_eq!(b.len(), n * depth, "rhs has the wrong shape");
    assert_eq!(out.len(), m * n, "output has the wrong shape");
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the asserts above guarantee that every index the strides reach lies inside the
    // slices: a[i * depth + p], b[j * depth + p] (bᵀ read with swapped strides) and
    // out[i * n + j] for i < m, j < n, p < depth. `out` is borrowed mutably, so it does not
    // alias `a` or `b`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            depth,
            n,
            1.0,
            a.as_ptr(),
            depth as isize,
            1,
            b.as_ptr(),
            1,
            depth as isize,
            0.0,
            out.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// Computes `out = aᵀ · a` for row-major `a: [m, n]`, giving `out: [n, n]`.
pub(crate) fn gram_at_a(a: &[f32], out: &mut [f32], m: usize, n: usize) {
    assert_eq!(a.len(), m * n, "input has the wrong shape");
    assert_eq!(out.len(), n * n, "output has the wrong shape");
    if m == 0 || n == 0 {
        out.fill(0.0);
        return;
    }
    // SAFETY: aᵀ is read with strides (1, n) over [n, m] and a with strides (n, 1) over
    // [m, n]; both stay inside `a` by the assert. `out` is an exclusive borrow of n * n values.
    unsafe {
        matrixmultiply::sgemm(
            n,
            m,
            n,
            1.0,
            a.as_ptr(),
            1,
            n as isize,
            a.as_ptr(),
            n as isize,
            1,
            0.0,
            out.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}
