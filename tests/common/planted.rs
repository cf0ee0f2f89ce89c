//! The planted case: the tiny random ESM-2, a concept defined by a direction u of its hidden
//! state 1 (residues whose projection on u is in the top quarter), and an SAE at layer 1 whose
//! feature PLANTED reads u: f = α·(⟨h, u⟩ − threshold)₊ with decoder row u / α, so that it fires
//! exactly on the concept and ablating it pulls those residues back to the threshold. Its other
//! features are random.

use burn::prelude::*;
use plmscope::analysis::labels::{Annotated, Segment};
use plmscope::device::Precision;
use plmscope::device::read_f32;
use plmscope::esm::{Batch, EsmModel};
use plmscope::features;
use plmscope::sae::{Activation, InputNorm, Sae, SaeFormat};
use plmscope::weights;

use super::TINY_CONFIG;
use super::TINY_SAFETENSORS;

pub const LAYER: usize = 1;
pub const PLANTED: usize = 5;
pub const D_SAE: usize = 32;
pub const CONCEPT: &str = "Planted";

/// Deterministic numbers in [0, 1) (splitmix64).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    }

    pub fn normal(&mut self) -> f32 {
        let (a, b) = (self.next().max(1e-7), self.next());
        (-2.0 * a.ln()).sqrt() * (std::f32::consts::TAU * b).cos()
    }
}

pub struct Planted {
    pub model: EsmModel,
    pub proteins: Vec<Annotated>,
    /// The SAE at layer 1 with the planted feature, and a random one at layer 2.
    pub saes: plmscope::sae::SaeSet,
}

fn tensor<const D: usize>(data: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(data, shape), device)
}

fn random_sae(rng: &mut Rng, d: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let w_enc = (0..d * D_SAE).map(|_| rng.normal() / (d as f32).sqrt()).collect();
    let b_enc = (0..D_SAE).map(|_| -0.5 * rng.next()).collect();
    let w_dec = (0..D_SAE * d).map(|_| 0.1 * rng.normal() / (d as f32).sqrt()).collect();
    (w_enc, b_enc, w_dec)
}

fn sae(w_enc: Vec<f32>, b_enc: Vec<f32>, w_dec: Vec<f32>, d: usize, device: &Device) -> Sae {
    Sae {
        w_enc: tensor(w_enc, [d, D_SAE], device),
        b_enc: tensor(b_enc, [D_SAE], device),
        w_dec: tensor(w_dec, [D_SAE, d], device),
        b_dec: Tensor::zeros([d], device),
        apply_b_dec_to_input: false,
        activation: Activation::Relu,
        norm: InputNorm::None,
        rescale: None,
        format: SaeFormat::InterPlm,
        d_in: d,
        d_sae: D_SAE,
    }
}

pub async fn planted(proteins: usize, length: usize, device: &Device) -> Planted {
    let model = weights::esm::from_hub(TINY_CONFIG, TINY_SAFETENSORS, device, Precision::F32).unwrap().1;
    let d = model.d_model();
    let mut rng = Rng(0x91A7_7ED0);
    let aa = b"ACDEFGHIKLMNPQRSTVWY";
    let sequences: Vec<String> =
        (0..proteins).map(|_| (0..length).map(|_| aa[(rng.next() * 20.0) as usize % 20] as char).collect()).collect();
    let mut u: Vec<f32> = (0..d).map(|_| rng.normal()).collect();
    let norm = u.iter().map(|x| x * x).sum::<f32>().sqrt();
    u.iter_mut().for_each(|x| *x /= norm);

    // ⟨h, u⟩ at every residue.
    let u_t = tensor(u.clone(), [d, 1], device);
    let mut projections = Vec::new();
    for s in &sequences {
        let tokens = plmscope::alphabet::parse_fasta(s).unwrap()[0].tokens();
        let acts = model.forward(&Batch::new(&[tokens], device));
        projections.push(read_f32(features::residues(&acts, LAYER).matmul(u_t.clone())).await.unwrap());
    }
    let mut all: Vec<f32> = projections.concat();
    all.sort_by(f32::total_cmp);
    let threshold = all[all.len() * 3 / 4];
    let mean = all.iter().sum::<f32>() / all.len() as f32;
    let spread = (all.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / all.len() as f32).sqrt();
    let alpha = 1.0 / spread;

    let proteins = sequences
        .into_iter()
        .zip(&projections)
        .enumerate()
        .map(|(i, (sequence, p))| {
            let mut segments = Vec::new();
            let mut r = 0;
            while r < p.len() {
                if p[r] > threshold {
                    let start = r;
                    while r < p.len() && p[r] > threshold {
                        r += 1;
                    }
                    segments.push(Segment { concept: CONCEPT.into(), start: start + 1, end: r });
                } else {
                    r += 1;
                }
            }
            Annotated { accession: format!("P{i:03}"), sequence, segments }
        })
        .collect();

    let (mut w_enc, mut b_enc, mut w_dec) = random_sae(&mut rng, d);
    for (i, &ui) in u.iter().enumerate() {
        w_enc[i * D_SAE + PLANTED] = alpha * ui;
        w_dec[PLANTED * d + i] = ui / alpha;
    }
    b_enc[PLANTED] = -alpha * threshold;
    let first = sae(w_enc, b_enc, w_dec, d, device);
    let (w_enc, b_enc, w_dec) = random_sae(&mut rng, d);
    let second = sae(w_enc, b_enc, w_dec, d, device);
    Planted { model, proteins, saes: [(LAYER, first), (2, second)].into_iter().collect() }
}

/// The motif case: random proteins without tryptophan, `W` planted in every seventh from the
/// fourth, and an SAE at layer 1 whose feature PLANTED reads the direction that tells a W's
/// hidden state 1 from every other residue's, with its threshold between the two: it fires on
/// the planted W's and nowhere else. Its other features are random.
pub struct Motif {
    pub model: EsmModel,
    pub sae: Sae,
    /// One record per protein, `>P000` …
    pub fasta: String,
    /// The proteins with the motif, and how many W's each holds.
    pub with_motif: Vec<(usize, usize)>,
}

pub async fn motif(proteins: usize, device: &Device) -> Motif {
    let model = weights::esm::from_hub(TINY_CONFIG, TINY_SAFETENSORS, device, Precision::F32).unwrap().1;
    let d = model.d_model();
    let mut rng = Rng(0x3070_71F5);
    let aa = b"ACDEFGHIKLMNPQRSTVY";
    let mut with_motif = Vec::new();
    let sequences: Vec<Vec<u8>> = (0..proteins)
        .map(|i| {
            let length = 20 + (rng.next() * 40.0) as usize;
            let mut s: Vec<u8> = (0..length).map(|_| aa[(rng.next() * 19.0) as usize % 19]).collect();
            if i % 7 == 3 {
                let n = 1 + i % 3;
                for _ in 0..n {
                    let at = (rng.next() * length as f32) as usize % length;
                    s[at] = b'W';
                }
                with_motif.push((i, s.iter().filter(|&&c| c == b'W').count()));
            }
            s
        })
        .collect();
    // Hidden state 1 of every residue, W's apart.
    let (mut w_rows, mut other_rows) = (Vec::new(), Vec::new());
    for s in &sequences {
        let tokens = plmscope::alphabet::parse_fasta(std::str::from_utf8(s).unwrap()).unwrap()[0].tokens();
        let acts = model.forward(&Batch::new(&[tokens], device));
        let h = read_f32(features::residues(&acts, LAYER)).await.unwrap();
        for (r, row) in h.chunks_exact(d).enumerate() {
            if s[r] == b'W' { w_rows.push(row.to_vec()) } else { other_rows.push(row.to_vec()) }
        }
    }
    let mean = |rows: &[Vec<f32>]| (0..d).map(|i| rows.iter().map(|r| r[i]).sum::<f32>() / rows.len() as f32).collect::<Vec<_>>();
    let (mw, mo) = (mean(&w_rows), mean(&other_rows));
    let mut u: Vec<f32> = mw.iter().zip(&mo).map(|(a, b)| a - b).collect();
    let norm = u.iter().map(|x| x * x).sum::<f32>().sqrt();
    u.iter_mut().for_each(|x| *x /= norm);
    let project = |row: &Vec<f32>| row.iter().zip(&u).map(|(a, b)| a * b).sum::<f32>();
    let lowest_w = w_rows.iter().map(project).fold(f32::INFINITY, f32::min);
    let highest_other = other_rows.iter().map(project).fold(f32::NEG_INFINITY, f32::max);
    assert!(lowest_w > highest_other, "W's hidden states are not separable here: {lowest_w} ≤ {highest_other}");
    let threshold = (lowest_w + highest_other) / 2.0;
    let alpha = 2.0 / (lowest_w - threshold);

    let (mut w_enc, mut b_enc, mut w_dec) = random_sae(&mut rng, d);
    for (i, &ui) in u.iter().enumerate() {
        w_enc[i * D_SAE + PLANTED] = alpha * ui;
        w_dec[PLANTED * d + i] = ui / alpha;
    }
    b_enc[PLANTED] = -alpha * threshold;
    let fasta = sequences.iter().enumerate().map(|(i, s)| format!(">P{i:03}\n{}\n", std::str::from_utf8(s).unwrap())).collect();
    Motif { model, sae: sae(w_enc, b_enc, w_dec, d, device), fasta, with_motif }
}
