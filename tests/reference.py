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


# ---------------------------------------------------------------------------------------------
# Generic reference loops for any mlcm_torch.Network (layers + couplings), written from the
# equations alone: no function of the engine is used. Everything is read from the modules'
# public buffers and options and computed in float64 Python floats, one sample, layer, neuron
# and coupling at a time.


def _ends(coupling):
    """(post, pre) of a coupling, as the network resolved them (non-negative layer indices)."""
    return coupling._post, coupling._pre


def _offsets(net):
    sizes = [layer.J.shape[0] for layer in net.layers]
    offsets, total = [], 0
    for size in sizes:
        offsets.append(total)
        total += size
    return sizes, offsets, total


def _layer_values(row, offsets, sizes, layer):
    return row[offsets[layer]:offsets[layer] + sizes[layer]]


def _is_margin(coupling, layer):
    """Couplings into ``layer`` that enter the perceptron margin: the input, earlier layers."""
    post, pre = _ends(coupling)
    return post == layer and (pre == "input" or (isinstance(pre, int) and pre < post))


def reference_network_fields(net, flat_states, x, y=None, feedback=None):
    """Fields (B, total) of any Network at flat states, one neuron at a time (float64):
    h_i = Σ_j J_ij s_j + J_D s_i + Σ_(couplings into the layer, active) λ (W pre)_i (or λ pre_i,
    zero beyond a narrower pre) − [{0,1}] (½ κ_i + γ), with κ_i = Σ_j J_ij + J_D + Σ over the
    active couplings from {0,1} sources (layers, input) of λ (row sum of W, or 1 where the
    one-to-one pre exists). ``feedback``: the couplings with ``phases == "clamped"`` (and the
    label, when ``y`` is given) act; default: ``y is not None``. ``y``: class indices (B,) or
    target vectors (B, C)."""
    feedback = (y is not None) if feedback is None else feedback
    sizes, offsets, total = _offsets(net)
    zero_one = net.state_encoding == "01"
    states = flat_states.double().reshape(flat_states.shape[0], -1).tolist()
    xs = x.double().tolist()
    ys = None if y is None else y.tolist()
    B = len(states)
    Js = [layer.J.double().tolist() for layer in net.layers]
    Ws = [None if c.W is None else c.W.double().tolist() for c in net.couplings]
    out = torch.zeros(B, total, dtype=torch.float64)
    for b in range(B):
        for layer_index, layer in enumerate(net.layers):
            J = Js[layer_index]
            s = _layer_values(states[b], offsets, sizes, layer_index)
            for i in range(sizes[layer_index]):
                h = sum(J[i][j] * s[j] for j in range(len(s))) + layer.j_d * s[i]
                kappa = sum(J[i]) + layer.j_d
                for coupling, W in zip(net.couplings, Ws):
                    post, pre = _ends(coupling)
                    if post != layer_index or (coupling.phases == "clamped" and not feedback):
                        continue
                    lam = coupling.strength
                    if pre == "label":
                        if ys is None:
                            continue
                        if isinstance(ys[b], list):
                            h += lam * sum(W[i][c] * ys[b][c] for c in range(len(ys[b])))
                        else:
                            h += lam * W[i][int(ys[b])]
                        continue  # the label is never part of κ
                    pre_values = xs[b] if pre == "input" else _layer_values(states[b], offsets, sizes, pre)
                    if coupling.W is None:
                        present = i < len(pre_values)
                        h += lam * (pre_values[i] if present else 0.0)
                        kappa += lam * (1.0 if present else 0.0)
                    else:
                        h += lam * sum(W[i][j] * pre_values[j] for j in range(len(pre_values)))
                        kappa += lam * sum(W[i])
                if zero_one:
                    h -= 0.5 * kappa + layer.gamma
                out[b, offsets[layer_index] + i] = h
    return out


def _scales(net, lr, fan_in, batch):
    """(delta scale, decay learning rate) of thesis / paper learning-rate scaling."""
    if net.lr_scaling == "paper":
        return lr / math.sqrt(fan_in * batch), lr / math.sqrt(fan_in)
    return lr / batch, lr


def reference_network_update(net, flat_states, x, y=None):
    """Thesis eq. 6.3 / Alg. 3 for any Network, on copies, sample by sample (float64).

    Returns a dict: ``J`` new J per layer (unchanged copies for lr = 0), ``W`` new W per
    coupling (``None`` for one-to-one couplings; unchanged copies for lr = 0), ``unstable``
    (B, N_l) bool per layer, and ``readout`` the new W_out for the perceptron readout when
    ``y`` is given (else ``None``). {0,1} states and inputs learn as 2z − 1 (the readout sees
    the states as they are)."""
    sizes, offsets, _ = _offsets(net)
    raw = flat_states.double().reshape(flat_states.shape[0], -1)
    pm = (lambda t: t) if net.state_encoding == "pm1" else (lambda t: 2.0 * t - 1.0)
    states, xs = pm(raw).tolist(), pm(x.double()).tolist()
    B = len(states)

    def pre_values(coupling, b):
        pre = _ends(coupling)[1]
        return xs[b] if pre == "input" else _layer_values(states[b], offsets, sizes, pre)

    Js = [layer.J.double().tolist() for layer in net.layers]
    Ws = [None if c.W is None else c.W.double().tolist() for c in net.couplings]
    unstable = [torch.zeros(B, size, dtype=torch.bool) for size in sizes]
    for b in range(B):
        for l, layer in enumerate(net.layers):
            J = Js[l]
            s = _layer_values(states[b], offsets, sizes, l)
            for i in range(sizes[l]):
                h = sum(J[i][j] * s[j] for j in range(sizes[l]) if j != i)
                for coupling, W in zip(net.couplings, Ws):
                    if not _is_margin(coupling, l):
                        continue
                    values = pre_values(coupling, b)
                    if W is None:
                        h += coupling.strength * (values[i] if i < len(values) else 0.0)
                    else:
                        h += coupling.strength * sum(W[i][j] * values[j] for j in range(len(values)))
                unstable[l][b, i] = s[i] * h <= layer.robustness

    new_J = []
    for l, layer in enumerate(net.layers):
        J = layer.J.double().clone()
        if layer.lr > 0:
            scale, decay_lr = _scales(net, layer.lr, sizes[l] * (1.0 - layer.sparsity), B)
            delta = torch.zeros_like(J)
            for b in range(B):
                s = _layer_values(states[b], offsets, sizes, l)
                for i in range(sizes[l]):
                    if unstable[l][b, i]:
                        for j in range(sizes[l]):
                            if j != i:
                                delta[i, j] += scale * s[i] * s[j]
            if layer.mask is not None:
                delta = delta * layer.mask.double()
            J = J * (1.0 - decay_lr * layer.weight_decay) + delta
        new_J.append(J)

    new_W = []
    for coupling in net.couplings:
        if coupling.W is None:
            new_W.append(None)
            continue
        W = coupling.W.double().clone()
        if coupling.lr > 0:
            post = _ends(coupling)[0]
            scale, decay_lr = _scales(net, coupling.lr, W.shape[1] * (1.0 - coupling.sparsity), B)
            delta = torch.zeros_like(W)
            for b in range(B):
                s = _layer_values(states[b], offsets, sizes, post)
                values = pre_values(coupling, b)
                for i in range(W.shape[0]):
                    if unstable[post][b, i]:
                        for j in range(W.shape[1]):
                            delta[i, j] += scale * s[i] * values[j]
            if coupling.mask is not None:
                delta = delta * coupling.mask.double()
            W = W * (1.0 - decay_lr * coupling.weight_decay) + delta
        new_W.append(W)

    readout = None
    options = net.readout_options
    if y is not None and options.rule == "perceptron":
        W_out = net.readout.weight.detach().double().clone()
        C, N = W_out.shape
        scale, decay_lr = _scales(net, options.lr, N, B)
        features = raw[:, offsets[-1]:offsets[-1] + sizes[-1]].tolist()
        ys = y.tolist()
        delta = torch.zeros_like(W_out)
        for b in range(B):
            for c in range(C):
                if isinstance(ys[b], list):
                    t = float(ys[b][c])
                else:
                    t = options.targets[0] if c == int(ys[b]) else options.targets[1]
                out = sum(float(W_out[c, j]) * features[b][j] for j in range(N))
                if t * out <= options.margin:
                    for j in range(N):
                        delta[c, j] += scale * t * features[b][j]
        readout = W_out * (1.0 - decay_lr * options.weight_decay) + delta
    return {"J": new_J, "W": new_W, "unstable": unstable, "readout": readout}
