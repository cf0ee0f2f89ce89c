//! A check that real esm2_t6_8M_UR50D weights give the published numbers: InterPLM's own test
//! (sequence MKTA, cls/eos stripped, hidden-state dims 0–2 of the first and last residue at
//! layers 1 and 3, rtol 1e-3 / atol 1e-4).

use burn::prelude::*;
use serde::Serialize;

use crate::device::{read_f32, DeviceError};
use crate::esm::{Batch, EsmModel};

/// (layer, residue, expected dims 0–2) with residue 0 = the first residue, 3 = the last of MKTA.
const EXPECTED: [(usize, usize, [f32; 3]); 4] = [
    (1, 0, [-0.33677, 0.35785, -0.06361]),
    (1, 3, [0.32096, 0.01496, 0.48929]),
    (3, 0, [0.67743, -0.05017, -1.11199]),
    (3, 3, [0.23142, -0.34036, -0.76865]),
];

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SelfCheck {
    pub pass: bool,
    /// One line per checked value that is off, empty when `pass`.
    pub failures: Vec<String>,
}

/// Runs MKTA through `model` and compares with the real weights' values.
pub async fn run(model: &EsmModel, device: &Device) -> Result<SelfCheck, DeviceError> {
    let tokens = crate::alphabet::parse_fasta("MKTA").expect("valid sequence")[0].tokens();
    let acts = model.forward(&Batch::new(&[tokens], device));
    let d = model.d_model();
    let mut failures = Vec::new();
    for (layer, residue, want) in EXPECTED {
        let h = read_f32(acts.hidden(layer).clone()).await?; // [1, 6, d]
        let row = &h[(residue + 1) * d..(residue + 1) * d + 3];
        for (dim, (&got, &w)) in row.iter().zip(&want).enumerate() {
            if (got - w).abs() > 1e-4 + 1e-3 * w.abs() {
                failures.push(format!("layer {layer}, residue {}, dim {dim}: {got:.5} where {w:.5} was expected", residue + 1));
            }
        }
    }
    Ok(SelfCheck { pass: failures.is_empty() && d == 320, failures })
}
