#!/usr/bin/env python3
"""Exact reference values for analytics/regression_test.go.

Ordinary least squares solved in exact rational arithmetic (fractions), then
square roots and p-values in 60-digit decimal arithmetic. No numpy: nothing
here shares code (or rounding) with the Go implementation under test.

p-values use closed forms that hold for an EVEN number of residual degrees of
freedom nu (Abramowitz & Stegun 26.7.3): with c2 = nu / (nu + t^2),
    P(|T| >= t) = 1 - sqrt(1 - c2) * sum_{j=0}^{nu/2-1} a_j c2^j,
    a_0 = 1, a_j = a_{j-1} * (2j-1)/(2j)
and for the F distribution with d1 = 1 the F p-value equals the slope's
two-sided t p-value; with d1 = 2 (A&S 26.6.4) P(F >= f) = (1 + 2f/nu)^(-nu/2).

Run: python3 analytics/testdata/regression_reference.py
"""
from decimal import Decimal, getcontext
from fractions import Fraction as Fr

getcontext().prec = 60

# R's `cars` data set (Ezekiel 1930; R datasets package, ?cars): speed (mph), dist (ft).
SPEED = [4, 4, 7, 7, 8, 9, 10, 10, 10, 11, 11, 12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15,
         15, 16, 16, 17, 17, 17, 18, 18, 18, 18, 19, 19, 19, 20, 20, 20, 20, 20, 22, 23, 24, 24, 24, 24, 25]
DIST = [2, 10, 4, 22, 16, 10, 18, 26, 34, 17, 28, 14, 20, 24, 28, 26, 34, 34, 46, 26, 36, 60, 80, 20, 26,
        54, 32, 40, 32, 40, 50, 42, 56, 76, 84, 36, 46, 68, 32, 48, 52, 56, 64, 66, 54, 70, 92, 93, 120, 85]


def two_drivers():
    """A fixed 41-row, two-driver design (integers, so the data are exact)."""
    rows = []
    for i in range(41):
        x1 = i % 7
        x2 = (i * i) % 11
        noise = ((i * 37) % 13) - 6          # deterministic, roughly balanced
        y = 5 + 2 * x1 - 3 * x2 + noise
        rows.append(([x1, x2], y))
    return rows


def solve(a, b):
    """Gauss-Jordan elimination in exact fractions; returns x and a^-1."""
    n = len(a)
    m = [[Fr(v) for v in row] + [Fr(int(i == j)) for j in range(n)] + [Fr(b[i])] for i, row in enumerate(a)]
    for c in range(n):
        piv = next(r for r in range(c, n) if m[r][c] != 0)
        m[c], m[piv] = m[piv], m[c]
        p = m[c][c]
        m[c] = [v / p for v in m[c]]
        for r in range(n):
            if r != c and m[r][c] != 0:
                f = m[r][c]
                m[r] = [vr - f * vc for vr, vc in zip(m[r], m[c])]
    x = [m[i][-1] for i in range(n)]
    inv = [m[i][n:2 * n] for i in range(n)]
    return x, inv


def dec(f):
    return Decimal(f.numerator) / Decimal(f.denominator)


def t_two_sided_p(t2, nu):
    """P(|T| >= |t|) for Student's t with even nu, from t^2 (exact rational)."""
    assert nu % 2 == 0
    c2 = Fr(nu) / (nu + t2)
    s, a = Fr(0), Fr(1)
    for j in range(nu // 2):
        if j > 0:
            a = a * Fr(2 * j - 1, 2 * j)
        s += a * c2 ** j
    return Decimal(1) - (dec(1 - c2)).sqrt() * dec(s)


def fit(rows):
    n = len(rows)
    k = len(rows[0][0])
    p = k + 1
    X = [[1] + list(x) for x, _ in rows]
    y = [v for _, v in rows]
    xtx = [[sum(Fr(X[r][i] * X[r][j]) for r in range(n)) for j in range(p)] for i in range(p)]
    xty = [sum(Fr(X[r][i] * y[r]) for r in range(n)) for i in range(p)]
    beta, inv = solve(xtx, xty)
    fitted = [sum(beta[i] * X[r][i] for i in range(p)) for r in range(n)]
    sse = sum((Fr(y[r]) - fitted[r]) ** 2 for r in range(n))
    ybar = Fr(sum(y), n)
    sst = sum((Fr(v) - ybar) ** 2 for v in y)
    nu = n - p
    s2 = sse / nu
    r2 = 1 - sse / sst
    adj = 1 - (1 - r2) * Fr(n - 1, nu)
    f = ((sst - sse) / k) / s2
    out = {"n": n, "p": p, "df": nu}
    for i in range(p):
        var = s2 * inv[i][i]
        t2 = beta[i] ** 2 / var
        out[f"beta{i}"] = dec(beta[i])
        out[f"se{i}"] = dec(var).sqrt()
        out[f"t{i}"] = dec(beta[i]) / dec(var).sqrt()
        out[f"p{i}"] = t_two_sided_p(t2, nu)
    out["r2"] = dec(r2)
    out["adj_r2"] = dec(adj)
    out["sigma"] = dec(s2).sqrt()
    out["f"] = dec(f)
    resid = [Fr(y[r]) - fitted[r] for r in range(n)]
    out["mae"] = dec(sum(abs(e) for e in resid) / n)
    out["autocorr_lag1"] = dec(sum(resid[r] * resid[r - 1] for r in range(1, n)) / sse)
    if k == 1:
        # prediction at x0 = 21: yhat and sigma*sqrt(1 + 1/n + (x0 - xbar)^2 / Sxx)
        x0 = 21
        xbar = Fr(sum(X[r][1] for r in range(n)), n)
        sxx = sum((X[r][1] - xbar) ** 2 for r in range(n))
        out["pred21"] = dec(beta[0] + beta[1] * x0)
        out["pred21_se"] = dec(s2 * (1 + Fr(1, n) + (x0 - xbar) ** 2 / sxx)).sqrt()
        out["f_p"] = t_two_sided_p(f, nu)
    elif k == 2:
        out["f_p"] = dec(1 / (1 + 2 * f / nu)) ** (nu // 2)
    return out


def show(name, res):
    print(name)
    for key, v in res.items():
        print(f"  {key:7s} {v:.20g}" if isinstance(v, Decimal) else f"  {key:7s} {v}")


if __name__ == "__main__":
    assert sum(SPEED) == 770 and sum(DIST) == 2149 and len(SPEED) == 50
    show("cars: dist ~ speed", fit([([s], d) for s, d in zip(SPEED, DIST)]))
    show("two drivers: y ~ x1 + x2", fit(two_drivers()))
    # qt(0.975, 48) by bisection on the exact tail: P(|T| >= t) = 0.05
    lo, hi = Fr(2), Fr(3)
    for _ in range(80):
        mid = (lo + hi) / 2
        if t_two_sided_p(mid * mid, 48) > Decimal("0.05"):
            lo = mid
        else:
            hi = mid
    print(f"qt(0.975, 48) {dec(lo):.16g}")
