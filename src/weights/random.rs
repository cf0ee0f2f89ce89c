//! The deterministic random ESM-2 checkpoint: the same bits as `tests/reference/generate_esm.py`.
//!
//! Used where no real weights can be had (tests, the offline demo page). Each value is
//! `offset + scale · u`, with `u ∈ [-1, 1)` on a 2⁻²³ grid from splitmix64 of
//! `(seed ^ fnv1a64(name)) + (i + 1) · golden`: counter-based, so any tensor can be drawn alone,
//! and exactly reproducible in numpy. LayerNorm weights sit around 1, biases around 0 and matrices
//! at ±2/√fan_in, so every parameter moves the outputs.

use super::RawTensor;

/// The seed of the reference fixtures' full-size checkpoint.
pub const SEED: u64 = 0x5EED_E5A2;

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

fn fnv1a64(text: &str) -> u64 {
    text.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01B3))
}

/// The splitmix64 finaliser (the caller adds the golden-ratio step).
pub(crate) fn splitmix64(z: u64) -> u64 {
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `(offset, scale)` of a hub tensor. Must match `init_rule` in generate_esm.py.
fn init_rule(name: &str, shape: &[usize]) -> (f32, f32) {
    if name.ends_with("LayerNorm.weight") || name.ends_with("layer_norm.weight") || name.ends_with("emb_layer_norm_after.weight") {
        (1.0, 0.2)
    } else if name.ends_with("word_embeddings.weight") {
        (0.0, 1.0)
    } else if name.ends_with(".bias") || shape.len() != 2 {
        (0.0, 0.1)
    } else {
        (0.0, (2.0 / (shape[1] as f64).sqrt()) as f32)
    }
}

/// The tensor `name` of the random checkpoint with `seed`.
pub fn tensor(name: &str, shape: &[usize], seed: u64) -> RawTensor {
    let key = seed ^ fnv1a64(name);
    let (offset, scale) = init_rule(name, shape);
    let n: usize = shape.iter().product();
    let data = (1..=n as u64)
        .map(|i| {
            let z = splitmix64(key.wrapping_add(i.wrapping_mul(GOLDEN)));
            let u = (z >> 40) as f32 * (1.0 / 16_777_216.0) * 2.0 - 1.0;
            offset + u * scale
        })
        .collect();
    RawTensor::f32(shape.to_vec(), data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_python_generator_bit_for_bit() {
        // Values printed by generate_esm.py's `random_tensor` for these names and seed 0x5EED_E5A2.
        assert_eq!(tensor("lm_head.bias", &[33], SEED).data[..3], [0.0884581208229065, 0.05888824537396431, 0.07343579828739166]);
        let q = tensor("esm.encoder.layer.0.attention.self.query.weight", &[320, 320], SEED).data;
        assert_eq!([q[0], q[1], q[102399]], [-0.10382377356290817, 0.09304481744766235, 0.07234148681163788]);
        let ln = tensor("esm.encoder.emb_layer_norm_after.weight", &[320], SEED).data;
        assert_eq!(ln[..2], [1.0058897733688354, 1.1827161312103271]);
    }
}
