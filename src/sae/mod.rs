//! Sparse autoencoders on the residual stream, in one canonical form whatever the file format:
//! `f = σ(W_encᵀ·(n(x) − b_dec·[apply_b_dec_to_input]) + b_enc)`, `x̂ = n⁻¹(W_decᵀ·f + b_dec)`,
//! with σ the architecture's activation ([`Activation`]) and n a per-token input normalisation
//! ([`InputNorm`]).

mod activation;

pub use activation::Activation;

use burn::prelude::*;

/// How each token is normalised before encoding, and restored after decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputNorm {
    None,
    /// InterPLM's `normalize_to_sqrt_d`: x scaled to norm √d; the output scaled back by the
    /// token's own norm (clamped at 1e-8).
    SqrtD,
    /// InterProt's (and SAELens' `layer_norm`): `(x − μ) / (σ + 1e-5)` with σ the unbiased
    /// standard deviation; the output restored as `x̂·σ + μ`.
    LayerNorm,
}

/// Which file format an SAE came from (for display and for the sign of its conventions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SaeFormat {
    InterPlm,
    SaeLens,
    InterProt,
}

/// A sparse autoencoder.
#[derive(Debug, Clone)]
pub struct Sae {
    /// `[d_in, d_sae]`.
    pub w_enc: Tensor<2>,
    /// `[d_sae]`.
    pub b_enc: Tensor<1>,
    /// `[d_sae, d_in]`.
    pub w_dec: Tensor<2>,
    /// `[d_in]`.
    pub b_dec: Tensor<1>,
    pub apply_b_dec_to_input: bool,
    pub activation: Activation,
    pub norm: InputNorm,
    /// InterPLM's `activation_rescale_factor` `[d_sae]`: features ÷ this are on a 0–1 scale.
    pub rescale: Option<Tensor<1>>,
    pub format: SaeFormat,
    pub d_in: usize,
    pub d_sae: usize,
}

/// What undoes the input normalisation of each token: `x̂ = x̂ₙ·scale + shift`.
#[derive(Debug, Clone)]
pub struct TokenNorm {
    /// `[n, 1]`, or `None` for the identity.
    scale: Option<Tensor<2>>,
    /// `[n, 1]`, or `None` for zero.
    shift: Option<Tensor<2>>,
}

/// Features of a set of tokens and what is needed to decode them back.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// `[n, d_sae]`, in the SAE's own units (not divided by the rescale factor).
    pub features: Tensor<2>,
    pub norm: TokenNorm,
}

impl Sae {
    /// # Shapes
    /// - x: `[n, d_in]` → features `[n, d_sae]`
    pub fn encode(&self, x: Tensor<2>) -> Encoded {
        let (xn, norm) = self.norm.normalise(x);
        let centred = if self.apply_b_dec_to_input { xn - self.b_dec.clone().unsqueeze() } else { xn };
        let features = self.activation.after_affine(centred, self.w_enc.clone(), self.b_enc.clone()); // [n, d_sae]
        Encoded { features, norm }
    }

    /// The features at `columns` only, equal to those columns of `encode(x).features`.
    /// ReLU and JumpReLU read just those columns of `W_enc`; top-k ranks every pre-activation,
    /// so it encodes in full.
    ///
    /// # Shapes
    /// - x: `[n, d_in]`, columns: `[k]` → `[n, k]`
    pub fn encode_columns(&self, x: Tensor<2>, columns: Tensor<1, Int>) -> Tensor<2> {
        let activation = match &self.activation {
            Activation::TopK(_) => return self.encode(x).features.select(1, columns),
            Activation::Relu => Activation::Relu,
            Activation::JumpRelu(t) => Activation::JumpRelu(t.clone().select(0, columns.clone())),
        };
        let (xn, _) = self.norm.normalise(x);
        let centred = if self.apply_b_dec_to_input { xn - self.b_dec.clone().unsqueeze() } else { xn };
        let w = self.w_enc.clone().select(1, columns.clone()); // [d_in, k]
        activation.after_affine(centred, w, self.b_enc.clone().select(0, columns))
    }

    /// `x̂` from (possibly edited) features. `[n, d_sae]` → `[n, d_in]`.
    pub fn decode(&self, features: Tensor<2>, norm: &TokenNorm) -> Tensor<2> {
        let x = features.matmul(self.w_dec.clone()) + self.b_dec.clone().unsqueeze();
        norm.restore(x)
    }

    /// `decode(f + Δf) − decode(f)` where Δf is nonzero only on some features: decoding is
    /// affine in f for each token, so only those features' decoder rows are needed.
    ///
    /// # Shapes
    /// - delta: `[n, k]` (the changes of k features), rows: `[k, d_in]` (their rows of `w_dec`)
    /// - output: `[n, d_in]`
    pub fn decode_delta(&self, delta: Tensor<2>, rows: Tensor<2>, norm: &TokenNorm) -> Tensor<2> {
        let d = delta.matmul(rows);
        match &norm.scale {
            Some(s) => d * s.clone(),
            None => d,
        }
    }

    /// Features ÷ `activation_rescale_factor` (InterPLM's normalised features); unchanged for
    /// SAEs without one.
    pub fn normalised_features(&self, features: Tensor<2>) -> Tensor<2> {
        match &self.rescale {
            Some(r) => features / r.clone().unsqueeze(),
            None => features,
        }
    }
}

impl InputNorm {
    /// Each token normalised, and what restores it. `[n, d_in]` → `[n, d_in]`.
    pub fn normalise(self, x: Tensor<2>) -> (Tensor<2>, TokenNorm) {
        let [_, d] = x.dims();
        match self {
            InputNorm::None => (x, TokenNorm { scale: None, shift: None }),
            InputNorm::SqrtD => {
                let norms = x.clone().powf_scalar(2.0).sum_dim(1).sqrt(); // [n, 1]
                let sqrt_d = (d as f64).sqrt();
                let xn = x / norms.clone().clamp_min(1e-12) * sqrt_d;
                (xn, TokenNorm { scale: Some(norms.clamp_min(1e-8) / sqrt_d), shift: None })
            }
            InputNorm::LayerNorm => {
                let mu = x.clone().mean_dim(1); // [n, 1]
                let centred = x - mu.clone();
                let std = (centred.clone().powf_scalar(2.0).sum_dim(1) / (d as f64 - 1.0)).sqrt(); // unbiased
                let xn = centred / (std.clone() + 1e-5);
                (xn, TokenNorm { scale: Some(std), shift: Some(mu) })
            }
        }
    }
}

impl TokenNorm {
    /// The norms of consecutive row blocks as one: `k × [n_i, 1]` → `[Σ n_i, 1]`.
    pub fn cat(parts: Vec<TokenNorm>) -> TokenNorm {
        let (scales, shifts): (Vec<_>, Vec<_>) = parts.into_iter().map(|p| (p.scale, p.shift)).unzip();
        let cat = |parts: Vec<Option<Tensor<2>>>| parts.into_iter().collect::<Option<Vec<_>>>().filter(|p| !p.is_empty()).map(|p| Tensor::cat(p, 0));
        TokenNorm { scale: cat(scales), shift: cat(shifts) }
    }

    fn restore(&self, x: Tensor<2>) -> Tensor<2> {
        let x = match &self.scale {
            Some(s) => x * s.clone(),
            None => x,
        };
        match &self.shift {
            Some(m) => x + m.clone(),
            None => x,
        }
    }
}

/// The SAEs in use, at most one per layer (the hidden state each reads).
#[derive(Debug, Clone, Default)]
pub struct SaeSet(Vec<(usize, Sae)>);

impl SaeSet {
    /// The SAE that reads hidden state `layer`.
    pub fn get(&self, layer: usize) -> Option<&Sae> {
        self.0.iter().find(|(l, _)| *l == layer).map(|(_, s)| s)
    }

    /// Puts `sae` at `layer`, replacing the one there.
    pub fn insert(&mut self, layer: usize, sae: Sae) {
        self.0.retain(|(l, _)| *l != layer);
        self.0.push((layer, sae));
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn iter(&self) -> impl Iterator<Item = (usize, &Sae)> {
        self.0.iter().map(|(l, s)| (*l, s))
    }
}

impl FromIterator<(usize, Sae)> for SaeSet {
    fn from_iter<I: IntoIterator<Item = (usize, Sae)>>(iter: I) -> Self {
        let mut set = SaeSet::default();
        iter.into_iter().for_each(|(l, s)| set.insert(l, s));
        set
    }
}
