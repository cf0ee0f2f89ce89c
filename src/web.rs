//! The wasm boundary: one exported object, async methods, serde objects out.
//!
//! The page's Web Worker owns one [`Plmscope`]; nothing else in the crate knows about
//! JavaScript.

use burn::prelude::*;
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::alphabet::{self, Record};
use crate::bench;
use crate::analysis::circuit::{CircuitOptions, CircuitRun};
use crate::analysis::labels::{self, Annotated};
use crate::analysis::probe::{self, Probe, ProbeInput, TrainOptions};
use crate::analysis::concepts;
use crate::analysis::generate::{self, GenerateOptions, Steer};
use crate::embed::{self, read_f32, ResiduePrediction};
use crate::esm::{Activations, Batch, EsmConfig, EsmModel};
use crate::features::{self, Reconstruction, SparseEncoded, SparseFeatures};
use crate::intervene::{self, Edit};
use crate::sae::{Sae, SaeFormat};
use crate::train::{harvest::harvest, TrainOptions as SaeTrainOptions, Trainer};
use crate::weights::sae::{SaeLensOrigin, SaeSource};
use crate::weights::{self, Vars};

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

/// `initThreadPool(n)`: starts rayon's n Web Workers (the threads build only; call it once, before
/// `Plmscope.create`, from a cross-origin isolated page).
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

#[cfg(feature = "webgpu")]
thread_local! {
    static WEBGPU: std::cell::OnceCell<Device> = const { std::cell::OnceCell::new() };
}

/// The page's one WebGPU device: burn registers a runtime per adapter once per page, so every
/// engine (and every test) shares it.
#[cfg(feature = "webgpu")]
pub async fn webgpu_device() -> Result<Device, burn::tensor::wgpu::WgpuInitError> {
    if let Some(d) = WEBGPU.with(|cell| cell.get().cloned()) {
        return Ok(d);
    }
    let device = Device::wgpu_options().init_async().await?;
    Ok(WEBGPU.with(|cell| cell.get_or_init(|| device).clone()))
}

/// The model on its device.
#[wasm_bindgen]
pub struct Plmscope {
    device: Device,
    backend: String,
    model: Option<(EsmConfig, EsmModel)>,
    random_weights: bool,
    /// One SAE per layer at most.
    saes: Vec<(usize, Sae)>,
    /// The last sequence run, kept so that interventions re-run only the layers after theirs.
    cached: Option<Cached>,
    /// Annotated proteins for probes, circuits and concepts.
    labels: Vec<Annotated>,
    probe: Option<Probe>,
    circuit: Option<CircuitRun>,
    /// An SAE being trained, and the layer it reads.
    training: Option<(usize, Trainer)>,
    /// A benchmark case ready to run (src/bench.rs).
    bench: Option<bench::Prepared>,
}

struct Cached {
    record: Record,
    batch: Batch,
    acts: Activations,
    /// `[T, vocab]` logits of the plain pass, on the host.
    logits: Vec<f32>,
    /// The SAE encoding last shown, by layer: what interventions at that layer start from.
    encoded: Option<(usize, SparseEncoded)>,
}

/// Which backends this build of the wasm holds.
#[wasm_bindgen(js_name = compiledBackends)]
pub fn compiled_backends() -> Vec<String> {
    let mut b = Vec::new();
    if cfg!(feature = "webgpu") {
        b.push("webgpu".to_string());
    }
    if cfg!(feature = "cpu") {
        b.push("cpu".to_string());
    }
    b
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelInfo {
    backend: String,
    n_layers: usize,
    d_model: usize,
    n_heads: usize,
    random_weights: bool,
}

#[wasm_bindgen]
impl Plmscope {
    /// `backend` is `"webgpu"` or `"cpu"`. WebGPU initialisation fails with an error when the
    /// browser has no adapter; the worker then falls back to the CPU build.
    pub async fn create(backend: String) -> Result<Plmscope, JsError> {
        let device = match backend.as_str() {
            #[cfg(feature = "webgpu")]
            "webgpu" => webgpu_device().await.map_err(|e| js_err(format!("WebGPU: {e}")))?,
            #[cfg(feature = "cpu")]
            "cpu" => Device::flex(),
            other => return Err(js_err(format!("backend \"{other}\" is not in this build (it has {:?})", compiled_backends()))),
        };
        Ok(Plmscope { device, backend, model: None, random_weights: false, saes: Vec::new(), cached: None, labels: Vec::new(), probe: None, circuit: None, training: None, bench: None })
    }

    /// Loads a hub model: `config.json` text and `model.safetensors` bytes.
    #[wasm_bindgen(js_name = loadHub)]
    pub fn load_hub(&mut self, config_json: &str, model_safetensors: &[u8]) -> Result<JsValue, JsError> {
        self.model = Some(weights::esm::from_hub(config_json, model_safetensors, &self.device).map_err(js_err)?);
        self.random_weights = false;
        self.cached = None;
        self.info()
    }

    /// Loads a fair-esm `.pt` checkpoint.
    #[wasm_bindgen(js_name = loadFairEsm)]
    pub fn load_fair_esm(&mut self, pt: &[u8], file_name: &str) -> Result<JsValue, JsError> {
        self.model = Some(weights::esm::from_fair_esm(pt, file_name, &self.device).map_err(js_err)?);
        self.random_weights = false;
        self.cached = None;
        self.info()
    }

    /// Builds esm2_t6_8M with deterministic random weights (the offline demo): the page must say
    /// so.
    #[wasm_bindgen(js_name = loadRandom)]
    pub fn load_random(&mut self, seed: u64) -> Result<JsValue, JsError> {
        let config = EsmConfig::esm2_t6_8m();
        let model = EsmModel::load(&Vars::random(seed, &self.device), &config).map_err(js_err)?;
        self.model = Some((config, model));
        self.random_weights = true;
        self.cached = None;
        self.info()
    }

    /// InterPLM's published numbers for real esm2_t6_8M weights (sequence MKTA): pass or fail.
    #[wasm_bindgen(js_name = selfCheck)]
    pub async fn self_check(&self) -> Result<JsValue, JsError> {
        let (_, model) = self.model.as_ref().ok_or_else(|| js_err("no model is loaded"))?;
        serde_wasm_bindgen::to_value(&crate::selfcheck::run(model, &self.device).await?).map_err(js_err)
    }

    pub fn info(&self) -> Result<JsValue, JsError> {
        let (config, _) = self.model.as_ref().ok_or_else(|| js_err("no model is loaded"))?;
        let info = ModelInfo {
            backend: self.backend.clone(),
            n_layers: config.num_hidden_layers,
            d_model: config.hidden_size,
            n_heads: config.num_attention_heads,
            random_weights: self.random_weights,
        };
        serde_wasm_bindgen::to_value(&info).map_err(js_err)
    }

    /// Loads the SAE that reads hidden state `layer`, replacing any other at that layer.
    /// `kind` is `"pt"` (InterPLM or InterProt), `"safetensors"` (InterProt) or `"saelens"`
    /// (then `cfg_json` is its cfg.json). `k` is needed only by a top-k SAE whose file name
    /// does not give it.
    #[wasm_bindgen(js_name = loadSae)]
    pub fn load_sae(
        &mut self,
        layer: usize,
        kind: &str,
        bytes: &[u8],
        name: &str,
        cfg_json: Option<String>,
        k: Option<usize>,
    ) -> Result<JsValue, JsError> {
        let (_, model) = self.model.as_ref().ok_or_else(|| js_err("load a model before an SAE"))?;
        let source = match kind {
            "pt" => SaeSource::Pt { bytes, name, k },
            "safetensors" => SaeSource::Safetensors { bytes, name, k },
            "saelens" => SaeSource::SaeLens {
                cfg_json: cfg_json.as_deref().ok_or_else(|| js_err("a SAELens SAE needs its cfg.json"))?,
                weights: bytes,
            },
            other => return Err(js_err(format!("SAE kind \"{other}\" is not one of pt, safetensors, saelens"))),
        };
        let sae = weights::sae::load(source, model.d_model(), &self.device).map_err(js_err)?;
        self.install_sae(layer, sae)
    }

    /// A random InterPLM-shaped SAE at `layer` (the offline demo): the page must say so.
    #[wasm_bindgen(js_name = loadRandomSae)]
    pub fn load_random_sae(&mut self, layer: usize, d_sae: usize, seed: u64) -> Result<JsValue, JsError> {
        let (_, model) = self.model.as_ref().ok_or_else(|| js_err("load a model before an SAE"))?;
        let sae = weights::sae::random_interplm(model.d_model(), d_sae, seed ^ layer as u64, &self.device).map_err(js_err)?;
        self.install_sae(layer, sae)
    }

    fn install_sae(&mut self, layer: usize, sae: Sae) -> Result<JsValue, JsError> {
        let (_, model) = self.model.as_ref().ok_or_else(|| js_err("load a model before an SAE"))?;
        features::check(model, &sae, layer).map_err(js_err)?;
        let info = SaeInfo { layer, format: sae.format, d_sae: sae.d_sae, has_rescale: sae.rescale.is_some() };
        self.saes.retain(|(l, _)| *l != layer);
        self.saes.push((layer, sae));
        if let Some(c) = self.cached.as_mut() {
            c.encoded = None;
        }
        serde_wasm_bindgen::to_value(&info).map_err(js_err)
    }

    fn sae(&self, layer: usize) -> Result<&Sae, JsError> {
        self.saes.iter().find(|(l, _)| *l == layer).map(|(_, s)| s).ok_or_else(|| js_err(format!("no SAE is loaded for layer {layer}")))
    }

    /// Runs one sequence (the `record`-th of a FASTA text, 0-based) and keeps its activations
    /// for interventions; returns its SAE features at `layer`.
    pub async fn features(&mut self, fasta: String, record: usize, layer: usize, normalized: bool, top_n: usize) -> Result<JsValue, JsError> {
        let (_, model) = self.model.as_ref().ok_or_else(|| js_err("no model is loaded"))?;
        let records = alphabet::parse_fasta(&fasta).map_err(js_err)?;
        let chosen = records.get(record).ok_or_else(|| js_err(format!("record {} of {} does not exist", record + 1, records.len())))?.clone();
        let batch = Batch::new(&[chosen.tokens()], &self.device);
        let acts = model.forward(&batch);
        let logits = read_f32(acts.logits.clone()).await?;
        self.cached = Some(Cached { record: chosen, batch, acts, logits, encoded: None });
        self.cached_features(layer, normalized, top_n).await
    }

    /// Features at `layer` of the cached sequence (changing layer needs no forward pass).
    #[wasm_bindgen(js_name = cachedFeatures)]
    pub async fn cached_features(&mut self, layer: usize, normalized: bool, top_n: usize) -> Result<JsValue, JsError> {
        let sae = self.sae(layer)?.clone();
        let cached = self.cached.as_mut().ok_or_else(|| js_err("run a sequence first"))?;
        cached.encoded = None; // the last layer's, freed before this one is built
        let (encoded, reconstruction) = features::encode_sparse(&sae, features::residues(&cached.acts, layer)).await?;
        let raw = &encoded.features;
        let normalised = match (&sae.rescale, normalized) {
            (Some(factors), true) => Some(raw.divided_by(&read_f32(factors.clone()).await?)),
            _ => None,
        };
        let shown = normalised.as_ref().unwrap_or(raw);
        let summary = shown.summary();
        let out = FeaturesOut {
            header: cached.record.header.clone(),
            sequence: cached.record.sequence(),
            layer,
            d_sae: sae.d_sae,
            features: shown,
            top_by_max: top(&summary.max, top_n),
            top_by_mean: top(&summary.mean, top_n),
            reconstruction,
            predictions: embed::predictions(&cached.logits, &cached.record.tokens(), 3),
        };
        let out = serde_wasm_bindgen::to_value(&out).map_err(js_err);
        cached.encoded = Some((layer, encoded));
        out
    }

    /// Edits features at `layer` of the cached sequence and re-runs only the layers after it.
    /// `edits`: `[{feature, op: "ablate" | "clamp" | "scale", value?, positions?: [1-based]}]`.
    /// With `downstream_layer`, the features of that layer's SAE before and after.
    pub async fn intervene(&self, layer: usize, edits: JsValue, downstream_layer: Option<usize>, normalized: bool) -> Result<JsValue, JsError> {
        let (_, model) = self.model.as_ref().ok_or_else(|| js_err("no model is loaded"))?;
        let cached = self.cached.as_ref().ok_or_else(|| js_err("run a sequence first"))?;
        let edits: Vec<Edit> = serde_wasm_bindgen::from_value(edits).map_err(|e| js_err(format!("edits: {e}")))?;
        let sae = self.sae(layer)?;
        let after = match &cached.encoded {
            Some((l, e)) if *l == layer => intervene::intervene(model, sae, layer, &cached.acts, &cached.batch, e, &edits),
            _ => intervene::intervene(model, sae, layer, &cached.acts, &cached.batch, &features::encode(&cached.acts, sae, layer), &edits),
        }
        .map_err(js_err)?;
        let logits = read_f32(after.logits.clone()).await?;
        let tokens = cached.record.tokens();
        let downstream = match downstream_layer {
            Some(m) if m > layer => {
                let down = self.sae(m)?;
                let show = |f| if normalized { down.normalised_features(f) } else { f };
                let before = read_f32(show(features::encode(&cached.acts, down, m).features)).await?;
                let after = read_f32(show(features::encode(&after, down, m).features)).await?;
                Some(Downstream {
                    layer: m,
                    before: SparseFeatures::from_dense(&before, down.d_sae),
                    after: SparseFeatures::from_dense(&after, down.d_sae),
                })
            }
            Some(m) => return Err(js_err(format!("downstream layer {m} must come after the edited layer {layer}"))),
            None => None,
        };
        let out = InterventionOut {
            delta_logprob: intervene::delta_logprob(&cached.logits, &logits, &tokens),
            predictions: embed::predictions(&logits, &tokens, 3),
            logits,
            downstream,
        };
        serde_wasm_bindgen::to_value(&out).map_err(js_err)
    }
}

/// Probes, circuits and concepts over annotated proteins.
#[wasm_bindgen]
impl Plmscope {
    /// Reads annotated proteins (UniProt REST JSON or the explorer's features JSON), replacing
    /// those held; `max` keeps the first ones only.
    #[wasm_bindgen(js_name = loadLabels)]
    pub fn load_labels(&mut self, text: &str, max: Option<usize>) -> Result<JsValue, JsError> {
        let mut read = labels::read(text).map_err(js_err)?;
        read.proteins.truncate(max.unwrap_or(usize::MAX));
        let out = LabelsInfo { proteins: read.proteins.len(), concepts: labels::concepts(&read.proteins), skipped: read.skipped };
        self.labels = read.proteins;
        serde_wasm_bindgen::to_value(&out).map_err(js_err)
    }

    /// Trains a probe for `concept` at `layer` on the held proteins (`input`: "residual" or
    /// "features", the latter with that layer's SAE) and keeps it for circuits.
    #[wasm_bindgen(js_name = trainProbe)]
    pub async fn train_probe(&mut self, concept: String, layer: usize, input: String) -> Result<JsValue, JsError> {
        let (_, model) = self.model.as_ref().ok_or_else(|| js_err("no model is loaded"))?;
        let input = match input.as_str() {
            "residual" => ProbeInput::Residual,
            "features" => ProbeInput::Features,
            other => return Err(js_err(format!("probe input \"{other}\" is not residual or features"))),
        };
        let sae = match input {
            ProbeInput::Features => Some(self.sae(layer)?),
            ProbeInput::Residual => None,
        };
        let p = probe::train(model, sae, &self.labels, &concept, layer, input, TrainOptions::default()).await.map_err(js_err)?;
        let out = serde_wasm_bindgen::to_value(&p).map_err(js_err);
        self.probe = Some(p);
        out
    }

    /// Keeps a saved probe (its JSON text).
    #[wasm_bindgen(js_name = loadProbe)]
    pub fn load_probe(&mut self, json: &str) -> Result<JsValue, JsError> {
        let p = Probe::from_json(json).map_err(js_err)?;
        let out = serde_wasm_bindgen::to_value(&p).map_err(js_err);
        self.probe = Some(p);
        out
    }

    /// Starts a circuit over the held proteins: `options` is `{layers, topN, edgesPerFeature,
    /// batch, modelName}`; the kept probe (when `use_probe`) adds feature → behavior edges.
    /// Returns the progress; `circuitStep` advances it.
    #[wasm_bindgen(js_name = circuitStart)]
    pub fn circuit_start(&mut self, options: JsValue, use_probe: bool) -> Result<JsValue, JsError> {
        let (_, model) = self.model.as_ref().ok_or_else(|| js_err("no model is loaded"))?;
        let options: CircuitOptions = serde_wasm_bindgen::from_value(options).map_err(|e| js_err(format!("circuit options: {e}")))?;
        let probe = if use_probe { Some(self.probe.as_ref().ok_or_else(|| js_err("train or load a probe first"))?) } else { None };
        let run = CircuitRun::new(model, &self.saes, probe, &self.labels, options).map_err(js_err)?;
        let progress = run.progress();
        self.circuit = Some(run);
        serde_wasm_bindgen::to_value(&progress).map_err(js_err)
    }

    /// Runs the circuit's next step; returns `{done, total}`.
    #[wasm_bindgen(js_name = circuitStep)]
    pub async fn circuit_step(&mut self, use_probe: bool) -> Result<JsValue, JsError> {
        let (_, model) = self.model.as_ref().ok_or_else(|| js_err("no model is loaded"))?;
        let run = self.circuit.as_mut().ok_or_else(|| js_err("no circuit is running"))?;
        let probe = if use_probe { self.probe.as_ref() } else { None };
        let progress = run.step(model, &self.saes, probe).await.map_err(js_err)?;
        serde_wasm_bindgen::to_value(&progress).map_err(js_err)
    }

    /// The circuit in the seed explorer's graph schema.
    #[wasm_bindgen(js_name = circuitGraph)]
    pub fn circuit_graph(&self, use_probe: bool) -> Result<JsValue, JsError> {
        let run = self.circuit.as_ref().ok_or_else(|| js_err("no circuit has run"))?;
        let probe = if use_probe { self.probe.as_ref() } else { None };
        let graph = run.graph(&self.saes, probe);
        graph.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(js_err)
    }

    /// Each feature of the SAE at `layer` against `concepts` of the held proteins.
    pub async fn concepts(&self, layer: usize, concepts: Vec<String>, top: usize) -> Result<JsValue, JsError> {
        let (_, model) = self.model.as_ref().ok_or_else(|| js_err("no model is loaded"))?;
        let table = concepts::associate(model, self.sae(layer)?, layer, &self.labels, &concepts, top).await.map_err(js_err)?;
        serde_wasm_bindgen::to_value(&table).map_err(js_err)
    }
}

/// Steered generation and SAE training.
#[wasm_bindgen]
impl Plmscope {
    /// Generates one sequence. `options`: `{steers: [{layer, edits}], start?: FASTA text
    /// (`<mask>` allowed), length, rounds, maskFraction, temperature, topP, seed}`; edits as
    /// for `intervene`. Returns `{sequence, pseudoLogLikelihood, steeredActivation}`.
    pub async fn generate(&self, options: JsValue) -> Result<JsValue, JsError> {
        let (_, model) = self.model.as_ref().ok_or_else(|| js_err("no model is loaded"))?;
        let o: GenerateRequest = serde_wasm_bindgen::from_value(options).map_err(|e| js_err(format!("generation options: {e}")))?;
        let start = match o.start.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(text) => alphabet::parse_fasta(text).map_err(|e| js_err(format!("start sequence: {e}")))?.remove(0).residues,
            None => vec![alphabet::MASK; o.length],
        };
        let mut steers = o.steers.into_iter().map(|s| Steer { layer: s.layer, edits: s.edits }).collect::<Vec<_>>();
        steers.sort_by_key(|s| s.layer);
        let options = GenerateOptions { rounds: o.rounds, mask_fraction: o.mask_fraction, temperature: o.temperature, top_p: o.top_p, seed: o.seed };
        let g = generate::generate(model, &self.saes, &steers, &start, options).await.map_err(js_err)?;
        serde_wasm_bindgen::to_value(&g).map_err(js_err)
    }

    /// Harvests hidden state `layer` of every residue of `fasta` (at most `max_tokens`) and
    /// starts training an SAE on it; `options` as [`crate::train::TrainOptions`] in camelCase.
    /// `progress(done, total)` is called after each sequence harvested.
    #[wasm_bindgen(js_name = trainSaeStart)]
    pub async fn train_sae_start(&mut self, fasta: String, layer: usize, max_tokens: usize, options: JsValue, progress: js_sys::Function) -> Result<JsValue, JsError> {
        let (_, model) = self.model.as_ref().ok_or_else(|| js_err("no model is loaded"))?;
        let options: SaeTrainOptions = serde_wasm_bindgen::from_value(options).map_err(|e| js_err(format!("training options: {e}")))?;
        let records = alphabet::parse_fasta(&fasta).map_err(js_err)?;
        let report = |done: usize, total: usize| {
            // The page's progress bar only: a failing callback must not stop the harvest.
            let _ = progress.call2(&JsValue::NULL, &JsValue::from(done), &JsValue::from(total));
        };
        let data = harvest(model, &records, layer, max_tokens, report).map_err(js_err)?;
        let tokens = data.dims()[0];
        // Only now that the new data is good: the previous run's data and Adam state are freed
        // before the new run allocates its own, not both held on the device at once.
        self.training = None;
        self.training = Some((layer, Trainer::new(data, options).await.map_err(js_err)?));
        serde_wasm_bindgen::to_value(&TrainingInfo { layer, tokens, sequences: records.len(), steps: options.steps }).map_err(js_err)
    }

    /// Runs up to `n` more steps of the training; returns their metrics.
    #[wasm_bindgen(js_name = trainSaeSteps)]
    pub async fn train_sae_steps(&mut self, n: usize) -> Result<JsValue, JsError> {
        let (_, trainer) = self.training.as_mut().ok_or_else(|| js_err("no SAE is being trained"))?;
        let mut out = Vec::new();
        while out.len() < n && trainer.steps_done() < trainer.options().steps {
            out.push(trainer.step().await.map_err(js_err)?);
        }
        serde_wasm_bindgen::to_value(&out).map_err(js_err)
    }

    /// The SAE as trained so far, as a SAELens folder: `{cfg: text, weights: bytes, layer}`.
    /// `loadSae(layer, "saelens", weights, …, cfg)` installs it for every other view.
    #[wasm_bindgen(js_name = trainSaeFiles)]
    pub async fn train_sae_files(&self, model_name: String) -> Result<JsValue, JsError> {
        let (layer, trainer) = self.training.as_ref().ok_or_else(|| js_err("no SAE is being trained"))?;
        let origin = SaeLensOrigin {
            model_name,
            hook_layer: *layer,
            plmscope: serde_json::json!({ "options": trainer.options(), "steps_done": trainer.steps_done() }),
        };
        let (cfg, weights) = weights::sae::to_saelens(&trainer.sae(), &origin).await.map_err(js_err)?;
        let out = js_sys::Object::new();
        js_sys::Reflect::set(&out, &"cfg".into(), &cfg.into()).map_err(|_| js_err("building the result"))?;
        js_sys::Reflect::set(&out, &"weights".into(), &js_sys::Uint8Array::from(&weights[..]).into()).map_err(|_| js_err("building the result"))?;
        js_sys::Reflect::set(&out, &"layer".into(), &(*layer).into()).map_err(|_| js_err("building the result"))?;
        Ok(out.into())
    }
}

/// The speed benchmark (pkg-build/bench/): the same cases as `plmscope bench-cases`, on the model
/// and the SAE of layer 3 loaded here (`loadRandom`, `loadRandomSae(3, 10240, seed)`), timed by
/// the caller around `benchRun`.
#[wasm_bindgen]
impl Plmscope {
    /// Prepares `case` ("forward", "sae", "intervene", "matmul") for `batch` sequences of
    /// `residues`.
    #[wasm_bindgen(js_name = benchPrepare)]
    pub fn bench_prepare(&mut self, case: &str, batch: usize, residues: usize) -> Result<(), JsError> {
        let (_, model) = self.model.as_ref().ok_or_else(|| js_err("no model is loaded"))?;
        let case: bench::Case = case.parse().map_err(js_err)?;
        let sae = self.sae(bench::LAYER)?;
        self.bench = Some(bench::prepare(model, sae, case, batch, residues).map_err(js_err)?);
        Ok(())
    }

    /// Runs the prepared case once, results read back; returns how many numbers came back.
    #[wasm_bindgen(js_name = benchRun)]
    pub async fn bench_run(&self) -> Result<usize, JsError> {
        let (_, model) = self.model.as_ref().ok_or_else(|| js_err("no model is loaded"))?;
        let prepared = self.bench.as_ref().ok_or_else(|| js_err("call benchPrepare first"))?;
        Ok(bench::run(model, self.sae(bench::LAYER)?, prepared).await?.len())
    }
}

#[derive(serde::Deserialize)]
struct SteerRequest {
    layer: usize,
    edits: Vec<Edit>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateRequest {
    #[serde(default)]
    steers: Vec<SteerRequest>,
    start: Option<String>,
    length: usize,
    rounds: usize,
    mask_fraction: f32,
    temperature: f32,
    top_p: f32,
    seed: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TrainingInfo {
    layer: usize,
    tokens: usize,
    sequences: usize,
    steps: usize,
}

#[derive(Serialize)]
struct LabelsInfo {
    proteins: usize,
    concepts: Vec<(String, usize)>,
    skipped: Vec<String>,
}

fn top(values: &[f32], n: usize) -> Vec<(usize, f32)> {
    let mut order: Vec<usize> = (0..values.len()).filter(|&j| values[j] > 0.0).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    order.into_iter().take(n).map(|j| (j, values[j])).collect()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SaeInfo {
    layer: usize,
    format: SaeFormat,
    d_sae: usize,
    has_rescale: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FeaturesOut<'a> {
    header: String,
    sequence: String,
    layer: usize,
    d_sae: usize,
    features: &'a SparseFeatures,
    top_by_max: Vec<(usize, f32)>,
    top_by_mean: Vec<(usize, f32)>,
    reconstruction: Reconstruction,
    predictions: Vec<ResiduePrediction>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Downstream {
    layer: usize,
    before: SparseFeatures,
    after: SparseFeatures,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InterventionOut {
    /// `[T, vocab]` after the intervention, row-major.
    logits: Vec<f32>,
    /// Per residue (cls/eos excluded).
    delta_logprob: Vec<f32>,
    predictions: Vec<ResiduePrediction>,
    downstream: Option<Downstream>,
}
