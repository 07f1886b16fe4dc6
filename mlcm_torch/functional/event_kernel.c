/* The CPU kernel of the event-driven synchronous sweep (mlcm_torch/functional/events.py).
 *
 * Python decides what to compute (routes, error bounds, which layers); this file only runs
 * the two loops whose many small tensor operations dominate an event sweep in eager PyTorch:
 *
 * mlcm_decide: the decisions of one layer for every sample from the carried fields F, exactly
 *   as events.event_sweep and fields.activate define them. The field h = F + J_D s + c (c the
 *   phase-constant part) is formed in double; a neuron with |h| <= bound (the proven rounding
 *   bound of the carried float32 field) is re-evaluated in double from the couplings, the
 *   states and the raw sources, its terms added in the order of events._exact_fields. The new
 *   states replace the old ones after all neurons of a sample are decided (a synchronous update
 *   of the layer); the change Δ is written densely and as a list of changed neurons per sample.
 *
 * mlcm_correct: F_post[b] += strength * (Σ_(changed i) Δ_bi rows[i]) / divisor: the changed
 *   rows in groups of eight in the order of the changed list, each group summed in float32 by
 *   fused multiply-adds, the groups in double, rounded to float32 once when added to F: the
 *   error is within (γ_7 + γ^(64)_(⌈k/8⌉+2)) Σ |terms| plus one float32 rounding of F
 *   (events._correct).
 *
 * Built by mlcm_torch/functional/kernel.py with the system C compiler; without one the same
 * sweep runs in PyTorch operations.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    const float *matrix;     /* element (i, j) at matrix[i * row_stride + j * col_stride]; NULL: one-to-one */
    int64_t row_stride;
    int64_t col_stride;
    int64_t width;           /* presynaptic size n_pre */
    const float *source;     /* sample b, element j at source[b * source_stride + j] */
    int64_t source_stride;
    double strength;         /* the term adds strength * (Σ_j M_ij v_j) / divisor */
    double divisor;
} Term;

/* The exact fields in double of up to RECHECK_GROUP neurons (pairs[q] = b * size + i: neuron i
 * of sample b), each added up in the order of events._exact_fields (and of the dense path), so
 * that a field that is zero in real arithmetic rounds alike: the terms in order, the
 * self-coupling term J_D s_i after the first ``self_after`` of them (1 when the first is the
 * layer's J, else 0), the threshold last; each term's sum over j in increasing j. The group's
 * independent sums interleave (each still in its own order), so the long serial sums over j
 * do not wait on each other's additions. All pairs are of one sample; a matrix term whose bit is
 * set in ``zero_terms`` has an all-zero source row for that sample, and its sum is taken as +0.0
 * without the loop: the value the loop returns (each product is ±0 and 0.0 + ±0.0 = +0.0), so
 * the fields are bit-identical (e.g. the re-checks of a first sweep from zero states). */
#define RECHECK_GROUP 8

static void exact_fields(const int32_t *pairs, int64_t n, int64_t size, const Term *terms, int64_t n_terms,
                         int64_t self_after, const double *self_terms, const double *theta, uint64_t zero_terms,
                         double *h) {
    int64_t bs[RECHECK_GROUP], is[RECHECK_GROUP];
    for (int64_t q = 0; q < n; ++q) {
        bs[q] = pairs[q] / size;
        is[q] = pairs[q] % size;
        h[q] = 0.0;
    }
    for (int64_t t = 0; t < n_terms; ++t) {
        const Term *term = &terms[t];
        double sum[RECHECK_GROUP];
        if (t == self_after)
            for (int64_t q = 0; q < n; ++q) h[q] += self_terms[q];
        if (term->matrix != NULL && t < 64 && (zero_terms >> t & 1)) {
            for (int64_t q = 0; q < n; ++q) sum[q] = 0.0;
        } else if (term->matrix == NULL) {
            for (int64_t q = 0; q < n; ++q) {
                const float *v = term->source + bs[q] * term->source_stride;
                sum[q] = is[q] < term->width ? (double)v[is[q]] : 0.0;
            }
        } else if (n == RECHECK_GROUP && term->col_stride == 1) {
            const float *m[RECHECK_GROUP], *v[RECHECK_GROUP];
            for (int64_t q = 0; q < RECHECK_GROUP; ++q) {
                m[q] = term->matrix + is[q] * term->row_stride;
                v[q] = term->source + bs[q] * term->source_stride;
                sum[q] = 0.0;
            }
            for (int64_t j = 0; j < term->width; ++j)
                for (int64_t q = 0; q < RECHECK_GROUP; ++q) sum[q] += (double)m[q][j] * (double)v[q][j];
        } else {
            for (int64_t q = 0; q < n; ++q) {
                const float *m = term->matrix + is[q] * term->row_stride;
                const float *v = term->source + bs[q] * term->source_stride;
                double acc = 0.0;
                for (int64_t j = 0; j < term->width; ++j) acc += (double)m[j * term->col_stride] * (double)v[j];
                sum[q] = acc;
            }
        }
        for (int64_t q = 0; q < n; ++q) h[q] += term->strength * (sum[q] / term->divisor);
    }
    for (int64_t q = 0; q < n; ++q) {
        if (self_after >= n_terms) h[q] += self_terms[q];
        if (theta != NULL) h[q] -= theta[is[q]];
    }
}

/* Bit t set: term t (t < 64) has a matrix and sample b's row of its source is all zero. */
static uint64_t zero_sources(int64_t b, const Term *terms, int64_t n_terms) {
    uint64_t bits = 0;
    for (int64_t t = 0; t < n_terms && t < 64; ++t) {
        if (terms[t].matrix == NULL) continue;
        const float *v = terms[t].source + b * terms[t].source_stride;
        int64_t j = 0;
        while (j < terms[t].width && v[j] == 0.0f) ++j;
        if (j == terms[t].width) bits |= (uint64_t)1 << t;
    }
    return bits;
}

/* The decision on a field h, as fields.activate: for h != 0 every tie rule gives "active iff
 * h > 0"; on h == 0, plus: active, flip: the opposite of the current state, keep: the current
 * state. encoding: 0 = pm1 (states ±1), 1 = 01 (states {0, 1}); tie: 0 = plus, 1 = flip,
 * 2 = keep. */
static float decide(double h, float s, int encoding, int tie) {
    float on = 1.0f, off = encoding == 0 ? -1.0f : 0.0f;
    int was = encoding == 0 ? s > 0.0f : s > 0.5f;
    int active = h > 0.0;
    if (h == 0.0) active = tie == 0 ? 1 : (tie == 1 ? !was : was);
    return active ? on : off;
}

/* Neurons per chunk of the decision pass: flags for a chunk stay in a small stack buffer. */
#define DECIDE_CHUNK 256

/* Inserts the sorted changes ``extra`` (m entries) into the sorted list (count entries, room for
 * count + m), from the back. */
static void merge_sorted(int32_t *list, int64_t count, const int32_t *extra, int64_t m) {
    int64_t a = count - 1, e = m - 1, out = count + m - 1;
    while (e >= 0) list[out--] = (a >= 0 && list[a] > extra[e]) ? list[a--] : extra[e--];
}

/* Sure neurons (|h| > bound, so h != 0) are decided in a branch-free pass over chunks of the
 * sample, which writes one flag byte per neuron to a stack buffer (1: unsure, 2: changes); the
 * flagged ones are then listed, eight flags at a time: changes into the sample's changed list (increasing i) with
 * their Δ, unsure ones (also written to ``pairs``) re-evaluated exactly (exact_fields, from the
 * states before the sweep) and merged into the list where they change. Then the sample's states
 * are replaced. Δ is zero except at the listed changes: the entries listed by the previous call
 * are cleared first (the caller's buffers start at zero), so a pass reads F, the constants and
 * the states and writes only what changes. Samples with ``skip[b]`` set (NULL: none) are not
 * decided: Δ = 0, no change. The callers pass samples whose decisions cannot change: the layer
 * changed nothing when last decided and no state it depends on changed since (e.g. a converged
 * sample); the decisions are those of exact arithmetic, a function of those states alone.
 * Returns the number of changed pairs. */
static int64_t decide_layer(
    int64_t batch, int64_t size,
    const float *fields, const float *constant,
    const double *bound_constant, const double *error, double bound_scale,
    float *states, int64_t states_stride, double j_d, int encoding, int tie,
    const Term *terms, int64_t n_terms, int64_t self_after, const double *theta,
    float *delta, int32_t *changed, int64_t *counts, int32_t *pairs, int64_t *rechecked, const uint8_t *skip)
{
    int64_t total = 0, unsure = 0;
    const float on = 1.0f, off = encoding == 0 ? -1.0f : 0.0f;
    uint8_t flags[DECIDE_CHUNK + 8];
    float step[DECIDE_CHUNK];
    int32_t late[RECHECK_GROUP];
    for (int64_t b = 0; b < batch; ++b) {
        float *restrict d = delta + b * size;
        int32_t *restrict list = changed + b * size;
        for (int64_t k = 0; k < counts[b]; ++k) d[list[k]] = 0.0f;
        counts[b] = 0;
        if (skip != NULL && skip[b]) continue;
        const float *restrict f = fields + b * size, *restrict c = constant + b * size;
        const double *restrict a = bound_constant;
        float *restrict s = states + b * states_stride;
        int64_t count = 0, first = unsure;
        for (int64_t i0 = 0; i0 < size; i0 += DECIDE_CHUNK) {
            int64_t n = size - i0 < DECIDE_CHUNK ? size - i0 : DECIDE_CHUNK;
            int64_t flagged = 0, closes = 0;
            for (int64_t k = 0; k < n; ++k) {
                int64_t i = i0 + k;
                double h = (double)f[i] + j_d * (double)s[i] + (double)c[i];
                int close = fabs(h) <= bound_scale * (error[i] + a[i]);
                step[k] = (h > 0.0 ? on : off) - s[i];
                flags[k] = (uint8_t)(close | ((step[k] != 0.0f) << 1));
                flagged += flags[k] != 0;
                closes += close;
            }
            if (flagged == 0) continue;
            if (4 * flagged > n) {  /* many: Δ written densely, the lists compacted branch-free */
                for (int64_t k = 0; k < n; ++k) d[i0 + k] = flags[k] == 2 ? step[k] : 0.0f;
                for (int64_t k = 0; k < n; ++k) {
                    list[count] = (int32_t)(i0 + k);
                    count += flags[k] == 2;
                }
                for (int64_t k = 0; closes && k < n; ++k) {
                    pairs[unsure] = (int32_t)(b * size + i0 + k);
                    unsure += flags[k] & 1;
                }
                continue;
            }
            for (int64_t k = n; k % 8; ++k) flags[k] = 0;
            for (int64_t w = 0; w < n; w += 8) {  /* few: eight flags per word, a zero word skipped */
                uint64_t word;
                memcpy(&word, flags + w, sizeof word);
                while (word) {
                    int64_t k = w + __builtin_ctzll(word) / 8, i = i0 + k;
                    word &= ~((uint64_t)0xff << (8 * (k - w)));
                    if (flags[k] & 1) {
                        pairs[unsure++] = (int32_t)(b * size + i);
                    } else {
                        d[i] = step[k];
                        list[count++] = (int32_t)i;
                    }
                }
            }
        }
        uint64_t zero_terms = first < unsure ? zero_sources(b, terms, n_terms) : 0;
        for (int64_t p = first; p < unsure; p += RECHECK_GROUP) {  /* states still those before the sweep */
            int64_t n = unsure - p < RECHECK_GROUP ? unsure - p : RECHECK_GROUP, m = 0;
            double self_terms[RECHECK_GROUP], h[RECHECK_GROUP];
            for (int64_t q = 0; q < n; ++q) self_terms[q] = j_d * (double)s[pairs[p + q] - b * size];
            exact_fields(pairs + p, n, size, terms, n_terms, self_after, self_terms, theta, zero_terms, h);
            for (int64_t q = 0; q < n; ++q) {
                int64_t i = pairs[p + q] - b * size;
                float step = decide(h[q], s[i], encoding, tie) - s[i];
                if (step != 0.0f) {
                    d[i] = step;
                    late[m++] = (int32_t)i;
                }
            }
            merge_sorted(list, count, late, m);
            count += m;
        }
        for (int64_t k = 0; k < count; ++k) s[list[k]] += d[list[k]];
        counts[b] = count;
        total += count;
    }
    *rechecked = unsure;
    return total;
}

/* Corrections sum the changed rows in groups of GROUP, each group in float32 by fused
 * multiply-adds in the order of the changed list (Δ is 0, ±1 or ±2, so the first product is
 * exact and each later term meets one rounding: at most GROUP - 1 per term), the groups in
 * double; events._correct carries the bound γ_(GROUP-1) + γ^(64)_(⌈k/GROUP⌉+2). */
#define GROUP 8

void mlcm_correct(
    int64_t batch, int64_t pre_size, int64_t post_size,
    const float *delta, const int32_t *changed, const int64_t *counts,
    const float *rows, double divisor, double strength, float *fields, int64_t fields_stride, double *work,
    float *group)
{
    for (int64_t b = 0; b < batch; ++b) {
        int64_t count = counts[b];
        if (count == 0) continue;
        const float *d = delta + b * pre_size;
        const int32_t *list = changed + b * pre_size;
        float *f = fields + b * fields_stride;
        for (int64_t k = 0; k < count; k += GROUP) {
            int64_t n = count - k < GROUP ? count - k : GROUP;
            float d0 = d[list[k]];
            const float *r0 = rows + (int64_t)list[k] * post_size;
            for (int64_t j = 0; j < post_size; ++j) group[j] = d0 * r0[j];
            for (int64_t q = 1; q < n; ++q) {
                float dq = d[list[k + q]];
                const float *r = rows + (int64_t)list[k + q] * post_size;
                for (int64_t j = 0; j < post_size; ++j) group[j] = fmaf(dq, r[j], group[j]);
            }
            if (count <= GROUP && strength == 1.0 && divisor == 1.0) {
                /* one group added to F: the float32 sum rounds f + g once, as the double path */
                for (int64_t j = 0; j < post_size; ++j) f[j] += group[j];
            } else if (count <= GROUP) {  /* one group: added to F directly */
                for (int64_t j = 0; j < post_size; ++j)
                    f[j] = (float)((double)f[j] + strength * ((double)group[j] / divisor));
            } else if (k == 0) {
                for (int64_t j = 0; j < post_size; ++j) work[j] = (double)group[j];
            } else {
                for (int64_t j = 0; j < post_size; ++j) work[j] += (double)group[j];
            }
        }
        if (count > GROUP)
            for (int64_t j = 0; j < post_size; ++j) f[j] = (float)((double)f[j] + strength * (work[j] / divisor));
    }
}

/* One layer of a chain relaxed by mlcm_relax_chain: the arguments of mlcm_decide (``quiet`` its
 * skip mask, which the loop keeps), those of the layer's own correction by J (mlcm_correct on
 * ``rows`` = Jᵀ, ``divisor`` = unit; above ``dense_pairs`` changed pairs the correction is left to
 * the caller's dense product), the carried bound's factors (``scale`` Σ_j |J_ij| / unit, ``reach``
 * M_i) and the one-to-one couplings out of the layer (post layer, strength, width), in the order
 * of Graph.incoming_from. */
#define CHAIN_OUT 8

typedef struct {
    int64_t size;
    float *fields;
    const float *constant;
    const double *bound_constant;
    double *error;
    float *states;
    double j_d;
    int64_t encoding;
    int64_t tie;
    const Term *terms;
    int64_t n_terms;
    int64_t self_after;
    const double *theta;
    float *delta;
    int32_t *changed;
    int64_t *counts;
    int32_t *pairs;
    uint8_t *quiet;
    const float *rows;
    double divisor;
    const double *scale;
    const double *reach;
    double *work;
    float *group;
    int64_t dense_pairs;
    int64_t n_out;
    int64_t out_post[CHAIN_OUT];
    double out_strength[CHAIN_OUT];
    int64_t out_width[CHAIN_OUT];
} ChainLayer;

/* The decisions of one layer (decide_layer with the layer's arguments, ``quiet`` as the skip mask,
 * which it does not change); returns the changed pairs. */
int64_t mlcm_decide(const ChainLayer *c, int64_t batch, int64_t states_stride, double bound_scale,
                    int64_t *rechecked) {
    return decide_layer(batch, c->size, c->fields, c->constant, c->bound_constant, c->error, bound_scale,
                        c->states, states_stride, c->j_d, (int)c->encoding, (int)c->tie, c->terms, c->n_terms,
                        c->self_after, c->theta, c->delta, c->changed, c->counts, c->pairs, rechecked, c->quiet);
}

/* Layer-sequential synchronous sweeps of a chain of layers whose couplings between layers are
 * one-to-one, in a loop, as events.event_sweep and events._propagate run them one layer at a
 * time from Python: per layer, decide (mlcm_decide, the ``quiet`` samples skipped; quiet then
 * marks the samples that changed nothing), and where something changed: clear ``quiet`` of the
 * receiving layers for the samples that changed, add strength·Δ_i to the receiving fields (each
 * sum rounded once in float32: strength·Δ is exact for Δ ∈ {±1, ±2}) and raise their carried
 * bound by u reach, correct the layer's own field by J (mlcm_correct) and raise its bound by
 * 2 (γ_7 + γ^(64)_(⌈k/8⌉+2)) scale_i + u reach_i (k the most changes of a sample, u = 2^-24).
 * After the last layer: count the sweep of every sample not yet converged and mark converged
 * the samples that changed in no layer (``moved``). A layer that changed more than its
 * ``dense_pairs`` is left uncorrected by J for the caller's dense product: the loop returns 0
 * with ``*pending`` its changed pairs, ``*pending_layer`` the layer and ``position`` (sweeps
 * done, next layer) where the next call resumes. Returns 1 when every sample has converged or
 * ``max_sweeps`` sweeps ran. */
int64_t mlcm_relax_chain(
    ChainLayer *layers, int64_t n_layers, int64_t batch, int64_t states_stride, double bound_scale,
    int64_t max_sweeps, int64_t *position, uint8_t *moved, int64_t *sweeps, uint8_t *converged,
    int64_t *pending, int64_t *pending_layer, int64_t *rechecked)
{
    const double u = ldexp(1.0, -24), u64 = ldexp(1.0, -53);
    int64_t t = position[0], l = position[1], checked = 0;
    *pending = 0;
    while (t < max_sweeps) {
        for (; l < n_layers; ++l) {
            ChainLayer *c = &layers[l];
            int64_t total = mlcm_decide(c, batch, states_stride, bound_scale, &checked);
            *rechecked += checked;
            int64_t most = 0;
            for (int64_t b = 0; b < batch; ++b) {
                c->quiet[b] = c->counts[b] == 0;
                moved[b] |= c->counts[b] > 0;
                if (c->counts[b] > most) most = c->counts[b];
            }
            if (total == 0) continue;
            for (int64_t o = 0; o < c->n_out; ++o) {
                ChainLayer *p = &layers[c->out_post[o]];
                float strength = (float)c->out_strength[o];
                for (int64_t b = 0; b < batch; ++b) {
                    p->quiet[b] &= c->counts[b] == 0;
                    const float *d = c->delta + b * c->size;
                    const int32_t *list = c->changed + b * c->size;
                    float *f = p->fields + b * p->size;
                    for (int64_t k = 0; k < c->counts[b]; ++k)
                        if (list[k] < c->out_width[o]) f[list[k]] += strength * d[list[k]];
                }
                for (int64_t i = 0; i < p->size; ++i) p->error[i] = p->error[i] + u * p->reach[i];
            }
            if (total > c->dense_pairs) {
                *pending = total;
                *pending_layer = l;
                position[0] = t;
                position[1] = l + 1;
                return 0;
            }
            mlcm_correct(batch, c->size, c->size, c->delta, c->changed, c->counts, c->rows, c->divisor, 1.0,
                         c->fields, c->size, c->work, c->group);
            double n = (double)((most + GROUP - 1) / GROUP + 2), g = GROUP - 1;
            double gamma = g * u / (1.0 - g * u) + n * u64 / (1.0 - n * u64);
            for (int64_t i = 0; i < c->size; ++i) c->error[i] = c->error[i] + 2.0 * gamma * c->scale[i] + u * c->reach[i];
        }
        int all = 1;
        for (int64_t b = 0; b < batch; ++b) {
            sweeps[b] += !converged[b];
            if (!moved[b]) converged[b] = 1;
            moved[b] = 0;
            all &= converged[b] != 0;
        }
        ++t;
        l = 0;
        if (all) break;
    }
    position[0] = t;
    position[1] = 0;
    return 1;
}

/* Binary ±1 couplings and states packed one bit per value (bit set: +1), fields by XOR and
 * popcount (mlcm_torch/functional/packed.py): for ±1 values a_j, b_j,
 * Σ_j a_j b_j = n − 2·popcount(a XOR b), an exact integer. Padding bits are zero in both.
 *
 * mlcm_pack_signs_int8: rows of int8 couplings (row r holds neuron r mod n of its network),
 *   the diagonal (column r mod n) packed as +1; returns how many entries are not ±1 off the
 *   diagonal or not 0 on it (the caller then keeps the unpacked path).
 * mlcm_pack_signs_float: rows of float32 states; returns how many values are not ±1. */
int64_t mlcm_pack_signs_int8(const int8_t *values, int64_t rows, int64_t n, uint64_t *bits, int64_t words) {
    int64_t bad = 0;
    for (int64_t r = 0; r < rows; ++r) {
        const int8_t *v = values + r * n;
        uint64_t *out = bits + r * words;
        int64_t diagonal = r % n;
        memset(out, 0, sizeof(uint64_t) * (size_t)words);
        for (int64_t j = 0; j < n; ++j) {
            int8_t x = v[j];
            if (j == diagonal) {
                bad += x != 0;
                out[j >> 6] |= (uint64_t)1 << (j & 63);
            } else {
                bad += x != 1 && x != -1;
                out[j >> 6] |= (uint64_t)(x > 0) << (j & 63);
            }
        }
    }
    return bad;
}

int64_t mlcm_pack_signs_float(const float *values, int64_t rows, int64_t n, int64_t row_stride,
                              uint64_t *bits, int64_t words) {
    int64_t bad = 0;
    for (int64_t r = 0; r < rows; ++r) {
        const float *v = values + r * row_stride;
        uint64_t *out = bits + r * words;
        memset(out, 0, sizeof(uint64_t) * (size_t)words);
        for (int64_t j = 0; j < n; ++j) {
            bad += v[j] != 1.0f && v[j] != -1.0f;
            out[j >> 6] |= (uint64_t)(v[j] > 0.0f) << (j & 63);
        }
    }
    return bad;
}

static inline int64_t sign_sum(const uint64_t *restrict row, const uint64_t *restrict s, int64_t words,
                               int64_t n, int64_t i) {
    int64_t count = 0;
    for (int64_t w = 0; w < words; ++w) count += __builtin_popcountll(row[w] ^ s[w]);
    return n - 2 * count - (((s[i >> 6] >> (i & 63)) & 1) ? 1 : -1);
}

/* out[m, b, k] = Σ_(j != i) B_ij s_mbj for i = neurons[k] of network m: the all-j sum over the
 * packed row (diagonal packed as +1) minus the diagonal term s_mbi. Couplings (nets, n, words),
 * states (nets, batch, words), out (nets, batch, n_neurons) float32 (|sum| < n < 2^24: exact).
 * Four samples share each load of a coupling word. */
void mlcm_sign_fields(const uint64_t *couplings, const uint64_t *states, const int64_t *neurons,
                      int64_t n_neurons, int64_t nets, int64_t batch, int64_t n, int64_t words, float *out) {
    for (int64_t m = 0; m < nets; ++m) {
        const uint64_t *s_net = states + m * batch * words;
        float *o_net = out + m * batch * n_neurons;
        for (int64_t k = 0; k < n_neurons; ++k) {
            int64_t i = neurons[k];
            const uint64_t *restrict row = couplings + (m * n + i) * words;
            int64_t b = 0;
            for (; b + 4 <= batch; b += 4) {
                const uint64_t *restrict s0 = s_net + b * words, *restrict s1 = s0 + words;
                const uint64_t *restrict s2 = s1 + words, *restrict s3 = s2 + words;
                int64_t c0 = 0, c1 = 0, c2 = 0, c3 = 0;
                for (int64_t w = 0; w < words; ++w) {
                    uint64_t r = row[w];
                    c0 += __builtin_popcountll(r ^ s0[w]);
                    c1 += __builtin_popcountll(r ^ s1[w]);
                    c2 += __builtin_popcountll(r ^ s2[w]);
                    c3 += __builtin_popcountll(r ^ s3[w]);
                }
                const uint64_t *sb[4] = {s0, s1, s2, s3};
                int64_t c[4] = {c0, c1, c2, c3};
                for (int q = 0; q < 4; ++q)
                    o_net[(b + q) * n_neurons + k] =
                        (float)(n - 2 * c[q] - (((sb[q][i >> 6] >> (i & 63)) & 1) ? 1 : -1));
            }
            for (; b < batch; ++b)
                o_net[b * n_neurons + k] = (float)sign_sum(row, s_net + b * words, words, n, i);
        }
    }
}

/* One asynchronous sweep of binary networks, exactly sequential: for each sample on its own
 * (samples are independent), the neurons of `order` in turn, each deciding on its exact field
 * h_i = Σ_(j != i) B_ij s_j from the current states (n − 2·popcount − s_i, as above): s_i stays
 * where s_i·h_i > theta (keep: >=), else flips. theta = the self-coupling threshold in coupling
 * units, one per sample (dynamics._thresholds). States (nets, batch, n) float32 ±1, in place;
 * work: `words` words. Returns the number of flips. */
int64_t mlcm_sign_async(const uint64_t *couplings, float *states, int64_t nets, int64_t batch, int64_t n,
                        int64_t words, const int64_t *order, int64_t n_order, const double *theta, int keep,
                        uint64_t *work) {
    int64_t flips = 0;
    for (int64_t m = 0; m < nets; ++m) {
        for (int64_t b = 0; b < batch; ++b) {
            int64_t sample = m * batch + b;
            float *s = states + sample * n;
            double t = theta[sample];
            memset(work, 0, sizeof(uint64_t) * (size_t)words);
            for (int64_t j = 0; j < n; ++j) work[j >> 6] |= (uint64_t)(s[j] > 0.0f) << (j & 63);
            for (int64_t k = 0; k < n_order; ++k) {
                int64_t i = order[k];
                int64_t s_i = (work[i >> 6] >> (i & 63)) & 1 ? 1 : -1;
                double local = (double)(s_i * sign_sum(couplings + (m * n + i) * words, work, words, n, i));
                int stays = keep ? local >= t : local > t;
                if (!stays) {
                    s[i] = -s[i];
                    work[i >> 6] ^= (uint64_t)1 << (i & 63);
                    ++flips;
                }
            }
        }
    }
    return flips;
}

/* The per-neuron loop of one block of dynamics.sequential_updates for a layer decided by its
 * threshold (dynamics._threshold): h (nets, batch, block) the block's fields without J_D s_i
 * from the block-start product, columns (nets, block, block) with columns[a][l] the coupling
 * from block neuron a to block neuron l, states (nets, batch, block) the block's states, theta
 * one per sample. For a = 0, 1, ...: s_a stays where s_a·h_a > theta (keep: >=), else flips,
 * and h_l += Δ_a · columns[a][l] for every l. Δ = ±2 and s_a = ±1, so every product is exact
 * and each step rounds once, as the tensor loop's where/addcmul_: the same values. */
#define BLOCK_ASYNC(NAME, T)                                                                      \
    int64_t NAME(T *h, const T *columns, T *states, int64_t nets, int64_t batch, int64_t block,  \
                 const T *theta, int keep) {                                                      \
        int64_t flips = 0;                                                                        \
        for (int64_t m = 0; m < nets; ++m) {                                                      \
            const T *col_net = columns + m * block * block;                                      \
            for (int64_t b = 0; b < batch; ++b) {                                                 \
                int64_t sample = m * batch + b;                                                   \
                T *hb = h + sample * block, *sb = states + sample * block;                        \
                T t = theta[sample];                                                              \
                for (int64_t a = 0; a < block; ++a) {                                             \
                    T s = sb[a], local = s * hb[a];                                               \
                    if (keep ? local >= t : local > t) continue;                                  \
                    T delta = -2 * s;                                                             \
                    sb[a] = -s;                                                                   \
                    ++flips;                                                                      \
                    const T *col = col_net + a * block;                                           \
                    for (int64_t l = 0; l < block; ++l) hb[l] = hb[l] + delta * col[l];           \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
        return flips;                                                                             \
    }
BLOCK_ASYNC(mlcm_block_async_f32, float)
BLOCK_ASYNC(mlcm_block_async_f64, double)

/* One asynchronous event sweep of a one-layer ±1 network (events.async_event_sweep on a layer
 * that no other layer reads and that reads no other layer): fields (nets, batch, n) the carried
 * float64 F_i = Σ_j J_ij s_j / unit, states (nets, batch, n) in double, rows (nets, n, n) Jᵀ with
 * rows[i][j] = J_ji, j_d one per network, constant the phase-constant part of the field. For
 * each neuron i of the order and each sample: h = (F_i + J_D s_i) + constant; "flip" keeps s_i
 * where s_i h > 0, "keep" flips it where s_i h < 0; a change Δ corrects the sample's fields,
 * F_j += (Δ inv_unit) · (double)J_ji, product and sum each rounded once as in the tensor loop:
 * the same values. changed (nets, batch) is set where a sample changed. Returns the flips. */
#define ASYNC_EVENT(NAME, T)                                                                      \
    int64_t NAME(double *fields, double *states, const T *rows, int64_t nets, int64_t batch,     \
                 int64_t n, const int64_t *order, int64_t n_order, const double *j_d,             \
                 double constant, double inv_unit, int keep, uint8_t *changed) {                  \
        int64_t flips = 0;                                                                        \
        for (int64_t m = 0; m < nets; ++m) {                                                      \
            const T *rows_net = rows + m * n * n;                                                 \
            double jd = j_d[m];                                                                   \
            for (int64_t k = 0; k < n_order; ++k) {                                               \
                int64_t i = order[k];                                                             \
                const T *row = rows_net + i * n;                                                  \
                for (int64_t b = 0; b < batch; ++b) {                                             \
                    int64_t sample = m * batch + b;                                               \
                    double *f = fields + sample * n, *s = states + sample * n;                    \
                    double s_i = s[i], h = (f[i] + jd * s_i) + constant, local = s_i * h;         \
                    if (keep ? !(local < 0) : local > 0) continue;                                \
                    if (s_i == 0) continue; /* −0 == 0: no change, as the tensor loop sees it */   \
                    double delta = -2 * s_i, scaled = delta * inv_unit;                          \
                    s[i] = -s_i;                                                                  \
                    changed[sample] = 1;                                                          \
                    ++flips;                                                                      \
                    for (int64_t j = 0; j < n; ++j) {                                             \
                        double product = scaled * (double)row[j];                                 \
                        f[j] = f[j] + product;                                                    \
                    }                                                                             \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
        return flips;                                                                             \
    }
ASYNC_EVENT(mlcm_async_event_f32, float)
ASYNC_EVENT(mlcm_async_event_f64, double)
