//! The one owner of what the page and the CLI do with a model: load it and its SAEs (through the
//! one format detector), run a sequence and keep its pass, features at a layer, interventions with
//! their downstream effect, and the analyses as jobs ([`jobs`]). `web.rs` and each CLI verb only
//! translate arguments into these calls and the typed results back.

mod jobs;

pub use jobs::{AtlasProgress, AtlasRequest, GenerateRequest, GeneratedPair, LabelsInfo, SaeLensFiles, TrainingInfo};

use burn::prelude::*;
use serde::Serialize;

use crate::alphabet::{self, Record};
use crate::analysis::labels::{Annotated, LabelError};
use crate::analysis::probe::Probe;
use crate::analysis::atlas::{AtlasError, Identity};
use crate::analysis::AnalysisError;
use crate::device::{f16_available, read_f32, DeviceError, Precision};
use crate::embed::{self, RecordOutput, ResiduePrediction};
use crate::esm::{Activations, Batch, EsmConfig, EsmModel};
use crate::features::{self, Reconstruction, SparseEncoded, SparseFeatures, UseError};
use crate::intervene::{self, Edit};
use crate::sae::{Sae, SaeFormat, SaeSet};
use crate::train::TrainError;
use crate::weights::detect::{self, ModelFiles, NamedFile};
use crate::weights::sae::SaveError;
use crate::weights::{self, random, LoadError, Vars};

/// The offline demo's seed: its random model and SAEs are the same bits everywhere (natively,
/// in the page, in the benchmarks).
pub const DEMO_SEED: u64 = random::SEED;
/// Features of the offline demo's random SAEs (InterPLM-esm2-8m's width).
pub const DEMO_D_SAE: usize = 10_240;
/// Under `auto` precision, a model whose f32 dense weights pass this many bytes is held in f16
/// where the device can: 650M (2.6 GB) is, 150M (0.6 GB) is not.
pub const AUTO_F16_BYTES: usize = 1 << 30;
/// Features listed per ranking in a [`FeaturesView`].
pub const TOP_FEATURES: usize = 64;

/// Why a session call could not be done.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("no model is loaded")]
    NoModel,
    #[error("no model is being streamed in: start one first")]
    NoStream,
    #[error("run a sequence first")]
    NoSequence,
    #[error("no SAE is loaded for layer {0}")]
    NoSae(usize),
    #[error("no circuit has been started")]
    NoCircuit,
    #[error("no SAE is being trained")]
    NoTraining,
    #[error("no atlas is being built")]
    NoAtlas,
    #[error("train or load a probe first")]
    NoProbe,
    #[error("record {asked} of {records} does not exist")]
    NoRecord { asked: usize, records: usize },
    #[error("downstream layer {downstream} must come after the edited layer {layer}")]
    Downstream { layer: usize, downstream: usize },
    #[error("f16 weights need a GPU whose adapter has 16-bit floats (WebGPU's shader-f16); this device has none, so the model stays in f32")]
    NoF16,
    #[error("{what}: {detail}")]
    Request { what: &'static str, detail: String },
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Input(#[from] alphabet::InputError),
    #[error(transparent)]
    Use(#[from] UseError),
    #[error(transparent)]
    Analysis(#[from] AnalysisError),
    #[error(transparent)]
    Labels(#[from] LabelError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Save(#[from] SaveError),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Atlas(#[from] AtlasError),
}

/// plmscope's own random checkpoints say so in their config.json.
fn marked_random(config_json: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(config_json).is_ok_and(|v| v.get("plmscope_random_weights_seed").is_some())
}

/// What a model's weights take on its device: the dense layers' in `precision`, the rest in f32.
fn weight_bytes(config: &EsmConfig, precision: Precision) -> usize {
    let (d, f, v) = (config.hidden_size, config.intermediate_size, config.vocab_size);
    // Biases and layer norms: 4 projections, fc1, fc2, two norms per block; the head's dense, norm and bias; the final norm.
    let rest = config.num_hidden_layers * (4 * d + f + d + 4 * d) + v * d + d + 2 * d + v + 2 * d;
    precision.bytes() * config.dense_weights() + 4 * rest
}

/// What chooses a model's precision and says whether it fits the device, copied out of the
/// session for a load whose configuration arrives with its weights (a fair-esm `.pt`).
#[derive(Debug, Clone, Copy)]
struct Fit {
    /// `None`: auto.
    asked: Option<Precision>,
    f16: bool,
    buffer_limit: Option<usize>,
}

impl Fit {
    fn precision_for(&self, config: &EsmConfig) -> Precision {
        match self.asked {
            Some(p) => p,
            None if self.f16 && 4 * config.dense_weights() > AUTO_F16_BYTES => Precision::F16,
            None => Precision::F32,
        }
    }

    /// The precision of a model of `config`, or its refusal where its largest buffer passes the
    /// buffer limit: its largest weight, or the attention scores or the feed-forward activations
    /// of one sequence of the most tokens it takes.
    fn decide(&self, config: &EsmConfig) -> std::result::Result<Precision, LoadError> {
        let precision = self.precision_for(config);
        let Some(limit) = self.buffer_limit else { return Ok(precision) };
        let (d, f, t) = (config.hidden_size, config.intermediate_size, config.max_position_embeddings);
        let needs = [
            ("its largest weight", precision.bytes() * d * f),
            ("the attention scores of its longest sequence", 4 * config.num_attention_heads * t * t),
            ("the feed-forward activations of its longest sequence", 4 * t * f),
        ];
        match needs.into_iter().find(|&(_, bytes)| bytes > limit) {
            Some((what, bytes)) => Err(LoadError::BufferLimit { what, bytes, limit }),
            None => Ok(precision),
        }
    }
}

/// The SHA-256 of the files the detector chose, in its order (config before weights).
fn sha256_of(files: &[NamedFile<'_>], chosen: &[usize]) -> String {
    Identity::of("", &chosen.iter().map(|&i| files[i].bytes).collect::<Vec<_>>()).sha256
}

pub type Result<T> = std::result::Result<T, SessionError>;

/// The loaded model, as the page and the CLI name it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelInfo {
    /// What the caller called it (a hub repository, file names).
    pub name: String,
    pub n_layers: usize,
    pub d_model: usize,
    pub n_heads: usize,
    /// Built by [`Session::load_random_model`]: the page must say so.
    pub random_weights: bool,
    /// A checkpoint plmscope wrote with random weights (its config.json says so).
    pub random_checkpoint: bool,
    /// SHA-256 of the files it was read from (of its seed, for the random demo): what an atlas
    /// names it by.
    pub sha256: String,
    /// How its dense layers' weights are held on the device.
    pub precision: Precision,
    /// The GPU memory (or, on the CPU, the memory) its weights take, in bytes.
    pub weight_bytes: usize,
}

/// What a model would hold once loaded ([`Session::plan_for`]).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub precision: Precision,
    pub weight_bytes: usize,
}

/// An SAE installed at a layer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SaeInfo {
    pub layer: usize,
    pub name: String,
    pub format: SaeFormat,
    pub d_sae: usize,
    pub has_rescale: bool,
    /// The offline demo's random SAE: the page must say so.
    pub random: bool,
    /// SHA-256 of the files it was read from (of its seed, for the random demo).
    pub sha256: String,
}

/// The features of the shown sequence at one layer, sparse, with its predictions.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FeaturesView {
    pub header: String,
    pub sequence: String,
    pub layer: usize,
    pub d_sae: usize,
    pub features: SparseFeatures,
    /// (feature, value), the largest first, at most [`TOP_FEATURES`].
    pub top_by_max: Vec<(usize, f32)>,
    pub top_by_mean: Vec<(usize, f32)>,
    pub reconstruction: Reconstruction,
    pub predictions: Vec<ResiduePrediction>,
}

/// A later layer's features before and after an intervention.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Downstream {
    pub layer: usize,
    pub before: SparseFeatures,
    pub after: SparseFeatures,
}

/// An intervention on the shown sequence.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InterventionView {
    /// `[T, vocab]` after the intervention, row-major.
    pub logits: Vec<f32>,
    /// Per residue (cls/eos excluded).
    pub delta_logprob: Vec<f32>,
    pub predictions: Vec<ResiduePrediction>,
    pub downstream: Option<Downstream>,
}

/// One record after an intervention, for batch output: every hidden state (the plain pass's
/// before the edited layer) and the logits.
pub struct Intervened {
    /// `[n_layers + 1, T, d_model]`.
    pub hidden_states: (Vec<usize>, Vec<f32>),
    /// `[T, vocab]`.
    pub logits: (Vec<usize>, Vec<f32>),
}

struct Loaded {
    model: EsmModel,
    info: ModelInfo,
}

/// The shown sequence's pass, kept so that interventions re-run only the layers after theirs.
struct Cached {
    record: Record,
    batch: Batch,
    acts: Activations,
    /// `[T, vocab]` logits of the plain pass, on the host.
    logits: Vec<f32>,
    /// The SAE encoding last shown, by layer: what interventions at that layer start from.
    encoded: Option<(usize, SparseEncoded)>,
}

/// A model whose weights are arriving ([`Session::model_stream_start`]).
struct Streaming {
    stream: weights::esm::ModelStream,
    name: String,
    /// Of the config (for a hub folder), then of every chunk: the SHA-256 of the files.
    sha256: sha2::Sha256,
    random_checkpoint: bool,
    received: usize,
}

/// How far a streamed model has come: `total` once the weights' header is in.
#[derive(Debug, Clone, Serialize)]
pub struct StreamProgress {
    pub received: usize,
    pub total: Option<usize>,
}

/// A model on a device, its SAEs, the shown sequence and the jobs running on them.
pub struct Session {
    device: Device,
    model: Option<Loaded>,
    streaming: Option<Streaming>,
    saes: SaeSet,
    cache: Option<Cached>,
    labels: Vec<Annotated>,
    probe: Option<Probe>,
    /// What each installed SAE is, by layer.
    sae_infos: Vec<SaeInfo>,
    jobs: jobs::Jobs,
    /// The precision asked for the next model; `None`: auto.
    precision: Option<Precision>,
    /// The largest buffer the device binds, where the caller has said (a WebGPU adapter's limits).
    buffer_limit: Option<usize>,
}

impl Session {
    pub fn new(device: Device) -> Self {
        Session {
            device,
            model: None,
            streaming: None,
            saes: SaeSet::default(),
            cache: None,
            labels: Vec::new(),
            probe: None,
            sae_infos: Vec::new(),
            jobs: jobs::Jobs::default(),
            precision: None,
            buffer_limit: None,
        }
    }

    /// The most bytes the device binds in one buffer (WebGPU: the smaller of the adapter's
    /// `maxStorageBufferBindingSize` and `maxBufferSize`): a model whose buffers pass it is refused
    /// before it loads, in words that name the limit, rather than failing on the GPU.
    pub fn set_buffer_limit(&mut self, bytes: usize) {
        self.buffer_limit = Some(bytes);
    }

    /// What chooses the next model's precision and says whether it fits.
    fn fit(&self) -> Fit {
        Fit { asked: self.precision, f16: f16_available(&self.device), buffer_limit: self.buffer_limit }
    }

    /// The precision of the models loaded from now on: `"f32"`, `"f16"` (refused where the device
    /// has no f16) or `"auto"` (f16 where the device has it and the f32 weights pass
    /// [`AUTO_F16_BYTES`]). The loaded model keeps its own until the next load.
    pub fn set_precision(&mut self, choice: &str) -> Result<()> {
        self.precision = match choice {
            "auto" => None,
            "f32" => Some(Precision::F32),
            "f16" if f16_available(&self.device) => Some(Precision::F16),
            "f16" => return Err(SessionError::NoF16),
            other => return Err(SessionError::Request { what: "precision", detail: format!("\"{other}\" is none of auto, f32, f16") }),
        };
        Ok(())
    }

    /// Whether this session's device can hold a model in f16.
    pub fn f16_available(&self) -> bool {
        f16_available(&self.device)
    }

    /// What the next load of ESM-2 `size` ("8M" … "15B") would hold, before anything is read.
    pub fn plan_for(&self, size: &str) -> Result<Plan> {
        let config = EsmConfig::esm2(size).ok_or_else(|| SessionError::Request { what: "ESM-2 size", detail: format!("\"{size}\" is none of 8M, 35M, 150M, 650M, 3B, 15B") })?;
        let precision = self.precision_for(&config);
        Ok(Plan { precision, weight_bytes: weight_bytes(&config, precision) })
    }

    /// The precision the next model of `config` gets (the page says it before the download).
    pub fn precision_for(&self, config: &EsmConfig) -> Precision {
        self.fit().precision_for(config)
    }

    fn loaded(&self) -> Result<&Loaded> {
        self.model.as_ref().ok_or(SessionError::NoModel)
    }

    /// The loaded model.
    pub fn model(&self) -> Result<&EsmModel> {
        Ok(&self.loaded()?.model)
    }

    pub fn model_info(&self) -> Result<ModelInfo> {
        Ok(self.loaded()?.info.clone())
    }

    /// The SAE at `layer`.
    pub fn sae(&self, layer: usize) -> Result<&Sae> {
        self.saes.get(layer).ok_or(SessionError::NoSae(layer))
    }

    pub fn sae_info(&self, layer: usize) -> Result<&SaeInfo> {
        self.sae_infos.iter().find(|i| i.layer == layer).ok_or(SessionError::NoSae(layer))
    }

    fn install_model(&mut self, config: EsmConfig, model: EsmModel, name: String, random_weights: bool, random_checkpoint: bool, sha256: String) -> ModelInfo {
        let precision = model.precision();
        let info = ModelInfo {
            sha256,
            precision,
            weight_bytes: weight_bytes(&config, precision),
            name,
            n_layers: config.num_hidden_layers,
            d_model: config.hidden_size,
            n_heads: config.num_attention_heads,
            random_weights,
            random_checkpoint,
        };
        // Everything else was made for the previous model: its width, its layers.
        let (asked, limit) = (self.precision, self.buffer_limit);
        *self = Session::new(self.device.clone());
        (self.precision, self.buffer_limit) = (asked, limit);
        self.model = Some(Loaded { model, info: info.clone() });
        info
    }

    /// Loads a model from the files the user has (a hub folder's, or a fair-esm `.pt`), replacing
    /// the model and everything made with it: the streamed load, given each file whole.
    pub fn load_model(&mut self, files: &[NamedFile<'_>], name: &str) -> Result<ModelInfo> {
        let weights = self.model_stream_start(files, name)?;
        self.model_stream_push(files[weights].bytes)?;
        self.model_stream_finish()
    }

    /// Starts a model load from the files' starts ([`detect::PREFIX`] bytes each; a config whole)
    /// and returns the index of the weights file, whose bytes the caller then gives in order to
    /// [`Session::model_stream_push`] and ends with [`Session::model_stream_finish`]. The model
    /// loaded before stays until the new one is in.
    pub fn model_stream_start(&mut self, files: &[NamedFile<'_>], name: &str) -> Result<usize> {
        use sha2::Digest;
        self.streaming = None;
        let fit = self.fit();
        let (stream, weights, sha256, random_checkpoint) = match detect::model_files(files)? {
            ModelFiles::Hub { config, weights } => {
                let text = detect::text(&files[config])?;
                let parsed = EsmConfig::from_json(text).map_err(LoadError::from)?;
                let precision = fit.decide(&parsed)?;
                let stream = weights::esm::ModelStream::Hub(weights::esm::HubStream::new(parsed, &self.device, precision));
                (stream, weights, sha2::Sha256::new_with_prefix(files[config].bytes), marked_random(text))
            }
            ModelFiles::FairEsm { pt } => {
                let decide = Box::new(move |config: &EsmConfig| fit.decide(config));
                let stream = weights::esm::ModelStream::FairEsm(weights::esm::FairEsmStream::new(files[pt].name, &self.device, decide));
                (stream, pt, sha2::Sha256::new(), false)
            }
        };
        self.streaming = Some(Streaming { stream, name: name.to_string(), sha256, random_checkpoint, received: 0 });
        Ok(weights)
    }

    /// The next bytes of the streamed weights; an error ends the load.
    pub fn model_stream_push(&mut self, chunk: &[u8]) -> Result<StreamProgress> {
        use sha2::Digest;
        let s = self.streaming.as_mut().ok_or(SessionError::NoStream)?;
        s.sha256.update(chunk);
        s.received += chunk.len();
        if let Err(e) = s.stream.push(chunk) {
            self.streaming = None;
            return Err(e.into());
        }
        Ok(StreamProgress { received: s.received, total: s.stream.expected_len() })
    }

    /// The streamed model, built once every tensor is in, replacing the model and everything
    /// made with it.
    pub fn model_stream_finish(&mut self) -> Result<ModelInfo> {
        use sha2::Digest;
        let s = self.streaming.take().ok_or(SessionError::NoStream)?;
        let (config, model) = s.stream.finish()?;
        let sha256 = s.sha256.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(self.install_model(config, model, s.name, false, s.random_checkpoint, sha256))
    }

    /// The offline demo: esm2_t6_8M with the deterministic random weights of [`DEMO_SEED`].
    pub fn load_random_model(&mut self) -> Result<ModelInfo> {
        let config = EsmConfig::esm2_t6_8m();
        let vars = Vars::random(DEMO_SEED, &self.device).with_precision(self.precision_for(&config));
        let model = EsmModel::load(&vars, &config)?;
        let name = format!("random weights ({} layers, d_model {})", config.num_hidden_layers, config.hidden_size);
        let sha256 = Identity::of(&name, &[format!("plmscope random esm2_t6_8M, seed {DEMO_SEED}").as_bytes()]).sha256;
        Ok(self.install_model(config, model, name, true, false, sha256))
    }

    /// InterPLM's published numbers for real esm2_t6_8M weights (sequence MKTA): pass or fail.
    pub async fn self_check(&self) -> Result<crate::selfcheck::SelfCheck> {
        Ok(crate::selfcheck::run(self.model()?, &self.device).await?)
    }

    /// Loads the SAE that reads hidden state `layer` from the user's files, replacing any other
    /// at that layer. `k` for a top-k SAE whose file name does not give it.
    pub fn load_sae(&mut self, layer: usize, files: &[NamedFile<'_>], k: Option<usize>, name: &str) -> Result<SaeInfo> {
        let model = self.model()?;
        let detected = detect::sae_files(files)?;
        let sha256 = sha256_of(files, &detected.indices());
        let sae = weights::sae::load(detected.source(files, k)?, model.d_model(), &self.device)?;
        self.install_sae(layer, sae, name, false, sha256)
    }

    /// The offline demo's random InterPLM-shaped SAE at `layer`.
    pub fn load_random_sae(&mut self, layer: usize) -> Result<SaeInfo> {
        let seed = DEMO_SEED ^ layer as u64;
        let sae = weights::sae::random_interplm(self.model()?.d_model(), DEMO_D_SAE, seed, &self.device)?;
        let sha256 = Identity::of("", &[format!("plmscope random InterPLM SAE, d_sae {DEMO_D_SAE}, seed {seed}").as_bytes()]).sha256;
        self.install_sae(layer, sae, "random demo SAE", true, sha256)
    }

    /// Puts `sae` at `layer` for every view and job.
    pub fn install_sae(&mut self, layer: usize, sae: Sae, name: &str, random: bool, sha256: String) -> Result<SaeInfo> {
        features::check(self.model()?, &sae, layer)?;
        let info = SaeInfo { layer, name: name.to_string(), format: sae.format, d_sae: sae.d_sae, has_rescale: sae.rescale.is_some(), random, sha256 };
        self.sae_infos.retain(|i| i.layer != layer);
        self.sae_infos.push(info.clone());
        self.saes.insert(layer, sae);
        if let Some(c) = self.cache.as_mut() {
            c.encoded = None;
        }
        Ok(info)
    }

    /// Runs the `record`-th (0-based) sequence of a FASTA text and keeps its pass as the shown
    /// sequence; returns its features at `layer`.
    pub async fn run(&mut self, fasta: &str, record: usize, layer: usize) -> Result<FeaturesView> {
        let model = self.model()?;
        let records = alphabet::parse_fasta(fasta)?;
        let chosen = records.get(record).ok_or(SessionError::NoRecord { asked: record + 1, records: records.len() })?.clone();
        let batch = Batch::new(&[chosen.tokens()], &self.device);
        let acts = model.forward(&batch);
        let logits = read_f32(acts.logits.clone()).await?;
        self.cache = Some(Cached { record: chosen, batch, acts, logits, encoded: None });
        self.features_at(layer).await
    }

    /// Features at `layer` of the shown sequence (no forward pass).
    pub async fn features_at(&mut self, layer: usize) -> Result<FeaturesView> {
        let sae = self.sae(layer)?.clone();
        let cached = self.cache.as_mut().ok_or(SessionError::NoSequence)?;
        cached.encoded = None; // the last layer's, freed before this one is built
        let (encoded, reconstruction) = features::encode_sparse(&sae, features::residues(&cached.acts, layer)).await?;
        let summary = encoded.features.summary();
        let view = FeaturesView {
            header: cached.record.header.clone(),
            sequence: cached.record.sequence(),
            layer,
            d_sae: sae.d_sae,
            features: encoded.features.clone(),
            top_by_max: top(&summary.max, TOP_FEATURES),
            top_by_mean: top(&summary.mean, TOP_FEATURES),
            reconstruction,
            predictions: embed::predictions(&cached.logits, &cached.record.tokens(), 3),
        };
        cached.encoded = Some((layer, encoded));
        Ok(view)
    }

    /// Edits features at `layer` of the shown sequence and re-runs only the layers after it;
    /// with `downstream`, that later layer's features before and after.
    pub async fn intervene(&self, layer: usize, edits: &[Edit], downstream: Option<usize>) -> Result<InterventionView> {
        let model = self.model()?;
        let cached = self.cache.as_ref().ok_or(SessionError::NoSequence)?;
        let sae = self.sae(layer)?;
        let after = match &cached.encoded {
            Some((l, e)) if *l == layer => intervene::intervene(model, sae, layer, &cached.acts, &cached.batch, e, edits),
            _ => intervene::intervene(model, sae, layer, &cached.acts, &cached.batch, &features::encode(&cached.acts, sae, layer), edits),
        }?;
        let logits = read_f32(after.logits.clone()).await?;
        let tokens = cached.record.tokens();
        let downstream = match downstream {
            Some(m) if m > layer => {
                let down = self.sae(m)?;
                let before = read_f32(features::encode(&cached.acts, down, m).features).await?;
                let after = read_f32(features::encode(&after, down, m).features).await?;
                Some(Downstream { layer: m, before: SparseFeatures::from_dense(&before, down.d_sae), after: SparseFeatures::from_dense(&after, down.d_sae) })
            }
            Some(m) => return Err(SessionError::Downstream { layer, downstream: m }),
            None => None,
        };
        Ok(InterventionView {
            delta_logprob: intervene::delta_logprob(&cached.logits, &logits, &tokens),
            predictions: embed::predictions(&logits, &tokens, 3),
            logits,
            downstream,
        })
    }

    /// Every hidden state and the logits of one record (batch work; the shown sequence stays).
    pub async fn embed(&self, record: &Record) -> Result<RecordOutput> {
        Ok(embed::run_record(self.model()?, &record.tokens(), &self.device).await?)
    }

    /// The features of every residue of one record at `layer`, dense: `[residues, d_sae]`, divided
    /// by InterPLM's activation_rescale_factor when `normalized` (batch work).
    pub async fn dense_features(&self, record: &Record, layer: usize, normalized: bool) -> Result<(Vec<usize>, Vec<f32>)> {
        let (model, sae) = (self.model()?, self.sae(layer)?);
        features::check(model, sae, layer)?;
        let acts = model.forward(&Batch::new(&[record.tokens()], &self.device));
        let mut f = features::encode(&acts, sae, layer).features;
        if normalized {
            f = sae.normalised_features(f);
        }
        let shape = f.dims().to_vec();
        Ok((shape, read_f32(f).await?))
    }

    /// One record with `edits` at `layer` (batch work; the shown sequence stays).
    pub async fn intervene_record(&self, record: &Record, layer: usize, edits: &[Edit]) -> Result<Intervened> {
        let (model, sae) = (self.model()?, self.sae(layer)?);
        let batch = Batch::new(&[record.tokens()], &self.device);
        let cache = model.forward(&batch);
        let encoded = features::encode(&cache, sae, layer);
        let after = intervene::intervene(model, sae, layer, &cache, &batch, &encoded, edits)?;
        let hidden: Vec<_> = (0..=model.n_layers()).map(|l| if l < layer { cache.hidden(l).clone() } else { after.hidden(l).clone() }).collect();
        let hidden = Tensor::cat(hidden, 0); // [n_layers + 1, T, d]
        let [_, t, v] = after.logits.dims();
        let logits = after.logits.reshape([t, v]);
        Ok(Intervened { hidden_states: (hidden.dims().to_vec(), read_f32(hidden).await?), logits: (vec![t, v], read_f32(logits).await?) })
    }
}

fn top(values: &[f32], n: usize) -> Vec<(usize, f32)> {
    let mut order: Vec<usize> = (0..values.len()).filter(|&j| values[j] > 0.0).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    order.into_iter().take(n).map(|j| (j, values[j])).collect()
}
