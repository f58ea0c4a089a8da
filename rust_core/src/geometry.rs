//! `geometry`: image ↔ road-plane homography (metres), segments and polygons.
//!
//! The homography comes from ≥4 image↔road point pairs by the normalised DLT (Hartley):
//! both point sets are shifted to their centroid and scaled to mean distance √2 before the
//! SVD, which keeps the linear system well conditioned for pixel coordinates in the
//! thousands. More than four pairs give the least-squares (algebraic) solution.
//! Degenerate configurations (collinear points, NaN, a singular result) are input errors,
//! never a silently useless matrix.

use crate::error::{CoreError, CoreResult};
use nalgebra::{DMatrix, Matrix3, Vector3};

pub type Pt = [f64; 2];

/// |w| below this (after normalising H) means the point maps to the line at infinity.
const W_EPS: f64 = 1e-12;

/// A plane-to-plane projective map image (pixels) ↔ road plane (metres), both directions.
#[derive(Debug, Clone, PartialEq)]
pub struct Homography {
    /// image → world
    h: Matrix3<f64>,
    /// world → image
    inv: Matrix3<f64>,
}

fn check_finite(pts: &[Pt], what: &str) -> CoreResult<()> {
    for (i, p) in pts.iter().enumerate() {
        if !p[0].is_finite() || !p[1].is_finite() {
            return Err(CoreError::input(format!(
                "homography: {what} point {i} is not finite ({}, {})",
                p[0], p[1]
            )));
        }
    }
    Ok(())
}

/// Hartley normalisation: returns T with T·p centred at the origin, mean distance √2.
fn normaliser(pts: &[Pt]) -> Option<Matrix3<f64>> {
    let n = pts.len() as f64;
    let (mut cx, mut cy) = (0.0, 0.0);
    for p in pts {
        cx += p[0];
        cy += p[1];
    }
    cx /= n;
    cy /= n;
    let mut d = 0.0;
    for p in pts {
        d += ((p[0] - cx).powi(2) + (p[1] - cy).powi(2)).sqrt();
    }
    d /= n;
    if d.partial_cmp(&1e-12) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    let s = std::f64::consts::SQRT_2 / d;
    Some(Matrix3::new(
        s,
        0.0,
        -s * cx,
        0.0,
        s,
        -s * cy,
        0.0,
        0.0,
        1.0,
    ))
}

/// True when the (normalised) point set spans less than two dimensions.
fn all_collinear(pts: &[Pt]) -> bool {
    // Smallest eigenvalue of the 2×2 scatter matrix relative to the largest.
    let n = pts.len() as f64;
    let (mx, my) = pts
        .iter()
        .fold((0.0, 0.0), |a, p| (a.0 + p[0] / n, a.1 + p[1] / n));
    let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
    for p in pts {
        let (dx, dy) = (p[0] - mx, p[1] - my);
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
    }
    let tr = sxx + syy;
    let det = sxx * syy - sxy * sxy;
    let disc = ((tr * tr / 4.0) - det).max(0.0).sqrt();
    let lmax = tr / 2.0 + disc;
    let lmin = tr / 2.0 - disc;
    lmax <= 0.0 || lmin / lmax < 1e-10
}

/// Index triple of three (near-)collinear points, if any (only used for exactly 4 pairs,
/// where any collinear triple makes the homography undetermined).
fn collinear_triple(pts: &[Pt]) -> Option<(usize, usize, usize)> {
    let n = pts.len();
    for i in 0..n {
        for j in i + 1..n {
            for k in j + 1..n {
                let (a, b, c) = (pts[i], pts[j], pts[k]);
                let cross = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]);
                let scale = dist(a, b).max(dist(a, c)).max(dist(b, c));
                if scale == 0.0 || cross.abs() <= 1e-9 * scale * scale {
                    return Some((i, j, k));
                }
            }
        }
    }
    None
}

fn apply(m: &Matrix3<f64>, p: Pt) -> Option<Pt> {
    let v = m * Vector3::new(p[0], p[1], 1.0);
    if v[2].abs() < W_EPS || !v[2].is_finite() {
        return None;
    }
    let out = [v[0] / v[2], v[1] / v[2]];
    if out[0].is_finite() && out[1].is_finite() {
        Some(out)
    } else {
        None
    }
}

impl Homography {
    /// Fit image→world from paired points (≥4; least squares for more).
    pub fn from_points(image: &[Pt], world: &[Pt]) -> CoreResult<Self> {
        if image.len() != world.len() {
            return Err(CoreError::input(format!(
                "homography: {} image points but {} world points; they must pair up",
                image.len(),
                world.len()
            )));
        }
        if image.len() < 4 {
            return Err(CoreError::input(format!(
                "homography: need at least 4 point pairs, got {}",
                image.len()
            )));
        }
        check_finite(image, "image")?;
        check_finite(world, "world")?;
        for (pts, what) in [(image, "image"), (world, "world")] {
            if all_collinear(pts) {
                return Err(CoreError::input(format!(
                    "homography: the {what} points are collinear (degenerate configuration)"
                )));
            }
            if pts.len() == 4 {
                if let Some((i, j, k)) = collinear_triple(pts) {
                    return Err(CoreError::input(format!(
                        "homography: {what} points {i}, {j}, {k} are collinear (degenerate configuration)"
                    )));
                }
            }
        }
        let ti = normaliser(image)
            .ok_or_else(|| CoreError::input("homography: image points coincide"))?;
        let tw = normaliser(world)
            .ok_or_else(|| CoreError::input("homography: world points coincide"))?;
        let n = image.len();
        // At least 9 rows so the thin SVD still exposes the null vector for n = 4.
        let rows = (2 * n).max(9);
        let mut a = DMatrix::<f64>::zeros(rows, 9);
        for k in 0..n {
            let p = ti * Vector3::new(image[k][0], image[k][1], 1.0);
            let q = tw * Vector3::new(world[k][0], world[k][1], 1.0);
            let (x, y) = (p[0], p[1]);
            let (u, v) = (q[0], q[1]);
            let r = 2 * k;
            // [x y 1 0 0 0 -ux -uy -u]
            a[(r, 0)] = x;
            a[(r, 1)] = y;
            a[(r, 2)] = 1.0;
            a[(r, 6)] = -u * x;
            a[(r, 7)] = -u * y;
            a[(r, 8)] = -u;
            a[(r + 1, 3)] = x;
            a[(r + 1, 4)] = y;
            a[(r + 1, 5)] = 1.0;
            a[(r + 1, 6)] = -v * x;
            a[(r + 1, 7)] = -v * y;
            a[(r + 1, 8)] = -v;
        }
        let svd = a.svd(false, true);
        let vt = svd
            .v_t
            .ok_or_else(|| CoreError::input("homography: SVD did not converge"))?;
        let sv = &svd.singular_values;
        let mut order: Vec<usize> = (0..sv.len()).collect();
        order.sort_by(|&i, &j| sv[i].total_cmp(&sv[j]));
        let smin = order[0];
        let smax = sv[order[order.len() - 1]];
        // A second (near-)null direction means the pairs do not determine H.
        if smax <= 0.0 || sv[order[1]] / smax < 1e-10 {
            return Err(CoreError::input(
                "homography: point pairs do not determine a unique homography (degenerate configuration)",
            ));
        }
        let hv = vt.row(smin);
        let hn = Matrix3::new(
            hv[0], hv[1], hv[2], hv[3], hv[4], hv[5], hv[6], hv[7], hv[8],
        );
        let tw_inv = tw
            .try_inverse()
            .ok_or_else(|| CoreError::input("homography: singular world normalisation"))?;
        let mut h = tw_inv * hn * ti;
        let norm = h.norm();
        if !(norm.is_finite() && norm > 0.0) {
            return Err(CoreError::input("homography: fitted matrix is not finite"));
        }
        h /= norm;
        if h[(2, 2)] < 0.0 {
            h = -h;
        }
        let det = h.determinant();
        if det.abs() < 1e-14 {
            return Err(CoreError::input(
                "homography: fitted matrix is singular (degenerate configuration)",
            ));
        }
        Self::from_matrix_checked(h)
    }

    /// From a row-major 3×3 image→world matrix.
    pub fn from_matrix(m: [[f64; 3]; 3]) -> CoreResult<Self> {
        let h = Matrix3::from_fn(|r, c| m[r][c]);
        if h.iter().any(|v| !v.is_finite()) {
            return Err(CoreError::input(
                "homography: matrix has non-finite entries",
            ));
        }
        Self::from_matrix_checked(h)
    }

    fn from_matrix_checked(h: Matrix3<f64>) -> CoreResult<Self> {
        let inv = h
            .try_inverse()
            .ok_or_else(|| CoreError::input("homography: matrix is not invertible"))?;
        if inv.iter().any(|v| !v.is_finite()) {
            return Err(CoreError::input("homography: matrix is not invertible"));
        }
        Ok(Homography { h, inv })
    }

    /// Row-major image→world matrix.
    pub fn matrix(&self) -> [[f64; 3]; 3] {
        let mut m = [[0.0; 3]; 3];
        for (r, row) in m.iter_mut().enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                *v = self.h[(r, c)];
            }
        }
        m
    }

    /// Image pixel → road-plane metres; `None` for points on/beyond the horizon line.
    #[inline]
    pub fn to_world(&self, p: Pt) -> Option<Pt> {
        apply(&self.h, p)
    }

    /// Road-plane metres → image pixel; `None` for points that map to infinity.
    #[inline]
    pub fn to_image(&self, p: Pt) -> Option<Pt> {
        apply(&self.inv, p)
    }
}

#[inline]
pub fn dist(a: Pt, b: Pt) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// Cross product (b−a)×(p−a). In image coordinates (y down) a negative value means `p` is
/// on the LEFT of the directed line a→b as seen on screen, positive on the right.
#[inline]
pub fn cross(a: Pt, b: Pt, p: Pt) -> f64 {
    (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
}

/// Side of `p` relative to the directed line a→b in image coordinates (y down):
/// +1 left, −1 right, 0 on the line.
#[inline]
pub fn side_of_line(a: Pt, b: Pt, p: Pt) -> i8 {
    let c = cross(a, b, p);
    if c < 0.0 {
        1
    } else if c > 0.0 {
        -1
    } else {
        0
    }
}

/// Signed distance of `p` from the infinite line a→b, positive on the LEFT (image coords).
#[inline]
pub fn signed_distance(a: Pt, b: Pt, p: Pt) -> f64 {
    let len = dist(a, b);
    if len == 0.0 {
        return 0.0;
    }
    -cross(a, b, p) / len
}

/// Whether closed segments p1p2 and q1q2 intersect (touching counts).
pub fn segments_intersect(p1: Pt, p2: Pt, q1: Pt, q2: Pt) -> bool {
    let d1 = cross(q1, q2, p1);
    let d2 = cross(q1, q2, p2);
    let d3 = cross(p1, p2, q1);
    let d4 = cross(p1, p2, q2);
    if ((d1 > 0.0 && d2 < 0.0) || (d1 < 0.0 && d2 > 0.0))
        && ((d3 > 0.0 && d4 < 0.0) || (d3 < 0.0 && d4 > 0.0))
    {
        return true;
    }
    let on = |a: Pt, b: Pt, p: Pt| {
        p[0] >= a[0].min(b[0])
            && p[0] <= a[0].max(b[0])
            && p[1] >= a[1].min(b[1])
            && p[1] <= a[1].max(b[1])
    };
    (d1 == 0.0 && on(q1, q2, p1))
        || (d2 == 0.0 && on(q1, q2, p2))
        || (d3 == 0.0 && on(p1, p2, q1))
        || (d4 == 0.0 && on(p1, p2, q2))
}

/// Intersection point of segments p1p2 and q1q2 (None when disjoint or parallel).
pub fn segment_intersection(p1: Pt, p2: Pt, q1: Pt, q2: Pt) -> Option<Pt> {
    let r = [p2[0] - p1[0], p2[1] - p1[1]];
    let s = [q2[0] - q1[0], q2[1] - q1[1]];
    let denom = r[0] * s[1] - r[1] * s[0];
    if denom == 0.0 {
        return None;
    }
    let qp = [q1[0] - p1[0], q1[1] - p1[1]];
    let t = (qp[0] * s[1] - qp[1] * s[0]) / denom;
    let u = (qp[0] * r[1] - qp[1] * r[0]) / denom;
    if (0.0..=1.0).contains(&t) && (0.0..=1.0).contains(&u) {
        Some([p1[0] + t * r[0], p1[1] + t * r[1]])
    } else {
        None
    }
}

/// A simple (non-self-intersecting) polygon in image pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Polygon {
    pts: Vec<Pt>,
    bbox: [f64; 4],
}

impl Polygon {
    /// Validates: ≥3 finite vertices, non-zero area, no self-intersection.
    pub fn new(pts: Vec<Pt>) -> CoreResult<Self> {
        if pts.len() < 3 {
            return Err(CoreError::input(format!(
                "zone polygon needs at least 3 vertices, got {}",
                pts.len()
            )));
        }
        for (i, p) in pts.iter().enumerate() {
            if !p[0].is_finite() || !p[1].is_finite() {
                return Err(CoreError::input(format!(
                    "zone polygon vertex {i} is not finite"
                )));
            }
        }
        let n = pts.len();
        for i in 0..n {
            let (a1, a2) = (pts[i], pts[(i + 1) % n]);
            for j in i + 1..n {
                // Adjacent edges share a vertex; only non-adjacent pairs may not touch.
                if j == i + 1 || (i == 0 && j == n - 1) {
                    continue;
                }
                let (b1, b2) = (pts[j], pts[(j + 1) % n]);
                if segments_intersect(a1, a2, b1, b2) {
                    return Err(CoreError::input(format!(
                        "zone polygon self-intersects at edges {i} and {j}"
                    )));
                }
            }
        }
        let mut bbox = [
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ];
        for p in &pts {
            bbox[0] = bbox[0].min(p[0]);
            bbox[1] = bbox[1].min(p[1]);
            bbox[2] = bbox[2].max(p[0]);
            bbox[3] = bbox[3].max(p[1]);
        }
        let poly = Polygon { pts, bbox };
        if poly.area() <= 0.0 {
            return Err(CoreError::input("zone polygon has zero area"));
        }
        Ok(poly)
    }

    pub fn points(&self) -> &[Pt] {
        &self.pts
    }

    /// Unsigned area (shoelace).
    pub fn area(&self) -> f64 {
        let n = self.pts.len();
        let mut s = 0.0;
        for i in 0..n {
            let (a, b) = (self.pts[i], self.pts[(i + 1) % n]);
            s += a[0] * b[1] - b[0] * a[1];
        }
        (s / 2.0).abs()
    }

    /// Point-in-polygon by the even-odd crossing rule (bbox reject first).
    pub fn contains(&self, p: Pt) -> bool {
        if !(p[0] >= self.bbox[0]
            && p[0] <= self.bbox[2]
            && p[1] >= self.bbox[1]
            && p[1] <= self.bbox[3])
        {
            return false;
        }
        let n = self.pts.len();
        let mut inside = false;
        let mut j = n - 1;
        for i in 0..n {
            let (pi, pj) = (self.pts[i], self.pts[j]);
            if (pi[1] > p[1]) != (pj[1] > p[1]) {
                let x = pj[0] + (p[1] - pj[1]) * (pi[0] - pj[0]) / (pi[1] - pj[1]);
                if p[0] < x {
                    inside = !inside;
                }
            }
            j = i;
        }
        inside
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_h() -> Matrix3<f64> {
        Matrix3::new(0.02, 0.001, -3.0, 0.0005, 0.05, -2.0, 0.00001, 0.0004, 1.0)
    }

    #[test]
    fn recovers_known_homography_from_four_and_many_points() {
        let h = sample_h();
        let image: Vec<Pt> = vec![
            [100.0, 400.0],
            [900.0, 420.0],
            [700.0, 100.0],
            [300.0, 90.0],
            [500.0, 250.0],
            [120.0, 200.0],
        ];
        let world: Vec<Pt> = image.iter().map(|&p| apply(&h, p).unwrap()).collect();
        for n in [4, 6] {
            let hh = Homography::from_points(&image[..n], &world[..n]).unwrap();
            for (p, w) in image.iter().zip(&world) {
                let got = hh.to_world(*p).unwrap();
                assert!(dist(got, *w) < 1e-6, "{got:?} vs {w:?}");
                let back = hh.to_image(*w).unwrap();
                assert!(dist(back, *p) < 1e-5);
            }
        }
    }

    #[test]
    fn least_squares_with_noise_is_close() {
        let h = sample_h();
        let mut image = vec![];
        for i in 0..5 {
            for j in 0..4 {
                image.push([100.0 + 180.0 * i as f64, 100.0 + 90.0 * j as f64]);
            }
        }
        let world: Vec<Pt> = image
            .iter()
            .enumerate()
            .map(|(k, &p)| {
                let w = apply(&h, p).unwrap();
                let e = if k % 2 == 0 { 0.01 } else { -0.01 };
                [w[0] + e, w[1] - e]
            })
            .collect();
        let hh = Homography::from_points(&image, &world).unwrap();
        let p = [450.0, 210.0];
        assert!(dist(hh.to_world(p).unwrap(), apply(&h, p).unwrap()) < 0.05);
    }

    #[test]
    fn degenerate_inputs_are_errors() {
        let w: Vec<Pt> = vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]];
        let collinear: Vec<Pt> = vec![[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]];
        assert!(matches!(
            Homography::from_points(&collinear, &w),
            Err(CoreError::Input(_))
        ));
        let three_in_line: Vec<Pt> = vec![[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [0.0, 1.0]];
        let e = Homography::from_points(&three_in_line, &w).unwrap_err();
        assert!(e.to_string().contains("collinear"), "{e}");
        let nan: Vec<Pt> = vec![[0.0, 0.0], [f64::NAN, 0.0], [1.0, 1.0], [0.0, 1.0]];
        assert!(matches!(
            Homography::from_points(&nan, &w),
            Err(CoreError::Input(_))
        ));
        assert!(Homography::from_points(&w[..3], &w[..3]).is_err());
        assert!(Homography::from_points(&w, &w[..3]).is_err());
        let same: Vec<Pt> = vec![[1.0, 1.0]; 4];
        assert!(Homography::from_points(&same, &w).is_err());
    }

    #[test]
    fn sides_and_segments() {
        // a→b points right on screen; "up" on screen (smaller y) is the left side.
        let (a, b) = ([0.0, 0.0], [10.0, 0.0]);
        assert_eq!(side_of_line(a, b, [5.0, -1.0]), 1);
        assert_eq!(side_of_line(a, b, [5.0, 1.0]), -1);
        assert_eq!(side_of_line(a, b, [5.0, 0.0]), 0);
        assert!(signed_distance(a, b, [5.0, -2.0]) > 1.99);
        assert!(segments_intersect(
            [0.0, 0.0],
            [2.0, 2.0],
            [0.0, 2.0],
            [2.0, 0.0]
        ));
        assert!(!segments_intersect(
            [0.0, 0.0],
            [1.0, 1.0],
            [3.0, 0.0],
            [4.0, 0.0]
        ));
        assert!(segments_intersect(
            [0.0, 0.0],
            [2.0, 0.0],
            [2.0, 0.0],
            [3.0, 5.0]
        ));
        let x = segment_intersection([0.0, 0.0], [2.0, 2.0], [0.0, 2.0], [2.0, 0.0]).unwrap();
        assert!(dist(x, [1.0, 1.0]) < 1e-12);
        assert!(segment_intersection([0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]).is_none());
    }

    #[test]
    fn polygons() {
        let sq = Polygon::new(vec![[0.0, 0.0], [4.0, 0.0], [4.0, 4.0], [0.0, 4.0]]).unwrap();
        assert_eq!(sq.area(), 16.0);
        assert!(sq.contains([2.0, 2.0]));
        assert!(!sq.contains([5.0, 2.0]));
        assert!(!sq.contains([2.0, -0.1]));
        let concave = Polygon::new(vec![
            [0.0, 0.0],
            [4.0, 0.0],
            [4.0, 4.0],
            [2.0, 1.0],
            [0.0, 4.0],
        ])
        .unwrap();
        assert!(!concave.contains([2.0, 3.0]));
        assert!(concave.contains([1.0, 1.0]));
        let bow = Polygon::new(vec![[0.0, 0.0], [4.0, 4.0], [4.0, 0.0], [0.0, 4.0]]).unwrap_err();
        assert_eq!(
            bow.to_string(),
            "invalid input: zone polygon self-intersects at edges 0 and 2"
        );
        assert!(Polygon::new(vec![[0.0, 0.0], [1.0, 1.0]]).is_err());
        assert!(Polygon::new(vec![[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]).is_err());
        assert!(Polygon::new(vec![[0.0, 0.0], [f64::NAN, 1.0], [2.0, 0.0]]).is_err());
    }
}
