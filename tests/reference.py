"""Slow, obvious reference loops over samples, layers and neurons (float64, plain Python),
written from the equations of thesis eq. 6.1, 6.3 / Alg. 3 and eq. 7.1, to check the
vectorised implementation against."""

from __future__ import annotations

import math

import torch


def input_vector(model, x_b):
    """x̃ for one sample: x zero-padded to N, or W_in x."""
    n, d = model.hidden, model.in_features
    if model.W_in is None:
        return [float(x_b[j]) if j < d else 0.0 for j in range(n)]
    return [sum(float(model.W_in[i, j]) * float(x_b[j]) for j in range(d)) for i in range(n)]


def reference_fields(model, states, x, y=None, feedback=None):
    """Thesis eq. 6.1 (and eq. 7.1's κ + γ for {0,1}), one neuron at a time."""
    feedback = (y is not None) if feedback is None else feedback
    B, L, N = states.shape
    J = model.J.double()
    out = torch.zeros(B, L, N, dtype=torch.float64)
    for b in range(B):
        xt = input_vector(model, x[b])
        for l in range(L):
            for i in range(N):
                h = sum(float(J[l, i, j]) * float(states[b, l, j]) for j in range(N))
                h += model.j_d * float(states[b, l, i])
                kappa = sum(float(J[l, i, j]) for j in range(N)) + model.j_d
                if l == 0:
                    h += model.lambda_in * xt[i]
                    if model.W_in is None:
                        kappa += model.lambda_in * (1.0 if i < model.in_features else 0.0)
                    else:
                        kappa += model.lambda_in * float(model.W_in[i].sum())
                else:
                    h += model.lambda_left[l - 1] * float(states[b, l - 1, i])
                    kappa += model.lambda_left[l - 1]
                if l < L - 1 and feedback:
                    h += model.lambda_right[l] * float(states[b, l + 1, i])
                    kappa += model.lambda_right[l]
                if l == L - 1 and feedback:
                    h += model.lambda_out * float(model.W_back[i, int(y[b])])
                if model.state_encoding == "01":
                    h -= 0.5 * kappa + model.sparsity_threshold
                out[b, l, i] = h
    return out


def reference_update(model, states, x, y):
    """Thesis eq. 6.3 / Alg. 3 on a copy of the couplings: returns (J_new, W_in_new, unstable)."""
    B, L, N = states.shape
    pm = (lambda t: t) if model.state_encoding == "pm1" else (lambda t: 2 * t - 1)
    s, xs = pm(states.double()), pm(x.double())
    J = model.J.double().clone()
    paper = model.lr_scaling == "paper"
    scale = model.lr / (math.sqrt(N * B) if paper else B)
    decay_lr = model.lr / math.sqrt(N) if paper else model.lr
    d = model.in_features
    scale_in = model.lr_in / (math.sqrt(d * B) if paper else B)
    unstable = torch.zeros(B, L, N, dtype=torch.bool)
    dJ = torch.zeros_like(J)
    dW = None if model.W_in is None else torch.zeros(N, d, dtype=torch.float64)
    for b in range(B):
        xt = input_vector(model, xs[b])
        for l in range(L):
            for i in range(N):
                h = sum(float(J[l, i, j]) * float(s[b, l, j]) for j in range(N) if j != i)
                h += model.lambda_in * xt[i] if l == 0 else model.lambda_left[l - 1] * float(s[b, l - 1, i])
                if float(s[b, l, i]) * h <= model.robustness:
                    unstable[b, l, i] = True
                    for j in range(N):
                        if j != i:
                            dJ[l, i, j] += scale * float(s[b, l, i]) * float(s[b, l, j])
                    if dW is not None and l == 0:
                        for j in range(d):
                            dW[i, j] += scale_in * float(s[b, 0, i]) * float(xs[b, j])
    J_new = J * (1 - decay_lr * model.weight_decay) + dJ
    W_new = None if dW is None else model.W_in.double() + dW
    return J_new, W_new, unstable


def reference_readout_update(model, features, y):
    """One-vs-all perceptron with margin, sample by sample: returns the new W_out."""
    W = model.readout.weight.detach().double()
    C, N = W.shape
    B = features.shape[0]
    paper = model.lr_scaling == "paper"
    scale = model.readout_lr / (math.sqrt(N * B) if paper else B)
    decay_lr = model.readout_lr / math.sqrt(N) if paper else model.readout_lr
    dW = torch.zeros_like(W)
    for b in range(B):
        for c in range(C):
            t = model.readout_targets[0] if c == int(y[b]) else model.readout_targets[1]
            out = sum(float(W[c, j]) * float(features[b, j]) for j in range(N))
            if t * out <= model.readout_margin:
                for j in range(N):
                    dW[c, j] += scale * t * float(features[b, j])
    return W * (1 - decay_lr * model.weight_decay) + dW
