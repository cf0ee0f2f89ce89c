//! Activations with a known sparse structure: every token is a sparse positive combination of
//! `ACTIVE` of `N_TRUE` random unit directions (weights 0.5–1.5), plus an offset. An SAE trained on
//! them should find the directions among its decoder rows.

use super::planted::Rng;

pub const D_IN: usize = 32;
pub const N_TRUE: usize = 48;
pub const ACTIVE: usize = 3;
pub const TOKENS: usize = 16_384;

pub struct Synthetic {
    /// `[N_TRUE][D_IN]`, unit rows.
    pub directions: Vec<Vec<f32>>,
    /// `[TOKENS, D_IN]`.
    pub data: Vec<f32>,
}

pub fn synthetic(seed: u64) -> Synthetic {
    let mut rng = Rng(seed);
    let directions: Vec<Vec<f32>> = (0..N_TRUE)
        .map(|_| {
            let v: Vec<f32> = (0..D_IN).map(|_| rng.normal()).collect();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / n).collect()
        })
        .collect();
    let offset: Vec<f32> = (0..D_IN).map(|_| 0.3 * rng.normal()).collect();
    let mut data = Vec::with_capacity(TOKENS * D_IN);
    for _ in 0..TOKENS {
        let mut x = offset.clone();
        for _ in 0..ACTIVE {
            let j = (rng.next() * N_TRUE as f32) as usize % N_TRUE;
            let a = 0.5 + rng.next();
            x.iter_mut().zip(&directions[j]).for_each(|(x, d)| *x += a * d);
        }
        data.extend(x);
    }
    Synthetic { directions, data }
}

/// How many true directions have a decoder row with cosine > 0.9.
pub fn recovered(directions: &[Vec<f32>], w_dec: &[f32], d_sae: usize) -> usize {
    directions
        .iter()
        .filter(|u| {
            (0..d_sae).any(|j| {
                let row = &w_dec[j * D_IN..(j + 1) * D_IN];
                let n = row.iter().map(|x| x * x).sum::<f32>().sqrt();
                row.iter().zip(u.iter()).map(|(a, b)| a * b).sum::<f32>() / n > 0.9
            })
        })
        .count()
}
