//! SAE training on activations with a known sparse structure (tests/common/synthetic.rs). A
//! trained SAE should find the planted directions among its decoder rows, reconstruct the tokens,
//! and come back the same from its SAELens files.

#[macro_use]
mod common;

use burn::prelude::*;
use common::synthetic::{recovered, synthetic, Synthetic, ACTIVE, D_IN, N_TRUE, TOKENS};
use plmscope::device::Precision;
use plmscope::device::read_f32;
use plmscope::esm::Batch;
use plmscope::train::{harvest::harvest, Recipe, TrainError, TrainOptions, Trainer};
use plmscope::weights::sae::{self, SaeLensOrigin, SaeSource};

fn options(recipe: Recipe) -> TrainOptions {
    TrainOptions {
        recipe,
        d_sae: 2 * N_TRUE,
        steps: 800,
        batch: 256,
        lr: 1e-2,
        warmup_steps: 20,
        dead_after: 4096,
        aux_k: 16,
        ..TrainOptions::default()
    }
}

/// Trains on `s`; returns the SAE, its decoder rows, how many planted directions they find, and
/// the last step's metrics.
fn train(s: &Synthetic, options: TrainOptions) -> (plmscope::sae::Sae, Vec<f32>, usize, plmscope::train::StepMetrics) {
    let device = Device::flex();
    let data = Tensor::<1>::from_floats(s.data.as_slice(), &device).reshape([TOKENS, D_IN]);
    let mut trainer = pollster::block_on(Trainer::new(data, options)).unwrap();
    let mut last = None;
    while trainer.steps_done() < options.steps {
        last = Some(pollster::block_on(trainer.step()).unwrap());
    }
    let sae = trainer.sae();
    let w_dec = pollster::block_on(read_f32(sae.w_dec.clone())).unwrap();
    let found = recovered(&s.directions, &w_dec, sae.d_sae);
    (sae, w_dec, found, last.unwrap())
}

#[test]
fn top_k_recovers_the_planted_directions_and_round_trips_through_saelens_files() {
    let s = synthetic(0x7A11);
    let (sae, w_dec, found, last) = train(&s, options(Recipe::TopK { k: ACTIVE + 1 }));
    say!("top-k: {found} of {N_TRUE} directions at cos > 0.9; last step {last:?}");
    assert!(found * 10 >= N_TRUE * 9, "only {found} of {N_TRUE} directions recovered");
    assert!(last.fraction_variance_explained > 0.95, "{last:?}");
    assert!(last.l0 <= (ACTIVE + 1) as f32 + 1e-6);

    // Decoder rows stay unit vectors.
    for j in 0..sae.d_sae {
        let n = w_dec[j * D_IN..(j + 1) * D_IN].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((n - 1.0).abs() < 1e-4, "row {j} has norm {n}");
    }

    // Written as SAELens files and read back, it gives the same features.
    let origin = SaeLensOrigin { model_name: "synthetic".into(), hook_layer: 1, plmscope: serde_json::json!({"steps": 800}) };
    let (cfg, bytes) = pollster::block_on(sae::to_saelens(&sae, &origin)).unwrap();
    let cfg_value: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(cfg_value["architecture"], "topk");
    assert_eq!(cfg_value["k"], ACTIVE + 1);
    let device = Device::flex();
    let back = sae::load(SaeSource::SaeLens { cfg_json: &cfg, weights: &bytes }, D_IN, &device).unwrap();
    let x = Tensor::<1>::from_floats(&s.data[..64 * D_IN], &device).reshape([64, D_IN]);
    let a = pollster::block_on(read_f32(sae.encode(x.clone()).features)).unwrap();
    let b = pollster::block_on(read_f32(back.encode(x).features)).unwrap();
    assert_eq!(a, b);
}

#[test]
fn relu_l1_recovers_most_directions_with_layer_norm() {
    let s = synthetic(0xB0B);
    let mut o = options(Recipe::ReluL1 { l1: 0.4 });
    o.layer_norm = true;
    let (sae, _, found, last) = train(&s, o);
    say!("ReLU + L1: {found} of {N_TRUE} directions at cos > 0.9; last step {last:?}");
    assert!(found * 10 >= N_TRUE * 8, "only {found} of {N_TRUE} directions recovered");
    assert!(last.fraction_variance_explained > 0.9, "{last:?}");
    let (cfg, _) = pollster::block_on(sae::to_saelens(&sae, &SaeLensOrigin { model_name: "synthetic".into(), hook_layer: 1, plmscope: serde_json::Value::Null })).unwrap();
    assert!(cfg.contains("\"normalize_activations\": \"layer_norm\"") && cfg.contains("\"architecture\": \"standard\""), "{cfg}");
}

#[test]
fn the_learning_rate_warms_up_holds_and_decays_to_zero() {
    let s = synthetic(1);
    let device = Device::flex();
    let data = Tensor::<1>::from_floats(s.data.as_slice(), &device).reshape([TOKENS, D_IN]);
    let o = TrainOptions { steps: 100, warmup_steps: 10, decay_from: 0.8, lr: 1.0, batch: 64, d_sae: 8, recipe: Recipe::TopK { k: 2 }, ..TrainOptions::default() };
    let trainer = pollster::block_on(Trainer::new(data, o)).unwrap();
    let lr: Vec<f32> = (0..100).map(|i| trainer.lr_at(i)).collect();
    assert_eq!((lr[0], lr[4], lr[9], lr[50], lr[79]), (0.1, 0.5, 1.0, 1.0, 1.0));
    assert!((lr[90] - 0.5).abs() < 1e-6 && lr[99] > 0.0 && lr[99] < 0.06, "{:?}", &lr[80..]);
}

#[test]
fn bad_options_and_too_little_data_are_refused_with_the_reason() {
    let device = Device::flex();
    let data = || Tensor::<2>::zeros([100, D_IN], &device);
    let err = |o: TrainOptions| match pollster::block_on(Trainer::new(data(), o)) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("accepted {o:?}"),
    };
    let base = TrainOptions { batch: 50, d_sae: 16, ..TrainOptions::default() };
    assert_eq!(err(TrainOptions { recipe: Recipe::TopK { k: 17 }, ..base }), "training options: k = 17 is outside 1..=16 (d_sae)");
    assert_eq!(err(TrainOptions { recipe: Recipe::ReluL1 { l1: -1.0 }, ..base }), "training options: the L1 coefficient -1 must be ≥ 0");
    assert_eq!(
        err(TrainOptions { batch: 128, recipe: Recipe::TopK { k: 4 }, ..base }),
        "training data: 100 tokens of width 32 were harvested, fewer than one batch of 128: give more sequences or a smaller batch"
    );
    assert!(matches!(pollster::block_on(Trainer::new(data(), TrainOptions { steps: 0, recipe: Recipe::TopK { k: 4 }, ..base })), Err(TrainError::Options(_))));
}

#[test]
fn harvest_takes_the_residue_rows_of_the_layer() {
    let device = Device::flex();
    let model = plmscope::weights::esm::from_hub(common::TINY_CONFIG, common::TINY_SAFETENSORS, &device, Precision::F32).unwrap().1;
    let records = plmscope::alphabet::parse_fasta(">a\nMKTAYIAKQR\n>b\nGSHMLE\n").unwrap();
    let rows = harvest(&model, &records, 2, usize::MAX, |_, _| {}).unwrap();
    assert_eq!(rows.dims(), [16, model.d_model()]);
    let got = pollster::block_on(read_f32(rows)).unwrap();
    let mut want = Vec::new();
    for r in &records {
        let acts = model.forward(&Batch::new(&[r.tokens()], &device));
        want.extend(pollster::block_on(read_f32(plmscope::features::residues(&acts, 2))).unwrap());
    }
    let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(diff < 1e-5, "max |Δ| {diff}");
    // A cap on the tokens cuts inside a sequence.
    assert_eq!(harvest(&model, &records, 2, 12, |_, _| {}).unwrap().dims(), [12, model.d_model()]);
    assert!(harvest(&model, &records, 9, 12, |_, _| {}).unwrap_err().to_string().contains("layer 9 is out of range"));
}

#[test]
fn the_aux_loss_revives_dead_features_when_every_feature_is_needed() {
    // As many features as true directions: each dead one is a direction missed.
    let s = synthetic(0x7A11);
    let run = |aux_coefficient| {
        let o = TrainOptions { d_sae: N_TRUE, aux_coefficient, ..options(Recipe::TopK { k: ACTIVE + 1 }) };
        let (_, _, found, last) = train(&s, o);
        (found, last)
    };
    let (found_without, without) = run(0.0);
    let (found_with, with) = run(0.25);
    say!("without AuxK: {found_without} found, {without:?}\nwith AuxK 0.25: {found_with} found, {with:?}");
    assert!(with.dead_fraction < without.dead_fraction, "dead {} with AuxK, {} without", with.dead_fraction, without.dead_fraction);
    assert!(found_with > found_without, "{found_with} directions with AuxK, {found_without} without");
    assert!(with.fraction_variance_explained > without.fraction_variance_explained);
}
