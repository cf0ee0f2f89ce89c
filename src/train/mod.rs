//! Training sparse autoencoders on residual-stream activations, with burn's autodiff, on
//! whichever device holds the data (the CPU natively, WebGPU or the CPU build in the browser).
//!
//! Two recipes, both in SAELens' form `f = σ(W_encᵀ(x − b_dec) + b_enc)`, `x̂ = W_decᵀf + b_dec`:
//! - top-k (Gao et al. 2024; the circuits explorer's 2048 / 32): σ keeps each token's k largest
//!   pre-activations; features that have not fired for `dead_after` tokens are dead, and the
//!   AuxK loss asks the `aux_k` largest dead pre-activations to reconstruct what the live ones
//!   missed, so that dead features get a gradient again;
//! - ReLU + L1 (Anthropic 2023, InterPLM): σ = ReLU, loss = MSE + λ·Σ f (the decoder rows have
//!   unit norm, so this is the usual Σ fᵢ‖W_dec,ᵢ‖).
//!
//! Common to both: W_dec rows random unit vectors and W_enc = W_decᵀ at the start, b_dec = the
//! data mean; Adam; learning rate warmed up linearly, constant, then decayed linearly to 0 over
//! the last `1 − decay_from` of the steps; before each update the part of W_dec's gradient along
//! its own rows is removed, and after it the rows are normalised back to 1.
//!
//! Training is stepped ([`Trainer::step`]): the CLI loops, the page's worker yields between steps
//! (so it can pause, resume and draw curves).

pub mod harvest;

use burn::prelude::*;
use serde::Serialize;

use crate::device::{read_f32, DeviceError};
use crate::sae::{Activation, InputNorm, Sae, SaeFormat};
use crate::weights::random::splitmix64;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("training options: {0}")]
    Options(String),
    #[error("training data: {0}")]
    Data(String),
    #[error(transparent)]
    Analysis(#[from] crate::analysis::AnalysisError),
    #[error(transparent)]
    Device(#[from] DeviceError),
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Recipe {
    TopK { k: usize },
    ReluL1 { l1: f32 },
}

#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TrainOptions {
    pub recipe: Recipe,
    pub d_sae: usize,
    /// `true`: each token layer-normed first (SAELens `normalize_activations: layer_norm`).
    pub layer_norm: bool,
    pub steps: usize,
    /// Tokens per step.
    pub batch: usize,
    pub lr: f32,
    pub warmup_steps: usize,
    /// Share of the steps after which the learning rate decays linearly to 0.
    pub decay_from: f32,
    /// Tokens a feature may go without firing before it counts as dead.
    pub dead_after: usize,
    pub aux_k: usize,
    pub aux_coefficient: f32,
    pub seed: u64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            recipe: Recipe::TopK { k: 32 },
            d_sae: 2048,
            layer_norm: false,
            steps: 2000,
            batch: 1024,
            lr: 1e-3,
            warmup_steps: 50,
            decay_from: 0.8,
            dead_after: 200_000,
            aux_k: 256,
            aux_coefficient: 1.0 / 32.0,
            seed: 0,
        }
    }
}

impl TrainOptions {
    fn check(&self, d_in: usize, tokens: usize) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Options(m));
        if self.d_sae == 0 {
            return bad("d_sae must be at least 1".into());
        }
        match self.recipe {
            Recipe::TopK { k } if k == 0 || k > self.d_sae => return bad(format!("k = {k} is outside 1..={} (d_sae)", self.d_sae)),
            Recipe::ReluL1 { l1 } if !(l1 >= 0.0 && l1.is_finite()) => return bad(format!("the L1 coefficient {l1} must be ≥ 0")),
            _ => {}
        }
        if self.steps == 0 || self.batch == 0 {
            return bad(format!("steps ({}) and batch ({}) must be at least 1", self.steps, self.batch));
        }
        if !(self.lr > 0.0 && self.lr.is_finite() && (0.0..=1.0).contains(&self.decay_from)) {
            return bad(format!("lr ({}) must be > 0 and decay_from ({}) within 0..=1", self.lr, self.decay_from));
        }
        if d_in == 0 || tokens < self.batch {
            return Err(TrainError::Data(format!(
                "{tokens} tokens of width {d_in} were harvested, fewer than one batch of {}: give more sequences or a smaller batch",
                self.batch
            )));
        }
        Ok(())
    }
}

/// What one step measured, on its batch.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StepMetrics {
    pub step: usize,
    pub tokens: usize,
    /// The loss minimised: `mse` plus the AuxK or L1 term.
    pub loss: f32,
    /// Mean over tokens of ‖x − x̂‖² (in the normalised space when `layer_norm`).
    pub mse: f32,
    pub fraction_variance_explained: f32,
    /// Mean number of features firing per token.
    pub l0: f32,
    pub dead_fraction: f32,
    pub lr: f32,
}

/// Adam's moments of one parameter.
struct Moments {
    m: Tensor<2>,
    v: Tensor<2>,
}

const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPS: f32 = 1e-8;

/// A training run: the data, the parameters and the optimizer state.
pub struct Trainer {
    options: TrainOptions,
    /// Normalised activations `[tokens, d_in]`, on the device.
    data: Tensor<2>,
    /// `[w_enc [d_in, d_sae], b_enc [1, d_sae], w_dec [d_sae, d_in], b_dec [1, d_in]]`.
    params: [Tensor<2>; 4],
    moments: Vec<Moments>,
    /// Tokens since each feature last fired `[1, d_sae]`.
    since_fired: Tensor<2>,
    dead: usize,
    order: Vec<i64>,
    cursor: usize,
    rng: u64,
    step: usize,
    d_in: usize,
}

fn gaussian(rng: &mut u64) -> f32 {
    let mut uniform = || {
        *rng = rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        ((splitmix64(*rng) >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    };
    let (u, v) = (uniform(), uniform());
    (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
}

impl Trainer {
    /// Starts a run on `activations` `[tokens, d_in]` (raw hidden states; normalised here when
    /// the options ask for it).
    pub async fn new(activations: Tensor<2>, options: TrainOptions) -> Result<Self, TrainError> {
        let [tokens, d_in] = activations.dims();
        options.check(d_in, tokens)?;
        let device = activations.device();
        let norm = if options.layer_norm { InputNorm::LayerNorm } else { InputNorm::None };
        let (data, _) = norm.normalise(activations);
        let d_sae = options.d_sae;
        let mut rng = options.seed ^ 0x5AE_7EA1;
        let rows: Vec<f32> = (0..d_sae * d_in).map(|_| gaussian(&mut rng)).collect();
        let w_dec = unit_rows(Tensor::<1>::from_floats(rows.as_slice(), &device).reshape([d_sae, d_in]));
        let b_dec = data.clone().mean_dim(0); // [1, d_in]
        let params = [w_dec.clone().transpose(), Tensor::zeros([1, d_sae], &device), w_dec, b_dec];
        let moments = params.iter().map(|p| Moments { m: p.zeros_like(), v: p.zeros_like() }).collect();
        // Fail on a lost device here rather than at the first step.
        read_f32(params[3].clone()).await?;
        Ok(Self {
            options,
            data,
            params,
            moments,
            since_fired: Tensor::zeros([1, d_sae], &device),
            dead: 0,
            order: Vec::new(),
            cursor: tokens,
            rng,
            step: 0,
            d_in,
        })
    }

    pub fn steps_done(&self) -> usize {
        self.step
    }

    pub fn options(&self) -> &TrainOptions {
        &self.options
    }

    /// The learning rate of step `step` (0-based).
    pub fn lr_at(&self, step: usize) -> f32 {
        let o = &self.options;
        let warm = if o.warmup_steps > 0 { ((step + 1) as f32 / o.warmup_steps as f32).min(1.0) } else { 1.0 };
        let decay_start = (o.decay_from * o.steps as f32) as usize;
        let decay = if step >= decay_start && o.steps > decay_start {
            1.0 - (step - decay_start) as f32 / (o.steps - decay_start) as f32
        } else {
            1.0
        };
        o.lr * warm * decay
    }

    /// The next batch's row indices: the tokens in a fresh random order each epoch.
    fn next_rows(&mut self) -> Vec<i64> {
        let tokens = self.data.dims()[0];
        if self.cursor + self.options.batch > tokens {
            self.order = (0..tokens as i64).collect();
            for i in (1..tokens).rev() {
                self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let j = (splitmix64(self.rng) % (i as u64 + 1)) as usize;
                self.order.swap(i, j);
            }
            self.cursor = 0;
        }
        let rows = self.order[self.cursor..self.cursor + self.options.batch].to_vec();
        self.cursor += self.options.batch;
        rows
    }

    /// One optimizer step on the next batch.
    pub async fn step(&mut self) -> Result<StepMetrics, TrainError> {
        let o = self.options;
        let device = self.data.device();
        let rows = self.next_rows();
        let x = self.data.clone().select(0, Tensor::<1, Int>::from_ints(rows.as_slice(), &device)); // [b, d_in]
        let [w_enc, b_enc, w_dec, b_dec] = self.params.clone().map(|p| p.autodiff().require_grad());

        let pre = (x.clone() - b_dec.clone()).matmul(w_enc.clone()) + b_enc.clone(); // [b, d_sae]
        let f = match o.recipe {
            Recipe::TopK { k } => Activation::TopK(k).apply(pre.clone()),
            Recipe::ReluL1 { .. } => Activation::Relu.apply(pre.clone()),
        };
        let x_hat = f.clone().matmul(w_dec.clone()) + b_dec.clone(); // [b, d_in]
        let err = x.clone() - x_hat;
        let mse = err.clone().powf_scalar(2.0).sum_dim(1).mean(); // [1]
        let extra = match o.recipe {
            Recipe::TopK { .. } if self.dead > 0 && o.aux_coefficient > 0.0 => {
                // The dead features' largest pre-activations reconstruct the residual error.
                let [b, d_sae] = pre.dims();
                let alive = self.since_fired.clone().lower_equal_elem(o.dead_after as f32).expand([b, d_sae]);
                let dead_pre = pre.mask_fill(alive, f32::NEG_INFINITY);
                let f_aux = Activation::TopK(o.aux_k.min(self.dead)).apply(dead_pre);
                let e_hat = f_aux.matmul(w_dec.clone()); // [b, d_in]
                let target = err.clone().detach();
                Some((target - e_hat).powf_scalar(2.0).sum_dim(1).mean() * o.aux_coefficient)
            }
            Recipe::ReluL1 { l1 } => Some(f.clone().sum_dim(1).mean() * l1),
            Recipe::TopK { .. } => None,
        };
        let loss = match extra {
            Some(e) => mse.clone() + e,
            None => mse.clone(),
        };
        let grads = loss.backward();
        let tracked = [&w_enc, &b_enc, &w_dec, &b_dec];
        let mut g: Vec<Tensor<2>> = tracked.iter().zip(&self.params).map(|(p, plain)| p.grad(&grads).unwrap_or_else(|| plain.zeros_like())).collect();

        // Only the part of W_dec's gradient that turns its rows, not the part that stretches them.
        let w = self.params[2].clone();
        g[2] = g[2].clone() - w.clone() * (g[2].clone() * w).sum_dim(1);

        let lr = self.lr_at(self.step);
        let t = (self.step + 1) as i32;
        let (c1, c2) = (1.0 - BETA1.powi(t), 1.0 - BETA2.powi(t));
        for ((p, m), g) in self.params.iter_mut().zip(self.moments.iter_mut()).zip(g) {
            m.m = m.m.clone() * BETA1 + g.clone() * (1.0 - BETA1);
            m.v = m.v.clone() * BETA2 + g.powf_scalar(2.0) * (1.0 - BETA2);
            let update = (m.m.clone() / c1) / ((m.v.clone() / c2).sqrt() + EPS);
            *p = p.clone() - update * lr;
        }
        self.params[2] = unit_rows(self.params[2].clone());

        // Bookkeeping, off the autodiff graph.
        let f = f.inner();
        let [b, _] = f.dims();
        let fired = f.clone().greater_elem(0.0).float(); // [b, d_sae]
        let fired_any = fired.clone().sum_dim(0).greater_elem(0.0).float(); // [1, d_sae]
        self.since_fired = (self.since_fired.clone() + b as f32) * (fired_any.neg() + 1.0);
        let dead = self.since_fired.clone().greater_elem(o.dead_after as f32).float().sum(); // [1]
        let err = err.inner();
        let centred = x.clone() - x.mean_dim(0);
        let numbers = Tensor::cat(
            vec![
                loss.inner(),
                mse.inner(),
                err.powf_scalar(2.0).sum(),
                centred.powf_scalar(2.0).sum(),
                fired.sum() / b as f32,
                dead,
            ],
            0,
        );
        let n = read_f32(numbers).await?;
        self.dead = n[5] as usize;
        self.step += 1;
        Ok(StepMetrics {
            step: self.step,
            tokens: self.step * b,
            loss: n[0],
            mse: n[1],
            fraction_variance_explained: 1.0 - n[2] / n[3].max(f32::MIN_POSITIVE),
            l0: n[4],
            dead_fraction: n[5] / o.d_sae as f32,
            lr,
        })
    }

    /// The SAE as trained so far, in the canonical form every view uses.
    pub fn sae(&self) -> Sae {
        let [w_enc, b_enc, w_dec, b_dec] = self.params.clone();
        let d_sae = self.options.d_sae;
        Sae {
            w_enc,
            b_enc: b_enc.reshape([d_sae]),
            w_dec,
            b_dec: b_dec.reshape([self.d_in]),
            apply_b_dec_to_input: true,
            activation: match self.options.recipe {
                Recipe::TopK { k } => Activation::TopK(k),
                Recipe::ReluL1 { .. } => Activation::Relu,
            },
            norm: if self.options.layer_norm { InputNorm::LayerNorm } else { InputNorm::None },
            rescale: None,
            format: SaeFormat::SaeLens,
            d_in: self.d_in,
            d_sae,
        }
    }
}

/// Each row scaled to unit norm. `[n, d]` → `[n, d]`.
fn unit_rows(w: Tensor<2>) -> Tensor<2> {
    let norms = w.clone().powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-12); // [n, 1]
    w / norms
}
