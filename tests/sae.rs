//! Sparse autoencoders and interventions natively, against transformers + the reference SAEs.

mod common;

use burn::prelude::*;
use common::sae::*;
use plmscope::features::{self, UseError};
use plmscope::weights::sae::{self as sae_files, SaeSource};

fn device() -> Device {
    Device::flex()
}

/// The page's encoding by blocks of residues equals one encoding of them all, for every SAE
/// format (token norms, ReLU, JumpReLU, top-k) on a sequence of several blocks: the features,
/// the reconstruction's quality, and an intervention through the blocks' joined token norms.
#[test]
fn encoding_by_blocks_equals_one_encoding() {
    use plmscope::esm::Batch;
    use plmscope::intervene::{intervene, Edit, Op};
    let device = device();
    let residues = 2 * features::ENCODE_ROWS + 37;
    for case in cases() {
        let model = model(case.on, &device);
        let sae = load(&case, &model, &device);
        let batch = Batch::new(&plmscope::bench::tokens(1, residues), &device);
        let cache = model.forward(&batch);
        let x = features::residues(&cache, case.layer);
        let (blocks, reconstruction) = pollster::block_on(features::encode_sparse(&sae, x.clone())).unwrap();
        let whole = sae.encode(x.clone());
        let dense = whole.features.clone().into_data().try_to_vec::<f32>().unwrap();
        let diff = max_abs_diff(&blocks.features.to_dense(), &dense);
        assert!(diff <= 1e-5, "{}: features by blocks off by {diff:.2e}", case.key);

        let sum = |t: Tensor<2>| t.powf_scalar(2.0).sum().into_data().try_to_vec::<f32>().unwrap()[0];
        let err = sum(x.clone() - sae.decode(whole.features.clone(), &whole.norm));
        let var = sum(x.clone() - x.mean_dim(0));
        let want = features::Reconstruction::from_sums(&[err, var], residues);
        assert!((reconstruction.mse - want.mse).abs() <= 1e-4 * want.mse, "{}: mse {} vs {}", case.key, reconstruction.mse, want.mse);
        let fve = (reconstruction.fraction_of_variance_explained - want.fraction_of_variance_explained).abs();
        assert!(fve <= 1e-5, "{}: fraction of variance explained off by {fve:.1e}", case.key);

        let firing = dense.iter().position(|&v| v != 0.0).expect("a feature fires") % sae.d_sae;
        let edits = [Edit { feature: firing, op: Op::Scale(3.0), positions: None }];
        let logits = |e: Tensor<3>| e.into_data().try_to_vec::<f32>().unwrap();
        let want = logits(intervene(&model, &sae, case.layer, &cache, &batch, &whole, &edits).unwrap().logits);
        let got = logits(intervene(&model, &sae, case.layer, &cache, &batch, &blocks, &edits).unwrap().logits);
        let diff = max_abs_diff(&got, &want);
        assert!(diff <= 1e-4, "{}: intervention through the blocks' encoding off by {diff:.2e}", case.key);
    }
}

/// `encode_columns` (the circuits' and concepts' path, which reads only some columns of `W_enc`)
/// equals those columns of `encode`, for every SAE format and activation.
#[test]
fn encoding_some_columns_equals_those_of_the_whole_encoding() {
    use plmscope::esm::Batch;
    let device = device();
    for case in cases() {
        let model = model(case.on, &device);
        let sae = load(&case, &model, &device);
        let cache = model.forward(&Batch::new(&plmscope::bench::tokens(1, 40), &device));
        let x = features::residues(&cache, case.layer);
        let whole = sae.encode(x.clone()).features;
        // Three features that fire somewhere, and the last column, out of order.
        let dense = whole.clone().into_data().try_to_vec::<f32>().unwrap();
        let mut columns: Vec<usize> = (0..sae.d_sae).filter(|&c| dense.iter().skip(c).step_by(sae.d_sae).any(|&v| v != 0.0)).take(3).collect();
        assert_eq!(columns.len(), 3, "{}: fewer than 3 features fire", case.key);
        columns.insert(0, sae.d_sae - 1);
        let ids = Tensor::<1, Int>::from_data(TensorData::new(columns.iter().map(|&c| c as i64).collect::<Vec<_>>(), [columns.len()]), &device);
        let got = sae.encode_columns(x, ids.clone()).into_data().try_to_vec::<f32>().unwrap();
        let want = whole.select(1, ids).into_data().try_to_vec::<f32>().unwrap();
        let diff = max_abs_diff(&got, &want);
        assert!(diff <= 1e-5, "{}: columns {columns:?} off by {diff:.2e}", case.key);
    }
}

#[test]
fn every_format_matches_the_reference() {
    for case in cases() {
        assert_sae("native", &case, &pollster::block_on(compare(&case, &device())));
    }
}

fn tiny_saelens_with_cfg(cfg: &str) -> String {
    let case = cases().into_iter().find(|c| c.key == "saelens_standard_tiny_l1").unwrap();
    let SaeSource::SaeLens { weights, .. } = case.source else { unreachable!() };
    match sae_files::load(SaeSource::SaeLens { cfg_json: cfg, weights }, 64, &device()) {
        Ok(_) => panic!("loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn d_in_that_does_not_match_the_model_is_refused() {
    let t6 = model(On::T6, &device());
    let case = cases().into_iter().find(|c| c.key == "interplm_tiny_l1").unwrap();
    let SaeSource::Pt { bytes, name, .. } = case.source else { unreachable!() };
    let err = sae_files::load(SaeSource::Pt { bytes, name, k: None }, t6.d_model(), &device()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "interplm_tiny_l1.pt: the SAE reads vectors of d_in = 64, but this model's residual stream has d_model = 320: it was trained on another model"
    );
}

#[test]
fn layer_out_of_range_is_refused() {
    let tiny = model(On::Tiny, &device());
    let case = &cases()[0];
    let sae = load(case, &tiny, &device());
    for layer in [0, 3] {
        let err = features::check(&tiny, &sae, layer).unwrap_err();
        assert_eq!(err, UseError::Layer { layer, n_layers: 2 });
    }
    assert_eq!(
        features::check(&tiny, &sae, 3).unwrap_err().to_string(),
        "layer 3 is out of range: this model has hidden states 1..=2 for an SAE (0 is the embeddings)"
    );
}

#[test]
fn shape_that_disagrees_with_the_config_is_named() {
    let cfg = include_str!("reference/fixtures/sae/saelens_standard_tiny_l1/cfg.json").replace("\"d_sae\": 128", "\"d_sae\": 130");
    assert_eq!(tiny_saelens_with_cfg(&cfg), "tensor `W_enc` has shape [64, 128] where [64, 130] was expected");
    let cfg = include_str!("reference/fixtures/sae/saelens_standard_tiny_l1/cfg.json").replace("\"standard\"", "\"gated\"");
    assert_eq!(tiny_saelens_with_cfg(&cfg), "cfg.json: architecture \"gated\" is not supported (standard, topk, jumprelu are)");
}

#[test]
fn pickle_naming_anything_but_tensor_rebuilds_is_refused() {
    use std::io::Write;
    // A state dict whose pickle calls subprocess.check_output(['id']).
    let pickle = b"\x80\x02csubprocess\ncheck_output\nq\x00]q\x01X\x02\x00\x00\x00idq\x02a\x85q\x03Rq\x04.";
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut buf);
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("ae/data.pkl", opts).unwrap();
    zip.write_all(pickle).unwrap();
    zip.finish().unwrap();
    let bytes = buf.into_inner();
    let err = sae_files::load(SaeSource::Pt { bytes: &bytes, name: "ae_normalized.pt", k: None }, 320, &device()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ae_normalized.pt: refused to load `subprocess.check_output`: a weights file may only rebuild tensors (a pickle naming anything else could run code)"
    );
}

#[test]
fn top_k_without_k_is_refused() {
    let case = cases().into_iter().find(|c| c.key == "interprot_tiny_l1_k8").unwrap();
    let SaeSource::Safetensors { bytes, .. } = case.source else { unreachable!() };
    let err = sae_files::load(SaeSource::Safetensors { bytes, name: "sae.safetensors", k: None }, 64, &device()).unwrap_err();
    assert_eq!(err.to_string(), "sae.safetensors: a top-k SAE needs its k: name the file as InterProt does (…_k64…) or give k");
}
