use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::kernels::{self, Then};

/// The nonlinearity of an SAE architecture.
#[derive(Debug, Clone)]
pub enum Activation {
    /// ReLU (InterPLM, SAELens `standard`).
    Relu,
    /// The `k` largest pre-activations of each token, ReLU'd; the rest 0 (SAELens `topk`,
    /// InterProt, the circuits explorer).
    TopK(usize),
    /// `pre · [pre > threshold]` (SAELens `jumprelu`); threshold `[d_sae]`.
    JumpRelu(Tensor<1>),
}

impl Activation {
    /// The features of `x·w + b` (the encoder), with ReLU applied on the matmul's output tiles
    /// while they are in cache ([`kernels::affine`]); the others after it.
    ///
    /// # Shapes
    /// - x: `[n, d_in]`; w: `[d_in, d_sae]`; b: `[d_sae]` → `[n, d_sae]`
    pub fn after_affine(&self, x: Tensor<2>, w: Tensor<2>, b: Tensor<1>) -> Tensor<2> {
        match self {
            Activation::Relu => kernels::affine(x, w, Some(b), Then::Relu),
            _ => self.apply(kernels::affine(x, w, Some(b), Then::Nothing)),
        }
    }

    /// `[n, d_sae]` pre-activations → features.
    pub fn apply(&self, pre: Tensor<2>) -> Tensor<2> {
        match self {
            Activation::Relu => relu(pre),
            Activation::TopK(k) => {
                let [n, d] = pre.dims();
                // Keep what reaches the k-th largest value of its row.
                let kth = pre.clone().topk(*k, 1).slice(s![.., *k - 1..*k]).expand([n, d]); // [n, d_sae]
                let below = pre.clone().lower(kth);
                relu(pre).mask_fill(below, 0.0)
            }
            Activation::JumpRelu(threshold) => {
                let [n, d] = pre.dims();
                let off = pre.clone().lower_equal(threshold.clone().unsqueeze::<2>().expand([n, d]));
                pre.mask_fill(off, 0.0)
            }
        }
    }
}
